/**
 * The wallboard's snapshot (GET /api/v1/wallboard): what the floor's video wall shows and the live view
 * (GET /api/v1/live) lacks: today's KPIs against the contract, calls per 15 minutes against the forecast,
 * and the longest-waiting callers (numbers masked). The WebSocket (`queue.stats`, `agent.board`) keeps
 * the queues and agents live between two snapshots.
 *
 * "Today" is the Asia/Shanghai day. The KPIs are the contract's, as src/kpi/definitions.ts defines them (the
 * same as GET /api/v1/kpi and the reports), but counted live from the calls table rather than from the
 * 15-minute rollups, so the wall does not lag:
 *   calls counted  inbound calls that arrived today and have ended, less `restricted` ones
 *   outcome        answered (an agent answered) | IVR self-service | short abandon (< 5 s after arrival) |
 *                  abandoned | voicemail | callback requested | other: one per call; offered = all of them
 *   answer rate    (answered + self-service) / (offered - short abandons)                target >= 95 %
 *   average wait   arrival to the first answer (the agent's, or the end of the self-service)  target <= 15 s
 *   service level  answered (agent or IVR) within 15 s of arrival / (offered - short abandons)
 *   satisfaction   calls rated satisfied / calls rated (calls.survey_satisfied)        target >= 98 %
 *   per 15 min     calls that reached a queue, by the quarter-hour of their arrival (live ones too): the
 *                  same calls the staffing forecast predicts, whose half-hours are split evenly in two
 * A rate with nothing to divide by is null (the page shows a dash).
 */
import { sql } from 'kysely';
import type { Redis } from 'ioredis';
import type { AcdEngine } from '../acd/engine.js';
import type { QueuesConfigStore } from '../acd/queues.config.js';
import type { QueueStatsService } from '../acd/queues.stats.js';
import type { Db } from '../db/db.js';
import { emptySums, figures, SERVICE_LEVEL_SECONDS, SHORT_ABANDON_SECONDS, TARGETS, targetsMet, type KpiSums } from '../kpi/definitions.js';
import { forecastStaffing } from '../kpi/staffing.js';
import type { Keys } from '../redis/keys.js';
import { asteriskIds } from '../redis/keys.js';
import { localDayStart, localHHmm, wallDate, wallTime } from '../shared/zoned-time.js';

export const SLOT_MINUTES = 15;
const CALLBACK_PREFIX = asteriskIds.callbackStandIn('');

type QueueRow = Awaited<ReturnType<QueueStatsService['all']>>[number];

export interface WallboardKpi {
  offered: number;
  /** answered by an agent */
  answered: number;
  ivrCompleted: number;
  abandoned: number;
  shortAbandoned: number;
  /** answered (agent or IVR) within SERVICE_LEVEL_SECONDS of arrival */
  slAnswered: number;
  ratings: number;
  satisfied: number;
  answerRate: number | null;
  avgWaitSeconds: number | null;
  serviceLevel: number | null;
  satisfaction: number | null;
  /** each contract target met (true), missed (false), or nothing to judge yet (null) */
  targetsMet: { answerRate: boolean | null; avgWaitSeconds: boolean | null; satisfaction: boolean | null };
}

export interface WallboardSlot {
  /** the quarter-hour's start, ISO UTC */
  start: string;
  /** its start on the hotline's clock, HH:mm */
  startLocal: string;
  calls: number;
  forecast: number;
}

export interface WaitingCaller {
  queue: string;
  queueTitle: string;
  /** the caller's number masked (138****5678); null for a callback keeping its place, or when unknown */
  caller: string | null;
  kind: 'call' | 'callback';
  enqueuedAt: string;
  waitSeconds: number;
}

export interface WallboardSnapshot {
  at: string;
  /** today on the hotline's clock, YYYY-MM-DD */
  day: string;
  thresholds: { amberSeconds: number; redSeconds: number };
  targets: { answerRate: number; avgWaitSeconds: number; satisfaction: number; serviceLevelSeconds: number };
  queues: QueueRow[];
  agents: { total: number; byState: Record<string, number> };
  kpi: WallboardKpi;
  series: { slotMinutes: number; slots: WallboardSlot[] };
  waiting: WaitingCaller[];
}

/** 13812345678 -> 138****5678; +85291234567 -> +85****4567; short numbers keep their last two digits only */
export function maskPhone(number: string | null | undefined): string | null {
  if (!number) return null;
  const plus = number.startsWith('+') ? '+' : '';
  const digits = number.replace(/\D/g, '');
  if (digits.length === 0) return null;
  if (digits.length >= 7) return `${plus}${digits.slice(0, 3)}****${digits.slice(-4)}`;
  return `${plus}****${digits.slice(-2)}`;
}

