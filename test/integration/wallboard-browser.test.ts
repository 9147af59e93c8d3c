/**
 * The wallboard and the console in headless Chromium (Debian's, through playwright-core) against the real
 * app on loopback, with floor data this test controls: the real ACD engine in Redis (waiting calls, agents),
 * the real live view pushing queue.stats / agent.board every 300 ms over the real events socket, real
 * PostgreSQL. No Asterisk. The pages are the Vite build in dist/web.
 */
import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { createQueuesConfig } from '../../src/acd/queues.config.js';
import { createQueueStats } from '../../src/acd/queues.stats.js';
import { createRedisEngine } from '../../src/acd/redis-engine.js';
import { createAgentDesk } from '../../src/agents/agent-desk.js';
import { createAgentStates } from '../../src/agents/agent-states.js';
import { createBreaks } from '../../src/agents/breaks.js';
import { silentWav } from '../../src/ari/fake.js';
import { AriGone, type Recordings } from '../../src/ari/port.js';
import { AuditLog } from '../../src/audit/audit.js';
import { insertCall } from '../../src/calls/calls.repo.js';
import { createEventBus } from '../../src/events/bus.js';
import { AudioTickets } from '../../src/recordings/audio-tickets.js';
import { RecordingsService } from '../../src/recordings/recordings.service.js';
import { LiveView } from '../../src/supervision/live-view.js';
import { WallboardService } from '../../src/wallboard/wallboard.service.js';
import { buildTestApp, testInfra } from '../helpers/app.js';
import { artefact, ensureWebBuilt, launchBrowser, newPage, textBecomes } from '../helpers/browser.js';
import { waitFor } from '../helpers/stack.js';

const KEY = 'browser-test-wallboard-key-42';
const webDir = ensureWebBuilt();

const infra = await testInfra(t, 'wallboard_browser');
const { db, redis, keys } = infra;
const engine = createRedisEngine({ redis, subscriber: await infra.subscriber(), keys, log: infra.log });
t.teardown(() => engine.close());
const events = await createEventBus({ redis, subscriber: await infra.subscriber(), keys, log: infra.log });
t.teardown(() => events.close());
const queues = createQueuesConfig(path.join(import.meta.dirname, '../../config/queues.yaml'), infra.log, { watch: false });
t.teardown(() => queues.close());
const queueStats = createQueueStats({ db, engine, queues, defaultHandleSeconds: 180 });
const agentStates = createAgentStates({ engine, db, log: infra.log, events });
const breaks = createBreaks({ db, engine, agentStates, events, log: infra.log });
const desk = createAgentDesk({ db, engine, agentStates, queues });
const liveView = new LiveView({ db, engine, queueStats, redis, keys, events, log: infra.log, intervalMs: 300 });
liveView.start();
t.teardown(() => liveView.stop());
const wallboard = new WallboardService({ db, engine, queues, queueStats, redis, keys, thresholds: { amberSeconds: 30, redSeconds: 60 }, kpiCacheMs: 0 });

// Asterisk's stored recordings: one file in memory
const files = new Map<string, Buffer>();
const recordings: Recordings = {
  async file(name) {
    const bytes = files.get(name);
    if (!bytes) throw new AriGone(`recording ${name}: not found`);
    return { stream: Readable.from([bytes]), contentType: 'audio/wav', size: bytes.length };
  },
  async delete(name) {
    files.delete(name);
  },
  async stop() {},
};
const audit = new AuditLog(db);
const recordingsService = new RecordingsService({ db, ari: recordings, audit, log: infra.log, retentionDays: 30 });
const audioTickets = new AudioTickets({ redis, keys, db });

const { app, tokens } = await buildTestApp(t, infra, {
  engine,
  agentStates,
  queues,
  queueStats,
  events,
  breaks,
  desk,
  liveView,
  audit,
  recordings,
  recordingsService,
  audioTickets,
  // no live call is handled here: monitoring actions get 404 no-such-call (the console's handling is what is tested)
  calls: { get: () => undefined },
  wallboard: { service: wallboard, key: KEY },
  webDir,
  eventsHub: { pingMs: 5000 },
});
// the test's switch to refuse the events socket for a while (the page must show it is offline, then recover)
let refuseSockets = false;
app.addHook('onRequest', async (req, reply) => {
  if (refuseSockets && req.url.startsWith('/api/v1/events')) return reply.code(503).send({ error: { code: 'test-offline', message: 'refused by the test' } });
});
await app.listen({ host: '127.0.0.1', port: 0 });
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
const dropSockets = () => {
  for (const ws of app.websocketServer.clients) ws.terminate();
};

