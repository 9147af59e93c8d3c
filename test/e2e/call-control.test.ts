/**
 * Call control on the real stack: a SIPp caller, SIPp agent phones, Asterisk 22 and the service. Each
 * action is checked in Asterisk through ARI (who is in which bridge) and in the call's event timeline.
 * Line 7101 of the test's own goes straight to queue 7101 (skill `cc`), which only the test's agents serve.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { WebSocket } from 'ws';
import { runSipp, startSipp, type SippProcess } from '../sipp/sipp.js';
import { callerScript, type ScriptStep } from '../sipp/caller-script.js';
import { ariBridges, ariChannels, getJson, login, resetAri, startTestService, waitFor } from '../helpers/stack.js';
import { api, createReadyAgent, ivrDirWithDirectLines, setState, startPhones, writeQueuesFile, type TestAgent } from '../helpers/acd.js';

await resetAri();
const queuesFile = writeQueuesFile('defaults: { ringSeconds: 8, wrapUpSeconds: 1, announceEverySeconds: 0, callbackOffer: null }\nqueues:\n  "7101": { name: call control test, skill: cc }\n  "7102": { name: second desk, skill: other }\n');
const ivrDir = ivrDirWithDirectLines(['7101']);
// a flow an agent sends the caller through in the middle of a call (to key in a ticket number)
writeFileSync(
  path.join(ivrDir, 'ivr/ticket-check.yaml'),
  'start: ask\nnodes:\n  ask: { kind: collect, prompt: enter-ticket, minDigits: 6, maxDigits: 6, variable: ticketNo, next: ok, noInput: ok }\n  ok: { kind: hangup, prompt: ticket-received }\n',
);
const service = await startTestService(t, 'call-control', { QUEUES_FILE: queuesFile, IVR_DIR: ivrDir, REPEAT_CALLER_DAYS: '0' });
const base = service.url;
const admin = await login(base);
const A: TestAgent = { id: '1701', port: 5171, skills: [{ skill: 'cc', level: 5 }] };
const B: TestAgent = { id: '1702', port: 5172, skills: [{ skill: 'other', level: 5 }] };
const C: TestAgent = { id: '1703', port: 5173, skills: [{ skill: 'other', level: 5 }] };
const phones: SippProcess[] = await startPhones([A, B, C], 'agent-answer', { ring_ms: '300' }, 20);
for (const a of [A, B, C]) await createReadyAgent(base, admin, a);
const tokenOf = async (a: TestAgent) => {
  const r = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: a.id, password: `pw-${a.id}-secret` }) });
  return ((await r.json()) as { token: string }).token;
};
const tokens = { A: await tokenOf(A), B: await tokenOf(B), C: await tokenOf(C) };
t.teardown(async () => {
  for (const a of [A, B, C]) await setState(base, admin, a.id, 'logged_out').catch(() => undefined);
  await Promise.all(phones.map((p) => p.stop().catch(() => undefined)));
});

const tag = String(Date.now()).slice(-5);
let n = 0;
const post = (p: string, token: string, body?: unknown) => api(base, token, 'POST', p, body);
const stateOf = async (id: string) => (await getJson(base, `/api/v1/agents/${id}`, admin)).body.state?.state;
const bridge = async (id: string) => (await ariBridges()).find((b) => b.id === id)?.channels ?? [];
const events = (rec: any, type: string) => rec.events.filter((e: { type: string }) => e.type === type).map((e: { data: any }) => e.data);

/** every test agent ready; a call a failed test left behind is hung up first, so one failure does not cascade */
async function agentsFree(): Promise<void> {
  if ((await Promise.all([A, B, C].map((a) => stateOf(a.id)))).some((st) => st === 'on_call' || st === 'reserved')) {
    await resetAri();
    await waitFor(async () => ((await Promise.all([A, B, C].map((a) => stateOf(a.id)))).every((st) => st !== 'on_call' && st !== 'reserved') ? true : undefined), 10_000, 'agents released');
  }
  for (const a of [A, B, C]) if ((await stateOf(a.id)) !== 'ready') await setState(base, admin, a.id, 'ready');
}

