/**
 * Generated KPI data with known answers: calls (every outcome, boundary cases at 5 s and 15 s), transfers,
 * surveys (per call and per agent), wrap-ups, tickets (created, dispatched, returned, resolved on first contact,
 * closed) and their callbacks (on time, late, failed, pending, impossible), from a seeded PRNG; and the expected
 * KPI figures computed from the generated records in plain JS (not through the service's SQL), straight from the
 * definitions in docs/kpi.md.
 */
import { randomUUID } from 'node:crypto';
import type { Db } from '../../src/db/db.js';

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface GCall {
  id: string;
  direction: 'inbound' | 'outbound';
  caller: string;
  dialed: string;
  line: string | null;
  queue: string | null;
  agents: string[];
  arrived: number;
  ivrDone: number | null;
  queued: number | null;
  answered: number | null;
  ended: number | null;
  talkMs: number | null;
  disposition: string | null;
  surveySatisfied: boolean | null;
  surveyAt: number | null;
}
export interface GEvent {
  callId: string;
  at: number;
  type: string;
  data: Record<string, unknown>;
}
export interface GSurvey {
  callId: string;
  agentId: string;
  satisfied: boolean;
  at: number;
}
export interface GState {
  agentId: string;
  at: number;
  from: string;
  to: string;
  callId: string | null;
}
export interface GTicket {
  ticketId: string;
  callId: string | null;
  created: number | null;
  dispatched: number | null;
  returned: number | null;
  returnedCount: number;
  rfc: number | null;
  closed: number | null;
  callbackId: string | null;
  callbackSkipped: string | null;
}
export interface GCallback {
  id: string;
  ticketId: string | null;
  status: 'pending' | 'done' | 'failed';
  doneAt: number | null;
  number: string;
}
export interface KpiData {
  calls: GCall[];
  events: GEvent[];
  surveys: GSurvey[];
  states: GState[];
  tickets: GTicket[];
  callbacks: GCallback[];
}

export const LINES: Array<{ line: string | null; dialed: string; queues: string[] }> = [
  { line: '12345', dialed: '12345', queues: ['general', 'general', 'en'] },
  { line: '12333', dialed: '12333', queues: ['12333'] },
  { line: '12329', dialed: '12329', queues: ['12329'] },
  { line: '089812345', dialed: '089812345', queues: ['general'] },
  { line: null, dialed: '95198', queues: ['95198'] },
];
export const AGENTS = Array.from({ length: 24 }, (_, i) => String(8001 + i));
const S = 1000;
const MIN = 60 * S;
const H = 60 * MIN;

/**
 * `n` calls arriving in [start, start + span) and everything that follows from them. `pool` callers (a smaller
 * pool: more repeat calls). `tag` keeps ids and numbers apart between generations.
 */