export interface WallboardDeps {
  db: Db;
  engine: Pick<AcdEngine, 'waitingMany' | 'listAgents'>;
  queues: Pick<QueuesConfigStore, 'all'>;
  queueStats: QueueStatsService;
  redis: Redis;
  keys: Keys;
  thresholds: { amberSeconds: number; redSeconds: number };
  /** how long today's figures are reused between snapshots (ms): many screens, one query */
  kpiCacheMs?: number;
  /** how long a day's forecast is reused (ms) */
  forecastCacheMs?: number;
}

export class WallboardService {
  private kpiCache: { at: number; day: string; kpi: WallboardKpi; perSlot: Map<number, number> } | null = null;
  private forecastCache: { at: number; day: string; halfHours: number[] } | null = null;

  constructor(private readonly deps: WallboardDeps) {}

  async snapshot(opts: { top?: number; now?: Date } = {}): Promise<WallboardSnapshot> {
    const now = opts.now ?? new Date();
    const w = wallTime(now);
    const from = localDayStart(w.year, w.month, w.day);
    const to = localDayStart(w.year, w.month, w.day, 1);
    const day = wallDate(w);
    const [queues, agents, today, forecast, waiting] = await Promise.all([
      // a wall screen's figures: one read of the agents shared by the screens of the last half second
      this.deps.queueStats.all(undefined, { agentsMaxAgeMs: 500 }),
      this.deps.engine.listAgents({ maxAgeMs: 500 }),
      this.today(day, from, to),
      this.forecast(day, [w.year, w.month, w.day]),
      this.topWaiting(opts.top ?? 10, now),
    ]);
    const byState: Record<string, number> = {};
    for (const a of agents) byState[a.state] = (byState[a.state] ?? 0) + 1;
    const slotCount = Math.round((to.getTime() - from.getTime()) / (SLOT_MINUTES * 60_000));
    const slots: WallboardSlot[] = [];
    for (let i = 0; i < slotCount; i++) {
      const start = new Date(from.getTime() + i * SLOT_MINUTES * 60_000);
      const half = forecast[Math.floor(i / 2)] ?? 0;
      slots.push({ start: start.toISOString(), startLocal: localHHmm(start), calls: today.perSlot.get(i) ?? 0, forecast: Math.round((half / 2) * 100) / 100 });
    }
    return {
      at: now.toISOString(),
      day,
      thresholds: { ...this.deps.thresholds },
      targets: { answerRate: TARGETS.answerRate, avgWaitSeconds: TARGETS.avgWaitSeconds, satisfaction: TARGETS.satisfaction, serviceLevelSeconds: SERVICE_LEVEL_SECONDS },
      queues,
      agents: { total: agents.length, byState },
      kpi: today.kpi,
      series: { slotMinutes: SLOT_MINUTES, slots },
      waiting,
    };
  }

