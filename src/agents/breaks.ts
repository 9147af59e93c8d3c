/**
 * Agents' breaks (API.md "Agents"): an agent (or a supervisor for it) asks, a supervisor approves or rejects.
 * Approved while the agent is ready or not ready, the agent goes on_break at once (the ACD offers no calls to
 * an agent that is not ready); approved while it is reserved, on a call or in wrap-up, the break waits
 * ('approved', and its reason on the agent's live record in Redis) and starts when the agent is released: the
 * ACD engine's transition moves the agent on_break instead of ready / not_ready in the same atomic step
 * (AcdEngine.setWaitingBreak), with no database read on the way; the sweep sets the waiting break again after a
 * Redis restart, and starts one whose agent is free. It ends when the agent resumes (DELETE),
 * when its minutes have run out, or when the agent is moved off on_break otherwise (a supervisor, a sign-out).
 *
 * PostgreSQL is the truth (table `breaks`); every process runs the sweep, and every step that two processes
 * could race on is decided by one guarded UPDATE (... WHERE status = ... RETURNING) or by the agent's atomic
 * transition in Redis, so only one process acts on a break.
 */
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { AcdEngine, TransitionResult } from '../acd/engine.js';
import type { Db } from '../db/db.js';
import type { BreakStatus } from '../db/database.js';
import type { EventBus } from '../events/bus.js';
import { AppError, notFound } from '../shared/errors.js';
import type { AgentStates } from './agent-states.js';

export interface BreakDto {
  id: string;
  agentId: string;
  reason: string;
  minutes: number;
  status: BreakStatus;
  requestedAt: string;
  requestedBy: string | null;
  decidedBy: string | null;
  decidedAt: string | null;
  startedAt: string | null;
  endsAt: string | null;
  endedAt: string | null;
  endReason: string | null;
}

/** why a break ended (`break.ended` event's `reason`, `endReason` of the break) */
export type BreakEndReason = 'resumed' | 'expired' | 'cancelled' | 'signed-out' | 'state-changed';

export interface BreaksService {
  /** a new pending break; 404 no-such-agent, 409 agent-signed-out / break-exists */
  request(agentId: string, reason: string, minutes: number, actor: string): Promise<BreakDto>;
  /** pending -> approved (and on_break at once when the agent is free); 404 no-such-break, 409 break-not-pending */
  approve(id: string, actor: string): Promise<BreakDto>;
  /** pending -> rejected; 404 no-such-break, 409 break-not-pending */
  reject(id: string, actor: string): Promise<BreakDto>;
  /** the agent's open break ends: active -> ended (agent back to ready), pending/approved -> cancelled; 404 no-break */
  end(agentId: string, actor: string): Promise<BreakDto>;
  get(id: string): Promise<BreakDto | null>;
  /** the agent's pending, approved or active break */
  current(agentId: string): Promise<BreakDto | null>;
  /** pending ones oldest first, otherwise newest first */
  list(filter: { status?: BreakStatus; agentId?: string; limit: number }): Promise<BreakDto[]>;
  /** one pass: due breaks end, approved breaks of free agents start, those of signed-out agents are cancelled */
  sweep(): Promise<void>;
  /** runs sweep() every intervalMs; returns the stop function */
  startSweeper(intervalMs: number): () => void;
}

type Row = {
  id: string;
  agent_id: string;
  reason: string;
  minutes: number;
  status: BreakStatus;
  requested_at: Date;
  requested_by: string | null;
  decided_by: string | null;
  decided_at: Date | null;
  started_at: Date | null;
  ends_at: Date | null;
  ended_at: Date | null;
  end_reason: string | null;
};

const iso = (d: Date | null) => (d ? d.toISOString() : null);
export const toBreakDto = (r: Row): BreakDto => ({
  id: r.id,
  agentId: r.agent_id,
  reason: r.reason,
  minutes: r.minutes,
  status: r.status,
  requestedAt: r.requested_at.toISOString(),
  requestedBy: r.requested_by,
  decidedBy: r.decided_by,
  decidedAt: iso(r.decided_at),
  startedAt: iso(r.started_at),
  endsAt: iso(r.ends_at),
  endedAt: iso(r.ended_at),
  endReason: r.end_reason,
});

const OPEN: BreakStatus[] = ['pending', 'approved', 'active'];
const noSuchBreak = (id: string) => notFound('no-such-break', `no break ${id}`);
const notPending = (b: Row) => new AppError(409, 'break-not-pending', `break ${b.id} is ${b.status}, not pending`);
const isUniqueViolation = (err: unknown) => (err as { code?: string })?.code === '23505';