/** a caller on 7101 talking to agent A; resolves once A is bridged with the caller */
async function connectedCall(steps: ScriptStep[] = [], holdMs = 30_000, caller = `1371${tag}${String(++n).padStart(2, '0')}`) {
  await agentsFree();
  const done = runSipp({ scenario: callerScript(steps, holdMs), remote: '127.0.0.1:5060', service: '7101', callerNumber: caller, timeoutSeconds: 90 });
  // this call's record: the caller may have called before
  const call = await waitFor(async () => (await getJson(base, `/api/v1/calls?caller=${caller}&limit=5`, admin)).body.items?.find((c: { endedAt: string | null }) => !c.endedAt), 10_000, 'the call record');
  await waitFor(async () => ((await bridge(`call-${call.id}`)).length === 2 ? true : undefined), 15_000, 'caller and agent A bridged');
  const record = () => endedRecord(call.id, 40_000);
  return { id: call.id as string, caller, done, record };
}

/** the call's record once it has ended */
const endedRecord = (id: string, ms: number) =>
  waitFor(async () => {
    const r = (await getJson(base, `/api/v1/calls/${id}`, admin)).body;
    return r.endedAt ? r : undefined;
  }, ms, 'the call record completed');

/** A ends its break and takes the caller waiting on this call, then hangs up: the call's ended record */
async function resumeAndTake(t: Test, callId: string) {
  t.equal((await api(base, tokens.A, 'DELETE', `/api/v1/agents/${A.id}/break`)).status, 200);
  await waitFor(async () => ((await bridge(`call-${callId}`)).length === 2 ? true : undefined), 10_000, 'A takes the waiting caller');
  await post(`/api/v1/calls/${callId}/hangup`, tokens.A);
  return endedRecord(callId, 10_000);
}

t.test("screen pop: the agent's desktop hears of the call before the phone is answered, with the caller's history", async (t) => {
  const caller = `1372${tag}01`;
  const first = await connectedCall([], 30_000, caller);
  await post(`/api/v1/calls/${first.id}/hangup`, tokens.A);
  await first.record();
  await first.done;
  const ws = new WebSocket(`${base.replace('http', 'ws')}/api/v1/events?token=${tokens.A}`);
  const pops: Array<{ at: number; msg: any }> = [];
  const all: any[] = [];
  ws.on('message', (m) => {
    const msg = JSON.parse(String(m));
    all.push(msg);
    if (msg.type === 'call.offered') pops.push({ at: Date.now(), msg });
  });
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  t.teardown(() => ws.close());
  const second = await connectedCall([], 30_000, caller);
  const answered = await waitFor(async () => (await getJson(base, `/api/v1/calls/${second.id}`, admin)).body.events.find((e: { type: string }) => e.type === 'agent.answered'), 5000, 'agent.answered on the timeline');
  const answeredAt = Date.parse(answered.at);
  const pop = pops.find((p) => p.msg.data.callId === second.id);
  t.ok(pop, 'a call.offered message reached agent A');
  t.ok(pop!.at <= answeredAt, 'before the agent answered its ringing phone');
  t.match(pop!.msg.data, { caller, line: '7101', queue: '7101', ivrPath: ['q'] });
  t.ok(pop!.msg.data.history.some((h: { callId: string }) => h.callId === first.id), 'the earlier call is in the history');
  t.match(pop!.msg.data.links, { call: `/api/v1/calls/${second.id}` });
  await post(`/api/v1/calls/${second.id}/hangup`, tokens.A);
  await second.record();
  await second.done;
  const ended = await waitFor(() => all.find((m) => m.type === 'call.ended' && m.data.callId === second.id), 5000, 'call.ended on the socket');
  t.match(ended.data, { callId: second.id, disposition: 'answered', by: 'agent' }, 'the desktop hears the call end');
});

t.test('hold and resume: the caller waits apart with music, then is back with the agent', async (t) => {
  const c = await connectedCall();
  const main = `call-${c.id}`;
  const before = await bridge(main);
  const r = await post(`/api/v1/calls/${c.id}/hold`, tokens.A);
  t.equal(r.status, 200, JSON.stringify(r.body));
  const held = await bridge(`hold-${c.id}`);
  t.equal(held.length, 1, 'the caller alone in the hold bridge');
  t.equal((await bridge(main)).length, 1, 'the agent alone in the call bridge: they cannot hear each other');
  t.equal((await post(`/api/v1/calls/${c.id}/hold`, tokens.A)).status, 409, 'holding twice is refused');
  t.equal((await post(`/api/v1/calls/${c.id}/resume`, tokens.A)).status, 200);
  t.same((await bridge(main)).sort(), before.sort(), 'both back in the call bridge');
  t.same(await bridge(`hold-${c.id}`), []);
  await post(`/api/v1/calls/${c.id}/hangup`, tokens.A);
  const rec = await c.record();
  t.ok(events(rec, 'call.hold').length === 1 && events(rec, 'call.resume').length === 1, 'hold and resume on the timeline');
  t.match(events(rec, 'agent.hangup')[0], { by: A.id }, 'the agent hang-up is recorded as such');
  t.equal(rec.events.at(-1).data.by, 'agent');
  await c.done;
});