// the floor: agents in three states, callers waiting in general (2) and en (1)
const general = queues.get('general')!;
const en = queues.get('en')!;
for (const id of ['7101', '7102', '7103']) {
  await db.insertInto('agents').values({ employee_no: id, name: `Agent ${id}`, skills: JSON.stringify([{ skill: 'general', level: 5 }]), phone_kind: 'uri', phone_uri: `sip:a${id}@127.0.0.1:5999`, endpoint: `PJSIP/agent${id}` }).execute();
  await engine.upsertAgent(id, { general: 5, [`only-${id}`]: 5 }, `PJSIP/agent${id}`);
  await agentStates.transition(id, 'not_ready', { reason: 'signed in' });
}
await agentStates.transition('7101', 'ready');
// 7102 on a call: ready, reserved by the engine for a call of its own, answered
await agentStates.transition('7102', 'ready');
const talking = randomUUID();
await engine.enqueue({ callId: talking, queue: 'q-7102', priority: 0, enqueuedAt: Date.now(), stages: [{ afterSeconds: 0, needs: [{ skill: 'only-7102', minLevel: 1 }] }] });
if ((await engine.claim('q-7102', talking)) !== '7102') throw new Error('7102 not reserved');
await agentStates.transition('7102', 'on_call', { expectCallId: talking, callId: talking });
// 7101 is ready but has no skill for these queues' callers? It has general: keep it from taking them by making it not ready again
await agentStates.transition('7101', 'not_ready', { reason: 'training' });

async function waiting(queue: typeof general, caller: string, agoMs: number): Promise<string> {
  const id = randomUUID();
  await engine.enqueue({ callId: id, queue: queue.id, priority: 0, enqueuedAt: Date.now() - agoMs, stages: queue.stages });
  await redis.hset(keys.call(id), { caller, state: 'queued' });
  return id;
}
await waiting(general, '13812345678', 70_000);
await waiting(general, '13987654321', 35_000);
await waiting(en, '+447700900123', 5_000);

const browser = await launchBrowser(t);

t.test('the wallboard shows the floor in Chinese, live, with masked numbers', async (t) => {
  const { page, errors } = await newPage(browser);
  await page.goto(`${base}/wallboard?key=${KEY}`);
  t.equal(await textBecomes(page, '[data-testid=waiting-general]', (s) => s === '2', 5000, 'general: 2 waiting'), '2');
  // the socket's first push may come before the snapshot: each number in its own time
  t.equal(await textBecomes(page, '[data-testid=waiting-en]', (s) => s === '1', 3000, 'en: 1 waiting'), '1');
  t.equal(await textBecomes(page, '[data-testid=total-waiting]', (s) => s === '3', 3000, '3 in all'), '3');
  t.equal(await page.locator('html').getAttribute('lang'), 'zh-CN', 'Chinese by default');
  t.match(await page.locator('h1').textContent(), /实时监控/);
  t.match(await page.locator('#tile-waiting .tile-label').textContent(), '排队等待');
  const longest = await page.locator('[data-testid=longest-general]');
  t.match(await longest.getAttribute('class'), /\bred\b/, 'a caller waiting over 60 s: red');
  const callers = await page.locator('[data-testid=waiting-callers] li').allTextContents();
  t.equal(callers.length, 3);
  t.match(callers[0], /138\*\*\*\*5678/, 'the longest-waiting caller first, masked');
  t.notOk((await page.content()).includes('13812345678'), 'no full number on the page');
  t.equal(await page.locator('[data-testid=agents-on_call] .n').textContent(), '1', 'agents by state');
  t.equal(await page.locator('[data-testid=agents-not_ready] .n').textContent(), '2');
  t.equal(await page.locator('[data-testid=chart] rect.bar').count() >= 0, true, 'the chart is drawn');
  t.equal(await page.locator('[data-testid=chart] polyline.forecast').count(), 1, 'with the forecast line');
  t.ok(await page.locator('[data-testid=banner]').isHidden(), 'no banner while connected');

  // a new caller: the live view pushes it, the page follows within a second
  await waitFor(() => app.websocketServer.clients.size > 0 || undefined, 3000, 'the page socket');
  const before = Date.now();
  await waiting(general, '13700001111', 0);
  await textBecomes(page, '[data-testid=waiting-general]', (s) => s === '3', 3000, 'general: 3 waiting');
  const took = Date.now() - before;
  t.ok(took < 1000, `the page showed the new caller ${took} ms after it queued`);
  await textBecomes(page, '[data-testid=total-waiting]', (s) => s === '4', 2000, 'total 4');
  await waitFor(async () => ((await page.locator('[data-testid=waiting-callers] li').count()) === 4 ? true : undefined), 3000, 'the caller in the list');

  const shot = artefact('wallboard-integration.png');
  await page.screenshot({ path: shot });
  t.ok(statSync(shot).size > 10_000, `screenshot saved (${shot})`);
  t.same(errors, [], 'no error in the page');
  await page.context().close();
});

