/**
 * Fault suite (npm run test:faults): the service as a process of its own on the real stack (Asterisk 22,
 * SIPp callers and 20 SIPp agent phones, PostgreSQL, Redis), killed and restarted while citizens call.
 * After each scenario the same invariants: every SIPp call has exactly one call record, none stays open,
 * no unhandled rejection in the service's log, nothing left behind in Asterisk.
 *  A. kill -9 during 20 connected calls: all stay connected (no BYE from the platform) and are closed on record.
 *  B. kill -9 while callers wait in a queue and in a menu: none dropped, each taken over within 10 s.
 *  C. the service stopped, 20 new calls: the dialplan fallback rings the signed-in agents; the calls are
 *     on record once the service is back; with nobody signed in a message is left, and becomes a voicemail.
 */
import t, { type Test } from 'tap';
import { sql } from 'kysely';
import { runSipp, type SippProcess } from '../sipp/sipp.js';
import { callerScript } from '../sipp/caller-script.js';
import { ARI, ariBridges, getJson, login, resetAri, waitFor } from '../helpers/stack.js';
import { api, createReadyAgent, ivrDirWithDirectLines, setState, startPhones, writeQueuesFile, type TestAgent } from '../helpers/acd.js';
import { faultInvariants, logMark } from '../helpers/faults.js';
import { deploymentEnv, freeTcpPort, spawnService, type ServiceProcess } from '../helpers/service-process.js';
import { createDb } from '../../src/db/db.js';

await resetAri();
const queuesFile = writeQueuesFile('defaults: { ringSeconds: 10, wrapUpSeconds: 1, announceEverySeconds: 0, callbackOffer: null }\nqueues:\n  "7401": { name: fault suite, skill: kf }\n');
const env = await deploymentEnv({ QUEUES_FILE: queuesFile, IVR_DIR: ivrDirWithDirectLines(['7401']), REPEAT_CALLER_DAYS: '0', FALLBACK_SKILL: 'kf', LOG_LEVEL: 'info' });
const db = createDb(env.DATABASE_URL!);
t.teardown(() => db.destroy());
const agents: TestAgent[] = Array.from({ length: 20 }, (_, i) => ({ id: String(1740 + i + 1), port: 5401 + i, skills: [{ skill: 'kf', level: 5 }] }));
// the phones live through every scenario (SIPp's wrapper ends a process after its timeout)
const phones: SippProcess[] = await startPhones(agents, 'agent-answer', { ring_ms: '300' }, 200, 900);
let svc: ServiceProcess = await spawnService('restart', env);
let admin = await login(svc.url);
for (const a of agents) await createReadyAgent(svc.url, admin, a);
t.teardown(async () => {
  await svc.stop().catch(() => undefined);
  await Promise.all(phones.map((p) => p.stop().catch(() => undefined)));
});
const tag = String(Date.now()).slice(-5);
const logFile = '/tmp/hotline-fault-restart.log';
const logStart = logMark(logFile);

async function restart(how: 'kill9' | 'stop'): Promise<number> {
  const at = Date.now();
  if (how === 'kill9') await svc.kill9();
  else await svc.stop();
  return at;
}
async function startAgain(): Promise<void> {
  svc = await spawnService('restart', env);
  admin = await login(svc.url);
}

const invariants = (t: Test, caller: string, calls: number, recordingsLeftOut?: string) => faultInvariants(t, { db, caller, calls, logFile, logStart, ...(recordingsLeftOut ? { recordingsLeftOut } : {}) });

const bridgedCalls = async (n: number) =>
  waitFor(async () => {
    const b = (await ariBridges()).filter((x) => x.id.startsWith('call-') && x.channels.length === 2);
    return b.length === n ? b : undefined;
  }, 30_000, `${n} connected calls`);