export function generate(rand: () => number, o: { start: number; span: number; n: number; pool: number; tag: string; edgeCases?: boolean }): KpiData {
  const d: KpiData = { calls: [], events: [], surveys: [], states: [], tickets: [], callbacks: [] };
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const callers = Array.from({ length: o.pool }, (_, i) => `13${String(900000000 + i).padStart(9, '0')}`);
  for (let i = 0; i < o.n; i++) {
    const l = pick(LINES);
    const arrived = o.start + Math.floor(rand() * o.span);
    const c: GCall = {
      id: randomUUID(),
      direction: 'inbound',
      caller: rand() < 0.02 ? 'anonymous' : pick(callers),
      dialed: l.dialed,
      line: l.line,
      queue: null,
      agents: [],
      arrived,
      ivrDone: null,
      queued: null,
      answered: null,
      ended: null,
      talkMs: null,
      disposition: null,
      surveySatisfied: null,
      surveyAt: null,
    };
    const r = rand();
    const ivr = int(2, 40) * S + int(0, 999);
    if (r < 0.55) {
      // answered by an agent
      c.ivrDone = arrived + ivr;
      c.queued = c.ivrDone;
      c.queue = pick(l.queues);
      const wait = rand() < 0.1 ? int(20, 180) * S + int(0, 999) : int(0, 12) * S + int(0, 999);
      c.answered = c.queued + wait;
      const nAgents = rand() < 0.8 ? 1 : rand() < 0.75 ? 2 : 3;
      c.agents = Array.from(new Set(Array.from({ length: nAgents }, () => pick(AGENTS))));
      c.talkMs = int(20, 900) * S + int(0, 999);
      c.ended = c.answered + c.talkMs;
      c.disposition = rand() < 0.01 ? 'ivr_completed' : 'answered'; // an agent answered: answered whatever the disposition says
      if (c.agents.length > 1) {
        const mode = rand();
        const at = c.answered + 10 * S;
        if (mode < 0.4) d.events.push({ callId: c.id, at, type: 'transfer', data: { mode: 'blind' } });
        else if (mode < 0.75) {
          d.events.push({ callId: c.id, at, type: 'transfer', data: { mode: 'attended' } });
          d.events.push({ callId: c.id, at: at + 5 * S, type: 'transfer.completed', data: {} });
        } else if (mode < 0.9) {
          d.events.push({ callId: c.id, at, type: 'transfer', data: { mode: 'attended' } });
          d.events.push({ callId: c.id, at: at + 5 * S, type: 'transfer.cancelled', data: {} });
          d.events.push({ callId: c.id, at: at + 9 * S, type: 'transfer', data: { mode: 'blind' } });
        } else d.events.push({ callId: c.id, at, type: 'transfer', data: {} });
      }
      d.events.push({ callId: c.id, at: c.answered, type: 'agent.answered', data: { agentId: c.agents[0] } });
      if (rand() < 0.6) {
        c.surveySatisfied = rand() < 0.97;
        c.surveyAt = c.ended + 20 * S;
        // the score goes to every agent of the call (now and then only to some: what is in survey_results counts)
        const credited = rand() < 0.05 ? c.agents.slice(0, 1) : c.agents;
        for (const a of credited) d.surveys.push({ callId: c.id, agentId: a, satisfied: c.surveySatisfied, at: c.surveyAt });
      }
    } else if (r < 0.7) {
      c.ivrDone = rand() < 0.9 ? arrived + ivr + int(5, 60) * S : null;
      c.ended = (c.ivrDone ?? arrived + ivr) + int(1, 4) * S;
      c.disposition = 'ivr_completed';
    } else if (r < 0.8) {
      if (rand() < 0.7) {
        c.ivrDone = arrived + ivr;
        c.queued = c.ivrDone;
        c.queue = pick(l.queues);
      }
      c.ended = arrived + int(5, 300) * S + int(0, 999);
      c.disposition = 'abandoned';
    } else if (r < 0.85) {
      c.ended = arrived + int(0, 4) * S + int(0, 999);
      c.disposition = 'abandoned';
    } else if (r < 0.89) {
      c.ended = arrived + int(30, 150) * S;
      c.disposition = 'voicemail';
    } else if (r < 0.92) {
      c.queue = pick(l.queues);
      c.queued = arrived + ivr;
      c.ended = c.queued + int(30, 200) * S;
      c.disposition = 'callback_requested';
    } else if (r < 0.94) {
      c.ended = arrived + 3 * S;
      c.disposition = 'restricted';
    } else if (r < 0.95) {
      c.ended = arrived + 2 * S;
      c.disposition = 'failed';
    } else if (r < 0.965) {
      // still running: not counted; an answered one is still a repeat for FCR
      if (rand() < 0.5) {
        c.queue = pick(l.queues);
        c.answered = arrived + int(1, 20) * S;
        c.agents = [pick(AGENTS)];
      }
    } else {
      c.direction = 'outbound';
      c.line = null;
      c.dialed = pick(callers);
      c.answered = arrived + 8 * S;
      c.agents = [pick(AGENTS)];
      c.talkMs = 60 * S;
      c.ended = c.answered + c.talkMs;
      c.disposition = 'answered';
      c.surveySatisfied = false;
      c.surveyAt = c.ended + 10 * S;
    }
    d.calls.push(c);
  }

  if (o.edgeCases) {
    // the boundaries: abandons at 4.999 s (short) and 5.000 s (not); waits of exactly 15.000 s (in the service level) and 15.001 s (not)
    const base = o.start + 9 * H;
    const mk = (k: number, p: Partial<GCall>): GCall => ({
      id: randomUUID(), direction: 'inbound', caller: callers[k % callers.length]!, dialed: '12345', line: '12345', queue: 'general', agents: [], arrived: base + k * 7 * S,
      ivrDone: null, queued: null, answered: null, ended: null, talkMs: null, disposition: null, surveySatisfied: null, surveyAt: null, ...p,
    });
    d.calls.push(mk(1, { ended: base + 7 * S + 4999, disposition: 'abandoned' }));
    d.calls.push(mk(2, { ended: base + 14 * S + 5000, disposition: 'abandoned' }));
    d.calls.push(mk(3, { queued: base + 21 * S, answered: base + 21 * S + 15000, agents: [AGENTS[0]!], talkMs: 30 * S, ended: base + 21 * S + 45000, disposition: 'answered' }));
    d.calls.push(mk(4, { queued: base + 28 * S, answered: base + 28 * S + 15001, agents: [AGENTS[0]!], talkMs: 30 * S, ended: base + 28 * S + 45001, disposition: 'answered' }));
    d.calls.push(mk(5, { queue: null, ivrDone: base + 35 * S + 15000, ended: base + 35 * S + 16000, disposition: 'ivr_completed' }));
  }

  // wrap-ups: each agent's calls by end time; wrap_up at the end, ready after a while (some never end)
  const byAgent = new Map<string, GCall[]>();
  for (const c of d.calls) {
    if (c.ended === null || c.agents.length === 0) continue;
    const last = c.agents[c.agents.length - 1]!;
    byAgent.set(last, [...(byAgent.get(last) ?? []), c]);
  }
  for (const [agentId, calls] of [...byAgent].sort(([a], [b]) => (a < b ? -1 : 1))) {
    calls.sort((a, b) => a.ended! - b.ended!);
    calls.forEach((c, k) => {
      const callId = rand() < 0.05 ? null : c.id;
      d.states.push({ agentId, at: c.ended!, from: 'on_call', to: 'wrap_up', callId });
      if (k < calls.length - 1 || rand() < 0.5) d.states.push({ agentId, at: c.ended! + int(3, 90) * S + int(0, 999), from: 'wrap_up', to: 'ready', callId: null });
    });
  }
  d.states.sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : a.at - b.at));

  // tickets from answered inbound calls (and a few without a call)
  let n = 0;
  for (const c of d.calls) {
    if (c.direction !== 'inbound' || c.answered === null || c.ended === null || rand() > 0.35) continue;
    n++;
    const tk: GTicket = { ticketId: `T-${o.tag}-${n}`, callId: rand() < 0.1 ? null : c.id, created: c.ended + MIN, dispatched: null, returned: null, returnedCount: 0, rfc: null, closed: null, callbackId: null, callbackSkipped: null };
    if (rand() < 0.05) tk.created = null; // the ticket system never sent "created": it opens at its first event
    const base = tk.created ?? c.ended + MIN;
    const r = rand();
    if (r < 0.4) {
      tk.rfc = base + MIN;
      if (rand() < 0.5) tk.closed = base + 10 * MIN;
    } else if (r < 0.9) {
      tk.dispatched = base + 5 * MIN;
      if (rand() < 0.08) {
        tk.returned = tk.dispatched + 2 * H;
        tk.returnedCount = 1;
      }
      if (rand() < 0.6) tk.closed = tk.dispatched + int(1, 6) * H;
    }
    if (tk.closed !== null) {
      const k = rand();
      const number = `139${String(n).padStart(8, '0')}`;
      if (k < 0.05) tk.callbackSkipped = 'no-number';
      else {
        const cb: GCallback = { id: randomUUID(), ticketId: tk.ticketId, status: 'done', doneAt: null, number };
        if (k < 0.75) cb.doneAt = tk.closed + int(1, 23 * 60) * MIN;
        else if (k < 0.77) cb.doneAt = tk.closed + 24 * H; // exactly 24 h: on time
        else if (k < 0.85) cb.doneAt = tk.closed + 24 * H + int(1, 300) * MIN;
        else if (k < 0.93) {
          cb.status = 'failed';
          cb.doneAt = tk.closed + 24 * H;
        } else cb.status = 'pending';
        // most tickets point at their callback; some are found only by the callback's ticket_id
        if (rand() < 0.9) tk.callbackId = cb.id;
        if (cb.status === 'pending') cb.number = `137${String(n).padStart(8, '0')}`;
        d.callbacks.push(cb);
      }
    }
    d.tickets.push(tk);
  }
  return d;
}