  /** today's KPIs and queue calls per quarter-hour (see the module comment for the formulas) */
  private async today(day: string, from: Date, to: Date): Promise<{ kpi: WallboardKpi; perSlot: Map<number, number> }> {
    const now = Date.now();
    const c = this.kpiCache;
    if (c && c.day === day && now - c.at < (this.deps.kpiCacheMs ?? 2000)) return c;
    const [totals, slots] = await Promise.all([
      // one row per outcome, as src/kpi/rollup.ts classifies a call (src/kpi/definitions.ts)
      sql<{ outcome: string; calls: number; waits: number; wait_ms: number; sl: number; talks: number; talk_ms: number; ratings: number; satisfied: number }>`
        with counted as (
          select
            case when answered_at is not null then 'answered'
                 when disposition = 'ivr_completed' then 'ivr'
                 when disposition = 'abandoned' and ended_at < arrived_at + make_interval(secs => ${SHORT_ABANDON_SECONDS}) then 'short'
                 when disposition = 'abandoned' then 'abandoned'
                 when disposition = 'voicemail' then 'voicemail'
                 when disposition = 'callback_requested' then 'callback'
                 else 'other' end as outcome,
            case when answered_at is not null then greatest(0, round(extract(epoch from (answered_at - arrived_at)) * 1000))
                 when disposition = 'ivr_completed' then greatest(0, round(extract(epoch from (coalesce(ivr_done_at, ended_at) - arrived_at)) * 1000))
            end as wait_ms,
            case when answered_at is not null and talk_seconds is not null then round(talk_seconds * 1000) end as talk_ms,
            survey_satisfied
          from calls
          where direction = 'inbound' and disposition is not null and disposition <> 'restricted'
            and arrived_at >= ${from} and arrived_at < ${to}
        )
        select outcome, count(*)::int as calls,
               count(wait_ms)::int as waits, coalesce(sum(wait_ms), 0)::float8 as wait_ms,
               count(*) filter (where wait_ms <= ${SERVICE_LEVEL_SECONDS * 1000})::int as sl,
               count(talk_ms)::int as talks, coalesce(sum(talk_ms), 0)::float8 as talk_ms,
               count(survey_satisfied)::int as ratings, count(*) filter (where survey_satisfied)::int as satisfied
        from counted group by outcome`.execute(this.deps.db),
      sql<{ slot: number; calls: number }>`
        select floor(extract(epoch from arrived_at - ${from}::timestamptz) / ${SLOT_MINUTES * 60})::int as slot, count(*)::int as calls
        from calls
        where direction = 'inbound' and queued_at is not null and arrived_at >= ${from} and arrived_at < ${to}
        group by 1`.execute(this.deps.db),
    ]);
    const sums: KpiSums = emptySums();
    const field: Record<string, keyof KpiSums> = {
      answered: 'answered',
      ivr: 'ivrCompleted',
      short: 'shortAbandoned',
      abandoned: 'abandoned',
      voicemail: 'voicemails',
      callback: 'callbackRequested',
      other: 'otherUnanswered',
    };
    for (const r of totals.rows) {
      sums.offered += r.calls;
      sums[field[r.outcome] ?? 'otherUnanswered'] += r.calls;
      sums.waitCount += r.waits;
      sums.waitSumMs += r.wait_ms;
      sums.slAnswered += r.sl;
      sums.talkCount += r.talks;
      sums.talkSumMs += r.talk_ms;
      sums.ratings += r.ratings;
      sums.satisfied += r.satisfied;
    }
    const f = figures(sums, []);
    const met = targetsMet(sums);
    const kpi: WallboardKpi = {
      offered: sums.offered,
      answered: sums.answered,
      ivrCompleted: sums.ivrCompleted,
      abandoned: sums.abandoned,
      shortAbandoned: sums.shortAbandoned,
      slAnswered: sums.slAnswered,
      ratings: sums.ratings,
      satisfied: sums.satisfied,
      answerRate: f.answerRate,
      avgWaitSeconds: f.avgWaitSeconds,
      serviceLevel: f.serviceLevel,
      satisfaction: f.satisfaction,
      targetsMet: { answerRate: met.answerRate, avgWaitSeconds: met.avgWaitSeconds, satisfaction: met.satisfaction },
    };
    const perSlot = new Map(slots.rows.map((s) => [s.slot, s.calls]));
    this.kpiCache = { at: now, day, kpi, perSlot };
    return this.kpiCache;
  }

  /** the staffing forecast's calls per half-hour of today (src/kpi/staffing.ts) */
  private async forecast(day: string, date: [number, number, number]): Promise<number[]> {
    const now = Date.now();
    const c = this.forecastCache;
    if (c && c.day === day && now - c.at < (this.deps.forecastCacheMs ?? 5 * 60_000)) return c.halfHours;
    const f = await forecastStaffing(this.deps.db, { date, dateText: day });
    const halfHours = f.items.map((i) => i.forecastCalls);
    this.forecastCache = { at: now, day, halfHours };
    return halfHours;
  }

  /** the `top` longest-waiting calls over every queue, numbers masked */
  private async topWaiting(top: number, now: Date): Promise<WaitingCaller[]> {
    const qs = this.deps.queues.all();
    const waitingOf = await this.deps.engine.waitingMany(qs.map((q) => q.id));
    const lists = qs.map((q) => ({ q, calls: waitingOf.get(q.id) ?? [] }));
    const all = lists.flatMap(({ q, calls }) => calls.map((c) => ({ q, c }))).sort((a, b) => a.c.enqueuedAt - b.c.enqueuedAt);
    const chosen = all.slice(0, top);
    if (chosen.length === 0) return [];
    const pipe = this.deps.redis.pipeline();
    for (const { c } of chosen) pipe.hget(this.deps.keys.call(c.callId), 'caller');
    const callers = (await pipe.exec()) ?? [];
    return chosen.map(({ q, c }, i) => {
      const callback = c.callId.startsWith(CALLBACK_PREFIX);
      const raw = callers[i]?.[1];
      return {
        queue: q.id,
        queueTitle: q.name,
        caller: callback ? null : maskPhone(typeof raw === 'string' ? raw : null),
        kind: callback ? 'callback' : 'call',
        enqueuedAt: new Date(c.enqueuedAt).toISOString(),
        waitSeconds: Math.max(0, Math.round((now.getTime() - c.enqueuedAt) / 1000)),
      };
    });
  }
}
