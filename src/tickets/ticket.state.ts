/**
 * A ticket's state, folded from all its events in event-time order (pure). Events arrive late and out of
 * order, so the state is never patched by the newest arrival: it is recomputed from the whole history, and
 * the same set of events always gives the same ticket whatever order they came in.
 */
import type { TicketStatus } from '../db/database.js';

export const TICKET_EVENT_TYPES = ['created', 'dispatched', 'returned', 'resolved_first_contact', 'closed'] as const satisfies readonly TicketStatus[];

export interface TicketEvent {
  eventId: string;
  type: TicketStatus;
  at: Date;
  /** normalised, or null when the number sent cannot be called */
  callerNumber: string | null;
  callId?: string | null;
  unit?: string | null;
  summary?: string | null;
}

export interface TicketState {
  status: TicketStatus;
  callerNumber: string | null;
  callId: string | null;
  unit: string | null;
  summary: string | null;
  /** the FIRST time each thing happened (counts say how often) */
  createdAt: Date | null;
  dispatchedAt: Date | null;
  returnedAt: Date | null;
  resolvedFirstContactAt: Date | null;
  closedAt: Date | null;
  dispatchCount: number;
  returnedCount: number;
}

const ORDER: Record<TicketStatus, number> = { created: 0, dispatched: 1, returned: 2, resolved_first_contact: 3, closed: 4 };

/** event time, then the natural order of the steps for events stamped at the same moment, then the id */
export function byEventTime(a: TicketEvent, b: TicketEvent): number {
  return a.at.getTime() - b.at.getTime() || ORDER[a.type] - ORDER[b.type] || (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0);
}

export function foldTicket(events: readonly TicketEvent[]): TicketState {
  const s: TicketState = {
    status: 'created',
    callerNumber: null,
    callId: null,
    unit: null,
    summary: null,
    createdAt: null,
    dispatchedAt: null,
    returnedAt: null,
    resolvedFirstContactAt: null,
    closedAt: null,
    dispatchCount: 0,
    returnedCount: 0,
  };
  let progress: TicketStatus | null = null;
  for (const e of [...events].sort(byEventTime)) {
    // descriptive fields: the latest event (by event time) that carries one wins
    if (e.callerNumber) s.callerNumber = e.callerNumber;
    if (e.callId) s.callId = e.callId;
    if (e.unit) s.unit = e.unit;
    if (e.summary) s.summary = e.summary;
    switch (e.type) {
      case 'created':
        s.createdAt ??= e.at;
        break;
      case 'dispatched':
        s.dispatchedAt ??= e.at;
        s.dispatchCount++;
        progress = 'dispatched';
        break;
      case 'returned':
        s.returnedAt ??= e.at;
        s.returnedCount++;
        progress = 'returned';
        break;
      case 'resolved_first_contact':
        s.resolvedFirstContactAt ??= e.at;
        progress = 'resolved_first_contact';
        break;
      case 'closed':
        s.closedAt ??= e.at;
        break;
    }
  }
  // closed is final (there is no reopen event); 'created' never undoes a later step, however late it comes
  s.status = s.closedAt ? 'closed' : (progress ?? 'created');
  return s;
}
