/**
 * The ticket system's events (API.md "Tickets (webhook)"): stored once per eventId, folded into the ticket by
 * event time, and a closed ticket gets exactly one callback (reason ticket_closed) due at the first moment
 * inside calling hours, with its 24 h deadline (DESIGN §4). Two processes receiving events of one ticket at
 * once are serialised by the ticket row's lock; the same eventId twice by its primary key.
 */
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from '../db/db.js';
import type { TicketStatus } from '../db/database.js';
import { standingOf } from '../lists/lists.repo.js';
import { normalizePhone } from '../shared/phone.js';
import { firstCallingMoment, TICKET_CALLBACK_DEADLINE_MS, type CallingHours } from './calling-hours.js';
import { foldTicket, type TicketEvent } from './ticket.state.js';

/** the webhook's body (validated by the route's schema) */
export interface TicketEventInput {
  eventId: string;
  ticketId: string;
  type: TicketStatus;
  at: string;
  callerNumber: string;
  callId?: string | null;
  unit?: string | null;
  summary?: string | null;
}

export interface TicketEventResult {
  ticketId: string;
  status: TicketStatus;
  /** true when this eventId was already received: nothing changed */
  duplicate: boolean;
}

export interface TicketsServiceDeps {
  db: Db;
  log: Logger;
  callingHours: CallingHours;
  /** the queue whose agents make ticket callbacks */
  callbackQueue: string;
  /** a callback is owed within this long of the closure (default 24 h) */
  deadlineMs?: number;
  now?: () => Date;
}

export type TicketsService = ReturnType<typeof createTicketsService>;

