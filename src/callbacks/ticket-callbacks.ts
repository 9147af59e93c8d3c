/**
 * Callbacks owed for closed tickets (DESIGN §4: 100% called back within 24 h), executed by jobs.
 *
 * PostgreSQL is the truth (table callbacks, one row per closed ticket, with its deadline; callback_attempts,
 * one row per attempt). BullMQ only executes:
 * - `callback-sweep` (node-cron every CALLBACK_SWEEP_SECONDS, once per fleet by its deterministic id) reads
 *   PostgreSQL and (1) alerts supervisors (`callback.overdue`) once for a callback still open
 *   CALLBACK_OVERDUE_ALERT_SECONDS before its deadline, (2) fails callbacks whose deadline has passed,
 *   (3) takes back attempts whose process died (lease expired: the attempt counts as made, the next one
 *   waits its backoff), (4) turns every due callback into a `callback-dial` job whose id is the callback and
 *   attempt number: after Redis lost its jobs the next sweep simply makes them again.
 *   A queue with `ticketCallbacks: agent` gets a stand-in in its waiting list instead: an agent in the queue
 *   takes it like a caller, and the existing dialler rings the agent first, then the citizen.
 * - `callback-dial` claims the attempt in PostgreSQL (pending -> dialing, attempts n-1 -> n, a lease) and
 *   writes its attempt row (unique idempotency key `<callback>:<n>`); a second run of the same job finds
 *   either taken and does nothing: a citizen is never called twice for one attempt. As soon as the citizen
 *   answers the callback is done. Busy / no answer / failed: the next attempt after CALLBACK_RETRY_SECONDS,
 *   inside calling hours, while before the deadline; otherwise failed.
 */
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { AcdEngine } from '../acd/engine.js';
import type { QueuesConfigStore } from '../acd/queues.config.js';
import type { CallRouter } from '../calls/calls.stasis.js';
import type { Db } from '../db/db.js';
import type { EventBus } from '../events/bus.js';
import type { Language } from '../ivr/ivr.config.js';
import type { JobScheduler } from '../jobs/scheduler.js';
import { firstCallingMoment, type CallingHours } from '../tickets/calling-hours.js';
import { TicketCallbackSession, type AttemptResult, type TicketCallbackDeps } from './ticket-callback.session.js';

declare module '../jobs/scheduler.js' {
  interface JobPayloads {
    'callback-sweep': Record<string, never>;
    'callback-dial': { callbackId: string; attempt: number };
  }
}

export interface TicketCallbacksDeps {
  db: Db;
  jobs: JobScheduler;
  router: Pick<CallRouter, 'adopt' | 'sessionDeps'>;
  engine: Pick<AcdEngine, 'waiting' | 'enqueue'>;
  queues: QueuesConfigStore;
  events?: Pick<EventBus, 'publish'>;
  session: Omit<TicketCallbackDeps, 'track' | 'untrack' | 'ended' | 'log' | 'db'>;
  log: Logger;
  callingHours: CallingHours;
  /** seconds between attempts, the last repeated */
  retrySeconds: readonly number[];
  overdueAlertSeconds: number;
  sweepSeconds: number;
  now?: () => Date;
}

const STAND_IN = 'callback-';
const LANGUAGES = new Set(['zh', 'en', 'ru', 'ja', 'ko', 'de', 'fr']);

