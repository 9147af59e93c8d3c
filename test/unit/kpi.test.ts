/** KPI definitions and helpers without I/O: percentile, figures, targets at their boundaries, periods, buckets. */
import cron from 'node-cron';
import { pino } from 'pino';
import t from 'tap';
import type { Db } from '../../src/db/db.js';
import { emptySums, figures, percentileMs, targetsMet, type KpiSums } from '../../src/kpi/definitions.js';
import { previousLocalDay, previousLocalMonth, registerKpiJobs } from '../../src/kpi/kpi.jobs.js';
import { bucketLabel, buckets, grainFor, nextBucket } from '../../src/kpi/kpi.service.js';
import { esc } from '../../src/kpi/report-render.js';
import { parsePeriod, staffingDay } from '../../src/kpi/reports.js';
import { mergeRanges } from '../../src/kpi/rollup.js';

const sums = (p: Partial<KpiSums>): KpiSums => ({ ...emptySums(), ...p });
const d = (s: string) => new Date(s);

t.test('p90 is the nearest rank: the smallest value with at least 90 % of the values at or below it', async (t) => {
  t.equal(percentileMs([]), null);
  t.equal(percentileMs([7]), 7);
  t.equal(percentileMs([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]), 9, '10 values: the 9th');
  t.equal(percentileMs(Array.from({ length: 11 }, (_, i) => i + 1)), 10, '11 values: rank ceil(9.9) = 10');
  t.equal(percentileMs(Array.from({ length: 20 }, (_, i) => 20 - i)), 18);
  t.equal(percentileMs([1000, 15000, 2]), 15000, '3 values: rank 3');
  t.equal(percentileMs(Array.from({ length: 100 }, (_, i) => i)), 89, '100 values: rank 90');
});

t.test('figures from counts and sums; nothing to measure is null', async (t) => {
  const f = figures(sums({ offered: 110, shortAbandoned: 10, answered: 80, ivrCompleted: 15, waitCount: 95, waitSumMs: 950_000, slAnswered: 50, ratings: 4, satisfied: 3, ticketsDispatched: 20, ticketsReturned: 1, ticketsClosed: 8, ticketsCalledBack24h: 8 }), [1000, 2000, 30000]);
  t.equal(f.answerRate, 0.95, 'short abandons out of the denominator');
  t.equal(f.serviceLevel, 0.5);
  t.equal(f.avgWaitSeconds, 10);
  t.equal(f.p90WaitSeconds, 30);
  t.equal(f.satisfaction, 0.75);
  t.equal(f.dispatchAccuracy, 0.95);
  t.equal(f.callbackRate24h, 1);
  t.equal(f.fcr, null);
  t.equal(f.avgTalkSeconds, null);
  const none = figures(emptySums(), []);
  t.ok(Object.values(none).every((v) => v === null), 'an empty bucket has no ratios');
});

t.test('targets at their boundaries, in whole numbers', async (t) => {
  t.equal(targetsMet(sums({ offered: 100, answered: 95 })).answerRate, true, '95 of 100 meets 95 %');
  t.equal(targetsMet(sums({ offered: 100, answered: 94, ivrCompleted: 0 })).answerRate, false);
  t.equal(targetsMet(sums({ offered: 20, answered: 19 })).answerRate, true, '19 of 20');
  t.equal(targetsMet(sums({ waitCount: 3, waitSumMs: 45_000 })).avgWaitSeconds, true, 'exactly 15 s on average meets it');
  t.equal(targetsMet(sums({ waitCount: 3, waitSumMs: 45_001 })).avgWaitSeconds, false);
  t.equal(targetsMet(sums({ ticketsClosed: 10, ticketsCalledBack24h: 10 })).callbackRate24h, true);
  t.equal(targetsMet(sums({ ticketsClosed: 10, ticketsCalledBack24h: 9 })).callbackRate24h, false, '100 % means every one');
  t.equal(targetsMet(sums({ ratings: 50, satisfied: 49 })).satisfaction, true, '49 of 50 = 98 %');
  t.equal(targetsMet(sums({ ratings: 100, satisfied: 97 })).satisfaction, false);
  t.equal(targetsMet(sums({ ticketsOpened: 10, ticketsResolvedFirstContact: 7 })).fcr, true);
  t.equal(targetsMet(sums({ fcrFirstCalls: 10, fcrResolvedCalls: 6 })).fcrCalls, false);
  t.equal(targetsMet(sums({ ticketsDispatched: 20, ticketsReturned: 1 })).dispatchAccuracy, true);
  t.equal(targetsMet(sums({ ticketsDispatched: 20, ticketsReturned: 2 })).dispatchAccuracy, false);
  t.same(Object.values(targetsMet(emptySums())), [null, null, null, null, null, null, null], 'nothing to measure: null');
});

