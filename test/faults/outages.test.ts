/**
 * Fault suite: the service's own stores go away under calls (the service as its own process, real Asterisk,
 * SIPp callers and agent phones).
 *  I. Redis stopped for 60 s, then started again EMPTY (no persistence, as here): connected calls go on and are
 *     closed on record, callers waiting in the queue keep waiting and are answered after it, the agents come back
 *     in the states they had (nobody signs in again), a new call afterwards is answered.
 *  J. PostgreSQL away for 60 s during calls: calls keep flowing (answered by agents), their record writes go to
 *     the local outbox and reach PostgreSQL exactly once when it is back; no record lost, none doubled.
 * The service gets a Redis server of its own (a private redis-server on another port), and reaches PostgreSQL
 * through a TCP proxy that the test puts down (every connection reset, new ones refused, as a stopped server
 * answers), so neither touches anything else on the machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { runSipp, type SippProcess } from '../sipp/sipp.js';
import { callerScript } from '../sipp/caller-script.js';
import { ariBridges, getJson, login, resetAri, waitFor } from '../helpers/stack.js';
import { createReadyAgent, ivrDirWithDirectLines, setState, startPhones, writeQueuesFile, type TestAgent } from '../helpers/acd.js';
import { faultInvariants, logMark } from '../helpers/faults.js';
import { deploymentEnv, freeTcpPort, spawnService, type ServiceProcess } from '../helpers/service-process.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { createDb } from '../../src/db/db.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** a redis-server of the test's own, keeping nothing on disk (as the machine's) */
async function startRedis(port: number): Promise<ChildProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), 'hotline-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    }).catch(() => false);
    if (up) return child;
    await sleep(100);
  }
  throw new Error(`redis-server on ${port} did not start`);
}
async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

await resetAri();
const redisPort = await freeTcpPort();
let redis = await startRedis(redisPort);
const queuesFile = writeQueuesFile('defaults: { ringSeconds: 10, wrapUpSeconds: 1, announceEverySeconds: 0, callbackOffer: null }\nqueues:\n  "7402": { name: outage suite, skill: ko }\n');
const dbUrl = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/hotline_test');
const pgProxy = await startTcpProxy({ host: dbUrl.hostname, port: Number(dbUrl.port || 5432) });
const viaProxy = new URL(dbUrl);
viaProxy.port = String(pgProxy.port);
const outboxDir = mkdtempSync(path.join(tmpdir(), 'hotline-outbox-'));
const env = await deploymentEnv({
  QUEUES_FILE: queuesFile,
  IVR_DIR: ivrDirWithDirectLines(['7402']),
  REPEAT_CALLER_DAYS: '0',
  FALLBACK_SKILL: 'ko',
  LOG_LEVEL: 'info',
  REDIS_URL: `redis://127.0.0.1:${redisPort}`,
  DATABASE_URL: viaProxy.toString(),
  OUTBOX_DIR: outboxDir,
});
// the test reads PostgreSQL directly, never through the proxy it breaks
const db = createDb(dbUrl.toString());
const agents: TestAgent[] = Array.from({ length: 4 }, (_, i) => ({ id: String(1790 + i + 1), port: 5491 + i, skills: [{ skill: 'ko', level: 5 }] }));
const phones: SippProcess[] = await startPhones(agents, 'agent-answer', { ring_ms: '300' }, 50, 600);
const svc: ServiceProcess = await spawnService('outages', env);
let admin = await login(svc.url);
for (const a of agents) await createReadyAgent(svc.url, admin, a);
t.teardown(async () => {
  await svc.stop().catch(() => undefined);
  await stopRedis(redis).catch(() => undefined);
  await pgProxy.close().catch(() => undefined);
  await Promise.all(phones.map((p) => p.stop().catch(() => undefined)));
  await db.destroy();
});
const tag = String(Date.now()).slice(-5);
const logFile = '/tmp/hotline-fault-outages.log';
const logStart = logMark(logFile);

