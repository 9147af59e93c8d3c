/**
 * The supervisors' live view of the floor: every queue (waiting, longest wait, today's service level) and
 * every agent (state, since when, current call and how long, calls and talk time today). A snapshot for
 * REST, and `queue.stats` / `agent.board` pushed on the WebSocket every couple of seconds while something
 * changed, by one process at a time (a short Redis lock per tick), so N processes do not push N copies.
 * Agent state changes themselves go out at once as `agent.state` (src/agents/agent-states.ts).
 */
import { sql } from 'kysely';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AcdEngine } from '../acd/engine.js';
import type { QueueStatsService } from '../acd/queues.stats.js';
import type { Db } from '../db/db.js';
import type { EventBus } from '../events/bus.js';
import type { Keys } from '../redis/keys.js';

export interface AgentBoardRow {
  agentId: string;
  name: string | null;
  state: string;
  reason: string | null;
  since: string;
  /** seconds in this state */
  stateSeconds: number;
  callId: string | null;
  /** seconds on the current call (on_call only) */
  callSeconds: number | null;
  answeredToday: number;
  talkSecondsToday: number;
  deskExtension: string | null;
}

export type QueueRow = Awaited<ReturnType<QueueStatsService['all']>>[number];

export interface LiveSnapshot {
  at: string;
  queues: QueueRow[];
  agents: AgentBoardRow[];
}

/** midnight of today in Asia/Shanghai (UTC+8, no summer time), as a UTC instant */
export function shanghaiDayStart(now = new Date()): Date {
  const shifted = new Date(now.getTime() + 8 * 3600_000);
  return new Date(Date.UTC(shifted.getUTCFullYear(), shifted.getUTCMonth(), shifted.getUTCDate()) - 8 * 3600_000);
}

export interface LiveViewDeps {
  db: Db;
  engine: Pick<AcdEngine, 'listAgents'>;
  queueStats: QueueStatsService;
  redis: Redis;
  keys: Keys;
  events?: Pick<EventBus, 'publish'>;
  log: Logger;
  /** push interval (ms) */
  intervalMs?: number;
}

export class LiveView {
  private today: { at: number; rows: Map<string, { answered: number; talk: number; name: string | null; desk: string | null }> } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastQueues = '';
  private lastAgents = '';
  private ticking = false;

  constructor(private readonly deps: LiveViewDeps) {}

  /** per agent: answered calls and talk time since midnight (Asia/Shanghai); cached a few seconds */
  private async todayByAgent(): Promise<NonNullable<LiveView['today']>['rows']> {
    const now = Date.now();
    if (this.today && now - this.today.at < 3000) return this.today.rows;
    const from = shanghaiDayStart(new Date(now));
    const [counts, agents] = await Promise.all([
      sql<{ agent: string; answered: number; talk: number }>`
        select a.agent, count(*)::int as answered, coalesce(sum(c.talk_seconds), 0)::float as talk
        from calls c cross join lateral unnest(c.agents) as a(agent)
        where c.answered_at >= ${from}
        group by a.agent`.execute(this.deps.db),
      this.deps.db.selectFrom('agents').select(['employee_no', 'name', 'desk_extension']).where('deleted_at', 'is', null).execute(),
    ]);
    const rows = new Map<string, { answered: number; talk: number; name: string | null; desk: string | null }>();
    for (const a of agents) rows.set(a.employee_no, { answered: 0, talk: 0, name: a.name, desk: a.desk_extension });
    for (const c of counts.rows) {
      const r = rows.get(c.agent) ?? { answered: 0, talk: 0, name: null, desk: null };
      r.answered = c.answered;
      r.talk = Math.round(c.talk);
      rows.set(c.agent, r);
    }
    this.today = { at: now, rows };
    return rows;
  }

  /** maxAgeMs: a read of the agents that recent may be shared (engine.listAgents); default fresh */
  async agents(maxAgeMs = 0): Promise<AgentBoardRow[]> {
    const [live, today] = await Promise.all([this.deps.engine.listAgents({ maxAgeMs }), this.todayByAgent()]);
    const now = Date.now();
    return live
      .map((a) => {
        const t = today.get(a.agentId);
        const stateSeconds = Math.max(0, Math.round((now - a.since) / 1000));
        return {
          agentId: a.agentId,
          name: t?.name ?? null,
          state: a.state,
          reason: a.reason,
          since: new Date(a.since).toISOString(),
          stateSeconds,
          callId: a.callId,
          callSeconds: a.state === 'on_call' ? stateSeconds : null,
          answeredToday: t?.answered ?? 0,
          talkSecondsToday: t?.talk ?? 0,
          deskExtension: t?.desk ?? null,
        };
      })
      .sort((x, y) => x.agentId.localeCompare(y.agentId));
  }

  async snapshot(): Promise<LiveSnapshot> {
    // the queue figures and the agent board read the agents once, together (a read of the last 100 ms is shared)
    const [queues, agents] = await Promise.all([this.deps.queueStats.all(undefined, { agentsMaxAgeMs: 100 }), this.agents(100)]);
    return { at: new Date().toISOString(), queues, agents };
  }

  start(): void {
    if (this.timer || !this.deps.events) return;
    const every = this.deps.intervalMs ?? 2000;
    this.timer = setInterval(() => void this.tick(every), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** one push: only by the process that took this tick, only what changed since the last push */
  async tick(every: number): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const won = await this.deps.redis.set(this.deps.keys.liveViewTick(), String(process.pid), 'PX', Math.max(100, every - 100), 'NX');
      if (won !== 'OK') return;
      const snap = await this.snapshot();
      // the seconds counters move every tick; compare what a change means
      const queuesKey = JSON.stringify(snap.queues.map((q) => [q.name, q.waiting, q.agents, q.offeredToday, q.answeredToday, q.abandonedToday]));
      const agentsKey = JSON.stringify(snap.agents.map((a) => [a.agentId, a.state, a.callId, a.answeredToday]));
      const waiting = snap.queues.some((q) => q.waiting > 0);
      if (queuesKey !== this.lastQueues || waiting) {
        this.lastQueues = queuesKey;
        this.deps.events!.publish('queue.stats', { at: snap.at, queues: snap.queues }, { everyone: true });
      }
      if (agentsKey !== this.lastAgents) {
        this.lastAgents = agentsKey;
        this.deps.events!.publish('agent.board', { at: snap.at, agents: snap.agents }, { supervisors: true });
      }
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'live view push failed');
    } finally {
      this.ticking = false;
    }
  }
}
