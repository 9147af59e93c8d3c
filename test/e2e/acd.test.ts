/**
 * The ACD on the real stack: agents created through the API with SIPp desk phones, callers from SIPp,
 * routing decided in Redis, records in PostgreSQL, and Asterisk watched for double-booked phones.
 */
import t from 'tap';
import { runSipp } from '../sipp/sipp.js';
import { ariBridges, ariChannels, getJson, login, resetAri, startTestService, waitFor } from '../helpers/stack.js';
import { api, createReadyAgent, ivrDirWithDirectLines, setState, startPhones, writeQueuesFile, type TestAgent } from '../helpers/acd.js';

const queuesFile = writeQueuesFile(`
defaults: { ringSeconds: 6, wrapUpSeconds: 1, serviceLevelSeconds: 20, announceEverySeconds: 0, maxWait: { seconds: 300, action: callback } }
queues:
  general: { skill: general }
  en: { skill: en }
  "12333": { skill: "12333", overflow: { afterSeconds: 120, queue: general } }
  "7001": { name: overflow test, skill: nobody, overflow: { afterSeconds: 2, queue: general } }
  "7002": { name: max wait test, skill: nobody, announceEverySeconds: 3, maxWait: { seconds: 10, action: callback } }
  "7003": { name: in-queue callback test, skill: cbtest, callbackOffer: { afterSeconds: 2, key: "1" } }
`);

await resetAri();
const CITIZEN_PORT = 5162;
// 7001, 7002, 7003: lines of the test's own that go straight to the queue of that name
const service = await startTestService(t, 'acd', { QUEUES_FILE: queuesFile, IVR_DIR: ivrDirWithDirectLines(['7001', '7002', '7003']), CALLBACK_DIAL: `PJSIP/callers/sip:{number}@127.0.0.1:${CITIZEN_PORT}` });
const base = service.url;
const token = await login(base);
const runTag = String(Date.now()).slice(-5);

async function callsOf(prefix: string, since: Date): Promise<any[]> {
  const r = await getJson(base, `/api/v1/calls?from=${since.toISOString()}&limit=200`, token);
  return r.body.items.filter((c: { caller: string }) => c.caller.startsWith(prefix));
}

async function logOff(agents: TestAgent[]) {
  for (const a of agents) await api(base, token, 'PUT', `/api/v1/agents/${a.id}/state`, { state: 'logged_out' });
}

