/**
 * KPI truth test (issue 7, acceptance): a generated day of several thousand calls with known answers, rolled up by
 * the REAL jobs (JobScheduler with BullMQ workers on the real Redis, PostgreSQL), read back through
 * GET /api/v1/kpi and compared EXACTLY (counts equal, ratios to 1e-9) with figures computed here in plain JS
 * from the generated records. Running the rollup again changes nothing; a late call and late events are
 * reconciled by the next scheduled 15-minute run.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import t, { type Test } from 'tap';
import { fireId, JobScheduler } from '../../src/jobs/scheduler.js';
import { registerKpiJobs } from '../../src/kpi/kpi.jobs.js';
import { buildTestApp, testInfra } from '../helpers/app.js';
import { AGENTS, bin15, binDay, diffRow, expected, expectedRow, generate, insertData, LINES, merge, mulberry32, type Expected, type Grain, type KpiData } from '../helpers/kpi-data.js';

const started = Date.now();
const infra = await testInfra(t, 'kpitruth');
const { db } = infra;
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const FCR_DAYS = 3;

const jobs = new JobScheduler({ redisUrl, prefix: infra.keys.jobs(), log: infra.log });
registerKpiJobs(jobs, { db, log: infra.log, fcrRepeatDays: FCR_DAYS, reconcileHours: 3, schedule: false });
await jobs.start();
t.teardown(() => jobs.close(5000));
const { api, tokens } = await buildTestApp(t, infra, { jobs });

// the day: Wednesday 2026-11-18 on the hotline clock (00:00 Asia/Shanghai = 16:00Z the day before)
const DAY = '2026-11-18';
const D0 = Date.parse('2026-11-17T16:00:00Z');
const HOUR = 3_600_000;
const DAYMS = 24 * HOUR;

const rand = mulberry32(20261118);
const data: KpiData = merge(
  generate(rand, { start: D0, span: DAYMS, n: 4200, pool: 1500, tag: 'd', edgeCases: true }),
  // the days around it: repeats of the day's consultations (FCR) on either side, some beyond the 3-day window
  generate(rand, { start: D0 - 4 * DAYMS, span: 4 * DAYMS, n: 500, pool: 1500, tag: 'b' }),
  generate(rand, { start: D0 + DAYMS, span: 5 * DAYMS, n: 500, pool: 1500, tag: 'a' }),
);
await insertData(db, data);
t.comment(`generated ${data.calls.length} calls, ${data.events.length} call events, ${data.surveys.length} agent scores, ${data.states.length} agent states, ${data.tickets.length} tickets, ${data.callbacks.length} callbacks in ${Date.now() - started} ms`);

/** enqueue a job the way a scheduled fire does and wait for its rollup run to be recorded */
async function run(name: 'kpi-rollup-15m' | 'kpi-rollup-day' | 'kpi-rollup-month' | 'kpi-rollup-range', payload: Record<string, string>, firedAt: Date | null): Promise<void> {
  const id = await jobs.enqueue(name as 'kpi-rollup-15m', payload as { at: string }, firedAt ? { jobId: fireId(name, firedAt) } : {});
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    const r = await db.selectFrom('kpi_rollup_runs').select('id').where('job_id', '=', id).executeTakeFirst();
    if (r) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`job ${name} ${id} did not finish in 30 s`);
}

async function snapshot(): Promise<string> {
  const rows = await sql<Record<string, unknown>>`select * from kpi_rollups order by grain, dim, key, period_start`.execute(db);
  return JSON.stringify(rows.rows.map((r) => ({ ...r, wait_ms: [...(r.wait_ms as number[])].sort((a, b) => a - b) })));
}

const iso = (ms: number) => new Date(ms).toISOString();

