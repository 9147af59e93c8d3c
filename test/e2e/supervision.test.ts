/**
 * The supervisor seat on the real stack: a SIPp caller speaking (G.711 speech pcap), SIPp agent phones, a
 * SIPp phone on the supervisor's desk whose SDP points at a UDP socket of this test (so the test hears what
 * Asterisk sends the supervisor), Asterisk 22, PostgreSQL, Redis and the service.
 * Line 7201 goes straight to queue 7201 (skill `sv`), which only agent A serves.
 */
import dgram from 'node:dgram';
import t from 'tap';
import { WebSocket } from 'ws';
import { sql } from 'kysely';
import { runSipp, startSipp, type SippProcess } from '../sipp/sipp.js';
import { callerScript, type ScriptStep } from '../sipp/caller-script.js';
import { ariBridges, ariChannels, getJson, login, resetAri, startTestService, waitFor } from '../helpers/stack.js';
import { api, createReadyAgent, ivrDirWithDirectLines, setState, startPhones, writeQueuesFile, type TestAgent } from '../helpers/acd.js';
import { createDb } from '../../src/db/db.js';

await resetAri();
const queuesFile = writeQueuesFile('defaults: { ringSeconds: 8, wrapUpSeconds: 1, announceEverySeconds: 0, callbackOffer: null }\nqueues:\n  "7201": { name: supervision test, skill: sv }\n');
const ivrDir = ivrDirWithDirectLines(['7201']);
const service = await startTestService(t, 'supervision', { QUEUES_FILE: queuesFile, IVR_DIR: ivrDir, REPEAT_CALLER_DAYS: '0', LIVE_VIEW_PUSH_MS: '500' });
const base = service.url;
const db = createDb(service.config.databaseUrl);
t.teardown(() => db.destroy());
const admin = await login(base);
const A: TestAgent = { id: '1721', port: 5221, skills: [{ skill: 'sv', level: 5 }] };
const B: TestAgent = { id: '1722', port: 5222, skills: [{ skill: 'other', level: 5 }] };
const phones: SippProcess[] = await startPhones([A, B], 'agent-answer', { ring_ms: '300' }, 30);
for (const a of [A, B]) await createReadyAgent(base, admin, a);

// the supervisor: an account with a desk phone (a SIPp UAS whose RTP goes to this test's socket)
const rtp = dgram.createSocket('udp4');
await new Promise<void>((r) => rtp.bind(0, '127.0.0.1', () => r()));
const heard: Array<{ at: number; distinct: number }> = [];
rtp.on('message', (m) => {
  const payload = m.subarray(12);
  heard.push({ at: Date.now(), distinct: new Set(payload).size });
});
const S = { id: '1729', port: 5229 };
const supPhone = await startSipp({ scenario: 'agent-answer', localPort: S.port, calls: 30, vars: { ring_ms: '200', rtp_port: String(rtp.address().port) }, label: 'supervisor1729' });
{
  const phone = { uri: `sip:sup${S.id}@127.0.0.1:${S.port}` };
  const existing = await api(base, admin, 'GET', `/api/v1/agents/${S.id}`);
  const r =
    existing.status === 200
      ? await api(base, admin, 'PATCH', `/api/v1/agents/${S.id}`, { phone, role: 'supervisor' })
      : await api(base, admin, 'POST', '/api/v1/agents', { employeeNo: S.id, name: 'Shift leader', password: `pw-${S.id}-secret`, role: 'supervisor', skills: [{ skill: 'sv-lead', level: 1 }], phone });
  if (r.status !== 200 && r.status !== 201) throw new Error(`supervisor: ${r.status} ${JSON.stringify(r.body)}`);
}
const tokenOf = async (id: string) => {
  const r = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: id, password: `pw-${id}-secret` }) });
  const b = (await r.json()) as { token: string; role: string };
  return b.token;
};
const tokens = { A: await tokenOf(A.id), B: await tokenOf(B.id), S: await tokenOf(S.id) };
t.teardown(async () => {
  for (const a of [A, B]) await setState(base, admin, a.id, 'logged_out').catch(() => undefined);
  await Promise.all([...phones, supPhone].map((p) => p.stop().catch(() => undefined)));
  rtp.close();
});

const tag = String(Date.now()).slice(-5);
let n = 0;
const post = (p: string, token: string, body?: unknown) => api(base, token, 'POST', p, body);
const stateOf = async (id: string) => (await getJson(base, `/api/v1/agents/${id}`, admin)).body.state?.state;
const bridge = async (id: string) => (await ariBridges()).find((b) => b.id === id)?.channels ?? [];
const speech: ScriptStep[] = [{ pause: 2000 }, { audio: 'g711a' }, { audio: 'g711a' }, { audio: 'g711a' }];

