import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
export async function up(db: Kysely<any>): Promise<void> {
  // The index of call recordings: Asterisk stores the audio (<recording dir>/<name>.wav), this row finds it and
  // keeps the SHA-256 taken when the recording ended (tamper evidence). One recording per call.
  // call_id has no foreign key on purpose (as voicemails): the call's own row is written through its ordered,
  // retried record writer and may land after the recording starts; a recording must never be refused for that.
  await db.schema
    .createTable('recordings')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('call_id', 'uuid', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('call_type', 'text', (c) => c.notNull().check(sql`call_type in ('inbound','outbound','callback','click')`))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('recording').check(sql`status in ('recording','saved','failed','purged')`))
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('ended_at', 'timestamptz')
    .addColumn('duration_seconds', sql`numeric(10,3)`)
    .addColumn('size_bytes', 'bigint')
    .addColumn('sha256', 'text', (c) => c.check(sql`sha256 ~ '^[0-9a-f]{64}$'`))
    .addColumn('purged_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // the list is newest first with a keyset cursor on (started_at, id)
  await db.schema.createIndex('recordings_started_idx').on('recordings').columns(['started_at desc', 'id desc']).execute();
  // the retention sweep walks what is not purged yet, oldest first
  await db.schema
    .createIndex('recordings_retention_idx')
    .on('recordings')
    .columns(['started_at', 'id'])
    .where(sql.ref('status'), '<>', 'purged')
    .execute();

  // the business category an agent gives a call (consultation, complaint, ...): free text, set through the API
  await db.schema.alterTable('calls').addColumn('category', 'text').execute();
  await db.schema.createIndex('calls_category_idx').on('calls').column('category').where(sql.ref('category'), 'is not', null).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('calls_category_idx').ifExists().execute();
  await db.schema.alterTable('calls').dropColumn('category').execute();
  await db.schema.dropTable('recordings').execute();
}
