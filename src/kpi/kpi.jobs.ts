/**
 * The KPI jobs on the service's JobScheduler (src/jobs/scheduler.ts: node-cron in every process enqueues each
 * fire once for the fleet under a deterministic id; a BullMQ worker runs it):
 *
 * | job                | when (Asia/Shanghai)            | does                                                        |
 * |--------------------|---------------------------------|-------------------------------------------------------------|
 * | kpi-rollup-15m     | every 15 minutes (0,15,30,45)    | the last KPI_RECONCILE_HOURS up to the interval just closed, |
 * |                    |                                 | and every older interval a late change belongs to            |
 * | kpi-rollup-day     | 00:05 daily                     | yesterday, whole                                             |
 * | kpi-rollup-month   | 00:20 on the 1st                | last month, whole                                            |
 * | kpi-rollup-range   | on demand (POST /api/v1/kpi/rollup) | one range (at most a day)                                |
 * | report-generate    | on demand (POST /api/v1/reports) | builds one report (src/kpi/reports.ts)                      |
 *
 * Every rollup is idempotent (DELETE + INSERT of its periods in one transaction), so a job run twice (BullMQ's
 * at-least-once) or two jobs over the same period give the same rows.
 */
import type { Logger } from 'pino';
import type { Db } from '../db/db.js';
import { UnrecoverableError, type JobScheduler } from '../jobs/scheduler.js';
import { localDayStart, parseLocalDate, wallDate, wallTime, zonedToUtc } from '../shared/zoned-time.js';
import { DEFAULT_FCR_REPEAT_DAYS } from './definitions.js';
import { generateReport } from './reports.js';
import { floorInterval, rollRanges, rollupRecent, type RollupResult } from './rollup.js';

declare module '../jobs/scheduler.js' {
  interface JobPayloads {
    /** the fire time (ISO): the interval ending at it has just closed */
    'kpi-rollup-15m': { at: string };
    /** a local day, YYYY-MM-DD */
    'kpi-rollup-day': { day: string };
    /** a local month, YYYY-MM */
    'kpi-rollup-month': { month: string };
    /** ISO instants, rounded out to whole 15-minute intervals */
    'kpi-rollup-range': { from: string; to: string };
    'report-generate': { reportId: string };
  }
}

export const KPI_JOBS = ['kpi-rollup-15m', 'kpi-rollup-day', 'kpi-rollup-month', 'kpi-rollup-range'] as const;
export const REPORT_JOB = 'report-generate';

export const DEFAULT_RECONCILE_HOURS = 3;

export interface KpiJobsDeps {
  db: Db;
  log: Logger;
  /** FCR from calls: the repeat window (FCR_REPEAT_DAYS) */
  fcrRepeatDays?: number;
  /** how far back every 15-minute run re-rolls whatever happened (KPI_RECONCILE_HOURS) */
  reconcileHours?: number;
  /** false: register the handlers without cron schedules (tests fire them by hand) */
  schedule?: boolean;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** YYYY-MM-DD of the local day before the one `at` is in */
export function previousLocalDay(at: Date): string {
  const w = wallTime(at);
  return wallDate(wallTime(localDayStart(w.year, w.month, w.day, -1)));
}

/** YYYY-MM of the local month before the one `at` is in */
export function previousLocalMonth(at: Date): string {
  const w = wallTime(at);
  const d = wallTime(zonedToUtc(w.year, w.month - 1, 1));
  return `${d.year}-${pad(d.month)}`;
}

function dayRange(day: string): { from: Date; to: Date } {
  const d = parseLocalDate(day);
  if (!d) throw new UnrecoverableError(`kpi-rollup-day: "${day}" is no YYYY-MM-DD date`);
  return { from: localDayStart(...d), to: localDayStart(...d, 1) };
}

function monthRange(month: string): { from: Date; to: Date } {
  const m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(month);
  if (!m) throw new UnrecoverableError(`kpi-rollup-month: "${month}" is no YYYY-MM month`);
  return { from: zonedToUtc(Number(m[1]), Number(m[2]), 1), to: zonedToUtc(Number(m[1]), Number(m[2]) + 1, 1) };
}

function instant(s: string, what: string): Date {
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) throw new UnrecoverableError(`${what}: "${s}" is no time`);
  return d;
}

/** register the KPI and report jobs (and, unless told otherwise, their schedules) on the scheduler */
export function registerKpiJobs(jobs: Pick<JobScheduler, 'register' | 'schedule'>, deps: KpiJobsDeps): void {
  const o = { fcrRepeatDays: deps.fcrRepeatDays ?? DEFAULT_FCR_REPEAT_DAYS, reconcileHours: deps.reconcileHours ?? DEFAULT_RECONCILE_HOURS };
  const log = deps.log.child({ module: 'kpi' });
  const done = (name: string, jobId: string, r: RollupResult, ms: number) =>
    log.info({ job: name, jobId, intervals: r.intervals, rows: r.rows, ranges: r.ranges.length, ms }, 'kpi rollup done');
  const opts = { attempts: 3, backoff: { type: 'exponential' as const, delay: 5000 } };

  jobs.register(
    'kpi-rollup-15m',
    async (data, ctx) => {
      const t = Date.now();
      const r = await rollupRecent(deps.db, instant(data.at, 'kpi-rollup-15m'), { ...o, jobId: ctx.id });
      done(ctx.name, ctx.id, r, Date.now() - t);
    },
    opts,
  );
  jobs.register(
    'kpi-rollup-day',
    async (data, ctx) => {
      const t = Date.now();
      const r = await rollRanges(deps.db, [dayRange(data.day)], { ...o, kind: 'day', jobId: ctx.id });
      done(ctx.name, ctx.id, r, Date.now() - t);
    },
    opts,
  );
  jobs.register(
    'kpi-rollup-month',
    async (data, ctx) => {
      const t = Date.now();
      const r = await rollRanges(deps.db, [monthRange(data.month)], { ...o, kind: 'month', jobId: ctx.id });
      done(ctx.name, ctx.id, r, Date.now() - t);
    },
    opts,
  );
  jobs.register(
    'kpi-rollup-range',
    async (data, ctx) => {
      const t = Date.now();
      const from = instant(data.from, 'kpi-rollup-range');
      const to = instant(data.to, 'kpi-rollup-range');
      if (!(to > from)) throw new UnrecoverableError('kpi-rollup-range: to must be after from');
      const r = await rollRanges(deps.db, [{ from, to }], { ...o, kind: 'range', jobId: ctx.id });
      done(ctx.name, ctx.id, r, Date.now() - t);
    },
    opts,
  );
  jobs.register(REPORT_JOB, (data, ctx) => generateReport(deps.db, data.reportId, { log, attempt: ctx.attempt, lastAttempt: ctx.attempt >= 2, fcrRepeatDays: o.fcrRepeatDays }), {
    attempts: 2,
    backoff: { type: 'fixed', delay: 10_000 },
  });

  if (deps.schedule === false) return;
  jobs.schedule('kpi-rollup-15m', '*/15 * * * *', 'Asia/Shanghai', (at) => ({ at: floorInterval(at).toISOString() }));
  jobs.schedule('kpi-rollup-day', '5 0 * * *', 'Asia/Shanghai', (at) => ({ day: previousLocalDay(at) }));
  jobs.schedule('kpi-rollup-month', '20 0 1 * *', 'Asia/Shanghai', (at) => ({ month: previousLocalMonth(at) }));
}
