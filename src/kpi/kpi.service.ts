/**
 * KPI figures read from the rollups (never from the raw records): GET /api/v1/kpi and the reports both come
 * through here, so a report shows what the endpoint shows. Rows of a grain are added together (counts and sums;
 * the waits put together for the exact p90) and turned into figures by definitions.ts.
 *
 * Granularity -> rows read: 15m -> 15-minute rows; hour -> the hour's four 15-minute rows; day -> day rows;
 * month -> month rows (Asia/Shanghai boundaries). A bucket is returned when its START is in [from, to), whole
 * (its rows up to its end, even past `to`); buckets without data come back with zero counts and null ratios.
 */
import { sql } from 'kysely';
import type { Db } from '../db/db.js';
import type { KpiDim } from '../db/database.js';
import { AppError } from '../shared/errors.js';
import { HOTLINE_TZ, wallDate, wallHHmm, wallTime, zonedToUtc } from '../shared/zoned-time.js';
import { emptySums, figures, SUM_COLUMNS, SUM_KEYS, targetsMet, type KpiFigures, type KpiSums, type TargetsMet } from './definitions.js';
import { INTERVAL_MS } from './rollup.js';

export type Granularity = '15m' | 'hour' | 'day' | 'month';
export const GRANULARITIES: readonly Granularity[] = ['15m', 'hour', 'day', 'month'];
/** most buckets one request may ask for */
export const MAX_BUCKETS = 3000;

export interface Dimension {
  kind: KpiDim;
  /** null for 'all' */
  key: string | null;
}

export type KpiRow = {
  /** the bucket's start and end (UTC) and its name on the hotline's clock */
  start: string;
  end: string;
  label: string;
} & KpiSums &
  KpiFigures & { targetsMet: TargetsMet };

export type KpiKeyRow = KpiRow & { key: string };

const pad = (n: number) => String(n).padStart(2, '0');

/** the bucket starting at `at` and the start of the next one */
export function nextBucket(g: Granularity, at: Date): Date {
  if (g === '15m') return new Date(at.getTime() + INTERVAL_MS);
  const w = wallTime(at, HOTLINE_TZ);
  if (g === 'hour') return zonedToUtc(w.year, w.month, w.day, w.hour + 1);
  if (g === 'day') return zonedToUtc(w.year, w.month, w.day + 1);
  return zonedToUtc(w.year, w.month + 1, 1);
}

/** the bucket containing `at` */
export function bucketStart(g: Granularity, at: Date): Date {
  if (g === '15m') return new Date(Math.floor(at.getTime() / INTERVAL_MS) * INTERVAL_MS);
  const w = wallTime(at, HOTLINE_TZ);
  if (g === 'hour') return zonedToUtc(w.year, w.month, w.day, w.hour);
  if (g === 'day') return zonedToUtc(w.year, w.month, w.day);
  return zonedToUtc(w.year, w.month, 1);
}

export function bucketLabel(g: Granularity, at: Date): string {
  const w = wallTime(at, HOTLINE_TZ);
  if (g === 'month') return `${w.year}-${pad(w.month)}`;
  if (g === 'day') return wallDate(w);
  return `${wallDate(w)} ${wallHHmm(w)}`;
}

/** the buckets whose start is in [from, to) */
export function buckets(g: Granularity, from: Date, to: Date, max = MAX_BUCKETS): Date[] {
  let b = bucketStart(g, from);
  if (b < from) b = nextBucket(g, b);
  const out: Date[] = [];
  for (; b < to; b = nextBucket(g, b)) {
    if (out.length >= max) throw new AppError(400, 'range-too-large', `more than ${max} ${g} buckets: ask for a shorter range or a coarser granularity`);
    out.push(b);
  }
  return out;
}

interface SumRow {
  bucket: Date | null;
  key: string;
  wait_ms: number[];
  [col: string]: unknown;
}