t.test('English: the switch, and ?lang=en', async (t) => {
  const { page, errors } = await newPage(browser);
  await page.goto(`${base}/wallboard?key=${KEY}`);
  await textBecomes(page, '[data-testid=waiting-general]', (s) => /^\d+$/.test(s), 5000, 'numbers');
  await page.locator('[data-testid=lang-switch]').click();
  t.match(await page.locator('h1').textContent(), /Live Wallboard/);
  t.equal(await page.locator('#tile-waiting .tile-label').textContent(), 'Calls waiting');
  t.equal(await page.locator('html').getAttribute('lang'), 'en');
  t.match(page.url(), /lang=en/, 'kept in the address');
  t.match(page.url(), new RegExp(`key=${KEY}`), 'with the key');
  t.equal(await page.locator('[data-testid=agents-on_call] .label').textContent(), 'On call');
  await page.locator('[data-testid=lang-switch]').click();
  t.match(await page.locator('h1').textContent(), /实时监控/, 'and back to Chinese');

  const { page: p2 } = await newPage(browser);
  await p2.goto(`${base}/wallboard?key=${KEY}&lang=en`);
  t.match(await p2.locator('h1').textContent(), /Live Wallboard/, '?lang=en opens in English');
  t.equal(await p2.locator('[data-testid=lang-switch]').textContent(), '中文');
  t.same(errors, []);
  await page.context().close();
  await p2.context().close();
});

t.test('connection lost: the banner shows, the page reconnects with backoff and re-reads the snapshot', async (t) => {
  const { page } = await newPage(browser);
  await page.goto(`${base}/wallboard?key=${KEY}`);
  await textBecomes(page, '[data-testid=waiting-general]', (s) => /^\d+$/.test(s), 5000, 'the snapshot read');
  const shown = Number(await page.locator('[data-testid=total-waiting]').textContent());
  t.ok(shown >= 4, `${shown} waiting`);
  await waitFor(() => app.websocketServer.clients.size > 0 || undefined, 3000, 'the page socket');
  await page.waitForTimeout(1000); // settled: no snapshot read still on its way
  refuseSockets = true;
  dropSockets();
  const banner = page.locator('[data-testid=banner]');
  await banner.waitFor({ state: 'visible', timeout: 3000 });
  t.equal((await banner.textContent())?.trim(), '连接中断，正在重连…');
  // while the page is cut off, a caller arrives: no push reaches it
  await waiting(en, '13600002222', 0);
  await page.waitForTimeout(2500);
  t.ok(await banner.isVisible(), 'still offline while the server refuses');
  t.equal(Number(await page.locator('[data-testid=total-waiting]').textContent()), shown, 'the page cannot know yet');
  refuseSockets = false;
  await banner.waitFor({ state: 'hidden', timeout: 15_000 });
  t.pass('the banner goes once the socket is back');
  await textBecomes(page, '[data-testid=total-waiting]', (s) => Number(s) === shown + 1, 3000, 'the snapshot re-read after reconnecting');
  t.pass('the count caught up');
  await page.context().close();
});