export function merge(...parts: KpiData[]): KpiData {
  return {
    calls: parts.flatMap((p) => p.calls),
    events: parts.flatMap((p) => p.events),
    surveys: parts.flatMap((p) => p.surveys),
    states: parts.flatMap((p) => p.states).sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : a.at - b.at)),
    tickets: parts.flatMap((p) => p.tickets),
    callbacks: parts.flatMap((p) => p.callbacks),
  };
}

const ts = (ms: number | null) => (ms === null ? null : new Date(ms));

async function batches<T>(rows: T[], size: number, fn: (b: T[]) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < rows.length; i += size) await fn(rows.slice(i, i + size));
}

/** write the records (agent states in the order given: their ids follow it) */
export async function insertData(db: Db, d: KpiData): Promise<void> {
  await batches(d.calls, 500, (b) =>
    db
      .insertInto('calls')
      .values(
        b.map((c) => ({
          id: c.id,
          direction: c.direction,
          caller: c.caller,
          dialed: c.dialed,
          line: c.line,
          queue: c.queue,
          agents: c.agents,
          channel_id: `ch-${c.id}`,
          arrived_at: new Date(c.arrived),
          ivr_done_at: ts(c.ivrDone),
          queued_at: ts(c.queued),
          offered_at: ts(c.answered),
          answered_at: ts(c.answered),
          ended_at: ts(c.ended),
          wait_seconds: c.ended === null ? null : ((c.answered ?? c.ended) - c.arrived) / 1000,
          talk_seconds: c.talkMs === null ? null : c.talkMs / 1000,
          disposition: c.disposition as never,
          end_reason: c.ended === null ? null : 'caller',
          survey_score: c.surveySatisfied === null ? null : c.surveySatisfied ? 1 : 3,
          survey_scale: c.surveySatisfied === null ? null : 3,
          survey_satisfied: c.surveySatisfied,
          survey_at: ts(c.surveyAt),
        })),
      )
      .execute(),
  );
  await batches(d.events, 1000, (b) => db.insertInto('call_events').values(b.map((e) => ({ call_id: e.callId, at: new Date(e.at), type: e.type, data: JSON.stringify(e.data) }))).execute());
  await batches(d.surveys, 1000, (b) =>
    db.insertInto('survey_results').values(b.map((s) => ({ call_id: s.callId, agent_id: s.agentId, line: null, score: s.satisfied ? 1 : 3, scale: 3, satisfied: s.satisfied, at: new Date(s.at) }))).execute(),
  );
  await batches(d.states, 1000, (b) => db.insertInto('agent_state_log').values(b.map((s) => ({ agent_id: s.agentId, at: new Date(s.at), from_state: s.from, to_state: s.to, reason: null, call_id: s.callId, actor: null }))).execute());
  await batches(d.callbacks, 500, (b) =>
    db
      .insertInto('callbacks')
      .values(
        b.map((cb) => ({ id: cb.id, number: cb.number, call_id: null, queue: 'general', reason: 'ticket_closed' as const, status: cb.status, due_at: new Date(), done_at: ts(cb.doneAt), ticket_id: cb.ticketId, deadline_at: null, idempotency_key: `ticket-closed:${cb.ticketId}` })),
      )
      .execute(),
  );
  await batches(d.tickets, 500, (b) =>
    db
      .insertInto('tickets')
      .values(
        b.map((tk) => ({
          ticket_id: tk.ticketId,
          caller_number: null,
          call_id: tk.callId,
          unit: null,
          summary: null,
          status: tk.closed !== null ? 'closed' : tk.returned !== null ? 'returned' : tk.dispatched !== null ? 'dispatched' : tk.rfc !== null ? 'resolved_first_contact' : 'created',
          created_at: ts(tk.created),
          dispatched_at: ts(tk.dispatched),
          returned_at: ts(tk.returned),
          resolved_first_contact_at: ts(tk.rfc),
          closed_at: ts(tk.closed),
          returned_count: tk.returnedCount,
          dispatch_count: tk.dispatched === null ? 0 : 1 + tk.returnedCount,
          callback_id: tk.callbackId,
          callback_skipped: tk.callbackSkipped,
          updated_at: new Date(),
        })),
      )
      .execute(),
  );
  const tEvents = d.tickets.flatMap((tk) =>
    (
      [
        ['created', tk.created],
        ['dispatched', tk.dispatched],
        ['returned', tk.returned],
        ['resolved_first_contact', tk.rfc],
        ['closed', tk.closed],
      ] as const
    )
      .filter(([, at]) => at !== null)
      .map(([type, at]) => ({ event_id: `${tk.ticketId}-${type}`, ticket_id: tk.ticketId, type, at: new Date(at!), payload: JSON.stringify({ type }) })),
  );
  await batches(tEvents, 1000, (b) => db.insertInto('ticket_events').values(b as never).execute());
}