const SUMS_SQL = sql.raw(SUM_KEYS.map((k) => `sum(${SUM_COLUMNS[k]})::float8 as "${k}"`).join(', '));

function toSums(r: SumRow | undefined): KpiSums {
  const s = emptySums();
  if (r) for (const k of SUM_KEYS) s[k] = Number(r[k] ?? 0);
  return s;
}

function row(g: Granularity | 'period', start: Date, end: Date, r: SumRow | undefined, label?: string): KpiRow {
  const sums = toSums(r);
  return {
    start: start.toISOString(),
    end: end.toISOString(),
    label: label ?? bucketLabel(g === 'period' ? 'day' : g, start),
    ...sums,
    ...figures(sums, r?.wait_ms ?? []),
    targetsMet: targetsMet(sums),
  };
}

const grainOf = (g: Granularity) => (g === 'hour' ? '15m' : g);

/** one row per bucket whose start is in [from, to), for one dimension */
export async function kpiSeries(db: Db, q: { from: Date; to: Date; granularity: Granularity; dim: Dimension }): Promise<KpiRow[]> {
  const g = q.granularity;
  const list = buckets(g, q.from, q.to);
  if (list.length === 0) return [];
  const first = list[0]!;
  const end = nextBucket(g, list[list.length - 1]!);
  const bucket = g === 'hour' ? sql`date_trunc('hour', period_start, ${HOTLINE_TZ})` : sql`period_start`;
  const res = await sql<SumRow>`
    select ${bucket} as bucket, '' as key, ${SUMS_SQL}, kpi_int_array_cat(wait_ms) as wait_ms
    from kpi_rollups
    where grain = ${grainOf(g)} and dim = ${q.dim.kind} and key = ${q.dim.key ?? ''} and period_start >= ${first} and period_start < ${end}
    group by 1`.execute(db);
  const byStart = new Map(res.rows.map((r) => [r.bucket!.getTime(), r]));
  return list.map((b) => row(g, b, nextBucket(g, b), byStart.get(b.getTime())));
}

/**
 * The grain whose rows make up [from, to) exactly: month rows when both ends are month starts, day rows when
 * both are day starts, else 15-minute rows (ends rounded to whole intervals).
 */
export function grainFor(from: Date, to: Date): '15m' | 'day' | 'month' {
  if (bucketStart('month', from).getTime() === from.getTime() && bucketStart('month', to).getTime() === to.getTime()) return 'month';
  if (bucketStart('day', from).getTime() === from.getTime() && bucketStart('day', to).getTime() === to.getTime()) return 'day';
  return '15m';
}

/** one row for the whole of [from, to) (a report's period) */
export async function kpiTotal(db: Db, q: { from: Date; to: Date; dim: Dimension; label?: string }): Promise<KpiRow> {
  const res = await sql<SumRow>`
    select null::timestamptz as bucket, '' as key, ${SUMS_SQL}, kpi_int_array_cat(wait_ms) as wait_ms
    from kpi_rollups
    where grain = ${grainFor(q.from, q.to)} and dim = ${q.dim.kind} and key = ${q.dim.key ?? ''} and period_start >= ${q.from} and period_start < ${q.to}`.execute(db);
  return row('period', q.from, q.to, res.rows[0], q.label);
}

/** one row per key of a dimension (every line, queue or agent with data) for the whole of [from, to) */
export async function kpiByKey(db: Db, q: { from: Date; to: Date; kind: Exclude<KpiDim, 'all'>; label?: string }): Promise<KpiKeyRow[]> {
  const res = await sql<SumRow>`
    select null::timestamptz as bucket, key, ${SUMS_SQL}, kpi_int_array_cat(wait_ms) as wait_ms
    from kpi_rollups
    where grain = ${grainFor(q.from, q.to)} and dim = ${q.kind} and period_start >= ${q.from} and period_start < ${q.to}
    group by key
    order by key`.execute(db);
  return res.rows.map((r) => ({ key: r.key, ...row('period', q.from, q.to, r, q.label) }));
}