/** GET /api/v1/kpi for [from, to) and compare every bucket with the expectation */
async function compare(t: Test, exp: Expected, g: Grain, dim: string, key: string | null, from: number, to: number): Promise<number> {
  const q = `from=${encodeURIComponent(iso(from))}&to=${encodeURIComponent(iso(to))}&granularity=${g}${key !== null ? `&${dim}=${encodeURIComponent(key)}` : ''}`;
  const r = await api('GET', `/api/v1/kpi?${q}`, tokens.supervisor);
  if (r.status !== 200) {
    t.fail(`GET /api/v1/kpi?${q}: ${r.status} ${JSON.stringify(r.body)}`);
    return 0;
  }
  const m = exp[g].get(`${key === null ? 'all' : dim}|${key ?? ''}`) ?? new Map();
  const diffs: string[] = [];
  for (const row of r.body.items as Array<Record<string, any>>) diffs.push(...diffRow(row, expectedRow(m.get(Date.parse(row.start))), `${g} ${dim}${key ? `=${key}` : ''} ${row.label}`));
  // nothing expected outside the rows returned
  const starts = new Set((r.body.items as Array<{ start: string }>).map((i) => Date.parse(i.start)));
  for (const [b, a] of m) if (b >= from && b < to && !starts.has(b) && a.offered + a.ratings + a.wraps.length + a.tOpened + a.tDispatched + a.tClosed > 0) diffs.push(`${g} ${dim} ${iso(b)}: no row`);
  t.same(diffs.slice(0, 20), [], `${g} ${dim}${key ? `=${key}` : ''}: ${r.body.items.length} rows equal${diffs.length > 20 ? ` (${diffs.length} differences)` : ''}`);
  return r.body.items.length;
}

const lineKeys = [...new Set(LINES.map((l) => l.line ?? l.dialed))];
const queueKeys = [...new Set(LINES.flatMap((l) => l.queues))];

/** the whole day at every granularity and dimension, and the month */
async function compareDay(t: Test, exp: Expected, withMonth: boolean): Promise<void> {
  await compare(t, exp, '15m', 'all', null, D0, D0 + DAYMS);
  await compare(t, exp, 'hour', 'all', null, D0, D0 + DAYMS);
  await compare(t, exp, 'day', 'all', null, D0, D0 + DAYMS);
  for (const l of lineKeys) {
    await compare(t, exp, 'hour', 'line', l, D0, D0 + DAYMS);
    await compare(t, exp, 'day', 'line', l, D0, D0 + DAYMS);
  }
  await compare(t, exp, '15m', 'line', '12345', D0, D0 + DAYMS);
  for (const q of queueKeys) await compare(t, exp, 'day', 'queue', q, D0, D0 + DAYMS);
  await compare(t, exp, '15m', 'queue', 'general', D0, D0 + DAYMS);
  for (const a of AGENTS) await compare(t, exp, 'day', 'agent', a, D0, D0 + DAYMS);
  await compare(t, exp, 'hour', 'agent', AGENTS[3]!, D0, D0 + DAYMS);
  if (withMonth) {
    const nov = Date.parse('2026-10-31T16:00:00Z');
    const dec = Date.parse('2026-11-30T16:00:00Z');
    await compare(t, exp, 'day', 'all', null, nov, dec);
    await compare(t, exp, 'month', 'all', null, nov, dec);
    for (const l of lineKeys) await compare(t, exp, 'month', 'line', l, nov, dec);
    for (const q of queueKeys) await compare(t, exp, 'month', 'queue', q, nov, dec);
    for (const a of AGENTS) await compare(t, exp, 'month', 'agent', a, nov, dec);
  }
}