// ---- the expected figures, from the definitions (docs/kpi.md), in plain JS --------------------------------

export interface Acc {
  offered: number;
  answered: number;
  ivrCompleted: number;
  abandoned: number;
  shortAbandoned: number;
  voicemails: number;
  callbackRequested: number;
  otherUnanswered: number;
  transfers: number;
  waits: number[];
  sl: number;
  talk: number[];
  wraps: number[];
  ratings: number;
  satisfied: number;
  fcrFirst: number;
  fcrResolved: number;
  tOpened: number;
  tRfc: number;
  tDispatched: number;
  tReturned: number;
  tClosed: number;
  tCalledBack: number;
  tSkipped: number;
}
const newAcc = (): Acc => ({
  offered: 0, answered: 0, ivrCompleted: 0, abandoned: 0, shortAbandoned: 0, voicemails: 0, callbackRequested: 0, otherUnanswered: 0, transfers: 0,
  waits: [], sl: 0, talk: [], wraps: [], ratings: 0, satisfied: 0, fcrFirst: 0, fcrResolved: 0, tOpened: 0, tRfc: 0, tDispatched: 0, tReturned: 0, tClosed: 0, tCalledBack: 0, tSkipped: 0,
});

const TZ_MS = 8 * H;
export const Q = 15 * MIN;
export const bin15 = (ms: number) => Math.floor(ms / Q) * Q;
export const binHour = (ms: number) => Math.floor(ms / H) * H; // Asia/Shanghai is a whole-hour offset
export const binDay = (ms: number) => Math.floor((ms + TZ_MS) / (24 * H)) * 24 * H - TZ_MS;
export function binMonth(ms: number): number {
  const d = new Date(ms + TZ_MS);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) - TZ_MS;
}

