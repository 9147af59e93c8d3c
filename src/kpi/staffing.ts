/**
 * Staffing forecast for one day (Asia/Shanghai), per half-hour: the calls that will need an agent, their
 * handle time, and the fewest agents meeting the contract (DESIGN §4: answer rate >= 95 %, average wait
 * to answer <= 15 s) under Erlang A.
 *
 * - Load: inbound calls that reached a queue (queued_at set: the ones agents must take; calls finished in the
 *   IVR need none), counted by the half-hour of their arrival, on the same weekday of the previous N weeks.
 *   Weighted average, the most recent week weighing most (N, N-1, ..., 1); a week with no such call at all
 *   that day (service not yet live, outage) is left out and the weights renormalised.
 * - Handle time: the answered calls' talk_seconds over the same days: per half-hour when that half-hour has
 *   at least MIN_SLOT_SAMPLES answers, else the whole day's average, else DEFAULT_AHT_SECONDS.
 * - Patience (Erlang A): the maximum-likelihood estimate for exponential patience, time spent waiting in queue
 *   by all queued calls / calls abandoned in queue, when the history has MIN_ABANDONS of them;
 *   else DEFAULT_PATIENCE_SECONDS.
 */
import { sql } from 'kysely';
import type { Db } from '../db/db.js';
import { localDayStart, localHHmm } from '../shared/zoned-time.js';
import { agentsNeeded } from './erlang.js';

export const SLOT_SECONDS = 1800;
export const DEFAULT_WEEKS = 4;
export const DEFAULT_AHT_SECONDS = 240;
export const DEFAULT_PATIENCE_SECONDS = 180;
export const MIN_SLOT_SAMPLES = 30;
export const MIN_ABANDONS = 20;
/** DESIGN §4: answer rate >= 95 %, average wait to answer <= 15 s */
export const TARGET_ANSWER_RATE = 0.95;
export const TARGET_ASA_SECONDS = 15;

export interface StaffingItem {
  /** the half-hour's start, ISO UTC */
  start: string;
  /** its start on the hotline's clock, HH:mm */
  startLocal: string;
  forecastCalls: number;
  ahtSeconds: number;
  agentsNeeded: number;
  /** expected answer rate with that many agents (Erlang A) */
  expectedServiceLevel: number;
  /** expected mean wait in queue, seconds */
  expectedAsaSeconds: number;
}

export interface StaffingForecast {
  date: string;
  line: string | null;
  /** weeks that had calls on that weekday (of the `weeks` looked at) */
  weeksOfHistory: number;
  patienceSeconds: number;
  patienceSource: 'history' | 'default';
  items: StaffingItem[];
}

interface SlotRow {
  slot: number;
  calls: number;
  answered: number;
  talk: number;
  abandoned: number;
  queue_wait: number;
}

const round = (v: number, decimals: number) => Math.round(v * 10 ** decimals) / 10 ** decimals;

/** `date` is a checked YYYY-MM-DD (local); `line` narrows to one line (its dialled number) */
export async function forecastStaffing(db: Db, q: { date: [number, number, number]; dateText: string; line?: string | null; weeks?: number }): Promise<StaffingForecast> {
  const weeks = q.weeks ?? DEFAULT_WEEKS;
  const [y, m, d] = q.date;
  const dayStart = localDayStart(y, m, d);
  const slots = Math.round((localDayStart(y, m, d, 1).getTime() - dayStart.getTime()) / 1000 / SLOT_SECONDS);

  const perWeek: Array<{ weight: number; rows: Map<number, SlotRow> }> = [];
  for (let k = 1; k <= weeks; k++) {
    const from = localDayStart(y, m, d, -7 * k);
    const to = localDayStart(y, m, d, -7 * k + 1);
    const res = await sql<SlotRow>`
      select floor(extract(epoch from (arrived_at - ${from}::timestamptz)) / ${SLOT_SECONDS})::int as slot,
             count(*)::int as calls,
             (count(*) filter (where answered_at is not null and talk_seconds is not null))::int as answered,
             coalesce(sum(talk_seconds) filter (where answered_at is not null), 0)::float8 as talk,
             (count(*) filter (where answered_at is null and disposition = 'abandoned'))::int as abandoned,
             coalesce(sum(greatest(0, extract(epoch from (coalesce(answered_at, ended_at) - queued_at)))), 0)::float8 as queue_wait
      from calls
      where direction = 'inbound' and queued_at is not null and arrived_at >= ${from} and arrived_at < ${to}
        ${q.line ? sql`and line = ${q.line}` : sql``}
      group by 1`.execute(db);
    if (res.rows.length === 0) continue; // no calls that day: not a week of history
    perWeek.push({ weight: weeks - k + 1, rows: new Map(res.rows.map((r) => [r.slot, r])) });
  }

  const totalWeight = perWeek.reduce((s, w) => s + w.weight, 0);
  let dayAnswered = 0;
  let dayTalk = 0;
  let abandons = 0;
  let queueWait = 0;
  for (const w of perWeek) {
    for (const r of w.rows.values()) {
      dayAnswered += r.answered;
      dayTalk += r.talk;
      abandons += r.abandoned;
      queueWait += r.queue_wait;
    }
  }
  const dayAht = dayAnswered > 0 ? dayTalk / dayAnswered : DEFAULT_AHT_SECONDS;
  const fromHistory = abandons >= MIN_ABANDONS && queueWait > 0;
  const patienceSeconds = fromHistory ? round(queueWait / abandons, 1) : DEFAULT_PATIENCE_SECONDS;

  const items: StaffingItem[] = [];
  for (let slot = 0; slot < slots; slot++) {
    let weighted = 0;
    let answered = 0;
    let talk = 0;
    for (const w of perWeek) {
      const r = w.rows.get(slot);
      if (!r) continue;
      weighted += w.weight * r.calls;
      answered += r.answered;
      talk += r.talk;
    }
    const forecastCalls = totalWeight > 0 ? round(weighted / totalWeight, 2) : 0;
    const ahtSeconds = round(answered >= MIN_SLOT_SAMPLES ? talk / answered : dayAht, 1);
    const r = agentsNeeded({
      callsPerInterval: forecastCalls,
      intervalSeconds: SLOT_SECONDS,
      ahtSeconds,
      targetServiceLevel: TARGET_ANSWER_RATE,
      targetSeconds: TARGET_ASA_SECONDS,
      targetAsaSeconds: TARGET_ASA_SECONDS,
      patienceSeconds,
    });
    const start = new Date(dayStart.getTime() + slot * SLOT_SECONDS * 1000);
    items.push({
      start: start.toISOString(),
      startLocal: localHHmm(start),
      forecastCalls,
      ahtSeconds,
      agentsNeeded: r.agents,
      expectedServiceLevel: round(r.serviceLevel, 4),
      expectedAsaSeconds: round(r.averageSpeedOfAnswerSeconds, 1),
    });
  }
  return { date: q.dateText, line: q.line ?? null, weeksOfHistory: perWeek.length, patienceSeconds, patienceSource: fromHistory ? 'history' : 'default', items };
}
