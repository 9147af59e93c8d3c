import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
export async function up(db: Kysely<any>): Promise<void> {
  // An agent's break (API.md "Agents"): requested by the agent (or a supervisor for it), approved or rejected by a
  // supervisor, active while the agent is on_break, ended by the agent, by its due time (ends_at, swept by every
  // process) or by a state change. status: pending -> approved -> active -> ended, or rejected / cancelled.
  // agent_id has no foreign key, as agent_state_log: agents are never deleted, only marked.
  await db.schema
    .createTable('breaks')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('agent_id', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull().check(sql`char_length(reason) between 1 and 64`))
    .addColumn('minutes', 'integer', (c) => c.notNull().check(sql`minutes between 1 and 120`))
    .addColumn('status', 'text', (c) =>
      c.notNull().defaultTo('pending').check(sql`status in ('pending','approved','active','rejected','ended','cancelled')`),
    )
    .addColumn('requested_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // who asked: agent:<user> or supervisor:<user>
    .addColumn('requested_by', 'text')
    .addColumn('decided_by', 'text')
    .addColumn('decided_at', 'timestamptz')
    .addColumn('started_at', 'timestamptz')
    // started_at + minutes: the sweep ends the break when this has passed
    .addColumn('ends_at', 'timestamptz')
    .addColumn('ended_at', 'timestamptz')
    // resumed | expired | cancelled | signed-out | state-changed
    .addColumn('end_reason', 'text')
    .execute();
  // one open break per agent, whatever two requests racing do
  await sql`create unique index breaks_one_open_idx on breaks (agent_id) where status in ('pending','approved','active')`.execute(db);
  // the sweep (approved ones to start, active ones past ends_at) and the supervisors' pending list
  await sql`create index breaks_open_status_idx on breaks (status, ends_at) where status in ('pending','approved','active')`.execute(db);
  await db.schema.createIndex('breaks_requested_idx').on('breaks').columns(['requested_at', 'id']).execute();

  // the extension (desk phone number) an agent gave when it signed in: its current desk, null when signed out.
  // It does not change the agent's provisioned phone (agents.phone_uri / the softphone) yet.
  await db.schema
    .alterTable('agents')
    .addColumn('desk_extension', 'text', (c) => c.check(sql`desk_extension ~ '^[0-9]{2,16}$'`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('agents').dropColumn('desk_extension').execute();
  await db.schema.dropTable('breaks').execute();
}