t.test('blind transfer to another agent: A is released, B talks to the caller', async (t) => {
  const c = await connectedCall();
  const r = await post(`/api/v1/calls/${c.id}/transfer`, tokens.A, { target: { agent: B.id } });
  t.equal(r.status, 200, JSON.stringify(r.body));
  await waitFor(async () => ((await stateOf(B.id)) === 'on_call' ? true : undefined), 15_000, 'B on the call');
  const members = await bridge(`call-${c.id}`);
  t.equal(members.length, 2, 'caller and B in the call bridge');
  t.ok(members.some((m) => m.endsWith('-agent-2')), "B's leg is the second agent leg");
  t.not(await stateOf(A.id), 'on_call', 'A is off the call');
  await post(`/api/v1/calls/${c.id}/hangup`, tokens.B);
  const rec = await c.record();
  t.same(rec.agents, [A.id, B.id], 'both agents took part');
  t.match(events(rec, 'transfer')[0], { mode: 'blind', target: { agent: B.id } });
  await c.done;
  const recs = await waitFor(async () => {
    const items = (await getJson(base, `/api/v1/recordings?caller=${c.caller}`, admin)).body.items?.filter((x: any) => x.callId === c.id);
    return items?.length && items.every((x: any) => x.status === 'saved') ? items : undefined;
  }, 10_000, 'the recording of the transferred call');
  t.equal(recs.length, 1, 'one recording for the whole call, through the transfer');
  t.same(recs[0].agents, [A.id, B.id]);
});

t.test('blind transfer to a queue: A is released, the caller waits in the new queue and an agent of that queue answers', async (t) => {
  const c = await connectedCall();
  t.equal((await post(`/api/v1/calls/${c.id}/transfer`, tokens.A, { target: { queue: '7102' } })).status, 200);
  // B and C both have the skill of 7102: the longest idle of them answers
  const taker = await waitFor(async () => ((await stateOf(B.id)) === 'on_call' ? B : (await stateOf(C.id)) === 'on_call' ? C : undefined), 15_000, 'an agent of 7102 answers');
  t.equal((await bridge(`call-${c.id}`)).length, 2);
  await post(`/api/v1/calls/${c.id}/hangup`, taker === B ? tokens.B : tokens.C);
  const rec = await c.record();
  t.equal(rec.queue, '7102', 'the record names the queue the call ended in');
  t.same(rec.agents, [A.id, taker.id]);
  t.match(events(rec, 'queued').at(-1), { queue: '7102' });
  await c.done;
});

t.test('blind transfer to an outside number, and a conference with an outside expert', async (t) => {
  // the outside world answers on 127.0.0.1:5099 (CALLBACK_DIAL's trunk)
  const outside = await startSipp({ scenario: 'agent-answer', localPort: 5099, calls: 2, vars: { ring_ms: '300' } });
  t.teardown(() => outside.stop().catch(() => undefined));
  const expert = await connectedCall();
  const r = await post(`/api/v1/calls/${expert.id}/conference`, tokens.A, { target: { number: '0898-6666 0001' } });
  t.equal(r.status, 200, JSON.stringify(r.body));
  t.equal((await bridge(`call-${expert.id}`)).length, 3, 'caller, agent and expert in one bridge');
  await post(`/api/v1/calls/${expert.id}/hangup`, tokens.A);
  const er = await expert.record();
  t.match(events(er, 'conference.joined')[0], { target: { number: '089866660001' }, agentId: null });
  await expert.done;

  const out = await connectedCall([], 8000);
  t.equal((await post(`/api/v1/calls/${out.id}/transfer`, tokens.A, { target: { number: '13900001234' } })).status, 200);
  await waitFor(async () => {
    const rec = (await getJson(base, `/api/v1/calls/${out.id}`, admin)).body;
    return events(rec, 'ivr.transfer_answered').length ? true : undefined;
  }, 15_000, 'the outside number answered');
  t.equal((await bridge(`call-${out.id}`)).length, 2, 'caller and the outside party');
  t.not(await stateOf(A.id), 'on_call', 'A released');
  const rec = await out.record(); // the caller hangs up 8 s after it called; the outside leg goes with it
  t.match(events(rec, 'ivr.transfer')[0], { number: '13900001234' });
  t.equal(rec.disposition, 'answered');
  await out.done;
});

