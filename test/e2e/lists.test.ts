/**
 * Black and white lists on the real stack: a blacklisted caller is restricted and never queued; a
 * whitelisted caller is queued ahead of an earlier normal caller. (The lists API and bulk import come
 * with the supervisor issue; entries are written straight into PostgreSQL here.)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { runSipp } from '../sipp/sipp.js';
import { ariChannels, getJson, login, resetAri, startTestService, waitFor } from '../helpers/stack.js';
import { createReadyAgent, ivrDirWithDirectLines, setState, startPhones, writeQueuesFile, type TestAgent } from '../helpers/acd.js';
import { callerScript } from '../sipp/caller-script.js';

const queuesFile = writeQueuesFile(`
defaults: { ringSeconds: 10, wrapUpSeconds: 1, announceEverySeconds: 0, callbackOffer: null }
queues:
  general: { skill: general }
  en: { skill: en }
`);
await resetAri();
// the shipped IVR files, with line 12333 sending blacklisted callers to the blacklist queue (12345 keeps the default: restrict)
const ivrDir = ivrDirWithDirectLines([]);
const linesFile = path.join(ivrDir, 'lines.yaml');
writeFileSync(linesFile, readFileSync(linesFile, 'utf8').replace('flow: line-12333, queue: "12333" }', 'flow: line-12333, queue: "12333", blacklist: { queue: blacklist } }'));
const service = await startTestService(t, 'lists', { QUEUES_FILE: queuesFile, IVR_DIR: ivrDir, REPEAT_CALLER_DAYS: '0' });
const base = service.url;
const token = await login(base);
const tag = String(Date.now()).slice(-5);

async function recordOf(caller: string): Promise<any> {
  return waitFor(async () => {
    const r = await getJson(base, `/api/v1/calls?caller=${caller}&limit=1`, token);
    return r.body.items?.[0]?.endedAt ? r.body.items[0] : undefined;
  }, 15_000, `the record of ${caller}`);
}

const dial = (caller: string) =>
  runSipp({ scenario: 'caller-dtmf-wait-bye', remote: '127.0.0.1:5060', service: '12345', callerNumber: caller, vars: { digit: '1', bye_timeout_ms: '60000' }, timeoutSeconds: 80 });

t.test('given a blacklisted number, when it calls 12345, then it hears the notice, is hung up, and never reaches a queue', async (t) => {
  const caller = `1591${tag}01`;
  await service.db.insertInto('list_entries').values({ kind: 'black', number: caller, reason: 'harassing agents', treatment: 'restrict' }).execute();
  t.teardown(() => service.db.deleteFrom('list_entries').where('number', '=', caller).execute());
  const call = await dial(caller);
  t.equal(call.succeeded, 1, 'the hotline hung up after the notice');
  const rec = await recordOf(caller);
  t.equal(rec.disposition, 'restricted');
  t.equal(rec.queuedAt, null, 'never queued');
  t.same(rec.agents, []);
  t.match(rec.events.find((e: { type: string }) => e.type === 'list.black')?.data, { treatment: 'restrict' });
  t.same(await waitFor(async () => ((await ariChannels()).length === 0 ? [] : undefined), 5000, 'no channels'), []);
});

t.test('given a blacklisted number whose entry names no treatment, then each line treats it as configured: 12333 queues it apart, 12345 restricts it', async (t) => {
  const caller = `1593${tag}01`;
  await service.db.insertInto('list_entries').values({ kind: 'black', number: caller, reason: 'abusive calls', treatment: null }).execute();
  t.teardown(() => service.db.deleteFrom('list_entries').where('number', '=', caller).execute());
  const dialLine = (line: string) => runSipp({ scenario: callerScript([], 4000), remote: '127.0.0.1:5060', service: line, callerNumber: caller, timeoutSeconds: 60 });
  await dialLine('12333');
  const queued = await recordOf(caller);
  t.equal(queued.queue, 'blacklist', '12333: the blacklist queue');
  t.match(queued.events.find((e: { type: string }) => e.type === 'list.black')?.data, { treatment: 'queue', queue: 'blacklist' });
  t.equal(queued.events.filter((e: { type: string }) => e.type === 'ivr.started').length, 0, 'no menu');
  t.equal(queued.disposition, 'abandoned');
  const callbacks = await service.db.selectFrom('callbacks').select('id').where('number', '=', caller).execute();
  t.same(callbacks, [], 'a blacklisted caller who hangs up is not called back');
  await dialLine('12345');
  const restricted = await waitFor(async () => {
    const r = await getJson(base, `/api/v1/calls?caller=${caller}&limit=1`, token);
    const c = r.body.items?.[0];
    return c?.id !== queued.id && c?.endedAt ? c : undefined;
  }, 15_000, 'the second record');
  t.equal(restricted.disposition, 'restricted', '12345: restricted (the default)');
  t.equal(restricted.queuedAt, null);
});

t.test('given a whitelisted number, when it calls after a normal caller is already waiting, then it is answered first', async (t) => {
  const a: TestAgent = { id: '1701', port: 5171, skills: [{ skill: 'general', level: 5 }] };
  const [phone] = await startPhones([a], 'agent-answer-hangup', { ring_ms: '200', talk_ms: '1000' }, 2);
  await createReadyAgent(base, token, a);
  t.teardown(() => setState(base, token, a.id, 'logged_out').catch(() => undefined));
  await setState(base, token, a.id, 'not_ready', 'meeting');
  const normal = `1592${tag}01`;
  const vip = `1592${tag}02`;
  await service.db.insertInto('list_entries').values({ kind: 'white', number: vip, reason: 'emergency services liaison', treatment: 'priority' }).execute();
  t.teardown(() => service.db.deleteFrom('list_entries').where('number', '=', vip).execute());
  const normalCall = dial(normal);
  await new Promise((r) => setTimeout(r, 3000));
  const vipCall = dial(vip);
  await waitFor(async () => (await service.engine.waiting('general')).length === 2 || undefined, 15_000, 'both callers waiting');
  await setState(base, token, a.id, 'ready');
  const [n, v] = await Promise.all([normalCall, vipCall]);
  await phone!.stop();
  t.equal(n.succeeded + v.succeeded, 2, 'both answered in the end');
  const nr = await recordOf(normal);
  const vr = await recordOf(vip);
  t.ok(nr.queuedAt < vr.queuedAt, 'the normal caller queued first');
  t.ok(vr.answeredAt < nr.answeredAt, 'the whitelisted caller was answered first');
  t.match(vr.events.find((e: { type: string }) => e.type === 'list.white')?.data, { priority: 5 });
});
