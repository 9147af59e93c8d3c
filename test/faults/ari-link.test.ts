/**
 * Fault suite (npm run test:faults): the link to Asterisk.
 *  D. ARI traffic silently dropped (a proxy between the service and ARI blackholes every byte, as a
 *     firewall rule on port 8088 would): the service notices within 10 s (/readyz says ari down), and
 *     recovers by itself once traffic flows again; a call after that is answered.
 *  E. Asterisk restarted: the service reconnects by itself, pushes the agents' phones again, and a call
 *     after the restart is answered.
 */
import t, { type Test } from 'tap';
import { runSipp, type SippProcess } from '../sipp/sipp.js';
import { callerScript } from '../sipp/caller-script.js';
import { ARI, ariChannels, asteriskCtl, getJson, login, resetAri, waitFor } from '../helpers/stack.js';
import { createReadyAgent, ivrDirWithDirectLines, startPhones, writeQueuesFile, type TestAgent } from '../helpers/acd.js';
import { deploymentEnv, spawnService, type ServiceProcess } from '../helpers/service-process.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { createDb } from '../../src/db/db.js';

await resetAri();
const ariUrl = new URL(ARI.url);
const proxy = await startTcpProxy({ host: ariUrl.hostname, port: Number(ariUrl.port || 8088) });
const queuesFile = writeQueuesFile('defaults: { ringSeconds: 10, wrapUpSeconds: 1, announceEverySeconds: 0, callbackOffer: null }\nqueues:\n  "7402": { name: link faults, skill: lf }\n');
const env = await deploymentEnv({ QUEUES_FILE: queuesFile, IVR_DIR: ivrDirWithDirectLines(['7402']), REPEAT_CALLER_DAYS: '0', ARI_URL: `http://127.0.0.1:${proxy.port}`, LOG_LEVEL: 'info' });
const db = createDb(env.DATABASE_URL!);
const agent: TestAgent = { id: '1781', port: 5481, skills: [{ skill: 'lf', level: 5 }] };
const phones: SippProcess[] = await startPhones([agent], 'agent-answer', { ring_ms: '300' }, 50, 600);
const svc: ServiceProcess = await spawnService('ari-link', env);
const admin = await login(svc.url);
await createReadyAgent(svc.url, admin, agent);
t.teardown(async () => {
  proxy.blackhole(false);
  await svc.stop().catch(() => undefined);
  await Promise.all(phones.map((p) => p.stop().catch(() => undefined)));
  await proxy.close();
  await db.destroy();
});
const tag = String(Date.now()).slice(-5);
const ariUp = async () => (await getJson(svc.url, '/readyz')).body?.ari === true;

/** one call on 7402, answered by the agent, 3 s long; its record closed and answered */
async function callWorks(t: Test, caller: string): Promise<void> {
  await waitFor(async () => ((await getJson(svc.url, `/api/v1/agents/${agent.id}`, admin)).body.state?.state === 'ready' ? true : undefined), 20_000, 'the agent ready');
  const r = await runSipp({ scenario: callerScript([], 3000), remote: '127.0.0.1:5060', service: '7402', callerNumber: caller, timeoutSeconds: 40 });
  t.equal(r.succeeded, 1, 'the call went through');
  const rec = await waitFor(async () => {
    const row = await db.selectFrom('calls').select(['disposition', 'ended_at', 'agents']).where('caller', '=', caller).executeTakeFirst();
    return row?.ended_at ? row : undefined;
  }, 15_000, 'the call record');
  t.match(rec, { disposition: 'answered', agents: [agent.id] }, 'answered by the agent, on record');
}

t.test('D. ARI traffic silently dropped: noticed within 10 s, recovered when it flows again', async (t) => {
  t.ok(await ariUp(), 'connected through the proxy');
  const dropped = Date.now();
  proxy.blackhole(true);
  await waitFor(async () => ((await ariUp()) ? undefined : true), 15_000, '/readyz reporting ARI down');
  const noticed = Date.now() - dropped;
  t.ok(noticed <= 10_000, `the silent link was noticed in ${noticed} ms`);
  await new Promise((r) => setTimeout(r, 3000));
  proxy.blackhole(false);
  const back = Date.now();
  await waitFor(() => ariUp(), 40_000, 'ARI up again');
  t.pass(`reconnected ${Date.now() - back} ms after traffic flowed again`);
  await callWorks(t, `1394${tag}01`);
});

t.test('E. Asterisk restarted: the service reconnects by itself and calls work again', async (t) => {
  const stop = await asteriskCtl('stop');
  t.equal(stop.code, 0, 'Asterisk stopped');
  await waitFor(async () => ((await ariUp()) ? undefined : true), 15_000, 'ARI down seen');
  const start = await asteriskCtl('start');
  t.equal(start.code, 0, 'Asterisk started');
  await waitFor(() => ariUp(), 60_000, 'the service reconnected');
  // the agent's phone is pushed again (Asterisk's memory lost it): wait for its endpoint
  await waitFor(async () => ((await getJson(svc.url, `/api/v1/agents/${agent.id}`, admin)).body.provisioned === true ? true : undefined), 30_000, 'the phone provisioned again');
  await callWorks(t, `1394${tag}02`);
  t.same(await waitFor(async () => ((await ariChannels()).length === 0 ? [] : undefined), 10_000, 'no channels'), [], 'nothing left behind');
});
