/** Live numbers per queue for the API and the wallboard: Redis for the moment, PostgreSQL for today. */
import { sql } from 'kysely';
import type { Db } from '../db/db.js';
import type { AcdEngine, AgentLive } from './engine.js';
import { estimateWaitSeconds } from './estimate.js';
import type { QueueConfig, QueuesConfigStore } from './queues.config.js';

export interface QueueStatsService {
  /** agentsMaxAgeMs: share a read of the agents that recent (engine.listAgents); default fresh (the REST API) */
  all(only?: string[], opts?: { agentsMaxAgeMs?: number }): Promise<
    Array<{
      name: string;
      title: string;
      waiting: number;
      longestWaitSeconds: number;
      agents: Record<string, number>;
      offeredToday: number;
      answeredToday: number;
      abandonedToday: number;
      serviceLevelToday: number | null;
      serviceLevelSeconds: number;
      estimatedWaitSeconds: number | null;
    }>
  >;
}

const serves = (q: QueueConfig, a: AgentLive) => q.stages[0]!.needs.some((n) => (a.skills[n.skill] ?? 0) >= n.minLevel);

export function createQueueStats(deps: { db: Db; engine: AcdEngine; queues: QueuesConfigStore; defaultHandleSeconds: number }): QueueStatsService {
  return {
    async all(only, opts) {
      const qs = deps.queues.all().filter((q) => !only || only.includes(q.id));
      const [agents, today, waitingOf] = await Promise.all([deps.engine.listAgents({ maxAgeMs: opts?.agentsMaxAgeMs }), todayCounts(deps.db, qs), deps.engine.waitingMany(qs.map((q) => q.id))]);
      const now = Date.now();
      return Promise.all(
        qs.map(async (q) => {
          const waiting = waitingOf.get(q.id) ?? [];
          const byState: Record<string, number> = {};
          for (const a of agents) if (serves(q, a)) byState[a.state] = (byState[a.state] ?? 0) + 1;
          const staffed = agents.filter((a) => serves(q, a) && ['ready', 'reserved', 'on_call', 'wrap_up'].includes(a.state)).length;
          const t = today.get(q.id);
          const ewt = estimateWaitSeconds(waiting.length + 1, staffed, deps.defaultHandleSeconds);
          return {
            name: q.id,
            title: q.name,
            waiting: waiting.length,
            longestWaitSeconds: waiting.length ? Math.round((now - Math.min(...waiting.map((w) => w.enqueuedAt))) / 1000) : 0,
            agents: byState,
            offeredToday: t?.offered ?? 0,
            answeredToday: t?.answered ?? 0,
            abandonedToday: t?.abandoned ?? 0,
            serviceLevelToday: t && t.offered > 0 ? Math.round((t.inSl / t.offered) * 1000) / 1000 : null,
            serviceLevelSeconds: q.serviceLevelSeconds,
            estimatedWaitSeconds: Number.isFinite(ewt) ? ewt : null,
          };
        }),
      );
    },
  };
}

/**
 * today in Asia/Shanghai: offered = calls that reached the queue and ended; service level = answered within the
 * threshold / offered. Read every second by the live view: it must stay an index read (calls_queued_at_idx), not
 * a scan of every call ever taken (test/integration/queue-stats-plan.test.ts).
 */
export function todayCountsQuery(names: string[], secs: number[]) {
  return sql<{ queue: string; offered: string; answered: string; abandoned: string; in_sl: string }>`
    with sl(queue, secs) as (select * from unnest(${names}::text[], ${secs}::int[]))
    select c.queue,
           count(*) as offered,
           count(*) filter (where c.disposition = 'answered') as answered,
           count(*) filter (where c.disposition = 'abandoned') as abandoned,
           count(*) filter (where c.answered_at is not null and extract(epoch from c.answered_at - c.queued_at) <= sl.secs) as in_sl
    from calls c join sl on sl.queue = c.queue
    where c.queued_at >= (date_trunc('day', now() at time zone 'Asia/Shanghai') at time zone 'Asia/Shanghai')
      and c.ended_at is not null
    group by c.queue`;
}

async function todayCounts(db: Db, qs: QueueConfig[]): Promise<Map<string, { offered: number; answered: number; abandoned: number; inSl: number }>> {
  if (qs.length === 0) return new Map();
  const rows = await todayCountsQuery(
    qs.map((q) => q.id),
    qs.map((q) => q.serviceLevelSeconds),
  ).execute(db);
  return new Map(rows.rows.map((r) => [r.queue, { offered: Number(r.offered), answered: Number(r.answered), abandoned: Number(r.abandoned), inSl: Number(r.in_sl) }]));
}
