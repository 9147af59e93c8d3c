import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
// The satisfaction survey's score credited to every agent who took part in the call (transfers,
// conference), and on the call how the key reads (scale) and whether it counts as satisfied.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('calls')
    .addColumn('survey_scale', 'smallint')
    .addColumn('survey_satisfied', 'boolean')
    .addColumn('survey_at', 'timestamptz')
    .execute();
  await db.schema
    .createTable('survey_results')
    .addColumn('call_id', 'uuid', (c) => c.notNull())
    .addColumn('agent_id', 'text', (c) => c.notNull())
    .addColumn('line', 'text')
    .addColumn('score', 'smallint', (c) => c.notNull())
    .addColumn('scale', 'smallint', (c) => c.notNull().check(sql`scale in (3, 5)`))
    .addColumn('satisfied', 'boolean', (c) => c.notNull())
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('survey_results_pk', ['call_id', 'agent_id'])
    .execute();
  await db.schema.createIndex('survey_results_agent_at_idx').on('survey_results').columns(['agent_id', 'at']).execute();
  await db.schema.createIndex('survey_results_at_idx').on('survey_results').column('at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('survey_results').execute();
  await db.schema.alterTable('calls').dropColumn('survey_scale').dropColumn('survey_satisfied').dropColumn('survey_at').execute();
}