t.test('an agent on an approved break is offered no call; back from the break it takes the waiting caller', async (t) => {
  await agentsFree();
  const req = await post(`/api/v1/agents/${A.id}/breaks`, tokens.A, { reason: 'rest', minutes: 10 });
  t.equal(req.status, 201, JSON.stringify(req.body));
  t.equal((await post(`/api/v1/breaks/${req.body.id}/approve`, admin)).status, 200);
  t.equal(await stateOf(A.id), 'on_break');
  const caller = `1373${tag}01`;
  const done = runSipp({ scenario: callerScript([], 12_000), remote: '127.0.0.1:5060', service: '7101', callerNumber: caller, timeoutSeconds: 60 });
  const call = await waitFor(async () => (await getJson(base, `/api/v1/calls?caller=${caller}&limit=1`, admin)).body.items?.[0], 10_000, 'the call record');
  await new Promise((r) => setTimeout(r, 3000));
  let rec = (await getJson(base, `/api/v1/calls/${call.id}`, admin)).body;
  t.equal(events(rec, 'agent.offered').length, 0, 'no offer to the agent on break');
  t.equal(await stateOf(A.id), 'on_break');
  rec = await resumeAndTake(t, call.id);
  t.same(rec.agents, [A.id]);
  await done;
});

t.test('a break approved during a call starts as the call ends: the agent goes on break, and the caller waiting is not offered to it', async (t) => {
  const first = await connectedCall();
  const brk = await post(`/api/v1/agents/${A.id}/breaks`, tokens.A, { reason: 'tea', minutes: 10 });
  t.equal(brk.status, 201, JSON.stringify(brk.body));
  const approved = await post(`/api/v1/breaks/${brk.body.id}/approve`, admin);
  t.match(approved.body, { status: 'approved', startedAt: null }, 'waits for the call');
  t.equal(await stateOf(A.id), 'on_call', 'the call is not disturbed');
  // a second caller waits for A while A talks
  const caller = `1374${tag}01`;
  const done = runSipp({ scenario: callerScript([], 15_000), remote: '127.0.0.1:5060', service: '7101', callerNumber: caller, timeoutSeconds: 60 });
  const second = await waitFor(async () => (await getJson(base, `/api/v1/calls?caller=${caller}&limit=1`, admin)).body.items?.[0], 10_000, 'the second call record');
  await post(`/api/v1/calls/${first.id}/hangup`, tokens.A);
  await first.record();
  await waitFor(async () => ((await stateOf(A.id)) === 'on_break' ? true : undefined), 10_000, 'A on break once released');
  await waitFor(async () => ((await getJson(base, `/api/v1/breaks?agentId=${A.id}&status=active`, admin)).body.items?.some((b: { id: string }) => b.id === brk.body.id) ? true : undefined), 5000, 'the break active');
  await new Promise((r) => setTimeout(r, 2000));
  let rec = (await getJson(base, `/api/v1/calls/${second.id}`, admin)).body;
  t.equal(events(rec, 'agent.offered').length, 0, 'the waiting caller was not offered to A on its way to the break');
  rec = await resumeAndTake(t, second.id);
  t.same(rec.agents, [A.id]);
  await Promise.all([first.done, done]);
});

t.test('attended transfer, completed: A consults B while the caller holds, then B takes the caller', async (t) => {
  const c = await connectedCall();
  const r = await post(`/api/v1/calls/${c.id}/transfer`, tokens.A, { target: { agent: B.id }, mode: 'attended' });
  t.equal(r.status, 200, JSON.stringify(r.body));
  t.equal((await bridge(`consult-${c.id}`)).length, 2, 'A and B in the consultation bridge');
  t.equal((await bridge(`hold-${c.id}`)).length, 1, 'the caller on hold meanwhile');
  t.equal((await post(`/api/v1/calls/${c.id}/transfer/complete`, tokens.A)).status, 200);
  const members = await bridge(`call-${c.id}`);
  t.equal(members.length, 2, 'caller and B together');
  t.same(await bridge(`consult-${c.id}`), [], 'consultation bridge gone');
  await waitFor(async () => ((await stateOf(A.id)) !== 'on_call' ? true : undefined), 5000, 'A released');
  await post(`/api/v1/calls/${c.id}/hangup`, tokens.B);
  const rec = await c.record();
  t.same(rec.agents, [A.id, B.id]);
  t.match(events(rec, 'transfer.completed')[0], { from: A.id, to: B.id });
  await c.done;
});