t.test('given 10 skilled agents, when 40 citizens call the main queue, English and 12333, then each is answered by an agent with the skill and no agent ever has two calls', async (t) => {
  const agents: TestAgent[] = [
    ...[1, 2, 3, 4, 5].map((n) => ({ id: `110${n}`, port: 5100 + n, skills: [{ skill: 'general', level: 5 }] })),
    { id: '1106', port: 5106, skills: [{ skill: 'general', level: 3 }, { skill: 'en', level: 2 }] },
    { id: '1107', port: 5107, skills: [{ skill: 'en', level: 6 }] },
    { id: '1108', port: 5108, skills: [{ skill: 'en', level: 4 }] },
    { id: '1109', port: 5109, skills: [{ skill: '12333', level: 5 }] },
    { id: '1110', port: 5110, skills: [{ skill: '12333', level: 7 }, { skill: 'general', level: 1 }] },
  ];
  const skillsOf = new Map(agents.map((a) => [a.id, a.skills.map((s) => s.skill)]));
  const phones = await startPhones(agents, 'agent-answer-hangup', { ring_ms: '200', talk_ms: '2000' });
  for (const a of agents) await createReadyAgent(base, token, a);
  t.teardown(() => logOff(agents));

  // watch Asterisk: an agent's phone must never carry two channels at once
  let worst = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const perAgent = new Map<string, number>();
      for (const c of await ariChannels().catch(() => [])) {
        const m = /^PJSIP\/agent(\d+)-/.exec(c.name);
        if (m) perAgent.set(m[1]!, (perAgent.get(m[1]!) ?? 0) + 1);
      }
      worst = Math.max(worst, ...perAgent.values(), 0);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  const since = new Date();
  const group = (prefix: string, service: string, digit: string, calls: number) =>
    runSipp({
      scenario: 'caller-dtmf-wait-bye',
      remote: '127.0.0.1:5060',
      service,
      callerNumber: `${prefix}[call_number]`,
      calls,
      rate: 5,
      vars: { digit, bye_timeout_ms: '90000' },
      timeoutSeconds: 150,
      label: `callers-${service}-${digit}`,
    });
  const [main, english, line12333] = await Promise.all([
    group(`131${runTag}`, '12345', '1', 20),
    group(`132${runTag}`, '12345', '9', 10),
    group(`133${runTag}`, '12333', '1', 10),
  ]);
  watching = false;
  await watcher;
  await Promise.all(phones.map((p) => p.stop()));

  t.equal(main.succeeded, 20, `main: 20 answered and ended by the agent (failed ${main.failed})`);
  t.equal(english.succeeded, 10, `English: 10 (failed ${english.failed})`);
  t.equal(line12333.succeeded, 10, `12333: 10 (failed ${line12333.failed})`);
  t.equal(worst, 1, `the watcher saw agents' channels, and never two on one phone at once (most seen: ${worst})`);

  const expectations: Array<[string, string, string]> = [
    [`131${runTag}`, 'general', 'general'],
    [`132${runTag}`, 'en', 'en'],
    [`133${runTag}`, '12333', '12333'],
  ];
  const allCalls: any[] = [];
  for (const [prefix, queue, skill] of expectations) {
    const calls = await waitFor(async () => {
      const c = await callsOf(prefix, since);
      return c.length >= 10 && c.every((x) => x.endedAt) ? c : undefined;
    }, 20_000, `records of ${queue}`);
    allCalls.push(...calls);
    t.ok(calls.every((c) => c.disposition === 'answered'), `${queue}: every call answered`);
    t.ok(calls.every((c) => c.queue === queue), `${queue}: every call in queue ${queue}`);
    const wrong = calls.filter((c) => !c.agents.every((a: string) => skillsOf.get(a)?.includes(skill)));
    t.same(wrong.map((c) => c.agents), [], `${queue}: answered only by agents with skill ${skill}`);
    // first come, first served: offered in the order they queued
    const byQueued = [...calls].sort((a, b) => a.queuedAt.localeCompare(b.queuedAt));
    const offered = byQueued.map((c) => c.events.find((e: { type: string }) => e.type === 'agent.offered').at);
    t.same(offered, [...offered].sort(), `${queue}: offered in the order the calls queued`);
  }

  // from the records: one agent's conversations never overlap
  const byAgent = new Map<string, Array<[string, string]>>();
  for (const c of allCalls) for (const a of c.agents) byAgent.set(a, [...(byAgent.get(a) ?? []), [c.answeredAt, c.endedAt]]);
  let overlaps = 0;
  for (const spans of byAgent.values()) {
    spans.sort((x, y) => x[0].localeCompare(y[0]));
    for (let i = 1; i < spans.length; i++) if (spans[i]![0] < spans[i - 1]![1]) overlaps++;
  }
  t.equal(overlaps, 0, 'no agent talked on two calls at once (records)');

  // from the agent state log: an agent is reserved only from ready
  const log = await service.db.selectFrom('agent_state_log').selectAll().where('at', '>=', since).where('to_state', '=', 'reserved').execute();
  t.ok(log.length >= 40, `${log.length} reservations logged`);
  t.same(log.filter((r) => r.from_state !== 'ready').map((r) => `${r.agent_id}:${r.from_state}`), [], 'every reservation came from ready');

  t.same(await waitFor(async () => ((await ariChannels()).length === 0 ? [] : undefined), 10_000, 'no channels'), [], 'no channel left');
  t.same(await ariBridges(), [], 'no bridge left');
});

