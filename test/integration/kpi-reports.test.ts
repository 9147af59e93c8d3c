/**
 * Reports (issue 7 item 5): a month of generated data rolled up by the real jobs, then a monthly report built by
 * the real `report-generate` job: its HTML shows each KPI with the value GET /api/v1/kpi gives for that month
 * (exactly, in data-value; rounded in the text), red where it misses its target, has inline SVG charts and no
 * external reference; its CSV carries the same numbers. Quarterly and annual reports generate too.
 */
import { writeFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { fireId, JobScheduler } from '../../src/jobs/scheduler.js';
import { registerKpiJobs } from '../../src/kpi/kpi.jobs.js';
import { buildTestApp, testInfra } from '../helpers/app.js';
import { artefact, launchBrowser, newPage } from '../helpers/browser.js';
import { AGENTS, generate, insertData, merge, mulberry32 } from '../helpers/kpi-data.js';

const infra = await testInfra(t, 'kpireports');
const { db } = infra;
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const jobs = new JobScheduler({ redisUrl, prefix: infra.keys.jobs(), log: infra.log });
registerKpiJobs(jobs, { db, log: infra.log, fcrRepeatDays: 3, reconcileHours: 3, schedule: false });
await jobs.start();
t.teardown(() => jobs.close(5000));
const { api, tokens } = await buildTestApp(t, infra, { jobs });

const DAY = 86_400_000;
const NOV = Date.parse('2026-10-31T16:00:00Z'); // 2026-11-01 00:00 Asia/Shanghai
const OCT = Date.parse('2026-09-30T16:00:00Z');
const rand = mulberry32(202611);
await insertData(
  db,
  merge(
    generate(rand, { start: NOV, span: 30 * DAY, n: 7500, pool: 3000, tag: 'nov', edgeCases: true }),
    generate(rand, { start: OCT, span: 31 * DAY, n: 1500, pool: 3000, tag: 'oct' }),
  ),
);
await db
  .insertInto('agents')
  .values(AGENTS.slice(0, 5).map((id, i) => ({ employee_no: id, name: `话务员${i + 1} <Agent ${id}>`, skills: '[]', phone_kind: 'uri' as const, phone_uri: `sip:${id}@127.0.0.1:5090`, sip_password: null, endpoint: `agent${id}`, wrap_up_seconds: null, desk_extension: null })))
  .execute();

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

for (const [month, fire] of [['2026-10', '2026-10-31T16:20:00Z'], ['2026-11', '2026-11-30T16:20:00Z']] as const) {
  const id = await jobs.enqueue('kpi-rollup-month', { month }, { jobId: fireId('kpi-rollup-month', new Date(fire)) });
  await waitFor(`rollup ${month}`, async () => (await db.selectFrom('kpi_rollup_runs').select('id').where('job_id', '=', id).executeTakeFirst()) ?? undefined);
}

async function generated(t: Test, kind: string, period: string): Promise<string> {
  const r = await api('POST', '/api/v1/reports', tokens.supervisor, { kind, period });
  t.equal(r.status, 202, `${kind} ${period} requested`);
  t.same(r.body.status, 'queued');
  return waitFor(`report ${kind} ${period}`, async () => {
    const g = await api('GET', `/api/v1/reports/${r.body.id}`, tokens.auditor);
    if (g.body.status === 'failed') throw new Error(`report failed: ${g.body.error}`);
    return g.body.status === 'done' ? (r.body.id as string) : undefined;
  });
}

const FIGURES = ['answerRate', 'avgWaitSeconds', 'fcr', 'fcrCalls', 'callbackRate24h', 'satisfaction', 'dispatchAccuracy', 'serviceLevel', 'p90WaitSeconds', 'avgTalkSeconds', 'avgWrapUpSeconds'];
const TARGETED = ['answerRate', 'avgWaitSeconds', 'fcr', 'fcrCalls', 'callbackRate24h', 'satisfaction', 'dispatchAccuracy'];
const COUNTS = ['offered', 'answered', 'ivrCompleted', 'abandoned', 'shortAbandoned', 'voicemails', 'callbackRequested', 'transfers', 'ratings', 'ticketsOpened', 'ticketsDispatched', 'ticketsReturned', 'ticketsClosed', 'ticketsCalledBack24h', 'ticketsCallbackSkipped'];

/** the figure cells of one scope: kpi -> {value, text, class} */
function cells(html: string, scope: string): Map<string, { value: string; text: string; cls: string }> {
  const out = new Map<string, { value: string; text: string; cls: string }>();
  const re = /<td class="([^"]*)" data-scope="([^"]*)" data-kpi="(\w+)" data-value="([^"]*)">([^<]*)<\/td>/g;
  for (const m of html.matchAll(re)) if (m[2] === scope) out.set(m[3]!, { cls: m[1]!, value: m[4]!, text: m[5]! });
  return out;
}

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') row.push(field), (field = '');
    else if (ch === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      (row = []), (field = ''), i++;
    } else field += ch;
  }
  return rows;
}

