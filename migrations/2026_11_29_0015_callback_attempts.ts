import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
// Closed tickets' callbacks executed by jobs: every attempt and its outcome; the lease of the attempt being
// dialled (a process that dies mid-attempt leaves it to expire); the supervisors' overdue alert, sent once.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('callbacks')
    .addColumn('lease_until', 'timestamptz')
    .addColumn('overdue_alerted_at', 'timestamptz')
    .addColumn('last_outcome', 'text')
    .addColumn('survey_score', 'smallint')
    .execute();
  await db.schema
    .createTable('callback_attempts')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('callback_id', 'uuid', (c) => c.notNull().references('callbacks.id').onDelete('cascade'))
    .addColumn('attempt', 'integer', (c) => c.notNull())
    // callback id + attempt: a job run twice (BullMQ is at-least-once) finds its attempt taken
    .addColumn('idempotency_key', 'text', (c) => c.notNull().unique())
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('answered_at', 'timestamptz')
    .addColumn('ended_at', 'timestamptz')
    // answered | busy | no_answer | failed | interrupted
    .addColumn('outcome', 'text')
    .addColumn('cause', 'text')
    .addColumn('call_id', 'uuid')
    .execute();
  await db.schema.createIndex('callback_attempts_callback_idx').on('callback_attempts').columns(['callback_id', 'attempt']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('callback_attempts').execute();
  await db.schema.alterTable('callbacks').dropColumn('lease_until').dropColumn('overdue_alerted_at').dropColumn('last_outcome').dropColumn('survey_score').execute();
}