t.test('the expectation itself covers every case', async (t) => {
  const e = expectedRow(expected(data, FCR_DAYS).day.get('all|')!.get(D0));
  const c = e.counts;
  t.ok(c.offered > 3500, `${c.offered} calls offered on the day`);
  for (const k of ['answered', 'ivrCompleted', 'abandoned', 'shortAbandoned', 'voicemails', 'callbackRequested', 'otherUnanswered', 'transfers', 'ratings', 'fcrFirstCalls', 'ticketsOpened', 'ticketsDispatched', 'ticketsReturned', 'ticketsClosed', 'ticketsCalledBack24h', 'ticketsCallbackSkipped', 'wrapCount'] as const) {
    t.ok(c[k] > 0, `${k}: ${c[k]}`);
  }
  t.ok(c.satisfied < c.ratings && c.fcrResolvedCalls < c.fcrFirstCalls && c.ticketsCalledBack24h < c.ticketsClosed, 'misses as well as hits');
  t.equal(c.offered, c.answered + c.ivrCompleted + c.abandoned + c.shortAbandoned + c.voicemails + c.callbackRequested + c.otherUnanswered, 'the outcomes partition the offered calls');
});

t.test('given a generated day, when the nightly rollup job runs, then every figure is exactly the expected one', async (t) => {
  const t0 = Date.now();
  await run('kpi-rollup-day', { day: DAY }, new Date(D0 + DAYMS + 5 * 60_000));
  t.comment(`kpi-rollup-day: ${Date.now() - t0} ms`);
  await compareDay(t, expected(data, FCR_DAYS), false);
});

t.test('when the monthly job rolls the whole month, then the month and the days around agree too', async (t) => {
  const t0 = Date.now();
  await run('kpi-rollup-month', { month: '2026-11' }, new Date(Date.parse('2026-11-30T16:20:00Z')));
  t.comment(`kpi-rollup-month: ${Date.now() - t0} ms`);
  await compareDay(t, expected(data, FCR_DAYS), true);
});

t.test('running the rollups again changes nothing', async (t) => {
  const before = await snapshot();
  await run('kpi-rollup-day', { day: DAY }, new Date(D0 + DAYMS + 5 * 60_000 + 1)); // another fire: not deduplicated
  t.equal(await snapshot(), before, 'the nightly job again: the same rows');
  await run('kpi-rollup-15m', { at: iso(D0 + DAYMS + 15 * 60_000) }, new Date(D0 + DAYMS + 15 * 60_000));
  t.equal(await snapshot(), before, 'the 15-minute job over the same data: the same rows');
  await run('kpi-rollup-range', { from: iso(D0 - 2 * DAYMS), to: iso(D0 + 2 * DAYMS) }, null);
  t.equal(await snapshot(), before, 'a re-roll of four days: the same rows');
  const n = await db.selectFrom('kpi_rollups').select((eb) => eb.fn.countAll<number>().as('n')).where('grain', '=', '15m').where('period_start', '>=', new Date(D0)).where('period_start', '<', new Date(D0 + DAYMS)).where('dim', '=', 'all').executeTakeFirstOrThrow();
  t.equal(Number(n.n), 96, '96 intervals of the day');
});