function socket(token: string): Promise<{ ws: WebSocket; msgs: any[] }> {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/api/v1/events?token=${token}`);
  const msgs: any[] = [];
  return new Promise((resolve, reject) => {
    ws.on('message', (m) => {
      const msg = JSON.parse(String(m));
      msgs.push(msg);
      if (msg.type === 'hello') resolve({ ws, msgs });
    });
    ws.once('error', reject);
  });
}

async function agentFree(a: TestAgent): Promise<void> {
  const st = await stateOf(a.id);
  if (st === 'on_call' || st === 'reserved') {
    await resetAri();
    await waitFor(async () => (['on_call', 'reserved'].includes(await stateOf(a.id)) ? undefined : true), 10_000, 'agent released');
  }
  const now = await stateOf(a.id);
  if (now === 'logged_out') await setState(base, admin, a.id, 'not_ready');
  if ((await stateOf(a.id)) !== 'ready') await setState(base, admin, a.id, 'ready');
}

/** a caller on 7201 talking to agent A */
async function connectedCall(steps: ScriptStep[] = [], holdMs = 40_000, caller = `1381${tag}${String(++n).padStart(2, '0')}`) {
  await agentFree(A);
  const done = runSipp({ scenario: callerScript(steps, holdMs), remote: '127.0.0.1:5060', service: '7201', callerNumber: caller, timeoutSeconds: 120 });
  const call = await waitFor(async () => (await getJson(base, `/api/v1/calls?caller=${caller}&limit=5`, admin)).body.items?.find((c: { endedAt: string | null }) => !c.endedAt), 10_000, 'the call record');
  await waitFor(async () => ((await bridge(`call-${call.id}`)).length === 2 ? true : undefined), 15_000, 'caller and agent A bridged');
  const record = () =>
    waitFor(async () => {
      const r = (await getJson(base, `/api/v1/calls/${call.id}`, admin)).body;
      return r.endedAt ? r : undefined;
    }, 40_000, 'the call record completed');
  return { id: call.id as string, caller, done, record };
}

t.test('live view: queues and agents as a snapshot and pushed on the WebSocket', async (t) => {
  const sup = await socket(tokens.S);
  t.teardown(() => sup.ws.close());
  await agentFree(A);
  await setState(base, tokens.S, A.id, 'not_ready', 'meeting');
  const caller = `1382${tag}01`;
  const done = runSipp({ scenario: callerScript([], 30_000), remote: '127.0.0.1:5060', service: '7201', callerNumber: caller, timeoutSeconds: 90 });
  const pushed = await waitFor(() => sup.msgs.find((m) => m.type === 'queue.stats' && m.data.queues.some((q: any) => q.name === '7201' && q.waiting === 1)), 8000, 'queue.stats with the waiting caller');
  t.ok(pushed, 'queue.stats pushed with 1 waiting in 7201');
  await new Promise((r) => setTimeout(r, 1200));
  const snap = await getJson(base, '/api/v1/live', tokens.S);
  t.equal(snap.status, 200);
  const q = snap.body.queues.find((x: any) => x.name === '7201');
  t.equal(q.waiting, 1, 'the snapshot has the waiting caller');
  t.ok(q.longestWaitSeconds >= 1, `longest wait counts (${q.longestWaitSeconds} s)`);
  const a = snap.body.agents.find((x: any) => x.agentId === A.id);
  t.match(a, { state: 'not_ready', reason: 'meeting', callId: null });
  t.ok(sup.msgs.some((m) => m.type === 'agent.state' && m.data.agentId === A.id && m.data.state === 'not_ready'), 'the forced state change reached the supervisor');
  const before = a.answeredToday;
  await setState(base, tokens.S, A.id, 'ready');
  await waitFor(async () => ((await stateOf(A.id)) === 'on_call' ? true : undefined), 15_000, 'A takes the waiting caller');
  await new Promise((r) => setTimeout(r, 1500));
  const during = (await getJson(base, '/api/v1/live', tokens.S)).body;
  const a2 = during.agents.find((x: any) => x.agentId === A.id);
  t.equal(a2.state, 'on_call');
  t.ok(a2.callId, 'the current call is named');
  t.ok(a2.callSeconds >= 1, `and its duration (${a2.callSeconds} s)`);
  // the day's counts are cached for 3 s (src/supervision/live-view.ts): the answered call shows within that
  const counted = await waitFor(async () => {
    const x = (await getJson(base, '/api/v1/live', tokens.S)).body.agents.find((y: any) => y.agentId === A.id);
    return x.answeredToday === before + 1 ? x.answeredToday : undefined;
  }, 5000, 'the answered call counted').catch(() => a2.answeredToday);
  t.equal(counted, before + 1, 'calls today counts the answered call');
  t.ok(
    sup.msgs.some((m) => m.type === 'agent.board' && m.data.agents.some((x: any) => x.agentId === A.id && x.state === 'on_call')),
    'agent.board pushed with A on the call',
  );
  t.equal((await getJson(base, '/api/v1/live', tokens.A)).status, 403, 'an agent has no live view of the floor');
  await post(`/api/v1/calls/${a2.callId}/hangup`, tokens.A);
  await done;
});

t.test('listen, whisper, barge and stop: the supervisor hears the call, the call does not change', async (t) => {
  const agentWs = await socket(tokens.A);
  t.teardown(() => agentWs.ws.close());
  const c = await connectedCall(speech);
  const main = `call-${c.id}`;
  const members = (await bridge(main)).sort();
  heard.length = 0;

  t.equal((await post(`/api/v1/calls/${c.id}/listen`, tokens.A, { extension: S.id })).status, 403, 'an agent may not listen');
  t.equal((await post(`/api/v1/calls/${c.id}/listen`, tokens.S, { extension: '4999' })).status, 404, 'an unknown extension');
  t.equal((await post(`/api/v1/calls/00000000-0000-4000-8000-000000000000/listen`, tokens.S, { extension: S.id })).status, 404, 'an unknown call');
  t.equal((await post(`/api/v1/calls/${c.id}/listen`, tokens.S, { extension: S.id, spy: true })).status, 400, 'unknown fields');

  const r = await post(`/api/v1/calls/${c.id}/listen`, tokens.S, { extension: S.id });
  t.equal(r.status, 200, JSON.stringify(r.body));
  t.match(r.body, { callId: c.id, mode: 'listen', extension: S.id });
  t.same((await bridge(main)).sort(), members, 'listening: the call bridge has the same two members');
  const mon = await bridge(`monitor-${c.id}-1`);
  t.equal(mon.length, 2, "the supervisor's phone and the snoop in a bridge of their own");
  await waitFor(() => (heard.filter((h) => h.distinct > 8).length > 50 ? true : undefined), 15_000, "the caller's speech at the supervisor's phone");
  t.pass(`the supervisor's phone received ${heard.length} RTP packets, ${heard.filter((h) => h.distinct > 8).length} with speech`);

  const w = await post(`/api/v1/calls/${c.id}/whisper`, tokens.S, { extension: S.id });
  t.equal(w.status, 200, JSON.stringify(w.body));
  t.same((await bridge(main)).sort(), members, 'whisper: still the same two in the call bridge');
  const snoops = (await ariChannels()).filter((ch) => ch.id.startsWith(`${c.id}-spy-`));
  t.equal(snoops.length, 1, 'one snoop (on the agent now)', { channels: (await ariChannels()).map((x) => `${x.id} ${x.name}`) });
  t.ok(snoops[0]!.name.includes('Snoop/'), snoops[0]!.name);
  t.match((await getJson(base, `/api/v1/calls/${c.id}/monitors`, tokens.S)).body.items, [{ supervisor: S.id, mode: 'whisper' }]);

  const b = await post(`/api/v1/calls/${c.id}/barge`, tokens.S, { extension: S.id });
  t.equal(b.status, 200, JSON.stringify(b.body));
  const three = await bridge(main);
  t.equal(three.length, 3, 'barge: three in the call bridge');
  t.ok(three.includes(`${c.id}-sup-1`), "the supervisor's leg is one of them");
  const notice = await waitFor(() => agentWs.msgs.find((m) => m.type === 'monitor.barge' && m.data.callId === c.id), 5000, "monitor.barge on the agent's desktop");
  t.match(notice.data, { supervisor: S.id });

  const s = await post(`/api/v1/calls/${c.id}/monitor/stop`, tokens.S);
  t.equal(s.status, 200, JSON.stringify(s.body));
  await waitFor(async () => ((await bridge(main)).length === 2 ? true : undefined), 5000, 'the supervisor left the call bridge');
  t.same((await bridge(main)).sort(), members, 'stop: the call is as it was');
  t.notOk((await ariBridges()).some((x) => x.id.startsWith(`monitor-${c.id}`)), 'no monitor bridge left', { bridges: await ariBridges(), channels: (await ariChannels()).map((x) => x.id) });
  await waitFor(async () => ((await ariChannels()).some((ch) => ch.id.startsWith(`${c.id}-sup-`) || ch.id.startsWith(`${c.id}-spy-`)) ? undefined : true), 5000, 'no supervisor leg or snoop left');
  t.equal((await post(`/api/v1/calls/${c.id}/monitor/stop`, tokens.S)).status, 409, 'stopping twice: not monitoring');

  await post(`/api/v1/calls/${c.id}/hangup`, tokens.A);
  const rec = await c.record();
  const types = rec.events.map((e: { type: string }) => e.type);
  for (const ty of ['monitor.listen', 'monitor.whisper', 'monitor.barge', 'monitor.stopped']) t.ok(types.includes(ty), `${ty} on the call's timeline`);
  const audit = (await getJson(base, `/api/v1/audit?target=${c.id}&limit=50`, admin)).body.items;
  const actions = audit.map((x: { action: string }) => x.action);
  for (const ac of ['monitor.listen', 'monitor.whisper', 'monitor.barge', 'monitor.stop']) t.ok(actions.includes(ac), `${ac} audited`);
  t.match(audit.find((x: any) => x.action === 'monitor.listen' && !x.details.refused), { actor: S.id, actorRole: 'supervisor', address: '127.0.0.1' });
  await c.done;
});