export function createBreaks(deps: { db: Db; engine: AcdEngine; agentStates: AgentStates; events: Pick<EventBus, 'publish'>; log: Logger }): BreaksService {
  const { db, engine, agentStates, events } = deps;
  const log = deps.log.child({ module: 'breaks' });

  const byId = (id: string) => db.selectFrom('breaks').selectAll().where('id', '=', id).executeTakeFirst();
  /** a supervisor's decision on a pending break (404 unknown, 409 no longer pending) */
  const decide = async (id: string, status: 'approved' | 'rejected', actor: string): Promise<Row> => {
    const b = await db
      .updateTable('breaks')
      .set({ status, decided_by: actor, decided_at: new Date() })
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .returningAll()
      .executeTakeFirst();
    if (b) return b;
    const existing = await byId(id);
    throw existing ? notPending(existing) : noSuchBreak(id);
  };
  const openOf = (agentId: string) => db.selectFrom('breaks').selectAll().where('agent_id', '=', agentId).where('status', 'in', OPEN).executeTakeFirst();

  const ended = (b: Row, why: BreakEndReason) => events.publish('break.ended', { id: b.id, agentId: b.agent_id, reason: why, break: toBreakDto(b) }, { agentId: b.agent_id });

  /** approved -> active as the agent went on_break (whoever moved it: approve, the release check, the sweep) */
  async function markStarted(agentId: string, at: number): Promise<Row | undefined> {
    const start = new Date(at);
    return db
      .updateTable('breaks')
      .set({ status: 'active', started_at: start, ends_at: sql<Date>`${start}::timestamptz + make_interval(mins => minutes)` })
      .where('agent_id', '=', agentId)
      .where('status', '=', 'approved')
      .returningAll()
      .executeTakeFirst();
  }

  /** the break of an agent that left on_break some other way than resuming or expiring ends (or, signed out, is cancelled) */
  async function stateChanged(r: TransitionResult): Promise<void> {
    if (r.to === 'on_break') {
      await markStarted(r.agentId, r.at);
      return;
    }
    if (r.from === 'on_break') {
      const why: BreakEndReason = r.to === 'logged_out' ? 'signed-out' : 'state-changed';
      const b = await db
        .updateTable('breaks')
        .set({ status: 'ended', ended_at: new Date(r.at), end_reason: why })
        .where('agent_id', '=', r.agentId)
        .where('status', '=', 'active')
        .returningAll()
        .executeTakeFirst();
      if (b) ended(b, why);
    }
    if (r.to === 'logged_out') {
      for (const b of await cancelOpen(r.agentId, 'signed-out')) ended(b, 'signed-out');
    }
  }

  const cancelOpen = (agentId: string, why: BreakEndReason, id?: string) => {
    let q = db
      .updateTable('breaks')
      .set({ status: 'cancelled', ended_at: new Date(), end_reason: why })
      .where('agent_id', '=', agentId)
      .where('status', 'in', ['pending', 'approved']);
    if (id) q = q.where('id', '=', id);
    return q.returningAll().execute();
  };

  agentStates.onChange((r) => {
    if (r.to !== 'on_break' && r.from !== 'on_break' && r.to !== 'logged_out') return;
    stateChanged(r).catch((err: Error) => log.error({ err: err.message, agentId: r.agentId, from: r.from, to: r.to }, 'break not updated after a state change'));
  });

  /**
   * An approved break waits on the agent's live record in Redis until the agent is released (see
   * AcdEngine.setWaitingBreak); null: none waits any more. A failure is logged: the sweep sets it again, or
   * starts the break of a free agent, within breakSweepSeconds.
   */
  async function waiting(agentId: string, reason: string | null): Promise<void> {
    await engine.setWaitingBreak(agentId, reason).catch((err: Error) => log.warn({ agentId, err: err.message, reason }, 'waiting break not written to the live record; the sweep will'));
  }

  /** put a free agent on its approved break; true when it went */
  async function startNow(b: Row, actor: string): Promise<boolean> {
    const r = await agentStates.tryTransition(b.agent_id, 'on_break', { reason: b.reason, actor });
    if (!r) return false;
    await markStarted(b.agent_id, r.at);
    return true;
  }

  async function sweep(): Promise<void> {
    // 1. due breaks end: one process wins each row (guarded UPDATE), then moves the agent back to ready
    const due = await db
      .updateTable('breaks')
      .set({ status: 'ended', ended_at: new Date(), end_reason: 'expired' })
      .where('status', '=', 'active')
      .where('ends_at', '<=', new Date())
      .returningAll()
      .execute();
    for (const b of due) {
      const live = await engine.getAgent(b.agent_id);
      if (live?.state === 'on_break') await agentStates.tryTransition(b.agent_id, 'ready', { reason: null, actor: 'system:breaks' });
      log.info({ agentId: b.agent_id, breakId: b.id }, 'break expired');
      ended(b, 'expired');
    }
    // 2. approved breaks whose agent is free (released while the check could not run, or a process died)
    const approved = await db.selectFrom('breaks').selectAll().where('status', '=', 'approved').orderBy('requested_at').limit(500).execute();
    for (const b of approved) {
      const live = await engine.getAgent(b.agent_id);
      if (!live || live.state === 'logged_out') {
        for (const c of await cancelOpen(b.agent_id, 'signed-out', b.id)) ended(c, 'signed-out');
      } else if (live.state === 'ready' || live.state === 'not_ready') {
        await startNow(b, 'system:breaks');
      } else if (live.state === 'on_break') {
        await markStarted(b.agent_id, live.since);
      } else {
        // busy: the break waits on the live record (again, after a Redis restart or a write that failed); unless it
        // was cancelled meanwhile, then it must not wait
        await waiting(b.agent_id, b.reason);
        const still = await db.selectFrom('breaks').select('id').where('id', '=', b.id).where('status', '=', 'approved').executeTakeFirst();
        if (!still) await waiting(b.agent_id, null);
      }
    }
  }

  return {
    async request(agentId, reason, minutes, actor) {
      const live = await engine.getAgent(agentId);
      if (!live) throw notFound('no-such-agent', `no agent ${agentId}`);
      if (live.state === 'logged_out') throw new AppError(409, 'agent-signed-out', `agent ${agentId} is signed out: sign in first`);
      let b: Row;
      try {
        b = await db.insertInto('breaks').values({ agent_id: agentId, reason, minutes, requested_by: actor }).returningAll().executeTakeFirstOrThrow();
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        const open = await openOf(agentId);
        throw new AppError(409, 'break-exists', `agent ${agentId} already has a ${open?.status ?? 'open'} break${open ? ` (${open.id})` : ''}`);
      }
      log.info({ agentId, breakId: b.id, reason, minutes, actor }, 'break requested');
      const dto = toBreakDto(b);
      events.publish('break.requested', { ...dto }, { supervisors: true });
      return dto;
    },

    async approve(id, actor) {
      const b = await decide(id, 'approved', actor);
      // waiting before the state is read: a release from now on starts it, or the read below finds the agent free
      await waiting(b.agent_id, b.reason);
      const live = await engine.getAgent(b.agent_id);
      const started = live && (live.state === 'ready' || live.state === 'not_ready') ? await startNow(b, actor) : false;
      log.info({ agentId: b.agent_id, breakId: id, actor, started, agentState: live?.state }, 'break approved');
      const dto = toBreakDto((await byId(id)) ?? b);
      events.publish('break.approved', { ...dto }, { agentId: b.agent_id });
      return dto;
    },

    async reject(id, actor) {
      const b = await decide(id, 'rejected', actor);
      log.info({ agentId: b.agent_id, breakId: id, actor }, 'break rejected');
      const dto = toBreakDto(b);
      events.publish('break.rejected', { ...dto }, { agentId: b.agent_id });
      return dto;
    },

    async end(agentId, actor) {
      // a few tries: the break may start (approved -> active) between the read and the update
      for (let attempt = 0; attempt < 3; attempt++) {
        const open = await openOf(agentId);
        if (!open) throw notFound('no-break', `agent ${agentId} has no pending, approved or active break`);
        if (open.status === 'active') {
          const b = await db
            .updateTable('breaks')
            .set({ status: 'ended', ended_at: new Date(), end_reason: 'resumed' })
            .where('id', '=', open.id)
            .where('status', '=', 'active')
            .returningAll()
            .executeTakeFirst();
          if (!b) continue;
          const live = await engine.getAgent(agentId);
          if (live?.state === 'on_break') await agentStates.tryTransition(agentId, 'ready', { reason: null, actor });
          log.info({ agentId, breakId: b.id, actor }, 'break ended: resumed');
          ended(b, 'resumed');
          return toBreakDto(b);
        }
        const [b] = await cancelOpen(agentId, 'cancelled', open.id);
        if (!b) continue;
        if (b.status === 'cancelled') await waiting(agentId, null);
        log.info({ agentId, breakId: b.id, actor }, 'break cancelled');
        ended(b, 'cancelled');
        return toBreakDto(b);
      }
      throw new AppError(409, 'break-changing', `agent ${agentId}'s break is changing right now; try again`);
    },

    async get(id) {
      const b = await byId(id);
      return b ? toBreakDto(b) : null;
    },

    async current(agentId) {
      const b = await openOf(agentId);
      return b ? toBreakDto(b) : null;
    },

    async list(filter) {
      let q = db.selectFrom('breaks').selectAll();
      if (filter.status) q = q.where('status', '=', filter.status);
      if (filter.agentId) q = q.where('agent_id', '=', filter.agentId);
      // pending requests oldest first (worked through in order), anything else newest first
      const dir = filter.status === 'pending' ? 'asc' : 'desc';
      const rows = await q.orderBy('requested_at', dir).orderBy('id', dir).limit(filter.limit).execute();
      return rows.map(toBreakDto);
    },

    sweep,

    startSweeper(intervalMs) {
      let running = false;
      const timer = setInterval(() => {
        if (running) return;
        running = true;
        sweep()
          .catch((err: Error) => log.warn({ err: err.message }, 'break sweep failed'))
          .finally(() => (running = false));
      }, intervalMs);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}
