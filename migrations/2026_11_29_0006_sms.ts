import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
export async function up(db: Kysely<any>): Promise<void> {
  // Every SMS the hotline sends ('out') or receives ('in'). A message to send is written 'queued' before it is handed
  // to the SMSC, so a gateway failure marks it 'failed' with the error and never loses it; the SMSC's receipt then
  // finds the row by the SMSC's message_id. call_id has no foreign key, as voicemails (the call row may come later).
  await db.schema
    .createTable('sms_messages')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('direction', 'text', (c) => c.notNull().check(sql`direction in ('out','in')`))
    // normalised (src/shared/phone.ts); an inbound sender that is no phone number is kept as the SMSC gave it
    .addColumn('number', 'text', (c) => c.notNull())
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('template', 'text')
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('queued','sent','delivered','failed','rejected','expired','received')`),
    )
    .addColumn('message_id', 'text')
    .addColumn('error', 'text')
    // the user who sent it (users.id)
    .addColumn('sent_by', 'text')
    .addColumn('call_id', 'uuid')
    // the request it came in: one send to one or many numbers
    .addColumn('batch_id', 'uuid')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('sent_at', 'timestamptz')
    .addColumn('delivered_at', 'timestamptz')
    .execute();
  // a caller's history and the list by number, newest first with a keyset cursor on (created_at, id)
  await db.schema.createIndex('sms_messages_number_idx').on('sms_messages').columns(['number', 'created_at desc', 'id desc']).execute();
  // the supervisors' list of every message
  await db.schema.createIndex('sms_messages_created_idx').on('sms_messages').columns(['created_at desc', 'id desc']).execute();
  await db.schema.createIndex('sms_messages_message_id_idx').on('sms_messages').column('message_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('sms_messages').execute();
}
