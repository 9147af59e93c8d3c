import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
// The record outbox (src/db/outbox.ts, docs/decisions.md): one row per record write that has been applied, written
// in the same statement (or transaction) as the write itself, so a write tried twice (a timed-out attempt that did
// commit, a replay repeated after a crash) takes effect once. Ids are UUIDv7 (time-ordered): rows are appended at
// the right edge of the primary key and pruned by id range after a retention period, no other index needed.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('outbox_applied')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('applied_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('outbox_applied').execute();
}
