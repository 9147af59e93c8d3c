import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('callbacks')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('number', 'text', (c) => c.notNull())
    .addColumn('call_id', 'uuid', (c) => c.references('calls.id').onDelete('set null'))
    .addColumn('queue', 'text')
    .addColumn('reason', 'text', (c) => c.notNull().check(sql`reason in ('abandoned','max_wait','in_queue','ticket_closed')`))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending').check(sql`status in ('pending','dialing','done','failed','cancelled')`))
    .addColumn('requested_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('due_at', 'timestamptz', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('done_at', 'timestamptz')
    .execute();
  // at most one pending callback per number: a caller who hangs up three times is called back once
  await sql`create unique index callbacks_one_pending_per_number on callbacks (number) where status in ('pending','dialing')`.execute(db);
  await db.schema.createIndex('callbacks_status_due_idx').on('callbacks').columns(['status', 'due_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('callbacks').execute();
}