t.test('A. kill -9 during 20 connected calls: they stay connected and are closed on record after the restart', async (t) => {
  const caller = `1393${tag}01`;
  const done = runSipp({ scenario: callerScript([], 35_000), remote: '127.0.0.1:5060', service: '7401', callerNumber: caller, calls: 20, rate: 20, limit: 20, timeoutSeconds: 120 });
  const before = await bridgedCalls(20);
  await restart('kill9');
  await new Promise((r) => setTimeout(r, 2000));
  const after = (await ariBridges()).filter((x) => x.id.startsWith('call-') && x.channels.length === 2);
  t.equal(after.length, 20, 'with no control plane at all, the 20 calls are still connected');
  t.same(after.map((b) => b.id).sort(), before.map((b) => b.id).sort());
  await startAgain();
  const result = await done;
  t.equal(result.succeeded, 20, 'every caller ended its call itself: the platform sent no BYE');
  t.equal(result.failed, 0);
  await invariants(t, caller, 20);
  const rows = await db.selectFrom('calls').select(['disposition', 'end_reason']).where('caller', '=', caller).execute();
  t.ok(rows.every((r) => r.disposition === 'answered' && r.end_reason === 'caller'), 'answered, ended by the caller');
  const adopted = await sql<{ n: number }>`select count(distinct e.call_id)::int as n from call_events e join calls c on c.id = e.call_id where c.caller = ${caller} and e.type = 'adopted'`.execute(db);
  t.equal(adopted.rows[0]!.n, 20, 'the restarted process adopted each call');
  await waitFor(async () => {
    const states = await Promise.all(agents.map(async (a) => (await getJson(svc.url, `/api/v1/agents/${a.id}`, admin)).body.state?.state));
    return states.every((s) => s === 'ready') ? true : undefined;
  }, 20_000, 'every agent free again');
});

t.test('B. kill -9 while callers wait in a queue and in a menu: each is taken over within 10 s, none dropped', async (t) => {
  for (const a of agents) await setState(svc.url, admin, a.id, 'not_ready');
  const queued = `1393${tag}02`;
  const menu = `1393${tag}03`;
  const inQueue = runSipp({ scenario: callerScript([], 45_000), remote: '127.0.0.1:5060', service: '7401', callerNumber: queued, calls: 5, rate: 10, limit: 5, timeoutSeconds: 120 });
  const inMenu = runSipp({ scenario: callerScript([], 25_000), remote: '127.0.0.1:5060', service: '12345', callerNumber: menu, calls: 2, rate: 10, limit: 2, timeoutSeconds: 120 });
  await waitFor(async () => ((await getJson(svc.url, '/api/v1/queues/7401', admin)).body.waiting === 5 ? true : undefined), 20_000, '5 callers waiting');
  await new Promise((r) => setTimeout(r, 1000));
  const killedAt = await restart('kill9');
  await startAgain();
  const resumed = await waitFor(async () => {
    const r = await sql<{ call_id: string; at: Date }>`select e.call_id, e.at from call_events e join calls c on c.id = e.call_id where c.caller in (${queued}, ${menu}) and e.type = 'resumed'`.execute(db);
    return r.rows.length === 7 ? r.rows : undefined;
  }, 20_000, '7 calls taken over');
  const worst = Math.max(...resumed.map((r) => r.at.getTime() - killedAt));
  t.ok(worst < 10_000, `every caller taken over within 10 s of the kill (worst ${worst} ms)`);
  t.equal((await getJson(svc.url, '/api/v1/queues/7401', admin)).body.waiting, 5, 'the 5 are waiting in the queue again');
  for (const a of agents.slice(0, 5)) await setState(svc.url, admin, a.id, 'ready');
  await bridgedCalls(5);
  const q = await inQueue;
  const m = await inMenu;
  t.equal(q.succeeded, 5, 'the queued callers were answered and hung up themselves');
  t.equal(m.succeeded + m.failed, 2, 'the menu callers ran to their end');
  await invariants(t, queued, 5);
  const rows = await db.selectFrom('calls').select(['disposition', 'answered_at']).where('caller', '=', queued).execute();
  t.ok(rows.every((r) => r.disposition === 'answered'), 'the queued callers reached an agent');
  await invariants(t, menu, 2);
  for (const a of agents) await setState(svc.url, admin, a.id, 'ready').catch(() => undefined);
});