t.test('attended transfer, cancelled: B is hung up and ready again, A has the caller back', async (t) => {
  const c = await connectedCall();
  t.equal((await post(`/api/v1/calls/${c.id}/transfer`, tokens.A, { target: { agent: B.id }, mode: 'attended' })).status, 200);
  t.equal((await post(`/api/v1/calls/${c.id}/transfer/cancel`, tokens.A)).status, 200);
  t.equal((await bridge(`call-${c.id}`)).length, 2, 'caller and A together again');
  await waitFor(async () => (['ready', 'wrap_up'].includes(await stateOf(B.id)) ? true : undefined), 5000, 'B free again');
  t.equal(await stateOf(A.id), 'on_call');
  t.equal((await post(`/api/v1/calls/${c.id}/transfer/complete`, tokens.A)).status, 409, 'nothing to complete any more');
  await post(`/api/v1/calls/${c.id}/hangup`, tokens.A);
  const rec = await c.record();
  t.equal(events(rec, 'transfer.cancelled').length, 1);
  await c.done;
});

t.test('three-way conference: caller, A and C in one bridge', async (t) => {
  const c = await connectedCall();
  const r = await post(`/api/v1/calls/${c.id}/conference`, tokens.A, { target: { agent: C.id } });
  t.equal(r.status, 200, JSON.stringify(r.body));
  t.equal((await bridge(`call-${c.id}`)).length, 3, 'three parties in the call bridge: all hear each other');
  t.same(r.body.agents.sort(), [A.id, C.id]);
  await post(`/api/v1/calls/${c.id}/hangup`, tokens.C);
  const rec = await c.record();
  t.same(rec.agents.sort(), [A.id, C.id].sort());
  await waitFor(async () => ((await stateOf(C.id)) !== 'on_call' ? true : undefined), 5000, 'C released');
  await c.done;
});

t.test('transfer to an IVR flow with return: the caller keys a ticket number, then is back with the same agent', async (t) => {
  const c = await connectedCall([{ pause: 8000 }, { keys: '654321#' }], 30_000);
  t.equal((await post(`/api/v1/calls/${c.id}/transfer`, tokens.A, { target: { ivr: 'ticket-check' }, returnToAgent: true })).status, 200);
  await waitFor(async () => ((await bridge(`hold-${c.id}`)).length === 1 ? true : undefined), 5000, 'A waits in the hold bridge');
  t.equal(await stateOf(A.id), 'on_call', 'A stays on the call while the caller is in the flow');
  await waitFor(async () => {
    const rec = (await getJson(base, `/api/v1/calls/${c.id}`, admin)).body;
    return events(rec, 'transfer.returned').length ? rec : undefined;
  }, 25_000, 'the caller back with A');
  t.equal((await bridge(`call-${c.id}`)).length, 2, 'caller and A bridged again');
  await post(`/api/v1/calls/${c.id}/hangup`, tokens.A);
  const rec = await c.record();
  t.match(events(rec, 'ivr.completed').find((e: any) => e.during === 'call'), { variables: { ticketNo: '654321' } });
  t.same(rec.agents, [A.id], 'the same agent, no one else');
  await c.done;
});

t.test('the survey: the agent ends its part, the caller keys a score, the record keeps it', async (t) => {
  const c = await connectedCall([{ pause: 6500 }, { keys: '1' }], 20_000);
  await new Promise((r) => setTimeout(r, 500));
  t.equal((await post(`/api/v1/calls/${c.id}/survey`, tokens.A)).status, 200);
  const rec = await c.record();
  t.match(rec.survey, { score: 1 });
  t.match(events(rec, 'survey')[0], { score: '1', flow: 'survey' });
  t.equal(rec.disposition, 'answered');
  await c.done;
});