t.test('given an agent who never answers, when a call comes, then that agent goes not ready and the next agent answers', async (t) => {
  const deaf: TestAgent = { id: '1201', port: 5121, skills: [{ skill: 'general', level: 9 }] };
  const good: TestAgent = { id: '1202', port: 5122, skills: [{ skill: 'general', level: 1 }] };
  const [deafPhone] = await startPhones([deaf], 'agent-ring-no-answer', {}, 1);
  const [goodPhone] = await startPhones([good], 'agent-answer-hangup', { ring_ms: '200', talk_ms: '1500' }, 1);
  await createReadyAgent(base, token, deaf); // the higher level: offered first
  await createReadyAgent(base, token, good);
  t.teardown(() => logOff([deaf, good]));

  const caller = `134${runTag}01`;
  const call = await runSipp({ scenario: 'caller-dtmf-wait-bye', remote: '127.0.0.1:5060', service: '12345', callerNumber: caller, vars: { digit: '1', bye_timeout_ms: '40000' }, timeoutSeconds: 60 });
  await deafPhone!.stop();
  await goodPhone!.stop();
  t.equal(call.succeeded, 1, 'the caller was answered and the call ended cleanly');

  const [rec] = await waitFor(async () => {
    const c = await callsOf(caller, new Date(Date.now() - 120_000));
    return c[0]?.endedAt ? c : undefined;
  }, 15_000, 'the record');
  t.equal(rec.disposition, 'answered');
  t.same(rec.agents, ['1202'], 'the next agent answered');
  const noAnswer = rec.events.find((e: { type: string }) => e.type === 'agent.no_answer');
  t.match(noAnswer?.data, { agentId: '1201' }, 'the first agent was offered and did not answer');
  const deafNow = await getJson(base, `/api/v1/agents/1201`, token);
  t.match(deafNow.body, { state: { state: 'not_ready', reason: 'ring-no-answer' } }, 'the agent who did not answer is not ready, and why');
});

t.test('given a queue nobody staffs, when its overflow time passes, then the call moves to general and is answered there', async (t) => {
  const a: TestAgent = { id: '1301', port: 5131, skills: [{ skill: 'general', level: 5 }] };
  const [phone] = await startPhones([a], 'agent-answer-hangup', { ring_ms: '200', talk_ms: '1500' }, 1);
  await createReadyAgent(base, token, a);
  t.teardown(() => logOff([a]));
  const caller = `135${runTag}01`;
  const call = await runSipp({ scenario: 'caller-dtmf-wait-bye', remote: '127.0.0.1:5060', service: '7001', callerNumber: caller, vars: { digit: '1', bye_timeout_ms: '40000' }, timeoutSeconds: 60 });
  await phone!.stop();
  t.equal(call.succeeded, 1);
  const [rec] = await waitFor(async () => {
    const c = await callsOf(caller, new Date(Date.now() - 120_000));
    return c[0]?.endedAt ? c : undefined;
  }, 15_000, 'the record');
  t.equal(rec.disposition, 'answered');
  t.equal(rec.queue, 'general', 'the record names the queue that answered');
  t.match(rec.events.find((e: { type: string }) => e.type === 'queue.overflow')?.data, { from: '7001', to: 'general', priority: 1 });
  t.same(rec.agents, ['1301']);
});

t.test('given a queue nobody staffs, when the max wait passes, then the caller is told a callback is registered and one is pending', async (t) => {
  const caller = `136${runTag}01`;
  const call = await runSipp({ scenario: 'caller-dtmf-wait-bye', remote: '127.0.0.1:5060', service: '7002', callerNumber: caller, vars: { digit: '1', bye_timeout_ms: '40000' }, timeoutSeconds: 60 });
  t.equal(call.succeeded, 1, 'the hotline hung up after the message');
  const [rec] = await waitFor(async () => {
    const c = await callsOf(caller, new Date(Date.now() - 120_000));
    return c[0]?.endedAt ? c : undefined;
  }, 15_000, 'the record');
  t.equal(rec.disposition, 'callback_requested');
  t.ok(rec.events.some((e: { type: string }) => e.type === 'queue.max_wait'));
  const announced = rec.events.filter((e: { type: string }) => e.type === 'queue.announcement');
  t.ok(announced.length >= 1, `the estimated wait was announced (${announced.length} times)`);
  t.match(announced[0]?.data, { position: 1, staffed: 0, prompt: 'ewt-long' }, 'honest: nobody staffs the queue, so no short promise');
  const cb = await service.db.selectFrom('callbacks').selectAll().where('number', '=', caller).execute();
  t.equal(cb.length, 1);
  t.match(cb[0], { status: 'pending', reason: 'max_wait', queue: '7002' });
  const listed = await getJson(base, '/api/v1/callbacks?status=pending&limit=500', token);
  t.ok(listed.body.items.some((c: { number: string; reason: string }) => c.number === caller && c.reason === 'max_wait'), 'supervisors see it in the callbacks list');
});