const invariants = (t: Test, caller: string, calls: number, recordingsLeftOut?: string) => faultInvariants(t, { db, caller, calls, logFile, logStart, ...(recordingsLeftOut ? { recordingsLeftOut } : {}) });
const stateOf = async (id: string) => (await getJson(svc.url, `/api/v1/agents/${id}`, admin)).body.state?.state as string | undefined;

t.test('I. Redis stopped 60 s and started again empty: calls go on, waiting callers are answered after, agents keep their states', async (t) => {
  const connected = `1394${tag}01`;
  const queued = `1394${tag}02`;
  // two agents on calls that outlive the outage, two not ready (callers wait for them)
  await setState(svc.url, admin, agents[2]!.id, 'not_ready', 'meeting');
  await setState(svc.url, admin, agents[3]!.id, 'not_ready', 'meeting');
  const talk = runSipp({ scenario: callerScript([], 80_000), remote: '127.0.0.1:5060', service: '7402', callerNumber: connected, calls: 2, rate: 10, limit: 2, timeoutSeconds: 180 });
  await waitFor(async () => ((await ariBridges()).filter((b) => b.id.startsWith('call-') && b.channels.length === 2).length === 2 ? true : undefined), 20_000, '2 connected calls');
  const wait = runSipp({ scenario: callerScript([], 95_000), remote: '127.0.0.1:5060', service: '7402', callerNumber: queued, calls: 2, rate: 10, limit: 2, timeoutSeconds: 180 });
  await waitFor(async () => ((await getJson(svc.url, '/api/v1/queues/7402', admin)).body.waiting === 2 ? true : undefined), 20_000, '2 callers waiting');

  await stopRedis(redis);
  await sleep(3000);
  const during = await fetch(`${svc.url}/readyz`).then(async (r) => ({ status: r.status, body: (await r.json()) as { down: string[] } }));
  t.equal(during.status, 503, 'readyz says the service is not ready');
  t.ok(during.body.down.includes('redis'), 'and names Redis');
  await sleep(57_000);
  const bridged = (await ariBridges()).filter((b) => b.id.startsWith('call-') && b.channels.length === 2);
  t.ok(bridged.length >= 2, `after 60 s without Redis the connected calls are still connected (${bridged.length} call bridges with 2 members)`);
  redis = await startRedis(redisPort); // empty: it kept nothing

  await waitFor(async () => ((await fetch(`${svc.url}/readyz`)).status === 200 ? true : undefined), 20_000, 'ready again');
  admin = await login(svc.url);
  const restored = await waitFor(async () => {
    const s = await Promise.all(agents.map((a) => stateOf(a.id)));
    return s.every(Boolean) ? s : undefined;
  }, 15_000, 'agents back in Redis');
  t.same(restored.slice(2), ['not_ready', 'not_ready'], 'the not-ready agents are back not ready (nobody signed in again)');
  t.same(restored.slice(0, 2), ['on_call', 'on_call'], 'the agents on the calls that went on are back on them');
  await waitFor(async () => ((await getJson(svc.url, '/api/v1/queues/7402', admin)).body.waiting === 2 ? true : undefined), 15_000, 'the 2 waiting callers back in line');
  await setState(svc.url, admin, agents[2]!.id, 'ready');
  await setState(svc.url, admin, agents[3]!.id, 'ready');
  const w = await wait;
  t.equal(w.succeeded, 2, 'the callers who waited through the outage were answered and hung up themselves');
  const c = await talk;
  t.equal(c.succeeded, 2, 'the connected calls went on to their end: no BYE from the platform');
  await invariants(t, connected, 2);
  await invariants(t, queued, 2);
  const rows = await db.selectFrom('calls').select(['disposition']).where('caller', 'in', [connected, queued]).execute();
  t.ok(rows.every((r) => r.disposition === 'answered'), 'all four answered');
  await waitFor(async () => ((await Promise.all(agents.map((a) => stateOf(a.id)))).every((s) => s === 'ready') ? true : undefined), 20_000, 'every agent ready again');

  const after = `1394${tag}03`;
  const r = await runSipp({ scenario: callerScript([], 3_000), remote: '127.0.0.1:5060', service: '7402', callerNumber: after, calls: 3, rate: 10, limit: 3, timeoutSeconds: 60 });
  t.equal(r.succeeded, 3, 'new calls after the outage are answered');
  await invariants(t, after, 3);
});