export function createTicketsService(deps: TicketsServiceDeps) {
  const log = deps.log.child({ module: 'tickets' });
  const now = deps.now ?? (() => new Date());

  async function applyEvent(input: TicketEventInput): Promise<TicketEventResult> {
    return deps.db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('ticket_events')
        .values({ event_id: input.eventId, ticket_id: input.ticketId, type: input.type, at: new Date(input.at), payload: JSON.stringify(input) })
        .onConflict((oc) => oc.column('event_id').doNothing())
        .returning('event_id')
        .executeTakeFirst();
      if (!inserted) {
        const first = await trx.selectFrom('ticket_events').select('ticket_id').where('event_id', '=', input.eventId).executeTakeFirstOrThrow();
        const ticket = await trx.selectFrom('tickets').select(['ticket_id', 'status']).where('ticket_id', '=', first.ticket_id).executeTakeFirst();
        if (first.ticket_id !== input.ticketId) log.warn({ eventId: input.eventId, ticketId: input.ticketId, firstTicketId: first.ticket_id }, 'ticket event id reused for another ticket: ignored');
        return { ticketId: first.ticket_id, status: ticket?.status ?? input.type, duplicate: true };
      }

      // the ticket's row lock serialises its events across processes
      await trx.insertInto('tickets').values({ ticket_id: input.ticketId, status: 'created' }).onConflict((oc) => oc.column('ticket_id').doNothing()).execute();
      const before = await trx.selectFrom('tickets').selectAll().where('ticket_id', '=', input.ticketId).forUpdate().executeTakeFirstOrThrow();
      const rows = await trx.selectFrom('ticket_events').select(['event_id', 'type', 'at', 'payload']).where('ticket_id', '=', input.ticketId).execute();
      const events: TicketEvent[] = rows.map((r) => {
        const p = r.payload as Partial<TicketEventInput>;
        return { eventId: r.event_id, type: r.type, at: r.at, callerNumber: normalizePhone(p.callerNumber), callId: p.callId ?? null, unit: p.unit ?? null, summary: p.summary ?? null };
      });
      const s = foldTicket(events);
      await trx
        .updateTable('tickets')
        .set({
          caller_number: s.callerNumber,
          call_id: s.callId,
          unit: s.unit,
          summary: s.summary,
          status: s.status,
          created_at: s.createdAt,
          dispatched_at: s.dispatchedAt,
          returned_at: s.returnedAt,
          resolved_first_contact_at: s.resolvedFirstContactAt,
          closed_at: s.closedAt,
          dispatch_count: s.dispatchCount,
          returned_count: s.returnedCount,
          updated_at: new Date(),
        })
        .where('ticket_id', '=', input.ticketId)
        .execute();

      if (s.closedAt) {
        if (before.callback_id) {
          // a closing event stamped earlier than the one we acted on: the deadline moves earlier, never later
          await moveCallbackEarlier(trx, before.callback_id, s.closedAt);
        } else if (!before.callback_skipped) {
          await owedCallback(trx, input.ticketId, s.closedAt, s.callerNumber, s.callId);
        }
      }
      log.info({ ticketId: input.ticketId, eventId: input.eventId, type: input.type, status: s.status }, 'ticket event applied');
      return { ticketId: input.ticketId, status: s.status, duplicate: false };
    });
  }

  /** due at the first calling moment at or after the closure (or now, for a closure reported late) */
  function callbackTimes(closedAt: Date): { dueAt: Date; deadlineAt: Date } {
    const from = new Date(Math.max(closedAt.getTime(), now().getTime()));
    return { dueAt: firstCallingMoment(from, deps.callingHours), deadlineAt: new Date(closedAt.getTime() + (deps.deadlineMs ?? TICKET_CALLBACK_DEADLINE_MS)) };
  }

  async function moveCallbackEarlier(trx: Db, callbackId: string, closedAt: Date): Promise<void> {
    const { dueAt, deadlineAt } = callbackTimes(closedAt);
    await sql`
      update callbacks set deadline_at = least(coalesce(deadline_at, ${deadlineAt}), ${deadlineAt}), due_at = least(due_at, ${dueAt})
      where id = ${callbackId} and status = 'pending'`.execute(trx);
  }

  /** exactly one callback per closed ticket; a number already awaiting a callback gets no second one (it serves both) */
  async function owedCallback(trx: Db, ticketId: string, closedAt: Date, number: string | null, callId: string | null): Promise<void> {
    const skip = async (why: 'no-number' | 'blacklisted') => {
      await trx.updateTable('tickets').set({ callback_skipped: why }).where('ticket_id', '=', ticketId).execute();
      log.info({ ticketId, why }, 'closed ticket: no callback');
    };
    if (!number || !/^\+?\d{3,15}$/.test(number)) return skip('no-number');
    if ((await standingOf(trx, number)).black) return skip('blacklisted');
    const { dueAt, deadlineAt } = callbackTimes(closedAt);
    const key = `ticket-closed:${ticketId}`;
    let callbackId: string | null = null;
    for (let tries = 0; tries < 3 && !callbackId; tries++) {
      // any unique index may refuse it: this ticket's own (ticket_id, idempotency_key) or the number's pending one
      const created = await sql<{ id: string }>`
        insert into callbacks (number, call_id, queue, reason, due_at, ticket_id, deadline_at, idempotency_key)
        values (${number}, (select id from calls where id = ${callId}::uuid), ${deps.callbackQueue}, 'ticket_closed', ${dueAt}, ${ticketId}, ${deadlineAt}, ${key})
        on conflict do nothing
        returning id`.execute(trx);
      callbackId = created.rows[0]?.id ?? null;
      if (callbackId) break;
      const own = await trx.selectFrom('callbacks').select('id').where((eb) => eb.or([eb('ticket_id', '=', ticketId), eb('idempotency_key', '=', key)])).executeTakeFirst();
      if (own) {
        callbackId = own.id;
        break;
      }
      // the citizen already awaits a callback: that call serves this ticket too, by the earlier due time and deadline
      const joined = await sql<{ id: string }>`
        update callbacks set
          ticket_id = coalesce(ticket_id, ${ticketId}),
          deadline_at = least(coalesce(deadline_at, ${deadlineAt}), ${deadlineAt}),
          due_at = least(due_at, ${dueAt})
        where number = ${number} and status in ('pending','dialing')
        returning id`.execute(trx);
      callbackId = joined.rows[0]?.id ?? null;
    }
    if (!callbackId) throw new Error(`ticket ${ticketId}: could not register its callback`);
    await trx.updateTable('tickets').set({ callback_id: callbackId }).where('ticket_id', '=', ticketId).execute();
    log.info({ ticketId, callbackId, dueAt: dueAt.toISOString(), deadlineAt: deadlineAt.toISOString() }, 'closed ticket: callback owed');
  }

  return { applyEvent };
}