t.test('given a citizen who called before, when it calls again, then the agent who answered last time is offered the call first', async (t) => {
  const usual: TestAgent = { id: '1401', port: 5141, skills: [{ skill: 'general', level: 1 }] };
  const other: TestAgent = { id: '1402', port: 5142, skills: [{ skill: 'general', level: 9 }] };
  const phones = await startPhones([usual, other], 'agent-answer-hangup', { ring_ms: '200', talk_ms: '1000' }, 2);
  await createReadyAgent(base, token, usual);
  t.teardown(() => logOff([usual, other]));
  const caller = `137${runTag}01`;
  const first = await runSipp({ scenario: 'caller-dtmf-wait-bye', remote: '127.0.0.1:5060', service: '12345', callerNumber: caller, vars: { digit: '1', bye_timeout_ms: '30000' }, timeoutSeconds: 45 });
  t.equal(first.succeeded, 1, 'first call answered by the only ready agent');
  // now a better agent is ready too, and has been idle longer than the usual one will be
  await createReadyAgent(base, token, other);
  await waitFor(async () => (await service.engine.getAgent('1401'))?.state === 'ready' || undefined, 10_000, 'agent 1401 back from wrap-up');
  const again = await runSipp({ scenario: 'caller-dtmf-wait-bye', remote: '127.0.0.1:5060', service: '12345', callerNumber: caller, vars: { digit: '1', bye_timeout_ms: '30000' }, timeoutSeconds: 45 });
  await Promise.all(phones.map((p) => p.stop()));
  t.equal(again.succeeded, 1);
  const recs = await waitFor(async () => {
    const c = await callsOf(caller, new Date(Date.now() - 300_000));
    return c.length === 2 && c.every((x) => x.endedAt) ? c : undefined;
  }, 15_000, 'both records');
  t.same(recs.map((r) => r.agents), [['1401'], ['1401']], 'both calls went to the same agent, although a higher-level agent was ready');
});
t.test('given a normal caller already waiting, when an overflowed (priority) caller arrives later, then the priority caller is answered first', async (t) => {
  const a: TestAgent = { id: '1501', port: 5151, skills: [{ skill: 'general', level: 5 }] };
  const [phone] = await startPhones([a], 'agent-answer-hangup', { ring_ms: '200', talk_ms: '1000' }, 3);
  await createReadyAgent(base, token, a);
  t.teardown(() => logOff([a]));
  await setState(base, token, a.id, 'not_ready', 'meeting'); // nobody free while the line forms
  const normal = `138${runTag}01`;
  const vip = `138${runTag}02`;
  const dial = (caller: string, service: string) =>
    runSipp({ scenario: 'caller-dtmf-wait-bye', remote: '127.0.0.1:5060', service, callerNumber: caller, vars: { digit: '1', bye_timeout_ms: '60000' }, timeoutSeconds: 80 });
  const normalCall = dial(normal, '12345');
  await new Promise((r) => setTimeout(r, 3000)); // the normal caller is in general first
  const vipCall = dial(vip, '7001'); // reaches general by overflow after 2 s, with priority 1
  const since = new Date(Date.now() - 120_000);
  await waitFor(async () => (await callsOf(vip, since))[0]?.events.some((e: { type: string }) => e.type === 'queue.overflow') || undefined, 20_000, 'the overflow');
  await setState(base, token, a.id, 'ready');
  const [n, v] = await Promise.all([normalCall, vipCall]);
  await phone!.stop();
  t.equal(n.succeeded + v.succeeded, 2, 'both answered in the end');
  const [nr] = await callsOf(normal, since);
  const [vr] = await callsOf(vip, since);
  t.ok(nr.queuedAt < vr.queuedAt, 'the normal caller queued first');
  t.ok(vr.answeredAt < nr.answeredAt, `the priority caller was answered first (${vr.answeredAt} < ${nr.answeredAt})`);
});

