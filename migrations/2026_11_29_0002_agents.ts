import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
export async function up(db: Kysely<any>): Promise<void> {
  // An agent: its employee number is its id everywhere (call records, Redis, ARI dial strings).
  // Deleting an agent only sets deleted_at: call records and the state log keep pointing at it.
  await db.schema
    .createTable('agents')
    .addColumn('employee_no', 'text', (c) => c.primaryKey().check(sql`employee_no ~ '^[A-Za-z0-9]{1,16}$'`))
    .addColumn('name', 'text', (c) => c.notNull())
    // [{skill, level}] with level 1..9 (checked by the API)
    .addColumn('skills', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('phone_kind', 'text', (c) => c.notNull().check(sql`phone_kind in ('softphone','uri')`))
    .addColumn('phone_uri', 'text')
    // plain text on purpose: Asterisk needs it to challenge the softphone (README, "Agents' phones")
    .addColumn('sip_password', 'text')
    // the dial string, PJSIP/agent<employee_no>
    .addColumn('endpoint', 'text', (c) => c.notNull())
    // null: the queue's or the service's default
    .addColumn('wrap_up_seconds', 'integer', (c) => c.check(sql`wrap_up_seconds between 0 and 3600`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('deleted_at', 'timestamptz')
    .addCheckConstraint(
      'agents_phone_check',
      sql`(phone_kind = 'softphone' and sip_password is not null and phone_uri is null)
        or (phone_kind = 'uri' and phone_uri is not null and sip_password is null)`,
    )
    .execute();

  // an agent's account is found by agent_id (not unique: other accounts may act for an agent id)
  await db.schema.createIndex('users_agent_id_idx').on('users').column('agent_id').execute();

  await db.schema
    .createTable('agent_state_log')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('agent_id', 'text', (c) => c.notNull())
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('from_state', 'text', (c) => c.notNull())
    .addColumn('to_state', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('call_id', 'uuid')
    .addColumn('actor', 'text')
    .execute();
  await db.schema.createIndex('agent_state_log_agent_at_idx').on('agent_state_log').columns(['agent_id', 'at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('agent_state_log').execute();
  await db.schema.dropIndex('users_agent_id_idx').ifExists().execute();
  await db.schema.dropTable('agents').execute();
}