export function registerTicketCallbacks(deps: TicketCallbacksDeps): { sweep(): Promise<SweepReport>; dial(callbackId: string, attempt: number): Promise<AttemptResult | null> } {
  const log = deps.log.child({ module: 'ticket-callbacks' });
  const now = deps.now ?? (() => new Date());
  const backoff = (attempt: number) => (deps.retrySeconds[Math.min(attempt - 1, deps.retrySeconds.length - 1)] ?? 600) * 1000;
  // a lease long enough for the ring, the summary and the survey
  const leaseMs = (deps.session.ringSeconds + 300) * 1000;

  /** after an unanswered attempt n: pending again at the next calling moment after the backoff, or failed past the deadline */
  async function afterUnanswered(callbackId: string, attempt: number, outcome: string): Promise<'pending' | 'failed'> {
    const next = firstCallingMoment(new Date(now().getTime() + backoff(attempt)), deps.callingHours);
    const r = await sql<{ status: 'pending' | 'failed' }>`
      update callbacks set
        status = case when deadline_at is not null and ${next} > deadline_at then 'failed' else 'pending' end,
        done_at = case when deadline_at is not null and ${next} > deadline_at then now() else done_at end,
        due_at = ${next}, lease_until = null, last_outcome = ${outcome}
      where id = ${callbackId} and status = 'dialing' and attempts = ${attempt}
      returning status`.execute(deps.db);
    return r.rows[0]?.status ?? 'failed';
  }

  async function dial(callbackId: string, attempt: number): Promise<AttemptResult | null> {
    const started = now();
    const claimed = await sql<{ number: string; call_id: string | null; ticket_id: string | null }>`
      update callbacks set status = 'dialing', attempts = attempts + 1, lease_until = ${new Date(started.getTime() + leaseMs)}
      where id = ${callbackId} and status = 'pending' and attempts = ${attempt - 1} and due_at <= ${new Date(started.getTime() + 5000)}
        and (deadline_at is null or deadline_at > ${started})
      returning number, call_id, ticket_id`.execute(deps.db);
    const cb = claimed.rows[0];
    if (!cb) {
      log.info({ callbackId, attempt }, 'callback attempt already taken or no longer due');
      return null;
    }
    const key = `${callbackId}:${attempt}`;
    const inserted = await sql<{ id: string }>`
      insert into callback_attempts (callback_id, attempt, idempotency_key, started_at)
      values (${callbackId}, ${attempt}, ${key}, ${started})
      on conflict (idempotency_key) do nothing returning id`.execute(deps.db);
    if (!inserted.rows[0]) {
      log.warn({ callbackId, attempt }, 'callback attempt already made: not dialling again');
      return null;
    }
    // the citizen's earlier call tells the line (its survey) and the language
    const origin = cb.call_id ? await deps.db.selectFrom('calls').select(['line', 'language']).where('id', '=', cb.call_id).executeTakeFirst() : undefined;
    const language = (origin?.language && LANGUAGES.has(origin.language) ? origin.language : 'zh') as Language;
    const session = new TicketCallbackSession(
      { ...deps.session, ...deps.router.sessionDeps, db: deps.db, log: deps.log },
      {
        callbackId,
        attempt,
        number: cb.number,
        line: origin?.line ?? null,
        language,
        onAnswered: async (callId) => {
          await sql`update callbacks set status = 'done', done_at = now(), lease_until = null, last_outcome = 'answered' where id = ${callbackId} and status = 'dialing'`.execute(deps.db);
          await sql`update callback_attempts set answered_at = now(), call_id = ${callId} where idempotency_key = ${key}`.execute(deps.db);
        },
      },
    );
    log.info({ callbackId, attempt, callId: session.id, ticketId: cb.ticket_id }, 'calling the citizen back');
    deps.router.adopt(session);
    const result = await session.done;
    await sql`
      update callback_attempts set ended_at = now(), outcome = ${result.outcome}, cause = ${result.cause}, call_id = ${result.callId}
      where idempotency_key = ${key}`.execute(deps.db);
    if (result.outcome === 'answered') {
      if (result.score !== null) await sql`update callbacks set survey_score = ${result.score} where id = ${callbackId}`.execute(deps.db);
    } else {
      const status = await afterUnanswered(callbackId, attempt, result.outcome);
      log.info({ callbackId, attempt, outcome: result.outcome, status }, status === 'failed' ? 'callback failed: its deadline has passed' : 'callback will be tried again');
    }
    return result;
  }

  async function sweep(): Promise<SweepReport> {
    const t = now();
    const report: SweepReport = { alerted: 0, expired: 0, interrupted: 0, enqueued: 0, standIns: 0 };
    // (1) supervisors hear once of a callback still open close to its deadline
    const alerts = await sql<{ id: string; ticket_id: string | null; deadline_at: Date; attempts: number; queue: string | null; last_outcome: string | null }>`
      update callbacks set overdue_alerted_at = ${t}
      where status in ('pending','dialing') and deadline_at is not null and overdue_alerted_at is null
        and deadline_at <= ${new Date(t.getTime() + deps.overdueAlertSeconds * 1000)}
      returning id, ticket_id, deadline_at, attempts, queue, last_outcome`.execute(deps.db);
    for (const a of alerts.rows) {
      report.alerted++;
      deps.events?.publish(
        'callback.overdue',
        { callbackId: a.id, ticketId: a.ticket_id, deadlineAt: a.deadline_at.toISOString(), attempts: a.attempts, queue: a.queue, lastOutcome: a.last_outcome },
        { supervisors: true },
      );
      log.warn({ callbackId: a.id, ticketId: a.ticket_id, deadlineAt: a.deadline_at }, 'callback still open close to its deadline');
    }
    // (2) past the deadline: failed (an attempt in progress finishes on its own)
    const expired = await sql<{ id: string }>`
      update callbacks set status = 'failed', done_at = ${t}, last_outcome = coalesce(last_outcome, 'not-reached')
      where status = 'pending' and deadline_at is not null and deadline_at <= ${t}
      returning id`.execute(deps.db);
    report.expired = expired.rows.length;
    // (3) an attempt whose process died: counted as made (the citizen may have been rung), retried after its backoff.
    // Dead means its lease ran out, or sooner: the process that took over Asterisk closed the attempt's call as
    // lost (calls.stasis.ts reconciliation: the channel is hung up, nobody can still be ringing the citizen).
    const stale = await sql<{ id: string; attempts: number }>`
      select cb.id, cb.attempts from callbacks cb
      where cb.status = 'dialing' and (
        (cb.lease_until is not null and cb.lease_until < ${t})
        or exists (
          select 1 from callback_attempts a join calls c
            on c.direction = 'outbound' and c.caller = cb.number and c.arrived_at >= a.started_at - interval '5 seconds'
          where a.callback_id = cb.id and a.attempt = cb.attempts and a.ended_at is null and a.answered_at is null
            and c.ended_at is not null and c.end_reason = 'lost'))`.execute(deps.db);
    // an answered attempt whose process died before it wrote the end: the callback is done already; the attempt
    // ends with its call (closed by the reconciliation)
    await sql`
      update callback_attempts a set ended_at = c.ended_at, outcome = 'answered', cause = coalesce(a.cause, 'process ended')
      from calls c
      where a.ended_at is null and a.answered_at is not null and c.id = a.call_id and c.ended_at is not null`.execute(deps.db);
    for (const s of stale.rows) {
      await sql`update callback_attempts set ended_at = ${t}, outcome = 'interrupted' where callback_id = ${s.id} and attempt = ${s.attempts} and ended_at is null and answered_at is null`.execute(deps.db);
      await afterUnanswered(s.id, s.attempts, 'interrupted');
      report.interrupted++;
    }
    // (4) due callbacks become jobs (or stand-ins for an agent), again after any loss of Redis
    const due = await sql<{ id: string; attempts: number; queue: string | null }>`
      select id, attempts, queue from callbacks
      where status = 'pending' and reason = 'ticket_closed' and due_at <= ${t}
      order by due_at limit 200`.execute(deps.db);
    if (due.rows.length > 0 && firstCallingMoment(t, deps.callingHours).getTime() > t.getTime()) return report; // outside calling hours
    const waitingOf = new Map<string, Set<string>>();
    for (const d of due.rows) {
      const q = d.queue ? deps.queues.get(d.queue) : undefined;
      if (q?.ticketCallbacks === 'agent') {
        const inLine = waitingOf.get(q.id) ?? new Set((await deps.engine.waiting(q.id)).map((w) => w.callId));
        waitingOf.set(q.id, inLine);
        if (!inLine.has(`${STAND_IN}${d.id}`)) {
          await deps.engine.enqueue({ callId: `${STAND_IN}${d.id}`, queue: q.id, priority: 0, enqueuedAt: t.getTime(), stages: q.stages });
          report.standIns++;
        }
        continue;
      }
      const attempt = d.attempts + 1;
      await deps.jobs.enqueue('callback-dial', { callbackId: d.id, attempt }, { jobId: `callback-dial-${d.id}-a${attempt}` });
      report.enqueued++;
    }
    return report;
  }

  // our own retries live in PostgreSQL (backoff until the deadline): one BullMQ run per attempt
  deps.jobs.register('callback-dial', async (data) => void (await dial(data.callbackId, data.attempt)), { concurrency: 20, attempts: 1 });
  deps.jobs.register('callback-sweep', async () => {
    const r = await sweep();
    if (r.alerted || r.expired || r.interrupted || r.enqueued || r.standIns) log.info(r, 'callbacks sweep');
  }, { attempts: 1 });
  deps.jobs.schedule('callback-sweep', deps.sweepSeconds < 60 ? `*/${deps.sweepSeconds} * * * * *` : `*/${Math.max(1, Math.round(deps.sweepSeconds / 60))} * * * *`);
  return { sweep, dial };
}

export interface SweepReport {
  alerted: number;
  expired: number;
  interrupted: number;
  enqueued: number;
  standIns: number;
}