t.test('given a long wait, when the caller presses 1 after the callback offer, then it hangs up and is called back through an agent when its turn comes', async (t) => {
  const a: TestAgent = { id: '1601', port: 5161, skills: [{ skill: 'cbtest', level: 5 }] };
  const [agentPhone] = await startPhones([a], 'agent-answer-hangup', { ring_ms: '300', talk_ms: '2000' }, 1);
  await createReadyAgent(base, token, a);
  t.teardown(() => logOff([a]));
  await setState(base, token, a.id, 'not_ready', 'meeting'); // nobody free: the caller waits
  const caller = `139${runTag}01`;
  // the key comes 5 s after the answer, while (or after) the offer made at 2 s is played
  const waiting = await runSipp({ scenario: 'caller-dtmf-wait-bye', remote: '127.0.0.1:5060', service: '7003', callerNumber: caller, vars: { digit: '1', welcome_ms: '5000', bye_timeout_ms: '40000' }, timeoutSeconds: 60 });
  t.equal(waiting.succeeded, 1, 'the hotline confirmed and hung up');
  const since = new Date(Date.now() - 120_000);
  const [first] = await waitFor(async () => ((await callsOf(caller, since))[0]?.endedAt ? callsOf(caller, since) : undefined), 10_000, 'the first record');
  t.equal(first.disposition, 'callback_requested');
  t.ok(first.events.some((e: { type: string }) => e.type === 'queue.callback_offered'), 'the offer was made');
  t.match(first.events.find((e: { type: string }) => e.type === 'queue.callback_accepted')?.data, { keptPlace: true });
  const pending = await service.db.selectFrom('callbacks').selectAll().where('number', '=', caller).executeTakeFirstOrThrow();
  t.match(pending, { reason: 'in_queue', status: 'pending', queue: '7003' });
  t.equal((await service.engine.waiting('7003')).map((w) => w.callId).join(), `callback-${pending.id}`, 'a stand-in keeps the place in line');

  // the citizen's phone for the callback, then the agent becomes free
  const { startSipp } = await import('../sipp/sipp.js');
  const citizenPhone = await startSipp({ scenario: 'agent-answer', localPort: CITIZEN_PORT, calls: 1, vars: { ring_ms: '500' }, label: 'citizen' });
  await setState(base, token, a.id, 'ready');
  const done = await waitFor(async () => {
    const row = await service.db.selectFrom('callbacks').selectAll().where('id', '=', pending.id).executeTakeFirstOrThrow();
    return row.status === 'done' || row.status === 'failed' ? row : undefined;
  }, 40_000, 'the callback to finish');
  const citizen = await citizenPhone.stop();
  await agentPhone!.stop();
  t.equal(done.status, 'done', 'the callback reached the citizen');
  t.equal(citizen.succeeded, 1, "the citizen's phone rang, answered, and the call ended cleanly");
  const out = (await callsOf(caller, since)).find((c) => c.direction === 'outbound');
  t.match(out, { direction: 'outbound', disposition: 'answered', agents: ['1601'] }, 'recorded as an outbound call answered through the agent');
  const types = out.events.map((e: { type: string }) => e.type);
  t.ok(types.indexOf('agent.answered') < types.indexOf('callback.dialled'), 'the agent answered before the citizen was dialled');
  t.same(await waitFor(async () => ((await ariChannels()).length === 0 ? [] : undefined), 10_000, 'no channels'), [], 'nothing left in Asterisk');
});

t.test('queue live numbers', async (t) => {
  const r = await getJson(base, '/api/v1/queues', token);
  t.equal(r.status, 200);
  const general = r.body.find((q: { name: string }) => q.name === 'general');
  t.ok(general.answeredToday >= 20, `general answered today: ${general.answeredToday}`);
  t.match(general, { waiting: 0, longestWaitSeconds: 0, serviceLevelSeconds: 20 });
  t.equal((await getJson(base, '/api/v1/queues/nope', token)).status, 404);
});