t.test('a call that ends after its interval was rolled is reconciled by the next 15-minute run', async (t) => {
  // a caller who had a consultation on the day calls again at 23:50 and is still talking at the 00:15 run;
  // the call ends at 00:20 and the 00:30 run picks it up (and the earlier consultation is no longer resolved first time)
  const consultation = (c: (typeof data.calls)[number]) => c.direction === 'inbound' && c.answered !== null;
  const lineOf = (c: (typeof data.calls)[number]) => c.line ?? c.dialed;
  // a first call resolved so far: no other consultation of that number on that line for days around it
  const prior = data.calls.find(
    (c) =>
      consultation(c) && c.disposition === 'answered' && c.caller.startsWith('13') && c.arrived > D0 + 18 * HOUR && c.arrived < D0 + 20 * HOUR &&
      !data.calls.some((o) => o !== c && consultation(o) && o.caller === c.caller && lineOf(o) === lineOf(c) && Math.abs(o.arrived - c.arrived) <= 4 * DAYMS),
  )!;
  const resolvedBefore = expectedRow(expected(data, FCR_DAYS)['15m'].get('all|')!.get(bin15(prior.arrived))).counts.fcrResolvedCalls;
  const arrived = D0 + DAYMS - 10 * 60_000;
  const late = {
    id: randomUUID(), direction: 'inbound' as const, caller: prior.caller, dialed: prior.dialed, line: prior.line, queue: prior.queue, agents: [AGENTS[5]!],
    arrived, ivrDone: arrived + 4000, queued: arrived + 4000, answered: arrived + 9000, ended: null as number | null, talkMs: null as number | null,
    disposition: null as string | null, surveySatisfied: null as boolean | null, surveyAt: null as number | null,
  };
  data.calls.push(late);
  await insertData(db, { calls: [late], events: [], surveys: [], states: [], tickets: [], callbacks: [] });
  const before = expectedRow(expected(data, FCR_DAYS)['15m'].get('all|')!.get(bin15(arrived)));
  await run('kpi-rollup-15m', { at: iso(D0 + DAYMS + 15 * 60_000) }, new Date(D0 + DAYMS + 15 * 60_000 + 1));
  await compare(t, expected(data, FCR_DAYS), '15m', 'all', null, D0 + DAYMS - HOUR, D0 + DAYMS);
  t.equal(before.counts.offered, expectedRow(expected(data, FCR_DAYS)['15m'].get('all|')!.get(bin15(arrived))).counts.offered, 'still running: not counted yet');

  // it ends at 00:20, rated satisfied
  late.ended = D0 + DAYMS + 20 * 60_000;
  late.talkMs = late.ended - late.answered;
  late.disposition = 'answered';
  late.surveySatisfied = true;
  late.surveyAt = late.ended + 15_000;
  await db.updateTable('calls').set({ ended_at: new Date(late.ended), talk_seconds: late.talkMs / 1000, disposition: 'answered', survey_satisfied: true, survey_score: 1, survey_scale: 3, survey_at: new Date(late.surveyAt) }).where('id', '=', late.id).execute();
  await db.insertInto('survey_results').values({ call_id: late.id, agent_id: AGENTS[5]!, line: null, score: 1, scale: 3, satisfied: true, at: new Date(late.surveyAt) }).execute();
  data.surveys.push({ callId: late.id, agentId: AGENTS[5]!, satisfied: true, at: late.surveyAt });

  const exp = expected(data, FCR_DAYS);
  const row = expectedRow(exp['15m'].get('all|')!.get(bin15(arrived)));
  t.equal(row.counts.offered, before.counts.offered + 1, 'the late call counts in its arrival interval');
  t.equal(expectedRow(exp['15m'].get('all|')!.get(bin15(prior.arrived))).counts.fcrResolvedCalls, resolvedBefore - 1, 'the earlier consultation (outside the trailing window) is no longer resolved first time');
  await run('kpi-rollup-15m', { at: iso(D0 + DAYMS + 30 * 60_000) }, new Date(D0 + DAYMS + 30 * 60_000));
  await compareDay(t, exp, true);
});