t.test('report periods on the hotline clock (Asia/Shanghai)', async (t) => {
  const m = parsePeriod('monthly', '2026-11')!;
  t.same([m.from.toISOString(), m.to.toISOString(), m.titleZh], ['2026-10-31T16:00:00.000Z', '2026-11-30T16:00:00.000Z', '2026年11月']);
  const q = parsePeriod('quarterly', '2026-Q4')!;
  t.same([q.from.toISOString(), q.to.toISOString()], ['2026-09-30T16:00:00.000Z', '2026-12-31T16:00:00.000Z']);
  const h = parsePeriod('half-yearly', '2026-H1')!;
  t.same([h.from.toISOString(), h.to.toISOString(), h.titleZh], ['2025-12-31T16:00:00.000Z', '2026-06-30T16:00:00.000Z', '2026年上半年']);
  const a = parsePeriod('annual', '2026')!;
  t.same([a.from.toISOString(), a.to.toISOString()], ['2025-12-31T16:00:00.000Z', '2026-12-31T16:00:00.000Z']);
  for (const [k, p] of [['monthly', '2026-13'], ['monthly', '2026-1'], ['monthly', '2026-Q1'], ['quarterly', '2026-Q0'], ['half-yearly', '2026-H3'], ['annual', '26'], ['annual', '1999'], ['annual', '2026 ']] as const) {
    t.equal(parsePeriod(k, p), null, `${k} ${p}`);
  }
  t.equal(staffingDay(m.to).text, '2026-12-02', 'the first Wednesday after November 2026');
  t.equal(staffingDay(d('2026-12-01T16:00:00Z')).text, '2026-12-02', 'a Wednesday is its own');
  t.equal(staffingDay(d('2026-12-02T16:00:00Z')).text, '2026-12-09');
});

t.test('buckets, labels, grains and ranges', async (t) => {
  const from = d('2026-11-17T16:00:00Z');
  const to = d('2026-11-18T16:00:00Z');
  t.equal(buckets('15m', from, to).length, 96);
  t.equal(buckets('hour', from, to).length, 24);
  t.same(buckets('day', from, to).map((b) => b.toISOString()), ['2026-11-17T16:00:00.000Z']);
  t.same(buckets('hour', d('2026-11-17T16:10:00Z'), d('2026-11-17T18:00:00Z')).map((b) => bucketLabel('hour', b)), ['2026-11-18 01:00'], 'only buckets that start inside');
  t.same(buckets('month', d('2026-10-31T16:00:00Z'), d('2026-12-31T16:00:00Z')).map((b) => bucketLabel('month', b)), ['2026-11', '2026-12']);
  t.equal(nextBucket('month', d('2026-12-31T16:00:00Z')).toISOString(), '2027-01-31T16:00:00.000Z');
  t.throws(() => buckets('15m', d('2026-01-01T00:00:00Z'), d('2026-03-01T00:00:00Z')), { code: 'range-too-large' });
  t.equal(grainFor(d('2026-10-31T16:00:00Z'), d('2026-12-31T16:00:00Z')), 'month');
  t.equal(grainFor(d('2026-11-17T16:00:00Z'), d('2026-11-19T16:00:00Z')), 'day');
  t.equal(grainFor(d('2026-11-17T16:15:00Z'), d('2026-11-19T16:00:00Z')), '15m');
  t.same(
    mergeRanges([{ from: d('2026-11-18T01:07:00Z'), to: d('2026-11-18T01:20:00Z') }], [d('2026-11-18T01:31:00Z'), d('2026-11-18T03:00:00Z'), d('2026-11-18T01:44:59Z')]).map((r) => [r.from.toISOString(), r.to.toISOString()]),
    [
      ['2026-11-18T01:00:00.000Z', '2026-11-18T01:45:00.000Z'],
      ['2026-11-18T03:00:00.000Z', '2026-11-18T03:15:00.000Z'],
    ],
    'rounded out to whole intervals, touching ones merged',
  );
  t.equal(previousLocalDay(d('2026-11-30T16:05:00Z')), '2026-11-30', '00:05 on 1 December: yesterday is 30 November');
  t.equal(previousLocalMonth(d('2026-12-31T16:20:00Z')), '2026-12', '00:20 on 1 January: last month is December');
  t.equal(previousLocalMonth(d('2026-11-30T16:20:00Z')), '2026-11');
  t.equal(esc(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

t.test('the jobs and their schedules', async (t) => {
  const registered: string[] = [];
  const schedules: Array<{ name: string; cron: string; tz: string; data: (at: Date) => unknown }> = [];
  const fake = {
    register: (name: string) => void registered.push(name),
    schedule: (name: string, expr: string, tz = 'Asia/Shanghai', data?: (at: Date) => unknown) => void schedules.push({ name, cron: expr, tz, data: data! }),
  };
  registerKpiJobs(fake as never, { db: {} as Db, log: pino({ level: 'silent' }) });
  t.same(registered, ['kpi-rollup-15m', 'kpi-rollup-day', 'kpi-rollup-month', 'kpi-rollup-range', 'report-generate']);
  t.same(schedules.map((s) => [s.name, s.cron, s.tz]), [
    ['kpi-rollup-15m', '*/15 * * * *', 'Asia/Shanghai'],
    ['kpi-rollup-day', '5 0 * * *', 'Asia/Shanghai'],
    ['kpi-rollup-month', '20 0 1 * *', 'Asia/Shanghai'],
  ]);
  for (const s of schedules) t.ok(cron.validate(s.cron), `${s.cron} is a valid cron expression`);
  t.same(schedules[0]!.data(d('2026-11-29T09:15:00.004Z')), { at: '2026-11-29T09:15:00.000Z' });
  t.same(schedules[1]!.data(d('2026-11-30T16:05:00Z')), { day: '2026-11-30' }, '00:05 on 1 December rolls 30 November');
  t.same(schedules[2]!.data(d('2026-11-30T16:20:00Z')), { month: '2026-11' }, '00:20 on 1 December rolls November');
  const none: string[] = [];
  registerKpiJobs({ register: () => undefined, schedule: (n: string) => void none.push(n) } as never, { db: {} as Db, log: pino({ level: 'silent' }), schedule: false });
  t.same(none, [], 'schedule: false registers no cron');
});