export type Grain = '15m' | 'hour' | 'day' | 'month';
const BIN: Record<Grain, (ms: number) => number> = { '15m': bin15, hour: binHour, day: binDay, month: binMonth };

/** expected[grain]['dim|key'][bucketStartMs] */
export type Expected = Record<Grain, Map<string, Map<number, Acc>>>;

export function expected(d: KpiData, fcrRepeatDays: number): Expected {
  const out: Expected = { '15m': new Map(), hour: new Map(), day: new Map(), month: new Map() };
  const add = (at: number, dimKeys: string[], f: (a: Acc) => void) => {
    for (const g of Object.keys(BIN) as Grain[]) {
      const b = BIN[g](at);
      for (const dk of dimKeys) {
        let m = out[g].get(dk);
        if (!m) out[g].set(dk, (m = new Map()));
        let a = m.get(b);
        if (!a) m.set(b, (a = newAcc()));
        f(a);
      }
    }
  };
  const callsById = new Map(d.calls.map((c) => [c.id, c]));
  const lineOf = (c: GCall) => c.line ?? c.dialed;
  const dimsOf = (line: string | null, queue: string | null, agents: string[]) => ['all|', ...(line !== null ? [`line|${line}`] : []), ...(queue !== null ? [`queue|${queue}`] : []), ...[...new Set(agents)].map((a) => `agent|${a}`)];
  const counted = (c: GCall) => c.direction === 'inbound' && c.disposition !== null && c.disposition !== 'restricted';

  // consultations (for the repeats: every inbound call an agent answered, counted or still running)
  const consultations = d.calls.filter((c) => c.direction === 'inbound' && c.answered !== null);
  const byCallerLine = new Map<string, GCall[]>();
  for (const c of consultations) {
    const k = `${c.caller}|${lineOf(c)}`;
    byCallerLine.set(k, [...(byCallerLine.get(k) ?? []), c]);
  }
  const before = (a: GCall, b: GCall) => a.arrived < b.arrived || (a.arrived === b.arrived && a.id < b.id);
  const windowMs = fcrRepeatDays * 24 * H;

  const transfers = new Map<string, number>();
  for (const e of d.events) {
    if ((e.type === 'transfer' && e.data.mode !== 'attended') || e.type === 'transfer.completed') transfers.set(e.callId, (transfers.get(e.callId) ?? 0) + 1);
  }

  for (const c of d.calls) {
    if (!counted(c)) continue;
    const outcome =
      c.answered !== null ? 'answered'
      : c.disposition === 'ivr_completed' ? 'ivr'
      : c.disposition === 'abandoned' ? (c.ended !== null && c.ended - c.arrived < 5000 ? 'short' : 'abandoned')
      : c.disposition === 'voicemail' ? 'voicemail'
      : c.disposition === 'callback_requested' ? 'callback'
      : 'other';
    const wait = outcome === 'answered' ? Math.max(0, c.answered! - c.arrived) : outcome === 'ivr' ? Math.max(0, (c.ivrDone ?? c.ended!) - c.arrived) : null;
    let first = false;
    let resolved = false;
    if (c.answered !== null && /^\+?[0-9]{3,}$/.test(c.caller)) {
      const same = byCallerLine.get(`${c.caller}|${lineOf(c)}`) ?? [];
      first = !same.some((o) => o !== c && before(o, c) && o.arrived >= c.arrived - windowMs);
      resolved = first && !same.some((o) => o !== c && before(c, o) && o.arrived <= c.arrived + windowMs);
    }
    const nTransfers = transfers.get(c.id) ?? 0;
    for (const dk of dimsOf(lineOf(c), c.queue, c.agents)) {
      const whole = !dk.startsWith('agent|');
      add(c.arrived, [dk], (a) => {
        a.offered++;
        if (outcome === 'answered') a.answered++;
        else if (outcome === 'ivr') a.ivrCompleted++;
        else if (outcome === 'short') a.shortAbandoned++;
        else if (outcome === 'abandoned') a.abandoned++;
        else if (outcome === 'voicemail') a.voicemails++;
        else if (outcome === 'callback') a.callbackRequested++;
        else a.otherUnanswered++;
        a.transfers += nTransfers;
        if (wait !== null) {
          a.waits.push(wait);
          if (wait <= 15000) a.sl++;
        }
        if (outcome === 'answered' && c.talkMs !== null) a.talk.push(c.talkMs);
        if (whole && c.surveySatisfied !== null) {
          a.ratings++;
          if (c.surveySatisfied) a.satisfied++;
        }
        if (first) a.fcrFirst++;
        if (resolved) a.fcrResolved++;
      });
    }
  }
  for (const s of d.surveys) {
    const c = callsById.get(s.callId);
    if (!c || !counted(c)) continue;
    add(c.arrived, [`agent|${s.agentId}`], (a) => {
      a.ratings++;
      if (s.satisfied) a.satisfied++;
    });
  }
  // wrap-ups: to the agent's next row (the list is in id order = (agent, at) order)
  d.states.forEach((w, i) => {
    if (w.to !== 'wrap_up') return;
    const next = d.states.slice(i + 1).find((n) => n.agentId === w.agentId);
    if (!next) return;
    const c = w.callId ? callsById.get(w.callId) : undefined;
    const line = c && c.direction === 'inbound' ? lineOf(c) : null;
    add(w.at, dimsOf(line, c?.queue ?? null, [w.agentId]), (a) => a.wraps.push(Math.max(0, next.at - w.at)));
  });
  const cbById = new Map(d.callbacks.map((cb) => [cb.id, cb]));
  for (const tk of d.tickets) {
    const c = tk.callId ? callsById.get(tk.callId) : undefined;
    const dk = dimsOf(c && c.direction === 'inbound' ? lineOf(c) : null, c?.queue ?? null, c?.agents ?? []);
    const times = [tk.created, tk.dispatched, tk.returned, tk.rfc, tk.closed].filter((x): x is number => x !== null);
    if (times.length) add(Math.min(...times), dk, (a) => {
      a.tOpened++;
      if (tk.rfc !== null) a.tRfc++;
    });
    if (tk.dispatched !== null) add(tk.dispatched, dk, (a) => {
      a.tDispatched++;
      if (tk.returnedCount > 0) a.tReturned++;
    });
    if (tk.closed !== null) {
      const closed = tk.closed;
      const cbs = d.callbacks.filter((cb) => cb.id === tk.callbackId || cb.ticketId === tk.ticketId);
      const ok = cbs.some((cb) => cb.status === 'done' && cb.doneAt !== null && cb.doneAt <= closed + 24 * H);
      add(closed, dk, (a) => {
        if (tk.callbackSkipped) a.tSkipped++;
        else {
          a.tClosed++;
          if (ok) a.tCalledBack++;
        }
      });
    }
    void cbById;
  }
  return out;
}