t.test('J. PostgreSQL away for 60 s during calls: calls flow, every record reaches it exactly once when it is back', async (t) => {
  for (const a of agents) await setState(svc.url, admin, a.id, 'ready').catch(() => undefined);
  const before = `1394${tag}04`;
  const during = `1394${tag}05`;
  // two calls connected before the outage end during it; six more arrive, talk and end during it
  const long = runSipp({ scenario: callerScript([], 20_000), remote: '127.0.0.1:5060', service: '7402', callerNumber: before, calls: 2, rate: 10, limit: 2, timeoutSeconds: 120 });
  await waitFor(async () => ((await ariBridges()).filter((b) => b.id.startsWith('call-') && b.channels.length === 2).length === 2 ? true : undefined), 20_000, '2 connected calls');
  pgProxy.down(true);
  const downAt = Date.now();
  await sleep(2000);
  const ready = await fetch(`${svc.url}/readyz`).then(async (r) => ({ status: r.status, body: (await r.json()) as { down: string[] } }));
  t.equal(ready.status, 503, 'readyz says not ready');
  t.ok(ready.body.down.includes('postgres'), 'and names PostgreSQL');
  const short = await runSipp({ scenario: callerScript([], 4_000), remote: '127.0.0.1:5060', service: '7402', callerNumber: during, calls: 6, rate: 1, limit: 2, timeoutSeconds: 120 });
  t.equal(short.succeeded, 6, 'calls arriving while PostgreSQL is away are answered by agents and end normally');
  const l = await long;
  t.equal(l.succeeded, 2, 'the calls connected before it went on to their end');
  const metrics = await fetch(`${svc.url}/metrics`).then((r) => r.text());
  const depth = Number(/^hotline_outbox_depth (\d+)/m.exec(metrics)?.[1] ?? 'NaN');
  t.ok(depth > 0, `their record writes wait in the local outbox (${depth} entries)`);
  const stillDown = await db.selectFrom('calls').select('id').where('caller', '=', during).execute();
  t.equal(stillDown.length, 0, 'nothing of the calls during the outage reached PostgreSQL yet');
  await sleep(Math.max(0, 60_000 - (Date.now() - downAt)));
  pgProxy.down(false);
  await invariants(t, before, 2);
  await invariants(t, during, 6);
  const rows = await db.selectFrom('calls').select(['id', 'disposition', 'answered_at', 'agents']).where('caller', 'in', [before, during]).execute();
  t.ok(rows.every((r) => r.disposition === 'answered' && r.answered_at && r.agents.length === 1), 'each record complete: answered, with its agent');
  const events = await db
    .selectFrom('call_events')
    .select(['call_id', 'type'])
    .where('call_id', 'in', rows.map((r) => r.id))
    .execute();
  for (const r of rows) {
    const mine = events.filter((e) => e.call_id === r.id);
    const ended = mine.filter((e) => e.type === 'ended').length;
    const arrived = mine.filter((e) => e.type === 'arrived').length;
    if (ended !== 1 || arrived > 1) t.fail(`call ${r.id}: ${arrived} arrived and ${ended} ended events`);
  }
  t.pass('every call has one ended event (and no arrival twice)');
  const after = await fetch(`${svc.url}/metrics`).then((r) => r.text());
  await waitFor(async () => (/^hotline_outbox_depth 0$/m.test(await fetch(`${svc.url}/metrics`).then((r) => r.text())) ? true : undefined), 20_000, 'outbox empty').catch(() => undefined);
  t.match(await fetch(`${svc.url}/metrics`).then((r) => r.text()), /^hotline_outbox_depth 0$/m, `the outbox is empty again (was: ${/^hotline_outbox_depth .*/m.exec(after)?.[0]})`);
  const states = await db.selectFrom('agent_state_log').select(['agent_id']).where('call_id', 'in', rows.map((r) => r.id)).execute();
  t.ok(states.length >= rows.length * 2, `the agents' state changes during the outage are in the state log too (${states.length} rows)`);
});