t.test('force hang-up: the call ends for everyone, the agent becomes free', async (t) => {
  const c = await connectedCall();
  const r = await post(`/api/v1/calls/${c.id}/hangup`, tokens.S);
  t.equal(r.status, 200, JSON.stringify(r.body));
  const result = await c.done;
  t.equal(result.failed, 0, 'the caller got a BYE (the scenario ended normally)');
  const rec = await c.record();
  const types = rec.events.map((e: { type: string }) => e.type);
  t.equal(types.at(-1), 'ended', 'the timeline ends with `ended`', { types });
  t.equal(rec.events.at(-1).data.by, 'supervisor', 'ended by the supervisor');
  t.equal(rec.disposition, 'answered');
  await waitFor(async () => ((await stateOf(A.id)) === 'ready' ? true : undefined), 10_000, 'A free again (wrap-up then ready)');
  t.notOk((await ariChannels()).some((ch) => ch.id.startsWith(c.id)), 'no channel of the call left in Asterisk');
  const audit = (await getJson(base, `/api/v1/audit?action=call.force-hangup&target=${c.id}`, admin)).body.items;
  t.equal(audit.length, 1, 'audited');
});

t.test('force not ready, ready and sign-out: in the state log, and no call is offered to a signed-out agent', async (t) => {
  await agentFree(A);
  const since = new Date();
  await setState(base, tokens.S, A.id, 'not_ready', 'coaching');
  await setState(base, tokens.S, A.id, 'ready');
  const c = await connectedCall();
  t.equal((await setState(base, tokens.S, A.id, 'logged_out')).state, 'logged_out', 'forced out in the middle of a call');
  t.equal((await bridge(`call-${c.id}`)).length, 2, 'the call itself goes on');
  await post(`/api/v1/calls/${c.id}/hangup`, tokens.A);
  await c.record();
  await c.done;
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(await stateOf(A.id), 'logged_out', 'still signed out after the call (no wrap-up back to ready)');
  const log = await db
    .selectFrom('agent_state_log')
    .select(['from_state', 'to_state', 'reason', 'actor'])
    .where('agent_id', '=', A.id)
    .where('at', '>=', since)
    .orderBy('at')
    .execute();
  const forced = log.filter((l) => l.actor === `supervisor:${S.id}`).map((l) => l.to_state);
  t.same(forced, ['not_ready', 'ready', 'logged_out'], 'each forced change in the state log with the supervisor as actor');
  t.ok(log.some((l) => l.to_state === 'not_ready' && l.reason === 'coaching'));
  // a caller now waits: nobody serves 7201
  const caller = `1383${tag}01`;
  const done = runSipp({ scenario: callerScript([], 6000), remote: '127.0.0.1:5060', service: '7201', callerNumber: caller, timeoutSeconds: 60 });
  await new Promise((r) => setTimeout(r, 4000));
  t.notOk((await ariChannels()).some((ch) => ch.id.includes('-agent-')), "no agent's phone is rung");
  await done;
  const audit = (await getJson(base, `/api/v1/audit?action=agent.force-state&target=${A.id}&from=${since.toISOString()}`, admin)).body.items;
  t.equal(audit.length, 3, 'three forced changes audited');
  const rows = await sql<{ n: number }>`select count(*)::int as n from audit_log where action = 'agent.force-state' and target = ${A.id} and at >= ${since}`.execute(db);
  t.equal(rows.rows[0]!.n, 3);
});