/** the figures of an expected bucket, from the definitions */
export function expectedRow(a: Acc | undefined) {
  const x = a ?? newAcc();
  const sum = (v: number[]) => v.reduce((s, n) => s + n, 0);
  const answerable = x.offered - x.shortAbandoned;
  const sorted = [...x.waits].sort((p, q) => p - q);
  return {
    counts: {
      offered: x.offered, answered: x.answered, ivrCompleted: x.ivrCompleted, abandoned: x.abandoned, shortAbandoned: x.shortAbandoned, voicemails: x.voicemails,
      callbackRequested: x.callbackRequested, otherUnanswered: x.otherUnanswered, transfers: x.transfers, waitCount: x.waits.length, waitSumMs: sum(x.waits), slAnswered: x.sl,
      talkCount: x.talk.length, talkSumMs: sum(x.talk), wrapCount: x.wraps.length, wrapSumMs: sum(x.wraps), ratings: x.ratings, satisfied: x.satisfied,
      fcrFirstCalls: x.fcrFirst, fcrResolvedCalls: x.fcrResolved, ticketsOpened: x.tOpened, ticketsResolvedFirstContact: x.tRfc, ticketsDispatched: x.tDispatched,
      ticketsReturned: x.tReturned, ticketsClosed: x.tClosed, ticketsCalledBack24h: x.tCalledBack, ticketsCallbackSkipped: x.tSkipped,
    },
    ratios: {
      answerRate: answerable ? (x.answered + x.ivrCompleted) / answerable : null,
      avgWaitSeconds: x.waits.length ? sum(x.waits) / x.waits.length / 1000 : null,
      p90WaitSeconds: sorted.length ? sorted[Math.ceil((sorted.length * 9) / 10) - 1]! / 1000 : null,
      serviceLevel: answerable ? x.sl / answerable : null,
      avgTalkSeconds: x.talk.length ? sum(x.talk) / x.talk.length / 1000 : null,
      avgWrapUpSeconds: x.wraps.length ? sum(x.wraps) / x.wraps.length / 1000 : null,
      satisfaction: x.ratings ? x.satisfied / x.ratings : null,
      fcr: x.tOpened ? x.tRfc / x.tOpened : null,
      fcrCalls: x.fcrFirst ? x.fcrResolved / x.fcrFirst : null,
      callbackRate24h: x.tClosed ? x.tCalledBack / x.tClosed : null,
      dispatchAccuracy: x.tDispatched ? (x.tDispatched - x.tReturned) / x.tDispatched : null,
    },
    targetsMet: {
      answerRate: answerable ? (x.answered + x.ivrCompleted) / answerable >= 0.95 : null,
      avgWaitSeconds: x.waits.length ? sum(x.waits) / x.waits.length <= 15000 : null,
      fcr: x.tOpened ? x.tRfc / x.tOpened >= 0.7 : null,
      fcrCalls: x.fcrFirst ? x.fcrResolved / x.fcrFirst >= 0.7 : null,
      callbackRate24h: x.tClosed ? x.tCalledBack === x.tClosed : null,
      satisfaction: x.ratings ? x.satisfied / x.ratings >= 0.98 : null,
      dispatchAccuracy: x.tDispatched ? (x.tDispatched - x.tReturned) / x.tDispatched >= 0.95 : null,
    },
  };
}

/** differences between an API row and the expected bucket (empty: equal; counts exactly, ratios to 1e-9) */
export function diffRow(got: Record<string, any>, want: ReturnType<typeof expectedRow>, where: string): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(want.counts)) if (got[k] !== v) out.push(`${where} ${k}: got ${got[k]}, want ${v}`);
  for (const [k, v] of Object.entries(want.ratios)) {
    const g = got[k];
    if (v === null ? g !== null : typeof g !== 'number' || Math.abs(g - v) > 1e-9) out.push(`${where} ${k}: got ${g}, want ${v}`);
  }
  for (const [k, v] of Object.entries(want.targetsMet)) if (got.targetsMet?.[k] !== v) out.push(`${where} targetsMet.${k}: got ${got.targetsMet?.[k]}, want ${v}`);
  return out;
}