t.test('no key, wrong key: the page says what it needs', async (t) => {
  const { page } = await newPage(browser);
  await page.goto(`${base}/wallboard`);
  await page.locator('[data-testid=auth-error]').waitFor({ state: 'visible', timeout: 3000 });
  t.match(await page.locator('[data-testid=auth-error]').textContent(), /\?key=/);
  await page.goto(`${base}/wallboard?key=wrong-key-wrong-key`);
  await page.locator('[data-testid=auth-error]').waitFor({ state: 'visible', timeout: 3000 });
  t.match(await page.locator('[data-testid=auth-error]').textContent(), /授权被拒绝/);
  await page.goto(`${base}/wallboard?token=${tokens.supervisor}`);
  await textBecomes(page, '[data-testid=waiting-general]', (s) => /^\d+$/.test(s), 5000, 'a supervisor token works too');
  t.ok(await page.locator('[data-testid=auth-error]').isHidden());
  await page.context().close();
});

t.test('the console: a supervisor signs in and forces an agent not ready', async (t) => {
  const supervisor = await db.selectFrom('users').select('username').where('role', '=', 'supervisor').executeTakeFirstOrThrow();
  const { page, errors } = await newPage(browser);
  await page.goto(`${base}/console`);
  await page.locator('[data-testid=username]').fill(supervisor.username);
  await page.locator('[data-testid=password]').fill('pw-secret');
  await page.locator('[data-testid=signin]').click();
  await page.locator('[data-testid=agent-7103]').waitFor({ timeout: 5000 });
  t.equal(await page.locator('[data-testid=state-7102]').textContent(), '通话中');
  t.ok(await page.locator('[data-testid=act-listen-7102]').isEnabled(), 'listen is offered on a call');
  t.ok(await page.locator('[data-testid=act-listen-7103]').isDisabled(), 'not without one');

  await agentStates.transition('7103', 'ready');
  await textBecomes(page, '[data-testid=state-7103]', (s) => s === '空闲', 3000, '7103 ready, live');
  await page.locator('[data-testid=act-not-ready-7103]').click();
  await waitFor(async () => ((await engine.getAgent('7103'))?.state === 'not_ready' ? true : undefined), 3000, '7103 not ready');
  t.equal((await engine.getAgent('7103'))?.reason, 'supervisor');
  await textBecomes(page, '[data-testid=state-7103]', (s) => s === '示忙', 3000, 'the grid follows');
  // the audit entry is written after the change itself (the grid may show it first)
  const forced = await waitFor(async () => {
    const rows = await db.selectFrom('audit_log').select(['action', 'target', 'actor']).where('action', '=', 'agent.force-state').where('target', '=', '7103').execute();
    return rows.length > 0 ? rows : undefined;
  }, 3000, 'the audit entry');
  t.match(forced, [{ actor: supervisor.username }], 'audited as the supervisor');

  // hang-up asks for a second click
  await page.locator('[data-testid=act-hangup-7102]').click();
  t.match(await page.locator('[data-testid=act-hangup-7102]').textContent(), /确认/, 'armed, not sent');

  // listen: the supervisor's extension is asked once, then remembered
  const listens: string[] = [];
  page.on('request', (r) => {
    if (r.url().endsWith('/listen')) listens.push(r.postData() ?? '');
  });
  await page.locator('[data-testid=act-listen-7102]').click();
  await page.locator('[data-testid=ext-input]').fill('8899');
  await page.locator('[data-testid=ext-ok]').click();
  await waitFor(() => (listens.length === 1 ? true : undefined), 3000, 'the listen request');
  t.same(JSON.parse(listens[0]!), { extension: '8899' }, "listen from the supervisor's extension");
  await textBecomes(page, '[data-testid=toast]', (s) => s.includes('no live call'), 3000, "the API's answer shown");
  t.match(await page.locator('[data-testid=extension]').textContent(), /8899/, 'the extension shown in the header');
  await page.locator('[data-testid=act-barge-7102]').click();
  await waitFor(() => (page.url() && listens.length === 1 ? true : undefined), 1000, 'no second listen');
  t.ok(await page.locator('[data-testid=ext-input]').isHidden(), 'not asked again');

  // a break request: listed, approved with one click
  const pending = await breaks.request('7101', 'lunch', 30, 'agent:7101');
  const item = page.locator(`[data-testid=break-${pending.id}]`);
  await item.waitFor({ timeout: 3000 });
  t.match(await item.textContent(), /7101.*lunch.*30/);
  await page.locator(`[data-testid=approve-${pending.id}]`).click();
  // approved, then active as the agent moves on break (two steps)
  const status = await waitFor(async () => {
    const b = await breaks.get(pending.id);
    return b && b.status !== 'pending' && b.status !== 'approved' ? b.status : undefined;
  }, 3000, 'the break started');
  t.equal(status, 'active', 'approved: 7101 (not ready) goes on break at once');
  await item.waitFor({ state: 'detached', timeout: 3000 });
  await textBecomes(page, '[data-testid=state-7101]', (s) => s === '休息', 3000, '7101 on break in the grid');

  // the token stays for this tab: a reload keeps the console signed in
  await page.reload();
  await page.locator('[data-testid=agent-7103]').waitFor({ timeout: 5000 });
  t.ok(await page.locator('#signin').isHidden(), 'still signed in after a reload');
  await page.screenshot({ path: artefact('console-integration.png') });
  await page.locator('[data-testid=signout]').click();
  await page.locator('[data-testid=username]').waitFor({ state: 'visible', timeout: 3000 });
  // the monitoring requests above were answered 404 on purpose; Chromium logs each
  t.same(errors.filter((e) => !/status of 404/.test(e)), [], 'no other error in the page');
  await page.context().close();
});

