/**
 * The wallboard's API (issue 10): GET /api/v1/wallboard's numbers against call rows inserted today (formulas in
 * src/wallboard/wallboard.service.ts), the waiting callers from the real ACD engine in Redis with their numbers
 * masked, who may read it (a token of the right role, the wallboard key, nobody else) on the route and on the
 * events socket, and the static pages: content types, cache headers, 404s, and no way out of dist/web.
 * Real PostgreSQL and Redis (a schema and key prefix of this file's own); no Asterisk.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { WebSocket } from 'ws';
import { createQueuesConfig } from '../../src/acd/queues.config.js';
import { createQueueStats } from '../../src/acd/queues.stats.js';
import { createRedisEngine } from '../../src/acd/redis-engine.js';
import { insertCall } from '../../src/calls/calls.repo.js';
import type { NewCall } from '../../src/db/database.js';
import { createEventBus } from '../../src/events/bus.js';
import { localDayStart, wallTime } from '../../src/shared/zoned-time.js';
import { wallboardKeyMatches } from '../../src/wallboard/wallboard-auth.js';
import { maskPhone, WallboardService } from '../../src/wallboard/wallboard.service.js';
import { buildTestApp, testInfra } from '../helpers/app.js';
import { waitFor } from '../helpers/stack.js';

const KEY = 'wallboard-key-for-tests-0123456789';

const infra = await testInfra(t, 'wallboard');
const { db, redis, keys } = infra;
const logLines: string[] = [];
const log = pino({ level: 'info' }, new Writable({ write: (chunk, _e, done) => (logLines.push(String(chunk)), done()) }));

const engine = createRedisEngine({ redis, subscriber: await infra.subscriber(), keys, log: infra.log });
t.teardown(() => engine.close());
const events = await createEventBus({ redis, subscriber: await infra.subscriber(), keys, log: infra.log });
t.teardown(() => events.close());
const queues = createQueuesConfig(path.join(import.meta.dirname, '../../config/queues.yaml'), infra.log, { watch: false });
t.teardown(() => queues.close());
const queueStats = createQueueStats({ db, engine, queues, defaultHandleSeconds: 180 });
const wallboard = new WallboardService({ db, engine, queues, queueStats, redis, keys, thresholds: { amberSeconds: 30, redSeconds: 60 }, kpiCacheMs: 0, forecastCacheMs: 0 });

// the pages: a web folder of this test's own, with a file outside it and a symlink pointing there
const webRoot = mkdtempSync(path.join(tmpdir(), 'hotline-web-'));
const webDir = path.join(webRoot, 'web');
mkdirSync(path.join(webDir, 'assets'), { recursive: true });
writeFileSync(path.join(webDir, 'wallboard.html'), '<!doctype html><title>wallboard page</title>');
writeFileSync(path.join(webDir, 'console.html'), '<!doctype html><title>console page</title>');
writeFileSync(path.join(webDir, 'assets', 'wallboard-Ab12Cd.js'), 'console.log("wallboard")');
writeFileSync(path.join(webDir, 'assets', 'wallboard-Ef34Gh.css'), 'body{color:red}');
writeFileSync(path.join(webDir, 'assets', 'data.bin'), 'binary');
const SECRET = 'TOP-SECRET-OUTSIDE-THE-WEB-FOLDER';
writeFileSync(path.join(webRoot, 'secret.js'), SECRET);
writeFileSync(path.join(webRoot, 'secret.txt'), SECRET);
symlinkSync(path.join(webRoot, 'secret.js'), path.join(webDir, 'assets', 'escape.js'));

// the hub re-checks its sockets' tokens every 200 ms here (15 s in service)
const { app, api, tokens } = await buildTestApp(t, { ...infra, log }, { engine, queues, queueStats, events, wallboard: { service: wallboard, key: KEY }, webDir, eventsHub: { tokenCheckMs: 200 } });
await app.listen({ host: '127.0.0.1', port: 0 });
const port = (app.server.address() as AddressInfo).port;

// ---------------------------------------------------------------- today's calls

const now = new Date();
const w = wallTime(now);
const dayStart = localDayStart(w.year, w.month, w.day);
const at = (hh: number, mm: number, ss = 0) => new Date(dayStart.getTime() + ((hh * 60 + mm) * 60 + ss) * 1000);
const plus = (d: Date, s: number) => new Date(d.getTime() + s * 1000);

async function call(o: Partial<NewCall> & { arrived: Date; queuedAfter?: number; answeredAfter?: number; endedAfter?: number }): Promise<string> {
  const id = randomUUID();
  const { arrived, queuedAfter, answeredAfter, endedAfter, ...rest } = o;
  await insertCall(db, {
    id,
    direction: 'inbound',
    caller: '13900000000',
    dialed: '12345',
    line: '12345',
    queue: queuedAfter === undefined ? null : 'general',
    channel_id: `ch-${id}`,
    arrived_at: arrived,
    queued_at: queuedAfter === undefined ? null : plus(arrived, queuedAfter),
    answered_at: answeredAfter === undefined ? null : plus(arrived, answeredAfter),
    ended_at: endedAfter === undefined ? null : plus(arrived, endedAfter),
    ...rest,
  });
  return id;
}

// slot 36 (09:00-09:15): three answered calls; slot 37: an abandoned one; slot 38: one still waiting
await call({ arrived: at(9, 1), queuedAfter: 5, answeredAfter: 10, endedAfter: 100, disposition: 'answered', agents: ['7001'], survey_satisfied: true, survey_score: 1, survey_scale: 3 });
await call({ arrived: at(9, 2), queuedAfter: 5, answeredAfter: 30, endedAfter: 120, disposition: 'answered', agents: ['7001'], survey_satisfied: false, survey_score: 3, survey_scale: 3 });
await call({ arrived: at(9, 3), queuedAfter: 2, answeredAfter: 8, endedAfter: 60, disposition: 'answered', agents: ['7002'], survey_satisfied: true, survey_score: 5, survey_scale: 5 });
await call({ arrived: at(9, 20), queuedAfter: 5, endedAfter: 65, disposition: 'abandoned' });
await call({ arrived: at(9, 25), queuedAfter: 1, endedAfter: 3, disposition: 'abandoned' }); // a short abandon
await call({ arrived: at(9, 40), queuedAfter: 4 });
// not through a queue: self-service (answered), voicemail (not answered), a blacklisted caller (not offered)
await call({ arrived: at(10, 5), endedAfter: 40, ivr_done_at: at(10, 5, 12), disposition: 'ivr_completed' });
await call({ arrived: at(10, 6), endedAfter: 50, disposition: 'voicemail' });
await call({ arrived: at(10, 7), endedAfter: 3, disposition: 'restricted' });
// not today's inbound: an outbound call today, an answered call yesterday
await call({ arrived: at(11, 0), direction: 'outbound', answeredAfter: 5, endedAfter: 30, disposition: 'answered' });
await call({ arrived: plus(dayStart, -3600), queuedAfter: 1, answeredAfter: 2, endedAfter: 9, disposition: 'answered' });
// history for the forecast: six calls that reached a queue at 10:00-10:30 on this weekday a week ago
for (let i = 0; i < 6; i++) await call({ arrived: new Date(at(10, 2 + i * 4).getTime() - 7 * 86400_000), queuedAfter: 3, answeredAfter: 9, endedAfter: 90, disposition: 'answered' });

// the ACD now: two callers waiting in general (one a callback keeping its place), agents in two states
const general = queues.get('general')!;
const waitingCall = randomUUID();
await engine.enqueue({ callId: waitingCall, queue: 'general', priority: 0, enqueuedAt: Date.now() - 75_000, stages: general.stages });
await redis.hset(keys.call(waitingCall), { caller: '13812345678', state: 'queued' });
const callbackId = randomUUID();
await engine.enqueue({ callId: `callback-${callbackId}`, queue: 'general', priority: 0, enqueuedAt: Date.now() - 20_000, stages: general.stages });
await engine.upsertAgent('7001', { general: 5 }, 'PJSIP/agent7001');
await engine.upsertAgent('7002', { general: 5 }, 'PJSIP/agent7002');
await engine.transition('7002', 'not_ready', { reason: 'meeting' });

t.test('the snapshot: KPIs of today against the contract, per quarter-hour with the forecast, the waiting callers masked', async (t) => {
  const r = await api('GET', '/api/v1/wallboard', tokens.supervisor);
  t.equal(r.status, 200, JSON.stringify(r.body));
  const s = r.body;
  t.equal(r.headers['cache-control'], 'no-store');
  t.equal(s.day, `${w.year}-${String(w.month).padStart(2, '0')}-${String(w.day).padStart(2, '0')}`);
  t.same(s.targets, { answerRate: 0.95, avgWaitSeconds: 15, satisfaction: 0.98, serviceLevelSeconds: 15 });
  t.same(s.thresholds, { amberSeconds: 30, redSeconds: 60 });
  // src/kpi/definitions.ts: offered = the 3 answered, the abandoned, the short abandon, the self-service and the
  // voicemail (not the restricted, the live, the outbound, yesterday's)
  t.match(s.kpi, { offered: 7, answered: 3, ivrCompleted: 1, abandoned: 1, shortAbandoned: 1, slAnswered: 3, ratings: 3, satisfied: 2 });
  t.equal(s.kpi.answerRate, 4 / 6, 'answer rate = (3 by agents + 1 self-service) / (7 - 1 short abandon)');
  t.equal(s.kpi.avgWaitSeconds, 15, 'average wait = (10 + 30 + 8 + 12 to the end of the self-service) / 4 s');
  t.equal(s.kpi.serviceLevel, 0.5, 'service level = 3 answered within 15 s of arrival / 6');
  t.equal(s.kpi.satisfaction, 2 / 3, 'satisfaction = 2 satisfied / 3 rated');
  t.same(s.kpi.targetsMet, { answerRate: false, avgWaitSeconds: true, satisfaction: false }, 'against the contract: 15 s exactly meets the wait target');

  t.equal(s.series.slotMinutes, 15);
  t.equal(s.series.slots.length, 96, 'a whole day of quarter-hours');
  t.match(s.series.slots[36], { startLocal: '09:00', calls: 3 });
  t.match(s.series.slots[37], { startLocal: '09:15', calls: 2 });
  t.match(s.series.slots[38], { startLocal: '09:30', calls: 1 }, 'the live call counts where it arrived');
  t.equal(s.series.slots[40].calls, 0, 'self-service calls never reached a queue');
  t.equal(s.series.slots[40].forecast, 3, "the 10:00 half-hour's forecast of 6, split in two");
  t.equal(s.series.slots[41].forecast, 3);
  t.equal(s.series.slots[42].forecast, 0);
  t.equal(s.series.slots.reduce((n: number, x: { calls: number }) => n + x.calls, 0), 6);

  const q = s.queues.find((x: { name: string }) => x.name === 'general');
  t.match(q, { waiting: 2 });
  t.ok(q.longestWaitSeconds >= 75, `longest wait ${q.longestWaitSeconds} s`);
  t.same(s.agents, { total: 2, byState: { logged_out: 1, not_ready: 1 } });
  t.equal(s.waiting.length, 2);
  t.match(s.waiting[0], { queue: 'general', caller: '138****5678', kind: 'call' }, 'the longest-waiting first, its number masked');
  t.ok(s.waiting[0].waitSeconds >= 75);
  t.match(s.waiting[1], { queue: 'general', caller: null, kind: 'callback' });
  t.notOk(JSON.stringify(s).includes('13812345678'), 'no full phone number anywhere in the snapshot');
  t.notOk(JSON.stringify(s).includes(waitingCall), 'no call id either');

  const topOne = await api('GET', '/api/v1/wallboard?top=1', tokens.supervisor);
  t.equal(topOne.body.waiting.length, 1, '?top= limits the list');
  t.equal((await api('GET', '/api/v1/wallboard?top=99', tokens.supervisor)).status, 400);
  t.equal((await api('GET', '/api/v1/wallboard?since=1', tokens.supervisor)).status, 400, 'unknown query fields refused');
  const doc = await api('GET', '/docs/json', null);
  t.ok(doc.body.paths['/api/v1/wallboard/']?.get ?? doc.body.paths['/api/v1/wallboard']?.get, 'described in the OpenAPI document');
  t.notOk(doc.body.paths['/wallboard'], 'the pages are not API routes');
});

t.test('masking phone numbers', async (t) => {
  t.equal(maskPhone('13812345678'), '138****5678');
  t.equal(maskPhone('089866778899'), '089****8899');
  t.equal(maskPhone('+85291234567'), '+852****4567');
  t.equal(maskPhone('12345'), '****45');
  t.equal(maskPhone(''), null);
  t.equal(maskPhone(null), null);
});

t.test('who may read it: a supervisor, admin or auditor token, or the wallboard key', async (t) => {
  t.equal((await api('GET', '/api/v1/wallboard', null)).status, 401, 'nobody');
  for (const role of ['supervisor', 'admin', 'auditor'] as const) t.equal((await api('GET', '/api/v1/wallboard', tokens[role])).status, 200, role);
  const agent = await api('GET', '/api/v1/wallboard', tokens.agent);
  t.equal(agent.status, 403, 'an agent');
  t.equal(agent.body.error.code, 'forbidden');
  t.equal((await api('GET', `/api/v1/wallboard?token=${tokens.auditor}`, null)).status, 200, 'a token in the address (a screen)');
  t.equal((await api('GET', '/api/v1/wallboard?token=not-a-token', null)).status, 401);
  t.equal((await api('GET', `/api/v1/wallboard?key=${KEY}`, null)).status, 200, 'the wallboard key');
  const wrong = await api('GET', `/api/v1/wallboard?key=${KEY}x`, null);
  t.equal(wrong.status, 401, 'a wrong key');
  t.equal(wrong.body.error.code, 'unauthorized');
  t.equal((await api('GET', `/api/v1/wallboard?key=${KEY}`, tokens.agent)).status, 200, 'the key decides when it is given');
  // the key opens nothing else
  for (const url of ['/api/v1/live', '/api/v1/queues', '/api/v1/calls', '/api/v1/recordings']) {
    const r = await api('GET', `${url}?key=${KEY}`, null);
    t.ok(r.status === 401 || r.status === 400, `${url}?key= is refused (${r.status})`);
  }
  t.notOk(wallboardKeyMatches('anything', null), 'no key configured: no key matches');
  t.notOk(wallboardKeyMatches('', ''), 'an empty key never matches');
  const logged = logLines.join('');
  t.notOk(logged.includes(KEY), 'the key never reaches the log');
  t.notOk(logged.includes(tokens.auditor), 'nor a token given in the address');
});

t.test('the events socket takes the wallboard key: it sees what an auditor sees', async (t) => {
  const open = (query: string) =>
    new Promise<{ ws: WebSocket; messages: any[] } | number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/events?${query}`);
      const messages: any[] = [];
      ws.on('message', (d) => {
        messages.push(JSON.parse(String(d)));
        if (messages.length === 1) resolve({ ws, messages });
      });
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('error', () => undefined);
      t.teardown(() => ws.terminate());
    });
  t.equal(await open(`key=${KEY}z`), 401, 'a wrong key is refused before the upgrade');
  t.equal(await open('key='), 400, 'an empty key is no key');
  const c = await open(`key=${KEY}`);
  if (typeof c === 'number') throw new Error(`socket refused: ${c}`);
  t.match(c.messages[0], { type: 'hello', data: { role: 'auditor', agentId: null } });
  events.publish('agent.state', { agentId: '7001', state: 'ready' }, { agentId: '7001' });
  events.publish('queue.stats', { at: new Date().toISOString(), queues: [] }, { everyone: true });
  events.publish('agent.board', { at: new Date().toISOString(), agents: [] }, { supervisors: true });
  await waitFor(() => c.messages.some((m) => m.type === 'agent.board'), 3000, 'agent.board on the key socket');
  t.ok(c.messages.some((m) => m.type === 'queue.stats'), 'queue.stats');
  t.notOk(c.messages.some((m) => m.type === 'agent.state'), "an agent's own events are not the wallboard's");
  // the hub's token re-check closes a signed-out token's socket, and leaves the key's open
  const login = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: (await db.selectFrom('users').select('username').where('role', '=', 'auditor').executeTakeFirstOrThrow()).username, password: 'pw-secret' } });
  const token = login.json().token as string;
  const byToken = await open(`token=${token}`);
  if (typeof byToken === 'number') throw new Error(`socket refused: ${byToken}`);
  const closed = new Promise<number>((resolve) => byToken.ws.on('close', (code) => resolve(code)));
  t.equal((await api('POST', '/api/v1/auth/logout', token)).status, 204);
  t.equal(await closed, 4001, 'the signed-out token: closed with 4001');
  await new Promise((r) => setTimeout(r, 600));
  t.equal(c.ws.readyState, WebSocket.OPEN, 'the key socket stays open through the checks');
});

/** a raw request: the path exactly as given (no client normalises ../) */
function raw(p: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method: 'GET', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('the pages and their files: types, caching, 404 JSON, no way out of the folder', async (t) => {
  const page = await raw('/wallboard?key=abc&lang=en');
  t.equal(page.status, 200);
  t.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  t.equal(page.headers['cache-control'], 'no-cache', 'a page is revalidated on every load');
  t.match(page.headers['content-security-policy'], /default-src 'self'/);
  t.equal(page.headers['referrer-policy'], 'no-referrer', "a wallboard's address (with its key) is never sent on");
  t.equal(page.headers['x-content-type-options'], 'nosniff');
  t.match(page.body, /wallboard page/);
  t.match((await raw('/console')).body, /console page/);
  const again = await raw('/wallboard', { 'if-none-match': String(page.headers.etag) });
  t.equal(again.status, 304, 'unchanged: 304 on its ETag');

  const js = await raw('/web/assets/wallboard-Ab12Cd.js');
  t.equal(js.status, 200);
  t.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  t.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable', 'hashed assets are cached for good');
  const css = await raw('/web/assets/wallboard-Ef34Gh.css');
  t.equal(css.headers['content-type'], 'text/css; charset=utf-8');
  t.equal((await raw('/web/wallboard.html')).headers['cache-control'], 'no-cache');

  for (const p of ['/web/assets/missing.js', '/web/assets/data.bin', '/web/', '/web/assets', '/web/nothing.css']) {
    const r = await raw(p);
    t.equal(r.status, 404, `${p}: 404`);
    t.equal(r.headers['content-type'], 'application/json; charset=utf-8', `${p}: JSON`);
    t.equal(JSON.parse(r.body).error.code, 'not-found');
  }

  const attempts = [
    '/web/../secret.js',
    '/web/../../package.json',
    '/web/assets/../../secret.js',
    '/web/..%2fsecret.js',
    '/web/%2e%2e/secret.js',
    '/web/%2e%2e%2fsecret.txt',
    '/web/assets/%2e%2e%2f%2e%2e%2fsecret.js',
    '/web/assets/..%5c..%5csecret.js',
    '/web/assets/%252e%252e/%252e%252e/secret.js',
    '/web//etc/passwd',
    '/web/%2fetc%2fpasswd',
    `/web/${encodeURIComponent(path.join(webRoot, 'secret.js'))}`,
    '/web/assets/escape.js',
    '/web/assets/wallboard-Ab12Cd.js%00.css',
    '/wallboard/../secret.js',
  ];
  for (const p of attempts) {
    const r = await raw(p);
    t.ok(r.status === 404 || r.status === 400, `${p}: refused (${r.status})`);
    t.notOk(r.body.includes(SECRET), `${p}: nothing from outside the folder`);
    t.notOk(r.body.includes('"name": "hotline-control-plane"'), `${p}: not the checkout's files`);
  }
});

t.test('pages not built: 503 naming the command', async (t) => {
  const empty = mkdtempSync(path.join(tmpdir(), 'hotline-web-empty-'));
  const other = await buildTestApp(t, infra, { webDir: empty });
  const r = await other.api('GET', '/wallboard', null);
  t.equal(r.status, 503);
  t.equal(r.body.error.code, 'web-not-built');
  t.match(r.body.error.message, /npm run build:web/);
});