/** the little of the DOM the page test reads in the browser (the test build has no DOM lib) */
interface Box {
  width: number;
  height: number;
}
interface El {
  getAttribute(name: string): string | null;
  className: string;
  innerText: string;
  getBoundingClientRect(): Box;
  getBBox(): Box;
  querySelectorAll(selector: string): ArrayLike<El>;
}
interface PageGlobals {
  getComputedStyle(e: El): { color: string };
}

const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
const sec = (v: number) => `${v.toFixed(1)} s`;

t.test('a monthly report shows exactly the KPI endpoint figures for its month, red where they miss', async (t) => {
  const id = await generated(t, 'monthly', '2026-11');
  const kpi = await api('GET', '/api/v1/kpi?from=2026-11-01&to=2026-12-01&granularity=month', tokens.supervisor);
  t.equal(kpi.status, 200);
  const month = kpi.body.items[0];
  t.equal(month.label, '2026-11');
  t.ok(month.offered > 7000, `${month.offered} calls`);

  const file = await api('GET', `/api/v1/reports/${id}/file?format=html`, tokens.supervisor);
  t.equal(file.status, 200);
  t.match(String(file.headers['content-type']), /^text\/html; charset=utf-8/);
  t.match(String(file.headers['content-security-policy']), /default-src 'none'/);
  const html = file.raw.toString('utf8');
  writeFileSync(`${process.env.TMPDIR ?? '/tmp'}/hotline-report-2026-11.html`, html);
  t.ok(html.startsWith('<!doctype html>'), 'an HTML document');
  t.ok(html.includes('<svg'), 'inline SVG charts');
  t.equal((html.match(/<svg/g) ?? []).length, 4, 'calls per day, answer rate / service level, satisfaction, staffing');
  t.notOk(/https?:\/\//i.test(html), 'no http:// or https:// anywhere');
  t.notOk(/\b(src|href|xlink:href)\s*=|url\(|@import|<script|<link|<iframe/i.test(html), 'nothing loaded from outside, no script');
  for (const h of ['合同指标', '每日来电量', '接通率与服务水平', '满意度', '分热线', '分技能队列', '话务员', '排班预测']) t.ok(html.includes(h), `section ${h}`);
  t.ok(html.includes('&lt;Agent 8001&gt;') && !html.includes('<Agent 8001>'), 'names are escaped');

  const total = cells(html, 'total');
  for (const k of FIGURES) {
    const c = total.get(k);
    t.ok(c, `${k} in the summary`);
    if (!c) continue;
    const v = month[k];
    t.equal(c.value === '' ? null : Number(c.value), v, `${k}: ${c.text} is the endpoint's ${v}`);
    if (v !== null) t.equal(c.text, k.endsWith('Seconds') ? sec(v) : pct(v), `${k} shown rounded`);
  }
  for (const k of TARGETED) {
    const cls = total.get(k)!.cls;
    t.equal(cls.includes('miss'), month.targetsMet[k] === false, `${k}: red exactly when it misses (${month.targetsMet[k]})`);
    t.equal(cls.includes('met'), month.targetsMet[k] === true, `${k}: green when met`);
  }
  t.ok(TARGETED.some((k) => month.targetsMet[k] === false) && TARGETED.some((k) => month.targetsMet[k] === true), 'the data has misses and hits');
  for (const k of COUNTS) t.equal(Number(total.get(k)?.value), month[k], `${k} = ${month[k]}`);

  // per line and per queue: the endpoint's month row of that line / queue
  for (const [dim, key] of [['line', '12345'], ['line', '95198'], ['queue', 'general'], ['queue', '12333'], ['agent', AGENTS[0]!]] as const) {
    const r = (await api('GET', `/api/v1/kpi?from=2026-11-01&to=2026-12-01&granularity=month&${dim}=${key}`, tokens.supervisor)).body.items[0];
    const c = cells(html, `${dim}:${key}`);
    if (dim === 'agent' && c.size === 0) continue; // not among the top 20
    for (const k of ['offered', 'answered', 'answerRate', 'avgWaitSeconds', 'satisfaction', 'fcr', 'dispatchAccuracy', 'callbackRate24h']) {
      t.equal(c.get(k)?.value === '' ? null : Number(c.get(k)?.value), r[k], `${dim} ${key} ${k}`);
    }
  }
  // per day: the endpoint's day rows
  const days = (await api('GET', '/api/v1/kpi?from=2026-11-01&to=2026-12-01&granularity=day', tokens.supervisor)).body.items;
  t.equal(days.length, 30);
  for (const d of days.filter((_: unknown, i: number) => i % 7 === 0)) {
    const c = cells(html, `day:${d.label}`);
    for (const k of ['offered', 'answerRate', 'serviceLevel', 'satisfaction']) t.equal(c.get(k)?.value === '' ? null : Number(c.get(k)?.value), d[k], `${d.label} ${k}`);
  }

  const csvFile = await api('GET', `/api/v1/reports/${id}/file?format=csv`, tokens.auditor);
  t.equal(csvFile.status, 200);
  t.match(String(csvFile.headers['content-type']), /^text\/csv; charset=utf-8/);
  t.match(String(csvFile.headers['content-disposition']), /^attachment; filename="hotline-monthly-report-2026-11\.csv"/);
  const raw = csvFile.raw.toString('utf8');
  t.ok(raw.startsWith('\uFEFF'), 'UTF-8 BOM');
  const rows = parseCsv(raw.slice(1));
  const head = rows[0]!;
  const col = (name: string) => head.indexOf(name);
  const csvTotal = rows.find((r) => r[0] === 'total')!;
  for (const k of [...FIGURES, ...COUNTS]) {
    const cell = csvTotal[col(k)]!;
    t.equal(cell === '' ? null : Number(cell), month[k], `CSV total ${k}`);
  }
  t.equal(csvTotal[col('answerRateMet')], String(month.targetsMet.answerRate));
  t.equal(rows.filter((r) => r[0] === 'day').length, 30, '30 day rows');
  t.equal(rows.filter((r) => r[0] === 'staffing').length, 48, '48 half-hours of staffing');
  const csvLine = rows.find((r) => r[0] === 'line' && r[1] === '12345')!;
  const line = (await api('GET', '/api/v1/kpi?from=2026-11-01&to=2026-12-01&granularity=month&line=12345', tokens.supervisor)).body.items[0];
  t.equal(Number(csvLine[col('answerRate')]), line.answerRate, 'CSV per line');
  t.ok(rows.every((r) => r.length === head.length), 'every row has every column');
  t.ok(rows.some((r) => r[0] === 'agent' && r[2] === '话务员1 <Agent 8001>'), 'agent names in the CSV (quoted as needed)');

  // staffing for the first Wednesday after the month (2026-12-02), from the month's Wednesdays
  const st = (await api('GET', '/api/v1/staffing?date=2026-12-02', tokens.supervisor)).body;
  const csvStaff = rows.filter((r) => r[0] === 'staffing');
  t.same(
    csvStaff.map((r) => Number(r[col('agentsNeeded')])),
    st.items.map((i: { agentsNeeded: number }) => i.agentsNeeded),
    'the staffing section is the staffing forecast for 2026-12-02',
  );
  t.ok(st.weeksOfHistory === 4, 'four Wednesdays of November');
});

t.test('the monthly report in headless Chromium: the DOM figures are the KPI endpoint month row, charts drawn, no console errors', async (t) => {
  const started = Date.now();
  const id = await generated(t, 'monthly', '2026-11');
  const kpi = await api('GET', '/api/v1/kpi?from=2026-11-01&to=2026-12-01&granularity=month', tokens.supervisor);
  const month = kpi.body.items[0];
  t.equal(month.label, '2026-11');
  const days = (await api('GET', '/api/v1/kpi?from=2026-11-01&to=2026-12-01&granularity=day', tokens.supervisor)).body.items;
  const file = await api('GET', `/api/v1/reports/${id}/file?format=html`, tokens.supervisor);
  t.equal(file.status, 200);

  // served to the browser as the service serves it (its Content-Security-Policy included), at an address that is
  // routed here and never resolved; any other request the page makes is refused and counted
  const browser = await launchBrowser(t);
  const { page, errors } = await newPage(browser, { width: 1280, height: 900 });
  const url = `http://reports.hotline.test/api/v1/reports/${id}/file?format=html`;
  const headers: Record<string, string> = {};
  for (const h of ['content-type', 'content-security-policy', 'content-disposition', 'x-content-type-options']) if (typeof file.headers[h] === 'string') headers[h] = file.headers[h] as string;
  t.match(headers['content-security-policy'], /default-src 'none'/, 'the CSP goes along');
  const others: string[] = [];
  await page.route('**/*', (route) => {
    if (route.request().url() === url) return route.fulfill({ status: 200, headers, body: file.raw });
    others.push(route.request().url());
    return route.abort();
  });
  const res = await page.goto(url, { waitUntil: 'load' });
  t.equal(res?.status(), 200);
  t.equal(await page.title(), '海南12345热线月报 2026年11月');

  // every figure of the summary, exact (data-value) and as shown (the rendered text)
  const figures = await page.$$eval('[data-scope="total"][data-kpi]', (els) =>
    (els as unknown as El[]).map((e) => ({ kpi: e.getAttribute('data-kpi')!, value: e.getAttribute('data-value')!, text: e.innerText.trim(), cls: e.className, color: (globalThis as unknown as PageGlobals).getComputedStyle(e).color })),
  );
  const keys = figures.map((f) => f.kpi);
  t.equal(new Set(keys).size, keys.length, 'each figure once in the summary');
  t.same([...keys].sort(), [...FIGURES, ...COUNTS, 'otherUnanswered'].sort(), 'every KPI and count of the month row is on the page');
  for (const f of figures) {
    const v = month[f.kpi];
    t.not(v, undefined, `${f.kpi} is a field of the month row`);
    t.equal(f.value === '' ? null : Number(f.value), v, `${f.kpi}: data-value ${f.value} is the endpoint's ${v}`);
    const shown = v === null ? '—' : FIGURES.includes(f.kpi) ? (f.kpi.endsWith('Seconds') ? sec(v) : pct(v)) : String(v);
    t.equal(f.text, shown, `${f.kpi} shown as ${shown}`);
    if (TARGETED.includes(f.kpi) && month.targetsMet[f.kpi] !== null) {
      // the inline stylesheet applies under the report's CSP: a miss is red, a hit green
      t.equal(f.color, month.targetsMet[f.kpi] ? 'rgb(27, 125, 50)' : 'rgb(198, 40, 40)', `${f.kpi}: ${month.targetsMet[f.kpi] ? 'green' : 'red'} on the page`);
    }
  }
  t.ok(figures.some((f) => f.cls.includes('miss')) && figures.some((f) => f.cls.includes('met')), 'misses and hits on the page');

  // the by-day table: every day's figures are the endpoint's day row
  const dayCells = await page.$$eval('[data-scope^="day:"][data-kpi]', (els) => (els as unknown as El[]).map((e) => ({ scope: e.getAttribute('data-scope')!, kpi: e.getAttribute('data-kpi')!, value: e.getAttribute('data-value')! })));
  t.equal(new Set(dayCells.map((c) => c.scope)).size, 30, '30 days on the page');
  const dayRows = new Map<string, Record<string, number | null>>(days.map((d: { label: string }) => [`day:${d.label}`, d]));
  let dayMismatches = 0;
  for (const c of dayCells) {
    const want = dayRows.get(c.scope)?.[c.kpi];
    if (want === undefined || (c.value === '' ? null : Number(c.value)) !== want) dayMismatches++;
  }
  t.equal(dayMismatches, 0, `all ${dayCells.length} day figures are the endpoint's`);

  // the charts: four inline SVGs laid out with a size, with drawn content
  const charts = await page.$$eval('svg', (svgs) =>
    (svgs as unknown as El[]).map((s) => {
      const box = s.getBoundingClientRect();
      const marks = Array.from(s.querySelectorAll('rect, polyline, circle')).map((m) => m.getBBox());
      return { width: box.width, height: box.height, marks: marks.length, drawn: marks.filter((b) => b.width > 0 || b.height > 0).length };
    }),
  );
  t.equal(charts.length, 4, 'four charts');
  charts.forEach((c, i) => {
    t.ok(c.width > 300 && c.height > 50, `chart ${i + 1}: ${c.width.toFixed(0)} x ${c.height.toFixed(0)} px`);
    t.ok(c.drawn > 0, `chart ${i + 1}: ${c.drawn} of ${c.marks} marks drawn with a size`);
  });
  const bars = await page.$$eval('svg', (svgs) => Array.from((svgs as unknown as El[])[0]!.querySelectorAll('g > rect.bar')).filter((r) => r.getBBox().height > 0).length);
  t.equal(bars, 30, 'the calls-per-day chart has a visible bar for each day');

  await page.screenshot({ path: artefact('kpi-report-2026-11.png') });
  t.same(errors, [], 'no console errors');
  t.same(others, [], 'the page requested nothing else');
  t.ok(Date.now() - started < 20_000, `done in ${Date.now() - started} ms`);
});

t.test('quarterly, half-yearly and annual reports generate', async (t) => {
  for (const [kind, period, months] of [['quarterly', '2026-Q4', 3], ['half-yearly', '2026-H2', 6], ['annual', '2026', 12]] as const) {
    const id = await generated(t, kind, period);
    const html = (await api('GET', `/api/v1/reports/${id}/file`, tokens.admin)).raw.toString('utf8');
    t.ok(html.includes('<svg') && !/https?:\/\//.test(html), `${kind}: svg, no URL`);
    t.notOk(html.includes('排班预测'), `${kind}: no staffing section`);
    const csv = parseCsv((await api('GET', `/api/v1/reports/${id}/file?format=csv`, tokens.admin)).raw.toString('utf8').slice(1));
    t.equal(csv.filter((r) => r[0] === 'month').length, months, `${kind}: ${months} month rows`);
    const head = csv[0]!;
    const total = csv.find((r) => r[0] === 'total')!;
    const sum = csv.filter((r) => r[0] === 'month').reduce((s, r) => s + Number(r[head.indexOf('offered')]), 0);
    t.equal(Number(total[head.indexOf('offered')]), sum, `${kind}: the total is the sum of its months`);
    const kpi = (await api('GET', `/api/v1/kpi?from=2026-10-01&to=2026-12-01&granularity=month`, tokens.admin)).body.items;
    t.equal(sum, kpi[0].offered + kpi[1].offered, `${kind}: October and November are all there is`);
  }
});

t.test('the reports API: list, errors, roles', async (t) => {
  const list = await api('GET', '/api/v1/reports?limit=2', tokens.auditor);
  t.equal(list.status, 200);
  t.equal(list.body.items.length, 2);
  t.type(list.body.nextCursor, 'string');
  const next = await api('GET', `/api/v1/reports?limit=2&cursor=${list.body.nextCursor}`, tokens.auditor);
  t.equal(next.body.items.length, 2);
  t.notOk(next.body.items.some((i: { id: string }) => list.body.items.some((j: { id: string }) => j.id === i.id)), 'the next page has other reports');
  t.ok(list.body.items.every((i: { status: string; files: unknown }) => i.status === 'done' && i.files !== null));
  t.equal((await api('GET', '/api/v1/reports?kind=annual', tokens.auditor)).body.items.length, 1);

  t.equal((await api('GET', '/api/v1/reports/00000000-0000-4000-8000-000000000000', tokens.supervisor)).status, 404);
  t.equal((await api('GET', '/api/v1/reports/00000000-0000-4000-8000-000000000000/file', tokens.supervisor)).body.error.code, 'no-such-report');
  t.equal((await api('GET', '/api/v1/reports/nope/file', tokens.supervisor)).status, 404);
  // a report not done yet: 409
  const queued = await db.insertInto('kpi_reports').values({ kind: 'monthly', period: '2026-10', created_by: 'test' }).returning('id').executeTakeFirstOrThrow();
  const notReady = await api('GET', `/api/v1/reports/${queued.id}/file?format=csv`, tokens.supervisor);
  t.equal(notReady.status, 409);
  t.equal(notReady.body.error.code, 'report-not-ready');

  for (const body of [{ kind: 'monthly', period: '2026-13' }, { kind: 'monthly', period: '2026-Q4' }, { kind: 'quarterly', period: '2026-Q5' }, { kind: 'annual', period: '1999' }, { kind: 'weekly', period: '2026-W01' }, { kind: 'monthly', period: '2026-11', extra: 1 }]) {
    const r = await api('POST', '/api/v1/reports', tokens.admin, body);
    t.equal(r.status, 400, JSON.stringify(body));
  }
  t.equal((await api('POST', '/api/v1/reports', tokens.auditor, { kind: 'monthly', period: '2026-11' })).status, 403, 'auditors read reports, they do not order them');
  t.equal((await api('GET', '/api/v1/reports', tokens.agent)).status, 403);
  const doc = await api('GET', '/docs/json', null);
  t.same(doc.body.paths['/api/v1/reports/'].post.tags, ['reports']);
});

t.test('the OpenAPI document describes the files by content type', async (t) => {
  const doc = await api('GET', '/docs/json', null);
  const ok = doc.body.paths['/api/v1/reports/{id}/file'].get.responses['200'];
  t.same(Object.keys(ok.content).sort(), ['text/csv', 'text/html']);
});
