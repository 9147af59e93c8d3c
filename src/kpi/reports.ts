/**
 * Periodic reports (monthly `2026-11`, quarterly `2026-Q4`, half-yearly `2026-H2`, annual `2026`): a job
 * (`report-generate`) reads the period's figures through the KPI service (kpi.service.ts, the same reads as
 * GET /api/v1/kpi, so the numbers match) and writes one self-contained HTML file (inline CSS and SVG, no external
 * reference) and a CSV of the same numbers into the report's row (`kpi_reports`). A monthly report adds a
 * staffing section (src/kpi/staffing.ts) for a representative weekday: the first Wednesday after the month,
 * forecast from the four Wednesdays before it (the month's own).
 */
import type { Logger } from 'pino';
import type { Db } from '../db/db.js';
import type { KpiReportKind } from '../db/database.js';
import { UnrecoverableError } from '../jobs/scheduler.js';
import { localDayStart, wallDate, wallTime, zonedToUtc } from '../shared/zoned-time.js';
import { kpiByKey, kpiSeries, kpiTotal, type KpiKeyRow, type KpiRow } from './kpi.service.js';
import { renderCsv, renderHtml } from './report-render.js';
import { forecastStaffing, type StaffingForecast } from './staffing.js';

export const REPORT_KINDS: readonly KpiReportKind[] = ['monthly', 'quarterly', 'half-yearly', 'annual'];

export interface ReportPeriod {
  kind: KpiReportKind;
  period: string;
  /** [from, to): local (Asia/Shanghai) month starts */
  from: Date;
  to: Date;
  /** e.g. 2026年11月 / 2026年第4季度 */
  titleZh: string;
  titleEn: string;
}

const PATTERNS: Record<KpiReportKind, RegExp> = {
  monthly: /^(\d{4})-(0[1-9]|1[0-2])$/,
  quarterly: /^(\d{4})-Q([1-4])$/,
  'half-yearly': /^(\d{4})-H([12])$/,
  annual: /^(\d{4})$/,
};

/** the period a report covers, or null when `period` is not of its kind's form (or outside 2000-2099) */
export function parsePeriod(kind: KpiReportKind, period: string): ReportPeriod | null {
  const m = PATTERNS[kind]?.exec(period);
  if (!m) return null;
  const year = Number(m[1]);
  if (year < 2000 || year > 2099) return null;
  const n = Number(m[2] ?? 1);
  const [firstMonth, months, zh, en] =
    kind === 'monthly'
      ? [n, 1, `${year}年${n}月`, `${year}-${String(n).padStart(2, '0')}`]
      : kind === 'quarterly'
        ? [3 * n - 2, 3, `${year}年第${n}季度`, `Q${n} ${year}`]
        : kind === 'half-yearly'
          ? [6 * n - 5, 6, `${year}年${n === 1 ? '上' : '下'}半年`, `H${n} ${year}`]
          : [1, 12, `${year}年`, `${year}`];
  return { kind, period, from: zonedToUtc(year, firstMonth, 1), to: zonedToUtc(year, firstMonth + months, 1), titleZh: zh, titleEn: en };
}

/** the representative weekday of a monthly report's staffing section: the first Wednesday on or after `after` */
export function staffingDay(after: Date): { date: [number, number, number]; text: string } {
  const w = wallTime(after);
  const wd = wallTime(localDayStart(w.year, w.month, w.day)).weekday;
  const d = wallTime(localDayStart(w.year, w.month, w.day, (3 - wd + 7) % 7));
  return { date: [d.year, d.month, d.day], text: wallDate(d) };
}

export interface ReportData {
  period: ReportPeriod;
  generatedAt: Date;
  total: KpiRow;
  months: KpiRow[];
  days: KpiRow[];
  lines: KpiKeyRow[];
  queues: KpiKeyRow[];
  /** every agent with data, most answered first */
  agents: Array<KpiKeyRow & { name: string | null }>;
  staffing: StaffingForecast | null;
  fcrRepeatDays: number;
}

/** everything a report shows, read through the KPI service */
export async function reportData(db: Db, period: ReportPeriod, o: { fcrRepeatDays: number; now?: Date }): Promise<ReportData> {
  const all = { kind: 'all' as const, key: null };
  const range = { from: period.from, to: period.to };
  const [total, months, days, lines, queues, agentRows] = await Promise.all([
    kpiTotal(db, { ...range, dim: all, label: period.period }),
    kpiSeries(db, { ...range, granularity: 'month', dim: all }),
    kpiSeries(db, { ...range, granularity: 'day', dim: all }),
    kpiByKey(db, { ...range, kind: 'line' }),
    kpiByKey(db, { ...range, kind: 'queue' }),
    kpiByKey(db, { ...range, kind: 'agent' }),
  ]);
  const names = new Map<string, string>();
  if (agentRows.length) {
    const rows = await db.selectFrom('agents').select(['employee_no', 'name']).where('employee_no', 'in', agentRows.map((a) => a.key)).execute();
    for (const r of rows) names.set(r.employee_no, r.name);
  }
  const agents = agentRows.map((a) => ({ ...a, name: names.get(a.key) ?? null })).sort((a, b) => b.answered - a.answered || (a.key < b.key ? -1 : 1));
  let staffing: StaffingForecast | null = null;
  if (period.kind === 'monthly') {
    const day = staffingDay(period.to);
    staffing = await forecastStaffing(db, { date: day.date, dateText: day.text, line: null });
  }
  return { period, generatedAt: o.now ?? new Date(), total, months, days, lines, queues, agents, staffing, fcrRepeatDays: o.fcrRepeatDays };
}

/** the `report-generate` job: builds the report once (a done report is left alone: the job may run twice) */
export async function generateReport(db: Db, reportId: string, o: { log: Logger; attempt: number; lastAttempt: boolean; fcrRepeatDays: number }): Promise<void> {
  if (!/^[0-9a-f-]{36}$/.test(reportId)) throw new UnrecoverableError(`report id "${reportId}" is no uuid`);
  const r = await db.selectFrom('kpi_reports').select(['id', 'kind', 'period', 'status']).where('id', '=', reportId).executeTakeFirst();
  if (!r) throw new UnrecoverableError(`report ${reportId} does not exist`);
  if (r.status === 'done') return;
  const fail = (error: string) => db.updateTable('kpi_reports').set({ status: 'failed', error, finished_at: new Date() }).where('id', '=', reportId).execute();
  const period = parsePeriod(r.kind, r.period);
  if (!period) {
    await fail(`"${r.period}" is no ${r.kind} period`);
    throw new UnrecoverableError(`report ${reportId}: "${r.period}" is no ${r.kind} period`);
  }
  await db.updateTable('kpi_reports').set({ status: 'running', started_at: new Date(), error: null }).where('id', '=', reportId).execute();
  const t = Date.now();
  try {
    const data = await reportData(db, period, { fcrRepeatDays: o.fcrRepeatDays });
    const html = renderHtml(data);
    const csv = renderCsv(data);
    await db.updateTable('kpi_reports').set({ status: 'done', html, csv, finished_at: new Date(), error: null }).where('id', '=', reportId).execute();
    o.log.info({ reportId, kind: r.kind, period: r.period, ms: Date.now() - t, htmlBytes: html.length }, 'report generated');
  } catch (err) {
    o.log.warn({ reportId, attempt: o.attempt, err: (err as Error).message }, 'report generation failed');
    if (o.lastAttempt) await fail((err as Error).message.slice(0, 500));
    throw err;
  }
}
