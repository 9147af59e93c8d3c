import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
// KPI rollups (docs/kpi.md): per period (15-minute interval, Asia/Shanghai day, Asia/Shanghai month) and per
// dimension (all / line / queue / agent) the counts and sums every KPI is computed from, so that any set of rows
// re-aggregates exactly (sums of sums; the wait times themselves, in ms, for the 90th percentile). The rollup
// jobs' runs; the periodic reports (HTML and CSV kept in the row).
export async function up(db: Kysely<any>): Promise<void> {
  // int[] concatenation as an aggregate: a day's wait times are its intervals' wait times put together
  await sql`create aggregate kpi_int_array_cat(int[]) (sfunc = array_cat, stype = int[], initcond = '{}')`.execute(db);

  const count = (c: any) => c.notNull().defaultTo(0);
  await db.schema
    .createTable('kpi_rollups')
    .addColumn('grain', 'text', (c) => c.notNull().check(sql`grain in ('15m','day','month')`))
    .addColumn('period_start', 'timestamptz', (c) => c.notNull())
    .addColumn('dim', 'text', (c) => c.notNull().check(sql`dim in ('all','line','queue','agent')`))
    // '' for dim 'all', else the line (dialled number), queue id or agent id
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('offered', 'integer', count)
    .addColumn('answered', 'integer', count)
    .addColumn('ivr_completed', 'integer', count)
    .addColumn('abandoned', 'integer', count)
    .addColumn('short_abandoned', 'integer', count)
    .addColumn('voicemails', 'integer', count)
    .addColumn('callback_requested', 'integer', count)
    .addColumn('other_unanswered', 'integer', count)
    .addColumn('transfers', 'integer', count)
    .addColumn('wait_count', 'integer', count)
    .addColumn('wait_sum_ms', 'bigint', count)
    .addColumn('sl_answered', 'integer', count)
    // every wait of the period (ms, unordered): the exact p90 of any set of rows is the p90 of their arrays together
    .addColumn('wait_ms', sql`int[]`, (c) => c.notNull().defaultTo(sql`'{}'::int[]`))
    .addColumn('talk_count', 'integer', count)
    .addColumn('talk_sum_ms', 'bigint', count)
    .addColumn('wrap_count', 'integer', count)
    .addColumn('wrap_sum_ms', 'bigint', count)
    .addColumn('ratings', 'integer', count)
    .addColumn('satisfied', 'integer', count)
    .addColumn('fcr_first_calls', 'integer', count)
    .addColumn('fcr_resolved_calls', 'integer', count)
    .addColumn('tickets_opened', 'integer', count)
    .addColumn('tickets_resolved_first_contact', 'integer', count)
    .addColumn('tickets_dispatched', 'integer', count)
    .addColumn('tickets_returned', 'integer', count)
    .addColumn('tickets_closed', 'integer', count)
    .addColumn('tickets_called_back_24h', 'integer', count)
    .addColumn('tickets_callback_skipped', 'integer', count)
    .addPrimaryKeyConstraint('kpi_rollups_pk', ['grain', 'dim', 'key', 'period_start'])
    .execute();
  await db.schema.createIndex('kpi_rollups_period_idx').on('kpi_rollups').columns(['grain', 'period_start']).execute();

  await db.schema
    .createTable('kpi_rollup_runs')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('job_id', 'text')
    .addColumn('kind', 'text', (c) => c.notNull())
    // [[from, to], ...] of the 15-minute ranges rolled from the records (ISO)
    .addColumn('ranges', 'jsonb', (c) => c.notNull())
    .addColumn('intervals', 'integer', (c) => c.notNull())
    .addColumn('rows', 'integer', (c) => c.notNull())
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('finished_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('kpi_rollup_runs_job_idx').on('kpi_rollup_runs').column('job_id').execute();
  await db.schema.createIndex('kpi_rollup_runs_finished_idx').on('kpi_rollup_runs').column('finished_at').execute();

  await db.schema
    .createTable('kpi_reports')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('monthly','quarterly','half-yearly','annual')`))
    .addColumn('period', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('queued').check(sql`status in ('queued','running','done','failed')`))
    .addColumn('html', 'text')
    .addColumn('csv', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .addColumn('error', 'text')
    .execute();
  await db.schema.createIndex('kpi_reports_created_idx').on('kpi_reports').columns(['created_at desc', 'id desc']).execute();

  // late changes the 15-minute rollup looks for (src/kpi/rollup.ts dirtyIntervals): what changed recently
  await db.schema.createIndex('calls_ended_at_idx').on('calls').column('ended_at').execute();
  await db.schema.createIndex('calls_survey_at_idx').on('calls').column('survey_at').where(sql.ref('survey_at'), 'is not', null).execute();
  await db.schema.createIndex('calls_answered_at_idx').on('calls').column('answered_at').where(sql.ref('answered_at'), 'is not', null).execute();
  await db.schema.createIndex('agent_state_log_at_idx').on('agent_state_log').columns(['at', 'id']).execute();
  await db.schema.createIndex('tickets_updated_at_idx').on('tickets').column('updated_at').execute();
  await db.schema.createIndex('ticket_events_received_at_idx').on('ticket_events').column('received_at').execute();
  // a ticket opens at its earliest event time (src/kpi/definitions.ts): the FCR-from-tickets rollup looks it up
  await sql`create index tickets_opened_at_idx on tickets ((least(created_at, dispatched_at, returned_at, resolved_first_contact_at, closed_at)))`.execute(db);
  await db.schema.createIndex('callbacks_done_at_idx').on('callbacks').column('done_at').where(sql.ref('done_at'), 'is not', null).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const i of ['callbacks_done_at_idx', 'tickets_opened_at_idx', 'ticket_events_received_at_idx', 'tickets_updated_at_idx', 'agent_state_log_at_idx', 'calls_answered_at_idx', 'calls_survey_at_idx', 'calls_ended_at_idx']) {
    await db.schema.dropIndex(i).ifExists().execute();
  }
  await db.schema.dropTable('kpi_reports').execute();
  await db.schema.dropTable('kpi_rollup_runs').execute();
  await db.schema.dropTable('kpi_rollups').execute();
  await sql`drop aggregate kpi_int_array_cat(int[])`.execute(db);
}