t.test('bad input changes nothing: unknown call, another agent, malformed bodies, expired token', async (t) => {
  const c = await connectedCall();
  t.equal((await post(`/api/v1/calls/00000000-0000-4000-8000-000000000000/hold`, tokens.A)).status, 404, 'unknown call');
  t.equal((await post(`/api/v1/calls/not-a-uuid/hold`, tokens.A)).status, 400, 'not an id');
  const other = await post(`/api/v1/calls/${c.id}/hold`, tokens.B);
  t.equal(other.status, 403, "B may not act on A's call");
  t.equal(other.body.error.code, 'not-your-call');
  for (const body of [{}, { target: {} }, { target: { agent: B.id }, mode: 'sideways' }, { target: { agent: B.id }, extra: 1 }, { target: { number: 'abc' } }, { target: { queue: 'nope' } }]) {
    const r = await post(`/api/v1/calls/${c.id}/transfer`, tokens.A, body);
    t.ok([400, 422].includes(r.status), `${JSON.stringify(body)} -> ${r.status} ${r.body?.error?.code}`);
  }
  t.equal((await post(`/api/v1/calls/${c.id}/transfer`, tokens.A, { target: { queue: '7101' }, mode: 'attended' })).status, 422, 'attended to a queue');
  const expired = await tokenOf(A);
  await service.db.updateTable('auth_sessions').set({ expires_at: new Date(Date.now() - 1000) }).where('token_hash', '=', (await import('node:crypto')).createHash('sha256').update(expired).digest('hex')).execute();
  t.equal((await post(`/api/v1/calls/${c.id}/hold`, expired)).status, 401, 'expired token');
  t.equal((await bridge(`call-${c.id}`)).length, 2, 'the call is as it was');
  t.same(await bridge(`hold-${c.id}`), []);
  t.equal(await stateOf(B.id), 'ready', 'B untouched');
  await post(`/api/v1/calls/${c.id}/hangup`, tokens.A);
  const rec = await c.record();
  t.equal(events(rec, 'transfer').length, 0, 'no transfer on the timeline');
  await c.done;
});

t.test("click-to-call: an outbound agent's phone rings first, then the citizen's; inbound calls do not compete", async (t) => {
  const number = `1390${tag}77`;
  const refused = await post('/api/v1/calls', tokens.A, { to: number });
  t.equal(refused.status, 409, 'a ready agent must switch to outbound first');
  t.equal(refused.body.error.code, 'not-outbound');
  t.equal((await post('/api/v1/calls', tokens.A, { to: 'not a number' })).status, 400);
  t.equal((await post('/api/v1/calls', admin, { to: number })).status, 403, 'only an agent places a call from its phone');
  if ((await stateOf(A.id)) !== 'ready') await setState(base, admin, A.id, 'ready'); // out of wrap-up
  await setState(base, admin, A.id, 'outbound');
  t.teardown(() => setState(base, admin, A.id, 'ready').catch(() => undefined));
  // the citizen's phone, reached through the trunk (CALLBACK_DIAL: 127.0.0.1:5099): answers, talks 2 s, hangs up
  const citizen = await startSipp({ scenario: 'agent-answer-hangup', localPort: 5099, calls: 1, vars: { ring_ms: '300', talk_ms: '2000' } });
  const r = await post('/api/v1/calls', tokens.A, { to: number });
  t.equal(r.status, 202, JSON.stringify(r.body));
  const rec = await waitFor(async () => {
    const c = (await getJson(base, `/api/v1/calls/${r.body.callId}`, admin)).body;
    return c?.endedAt ? c : undefined;
  }, 30_000, 'the outbound call record');
  const far = await citizen.stop();
  t.equal(far.succeeded, 1, 'the citizen answered and hung up cleanly');
  t.match(rec, { direction: 'outbound', caller: number, disposition: 'answered', agents: [A.id] });
  t.equal(await stateOf(A.id), 'outbound', 'the agent stays outbound');
  const recording = await waitFor(async () => (await getJson(base, `/api/v1/recordings?caller=${number}`, admin)).body.items?.find((x: any) => x.callId === r.body.callId && x.status !== 'recording'), 10_000, 'the outbound recording indexed');
  t.match(recording, { callType: 'click', status: 'saved', agents: [A.id] }, 'an outbound call is recorded too');
  t.ok(recording.durationSeconds >= 1 && recording.durationSeconds <= 4, `from the citizen's answer to the end (${recording.durationSeconds} s)`);
});

t.test('nothing is left behind in Asterisk', async (t) => {
  const left = await waitFor(async () => ((await ariChannels()).length === 0 ? [] : undefined), 10_000, 'no channels').catch(async () => ariChannels());
  t.same(left, []);
  t.same(await ariBridges(), []);
});