t.test('C. service stopped, 20 new calls: the fallback rings the signed-in agents, the calls are on record when it is back; a message when nobody is signed in', async (t) => {
  // two agents signed in: the fallback rings both for each call
  const signedIn = agents.slice(18);
  for (const a of agents.slice(0, 18)) await setState(svc.url, admin, a.id, 'logged_out');
  await new Promise((r) => setTimeout(r, 6000)); // the ring group follows within 5 s
  await restart('stop');
  const ringGroup = await fetch(`${ARI.url}/ari/asterisk/variable?variable=HOTLINE_FALLBACK_DIAL`, { headers: { authorization: `Basic ${Buffer.from(`${ARI.user}:${ARI.password}`).toString('base64')}` } }).then((r) => r.json() as Promise<{ value: string }>);
  t.same(ringGroup.value.split('&').sort(), signedIn.map((a) => `PJSIP/agent${a.id}`).sort(), `the fallback rings the signed-in agents (${ringGroup.value})`);
  const caller = `1393${tag}04`;
  const r = await runSipp({ scenario: callerScript([], 15_000), remote: '127.0.0.1:5060', service: '7401', callerNumber: caller, calls: 20, rate: 10, limit: 20, timeoutSeconds: 90 });
  t.equal(r.succeeded, 20, 'all 20 answered by the fallback (none rejected)');
  await startAgain();
  await invariants(t, caller, 20);
  const rows = await db.selectFrom('calls').select(['disposition', 'end_reason', 'agents']).where('caller', '=', caller).execute();
  t.ok(rows.every((x) => x.end_reason === 'fallback' && x.disposition === 'answered'), 'recorded as answered by the fallback');
  t.ok(rows.every((x) => x.agents.length === 1 && signedIn.some((a) => a.id === x.agents[0])), 'by one of the two signed-in agents');

  // nobody signed in: the caller leaves a message, which is a voicemail once the service is back
  for (const a of signedIn) await setState(svc.url, admin, a.id, 'logged_out');
  await new Promise((r) => setTimeout(r, 6000));
  await restart('stop');
  const vmCaller = `1393${tag}05`;
  const vm = await runSipp({ scenario: callerScript([{ pause: 7000 }, { audio: 'g711a' }], 500), remote: '127.0.0.1:5060', service: '7401', callerNumber: vmCaller, calls: 2, rate: 10, limit: 2, timeoutSeconds: 90 });
  t.equal(vm.succeeded + vm.failed, 2);
  await startAgain();
  await invariants(t, vmCaller, 2);
  const vms = await waitFor(async () => {
    const r = (await getJson(svc.url, `/api/v1/voicemails?caller=${vmCaller}`, admin)).body.items;
    return r?.length === 2 ? r : undefined;
  }, 15_000, 'two fallback voicemails');
  t.ok(vms.every((v: any) => v.reason === 'fallback' && v.status === 'saved'), 'fallback messages, saved');
  const audio = await fetch(`${svc.url}${vms[0].audioUrl}`, { headers: { authorization: `Bearer ${admin}` } });
  t.equal(audio.status, 200, 'the message plays');
  t.equal(Buffer.from(await audio.arrayBuffer()).subarray(0, 4).toString(), 'RIFF');
  for (const a of agents) await createReadyAgent(svc.url, admin, a).catch(() => undefined);
  await api(svc.url, admin, 'GET', '/api/v1/queues');
});