t.test('the console: recordings searched by caller and played through a ticket URL', async (t) => {
  const callId = randomUUID();
  const startedAt = new Date(Date.now() - 600_000);
  await insertCall(db, { id: callId, direction: 'inbound', caller: '13512340000', dialed: '12345', line: '12345', queue: 'general', agents: ['7102'], channel_id: `ch-${callId}`, arrived_at: startedAt, answered_at: startedAt, disposition: 'answered' });
  const name = `rec-browser-${callId}`;
  const rec = await recordingsService.started({ callId, name, callType: 'inbound', startedAt });
  files.set(name, silentWav(2));
  await recordingsService.finished(name, { endedAt: new Date(startedAt.getTime() + 2000), durationSeconds: 2 });

  const supervisor = await db.selectFrom('users').select('username').where('role', '=', 'supervisor').executeTakeFirstOrThrow();
  const { page, errors } = await newPage(browser);
  await page.goto(`${base}/console?lang=en`);
  await page.locator('[data-testid=username]').fill(supervisor.username);
  await page.locator('[data-testid=password]').fill('pw-secret');
  await page.locator('[data-testid=signin]').click();
  await page.locator('[data-testid=tab-recordings]').click();
  await page.locator('[data-testid=rec-caller]').fill('13512340000');
  await page.locator('[data-testid=rec-search]').click();
  await page.locator(`[data-testid=rec-${rec.id}]`).waitFor({ timeout: 5000 });
  t.equal(await page.locator('[data-testid=rec-rows] tr').count(), 1, 'the one recording of that caller');
  await page.locator(`[data-testid=play-${rec.id}]`).click();
  const src = await waitFor(async () => {
    const v = await page.locator('[data-testid=player]').getAttribute('src');
    return v && v.includes('ticket=') ? v : undefined;
  }, 5000, 'the player given a ticket URL');
  t.match(src, new RegExp(`^/api/v1/recordings/${rec.id}/audio\\?ticket=`));
  const duration = await waitFor(async () => {
    const d = await page.locator('[data-testid=player]').evaluate((el) => (el as unknown as { duration: number }).duration);
    return Number.isFinite(d) && d > 0 ? d : undefined;
  }, 5000, 'the audio loaded');
  t.ok(Math.abs(duration - 2) < 0.1, `the browser loaded the 2 s recording (${duration} s)`);
  const plays = await waitFor(async () => {
    const rows = await db.selectFrom('audit_log').select(['actor', 'action']).where('action', '=', 'recording.play').where('target', '=', rec.id).execute();
    return rows.length ? rows : undefined;
  }, 3000, 'the play audited');
  t.equal(plays[0]!.actor, supervisor.username, 'audited as the supervisor');
  t.same(errors, [], 'no error in the page');
  await page.context().close();
});
