import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('username', 'text', (c) => c.notNull().unique())
    .addColumn('password_hash', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('agent','supervisor','admin','auditor')`))
    .addColumn('agent_id', 'text')
    .addColumn('disabled', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('auth_sessions')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('auth_sessions_expires_idx').on('auth_sessions').column('expires_at').execute();

  await db.schema
    .createTable('calls')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('direction', 'text', (c) => c.notNull().check(sql`direction in ('inbound','outbound')`))
    .addColumn('caller', 'text', (c) => c.notNull())
    .addColumn('dialed', 'text', (c) => c.notNull())
    .addColumn('line', 'text')
    .addColumn('language', 'text')
    .addColumn('ivr_path', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('queue', 'text')
    .addColumn('agents', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('channel_id', 'text', (c) => c.notNull())
    .addColumn('arrived_at', 'timestamptz', (c) => c.notNull())
    .addColumn('ivr_done_at', 'timestamptz')
    .addColumn('queued_at', 'timestamptz')
    .addColumn('offered_at', 'timestamptz')
    .addColumn('answered_at', 'timestamptz')
    .addColumn('ended_at', 'timestamptz')
    .addColumn('wait_seconds', sql`numeric(10,3)`)
    .addColumn('talk_seconds', sql`numeric(10,3)`)
    .addColumn('disposition', 'text', (c) =>
      c.check(sql`disposition in ('answered','abandoned','ivr_completed','voicemail','restricted','failed','callback_requested')`),
    )
    .addColumn('end_reason', 'text')
    .execute();
  await db.schema.createIndex('calls_arrived_idx').on('calls').columns(['arrived_at desc', 'id desc']).execute();
  await db.schema.createIndex('calls_caller_idx').on('calls').columns(['caller', 'arrived_at desc']).execute();
  await db.schema.createIndex('calls_agents_idx').on('calls').using('gin').column('agents').execute();

  await db.schema
    .createTable('call_events')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('call_id', 'uuid', (c) => c.notNull().references('calls.id').onDelete('cascade'))
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('data', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute();
  await db.schema.createIndex('call_events_call_idx').on('call_events').columns(['call_id', 'id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('call_events').execute();
  await db.schema.dropTable('calls').execute();
  await db.schema.dropTable('auth_sessions').execute();
  await db.schema.dropTable('users').execute();
}