t.test('late events for old intervals (a survey, a ticket returned, a callback done) are reconciled by the next run', async (t) => {
  const dayBefore = expectedRow(expected(data, FCR_DAYS).day.get('all|')!.get(D0)).counts;
  // a morning call's survey comes in after midnight
  const morning = data.calls.find((c) => c.direction === 'inbound' && c.disposition === 'answered' && c.surveySatisfied === null && c.arrived > D0 + 9 * HOUR && c.arrived < D0 + 10 * HOUR)!;
  morning.surveySatisfied = false;
  morning.surveyAt = D0 + DAYMS + 40 * 60_000;
  await db.updateTable('calls').set({ survey_satisfied: false, survey_score: 3, survey_scale: 3, survey_at: new Date(morning.surveyAt) }).where('id', '=', morning.id).execute();
  for (const a of morning.agents) {
    await db.insertInto('survey_results').values({ call_id: morning.id, agent_id: a, line: null, score: 3, scale: 3, satisfied: false, at: new Date(morning.surveyAt) }).execute();
    data.surveys.push({ callId: morning.id, agentId: a, satisfied: false, at: morning.surveyAt });
  }
  // a ticket dispatched that morning is returned by the handling unit
  const tk = data.tickets.find((x) => x.dispatched !== null && x.returnedCount === 0 && x.dispatched > D0 + 8 * HOUR && x.dispatched < D0 + 12 * HOUR)!;
  tk.returned = D0 + DAYMS + 35 * 60_000;
  tk.returnedCount = 1;
  await db.updateTable('tickets').set({ returned_at: new Date(tk.returned), returned_count: 1, status: 'returned', updated_at: new Date() }).where('ticket_id', '=', tk.ticketId).execute();
  await db.insertInto('ticket_events').values({ event_id: `${tk.ticketId}-returned`, ticket_id: tk.ticketId, type: 'returned', at: new Date(tk.returned), payload: '{}' }).execute();
  // a pending callback of a ticket closed that day is done in time
  const pending = data.callbacks.find((cb) => cb.status === 'pending' && data.tickets.some((x) => x.ticketId === cb.ticketId && x.closed !== null && x.closed >= D0 && x.closed < D0 + DAYMS))!;
  const closed = data.tickets.find((x) => x.ticketId === pending.ticketId)!.closed!;
  pending.status = 'done';
  pending.doneAt = Math.min(closed + 23 * HOUR, D0 + DAYMS + 41 * 60_000);
  await db.updateTable('callbacks').set({ status: 'done', done_at: new Date(pending.doneAt) }).where('id', '=', pending.id).execute();

  const exp = expected(data, FCR_DAYS);
  await run('kpi-rollup-15m', { at: iso(D0 + DAYMS + 45 * 60_000) }, new Date(D0 + DAYMS + 45 * 60_000));
  const dayAfter = expectedRow(exp.day.get('all|')!.get(binDay(morning.arrived))).counts;
  t.same(
    [dayAfter.ratings, dayAfter.ticketsReturned, dayAfter.ticketsCalledBack24h],
    [dayBefore.ratings + 1, dayBefore.ticketsReturned + 1, dayBefore.ticketsCalledBack24h + 1],
    'one more rating, one more returned ticket, one more callback in time on the day',
  );
  await compareDay(t, exp, true);
});

t.test('bad KPI requests', async (t) => {
  const base = `from=${DAY}&to=2026-11-19`;
  t.equal((await api('GET', `/api/v1/kpi?${base}&granularity=hour`, tokens.auditor)).status, 200);
  t.equal((await api('GET', `/api/v1/kpi?${base}`, tokens.agent)).status, 403);
  t.equal((await api('GET', `/api/v1/kpi?${base}`, null)).status, 401);
  for (const q of [`${base}&granularity=week`, `${base}&line=12345&queue=general`, `from=2026-11-19&to=${DAY}`, `from=yesterday&to=${DAY}`, `from=2026-11-18T10:00:00&to=2026-11-19`, `${base}&colour=red`, `from=2026-01-01&to=2026-12-01&granularity=15m`]) {
    const r = await api('GET', `/api/v1/kpi?${q}`, tokens.supervisor);
    t.equal(r.status, 400, q);
    t.type(r.body?.error?.code, 'string', q);
  }
  t.equal((await api('POST', '/api/v1/kpi/rollup', tokens.supervisor, { from: DAY, to: '2026-11-19' })).status, 403, 're-roll is for admins');
  const ok = await api('POST', '/api/v1/kpi/rollup', tokens.admin, { from: '2026-11-18T10:07:00+08:00', to: '2026-11-19T01:00:00+08:00' });
  t.equal(ok.status, 202);
  t.same([ok.body.from, ok.body.to, ok.body.jobs.length], ['2026-11-18T02:00:00.000Z', '2026-11-18T17:00:00.000Z', 2], 'rounded out to whole intervals, one job per local day');
  const doc = await api('GET', '/docs/json', null);
  t.same(doc.body.paths['/api/v1/kpi/'].get.tags, ['kpi']);
  t.comment(`whole file: ${Date.now() - started} ms`);
});