// ---- several processes: active-standby (src/ha/leadership.ts) ----------------------------------------
const standbyEnv = { ...env, PORT: '0' };
/** every process started besides svc: stopped at the end whatever happened */
const extra: ServiceProcess[] = [];
t.teardown(async () => {
  for (const p of extra) await p.stop().catch(() => undefined);
});
async function startStandby(): Promise<ServiceProcess> {
  const p = await spawnService('restart', { ...standbyEnv, PORT: String(await freeTcpPort()) }, 60_000, 'alive');
  extra.push(p);
  const ready = await fetch(`${p.url}/readyz`).then((r) => r.json() as Promise<{ role?: string }>);
  if (ready.role !== 'standby') throw new Error(`expected a standby, got ${JSON.stringify(ready)}`);
  return p;
}
const isLeader = async (p: ServiceProcess) => fetch(`${p.url}/readyz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status === 200, () => false);

t.test('F. the leader killed (-9) with a standby running: the standby takes over within 10 s, connected calls go on, waiting callers are answered', async (t) => {
  for (const a of agents) await setState(svc.url, admin, a.id, 'ready').catch(() => undefined);
  const standby = await startStandby();
  t.notOk(await isLeader(standby), 'the second process stands by (readyz 503, role standby)');
  const connected = `1393${tag}06`;
  const queued = `1393${tag}07`;
  const talk = runSipp({ scenario: callerScript([], 30_000), remote: '127.0.0.1:5060', service: '7401', callerNumber: connected, calls: 10, rate: 10, limit: 10, timeoutSeconds: 120 });
  await bridgedCalls(10);
  for (const a of agents) await setState(svc.url, admin, a.id, 'not_ready').catch(() => undefined);
  const wait = runSipp({ scenario: callerScript([], 20_000), remote: '127.0.0.1:5060', service: '7401', callerNumber: queued, calls: 3, rate: 10, limit: 3, timeoutSeconds: 120 });
  await waitFor(async () => ((await getJson(svc.url, '/api/v1/queues/7401', admin)).body.waiting === 3 ? true : undefined), 20_000, '3 callers waiting');
  const killedAt = await restart('kill9');
  await waitFor(async () => ((await isLeader(standby)) ? true : undefined), 15_000, 'the standby leads');
  const tookMs = Date.now() - killedAt;
  t.ok(tookMs < 10_000, `the standby leads within 10 s of the kill (${tookMs} ms)`);
  svc = standby;
  admin = await login(svc.url);
  const resumed = await waitFor(async () => {
    const r = await sql<{ at: Date }>`select e.at from call_events e join calls c on c.id = e.call_id where c.caller = ${queued} and e.type = 'resumed'`.execute(db);
    return r.rows.length === 3 ? r.rows : undefined;
  }, 15_000, '3 waiting callers taken over');
  const worst = Math.max(...resumed.map((r) => r.at.getTime() - killedAt));
  t.ok(worst < 10_000, `each waiting caller taken over within 10 s of the kill (worst ${worst} ms)`);
  for (const a of agents.slice(10)) await setState(svc.url, admin, a.id, 'ready');
  const w = await wait;
  t.equal(w.succeeded, 3, 'the waiting callers were answered by agents after the take-over and hung up themselves');
  const c = await talk;
  t.equal(c.succeeded, 10, 'the 10 connected calls went on: the platform sent no BYE');
  await invariants(t, connected, 10);
  await invariants(t, queued, 3);
  const adopted = await sql<{ n: number }>`select count(distinct e.call_id)::int as n from call_events e join calls c on c.id = e.call_id where c.caller = ${connected} and e.type = 'adopted'`.execute(db);
  t.equal(adopted.rows[0]!.n, 10, 'the standby adopted each connected call');
});

t.test('G. SIGTERM of the leader with a standby: hand-over in place, no call dropped or handled twice, new calls answered throughout', async (t) => {
  for (const a of agents) await setState(svc.url, admin, a.id, 'ready').catch(() => undefined);
  const old = svc;
  const standby = await startStandby();
  const connected = `1393${tag}08`;
  const fresh = `1393${tag}09`;
  const talk = runSipp({ scenario: callerScript([], 25_000), remote: '127.0.0.1:5060', service: '7401', callerNumber: connected, calls: 8, rate: 10, limit: 8, timeoutSeconds: 120 });
  await bridgedCalls(8);
  // new callers keep arriving (one every 400 ms) while the leader hands over
  const arriving = runSipp({ scenario: callerScript([], 4_000), remote: '127.0.0.1:5060', service: '7401', callerNumber: fresh, calls: 15, rate: 2.5, limit: 10, timeoutSeconds: 120 });
  await new Promise((r) => setTimeout(r, 1500));
  const stoppedAt = Date.now();
  const stopped = old.stop();
  await waitFor(async () => ((await isLeader(standby)) ? true : undefined), 10_000, 'the standby leads');
  t.ok(Date.now() - stoppedAt < 5000, `hand-over within 5 s (${Date.now() - stoppedAt} ms)`);
  await stopped;
  t.equal(await old.exited, 0, 'the old leader exited cleanly');
  svc = standby;
  admin = await login(svc.url);
  const a = await arriving;
  t.equal(a.succeeded, 15, 'every caller arriving during the hand-over was answered and hung up itself');
  const c = await talk;
  t.equal(c.succeeded, 8, 'the connected calls went on through the hand-over');
  await invariants(t, connected, 8);
  // a recording the old leader was starting in the moment of the hand-over: the standby records the rest of the call
  // (adopted without a recording snoop) or the recordings sweep settles the row
  await invariants(t, fresh, 15);
  const fallbackOrAgent = await db.selectFrom('calls').select(['id', 'disposition', 'end_reason', 'arrived_at', 'answered_at', 'ended_at']).where('caller', '=', fresh).execute();
  const notAnswered = fallbackOrAgent.filter((r) => r.disposition !== 'answered');
  for (const r of notAnswered) {
    const events = await db.selectFrom('call_events').select(['at', 'type', 'data']).where('call_id', '=', r.id).orderBy('at').execute();
    t.comment(`not answered: ${JSON.stringify(r)} ${JSON.stringify(events.map((e) => [e.at.toISOString().slice(11), e.type, e.data]))}`);
  }
  t.same(notAnswered.map((r) => `${r.disposition}/${r.end_reason}`), [], 'each arriving caller was answered');
  const dup = await sql<{ n: number }>`select count(*)::int as n from (select e.call_id from call_events e join calls c on c.id = e.call_id where c.caller in (${connected}, ${fresh}) and e.type = 'ended' group by e.call_id having count(*) > 1) x`.execute(db);
  t.equal(dup.rows[0]!.n, 0, 'no call was ended twice (handled by both processes)');
  // an agent the old leader reserved (its phone rang) for a caller the standby took over is free again, not held
  // until that call ends: every call is over, so after the wrap-up (1 s) nobody is reserved or on a call
  const heldAgents = async () => {
    const states = await Promise.all(agents.map(async (a) => `${a.id}:${(await getJson(svc.url, `/api/v1/agents/${a.id}`, admin)).body.state?.state}`));
    return states.filter((s) => s.endsWith(':reserved') || s.endsWith(':on_call'));
  };
  const held = await waitFor(async () => ((await heldAgents()).length === 0 ? [] : undefined), 10_000, 'no agent held').catch(heldAgents);
  t.same(held, [], 'no agent is left reserved or on a call after the hand-over');
});

t.test('G2. hand-over while an agent\'s phone rings for a caller: the standby frees that agent at once, not when the call ends', async (t) => {
  // a phone that rings longer than the queue lets it (ringSeconds 10): the agent stays reserved until someone frees it
  const slow: TestAgent = { id: '1771', port: 5431, skills: [{ skill: 'kf', level: 5 }] };
  phones.push(...(await startPhones([slow], 'agent-answer', { ring_ms: '20000' }, 10, 300)));
  for (const a of agents) await setState(svc.url, admin, a.id, 'not_ready').catch(() => undefined);
  await createReadyAgent(svc.url, admin, slow);
  const standby = await startStandby();
  const caller = `1393${tag}12`;
  const call = runSipp({ scenario: callerScript([], 12_000), remote: '127.0.0.1:5060', service: '7401', callerNumber: caller, calls: 1, rate: 1, limit: 1, timeoutSeconds: 60 });
  await waitFor(async () => ((await getJson(svc.url, `/api/v1/agents/${slow.id}`, admin)).body.state?.state === 'reserved' ? true : undefined), 15_000, 'the slow agent reserved');
  const stoppedAt = new Date();
  await svc.stop();
  svc = standby;
  admin = await login(svc.url);
  const freed = await waitFor(async () => {
    const r = await db.selectFrom('agent_state_log').select(['at', 'from_state', 'to_state']).where('agent_id', '=', slow.id).where('actor', '=', 'system:takeover').where('at', '>', stoppedAt).execute();
    return r.length > 0 ? r : undefined;
  }, 10_000, 'the reserved agent freed').catch(() => []);
  t.ok(freed.length > 0 && freed[0]!.from_state === 'reserved' && freed[0]!.to_state === 'ready', `the standby put the agent the old leader reserved back to ready (${freed.length ? `${freed[0]!.at.getTime() - stoppedAt.getTime()} ms after the SIGTERM` : 'not done'})`);
  const r = await call;
  t.equal(r.succeeded + r.failed, 1, 'the caller\'s call ended');
  await setState(svc.url, admin, slow.id, 'logged_out').catch(() => undefined);
  await invariants(t, caller, 1);
});

t.test('H. SIGTERM with no standby: the calls it has may finish, new callers go to the dialplan fallback (not hung up)', async (t) => {
  for (const a of agents) await setState(svc.url, admin, a.id, 'ready').catch(() => undefined);
  await new Promise((r) => setTimeout(r, 6000)); // the fallback's ring group follows the ready agents within 5 s
  const connected = `1393${tag}10`;
  const fresh = `1393${tag}11`;
  // DRAIN_SECONDS is 2 in tests: the connected calls outlive the drain and stay up for the next process
  const talk = runSipp({ scenario: callerScript([], 12_000), remote: '127.0.0.1:5060', service: '7401', callerNumber: connected, calls: 3, rate: 10, limit: 3, timeoutSeconds: 120 });
  await bridgedCalls(3);
  const stopped = restart('stop');
  await new Promise((r) => setTimeout(r, 300));
  const r = await runSipp({ scenario: callerScript([], 6_000), remote: '127.0.0.1:5060', service: '7401', callerNumber: fresh, calls: 2, rate: 10, limit: 2, timeoutSeconds: 60 });
  await stopped;
  t.equal(r.succeeded, 2, 'the callers who arrived while it stopped were answered (by the fallback), none rejected');
  await startAgain();
  const c = await talk;
  t.equal(c.succeeded, 3, 'the connected calls went on');
  await invariants(t, connected, 3);
  await invariants(t, fresh, 2);
});
