import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
// Tickets as the ticket system reports them (POST /api/v1/tickets/events): the events as received (idempotent
// by event id) and each ticket's state folded from them by event time. A closed ticket owes the citizen a
// callback within 24 h (DESIGN §4): callbacks gain the ticket, its deadline and an idempotency key.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('tickets')
    .addColumn('ticket_id', 'text', (c) => c.primaryKey())
    // normalised; null when the ticket system sent no callable number
    .addColumn('caller_number', 'text')
    .addColumn('call_id', 'uuid')
    .addColumn('unit', 'text')
    .addColumn('summary', 'text')
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('created','dispatched','returned','resolved_first_contact','closed')`))
    .addColumn('created_at', 'timestamptz')
    .addColumn('dispatched_at', 'timestamptz')
    .addColumn('returned_at', 'timestamptz')
    .addColumn('resolved_first_contact_at', 'timestamptz')
    .addColumn('closed_at', 'timestamptz')
    .addColumn('returned_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('dispatch_count', 'integer', (c) => c.notNull().defaultTo(0))
    // the callback that serves this ticket's closure (its own, or a pending one to the same number it joined)
    .addColumn('callback_id', 'uuid', (c) => c.references('callbacks.id').onDelete('set null'))
    // why a closed ticket has no callback: 'blacklisted' | 'no-number'
    .addColumn('callback_skipped', 'text')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('tickets_closed_at_idx').on('tickets').column('closed_at').execute();
  await db.schema.createIndex('tickets_dispatched_at_idx').on('tickets').column('dispatched_at').execute();
  await db.schema.createIndex('tickets_call_id_idx').on('tickets').column('call_id').execute();

  await db.schema
    .createTable('ticket_events')
    .addColumn('event_id', 'text', (c) => c.primaryKey())
    .addColumn('ticket_id', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull().check(sql`type in ('created','dispatched','returned','resolved_first_contact','closed')`))
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('ticket_events_ticket_idx').on('ticket_events').columns(['ticket_id', 'at']).execute();

  await db.schema
    .alterTable('callbacks')
    .addColumn('ticket_id', 'text')
    .addColumn('deadline_at', 'timestamptz')
    .addColumn('idempotency_key', 'text', (c) => c.unique())
    .execute();
  await sql`create unique index callbacks_ticket_id_key on callbacks (ticket_id) where ticket_id is not null`.execute(db);
  await db.schema.createIndex('callbacks_deadline_idx').on('callbacks').columns(['status', 'deadline_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('ticket_events').execute();
  await db.schema.dropTable('tickets').execute();
  await db.schema.dropIndex('callbacks_deadline_idx').execute();
  await db.schema.dropIndex('callbacks_ticket_id_key').execute();
  await db.schema.alterTable('callbacks').dropColumn('idempotency_key').dropColumn('deadline_at').dropColumn('ticket_id').execute();
}
