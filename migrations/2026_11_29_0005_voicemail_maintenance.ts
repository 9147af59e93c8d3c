import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
export async function up(db: Kysely<any>): Promise<void> {
  // The index of callers' messages: Asterisk stores the audio (<recording dir>/<recording_name>.wav), this row finds it.
  // call_id has no foreign key on purpose: a call's own row is written through its ordered, retried record writer,
  // so it may not be there yet when the voicemail starts; a message must never be refused for that.
  await db.schema
    .createTable('voicemails')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('call_id', 'uuid')
    .addColumn('caller', 'text', (c) => c.notNull())
    .addColumn('line', 'text', (c) => c.notNull())
    .addColumn('language', 'text', (c) => c.notNull().defaultTo('zh'))
    .addColumn('reason', 'text', (c) => c.notNull().check(sql`reason in ('maintenance','ivr')`))
    .addColumn('recording_name', 'text', (c) => c.notNull().unique())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('recording').check(sql`status in ('recording','saved','empty','failed')`))
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('duration_seconds', 'real')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // the list is newest first with a keyset cursor on (started_at, id)
  await db.schema.createIndex('voicemails_started_idx').on('voicemails').columns(['started_at desc', 'id desc']).execute();
  await db.schema.createIndex('voicemails_call_idx').on('voicemails').column('call_id').execute();

  // Maintenance switched through the API (PUT /api/v1/maintenance); lines.yaml can switch it too (not stored here).
  // scope '*' is every line, otherwise the line's number (the key in lines.yaml).
  await db.schema
    .createTable('maintenance')
    .addColumn('scope', 'text', (c) => c.primaryKey())
    .addColumn('enabled', 'boolean', (c) => c.notNull())
    // a prompt id played instead of the default announcement
    .addColumn('message', 'text')
    .addColumn('allow_voicemail', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('updated_by', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('maintenance').execute();
  await db.schema.dropTable('voicemails').execute();
}