t.test('recording: a 5-second call is recorded, indexed, found, played with Range and downloaded; agents hear only their own', async (t) => {
  const c = await connectedCall(speech);
  await new Promise((r) => setTimeout(r, 5000));
  const cat = await api(base, tokens.A, 'PUT', `/api/v1/calls/${c.id}/category`, { category: 'housing-fund' });
  t.equal(cat.status, 200, JSON.stringify(cat.body));
  await post(`/api/v1/calls/${c.id}/hangup`, tokens.A);
  await c.record();
  await c.done;
  const item = await waitFor(async () => (await getJson(base, `/api/v1/recordings?caller=${c.caller}`, admin)).body.items?.find((x: any) => x.callId === c.id && x.status === 'saved'), 15_000, 'the recording indexed');
  t.ok(item.durationSeconds >= 4 && item.durationSeconds <= 7.5, `about 5 seconds long (${item.durationSeconds} s)`);
  t.match(item, { line: '7201', queue: '7201', agents: [A.id], callType: 'inbound', category: 'housing-fund', disposition: 'answered' });
  t.match(item.sha256, /^[0-9a-f]{64}$/);
  const from = new Date(Date.now() - 3600_000).toISOString();
  const to = new Date(Date.now() + 60_000).toISOString();
  for (const q of [`line=7201`, `queue=7201`, `agent=${A.id}`, `disposition=answered`, `direction=inbound`, `category=housing-fund`, `from=${from}&to=${to}`]) {
    const r = await getJson(base, `/api/v1/recordings?${q}&limit=200`, admin);
    t.ok(r.body.items?.some((x: any) => x.id === item.id), `found by ${q}`);
  }
  t.notOk((await getJson(base, `/api/v1/recordings?caller=${c.caller}&category=other`, admin)).body.items.length, 'not found by another category');
  t.notOk((await getJson(base, `/api/v1/recordings?caller=${c.caller}&to=${from}`, admin)).body.items.length, 'nor before it happened');

  const range = await fetch(`${base}${item.audioUrl}`, { headers: { authorization: `Bearer ${admin}`, range: 'bytes=0-1023' } });
  t.equal(range.status, 206, 'a Range request gets 206');
  t.equal(range.headers.get('content-range'), `bytes 0-1023/${item.sizeBytes}`);
  const head = Buffer.from(await range.arrayBuffer());
  t.equal(head.length, 1024);
  t.equal(head.subarray(0, 4).toString(), 'RIFF', 'a WAV file');
  const whole = await fetch(`${base}${item.audioUrl}?download=1`, { headers: { authorization: `Bearer ${admin}` } });
  t.equal(whole.status, 200);
  t.match(whole.headers.get('content-disposition'), /attachment; filename="recording-7201-.*\.wav"/);
  const body = Buffer.from(await whole.arrayBuffer());
  t.equal(body.length, item.sizeBytes, 'downloaded whole');
  t.ok(body.length > 5 * 8000 * 2 * 0.8, `about 5 s of 8 kHz 16-bit audio (${body.length} bytes)`);
  t.equal((await import('node:crypto')).createHash('sha256').update(body).digest('hex'), item.sha256, 'the stored SHA-256 matches');

  t.equal((await getJson(base, `/api/v1/recordings/${item.id}`, tokens.B)).status, 403, "another agent's recording: 403");
  t.equal((await fetch(`${base}${item.audioUrl}`, { headers: { authorization: `Bearer ${tokens.B}` } })).status, 403);
  t.notOk((await getJson(base, `/api/v1/recordings?caller=${c.caller}`, tokens.B)).body.items.some((x: any) => x.id === item.id), "not in another agent's search");
  t.equal((await getJson(base, `/api/v1/recordings/${item.id}`, tokens.A)).status, 200, 'the agent of the call may');
  const audit = (await getJson(base, `/api/v1/audit?target=${item.id}&limit=50`, admin)).body.items.map((x: any) => x.action);
  t.ok(audit.includes('recording.play'), 'the Range play audited');
  t.ok(audit.includes('recording.download'), 'the download audited');
  t.ok(audit.includes('recording.denied'), 'the refused access audited');
});

t.test('nothing left behind in Asterisk', async (t) => {
  await waitFor(async () => ((await ariBridges()).some((b) => b.id.startsWith('monitor-')) ? undefined : true), 5000, 'no monitor bridges');
  t.pass('no monitor bridges');
});
