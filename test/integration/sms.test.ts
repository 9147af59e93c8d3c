/**
 * SMS end to end below the HTTP API: the real SMPP gateway against a real SMPP server (the test SMSC, npm
 * `smpp`, on a free loopback port), real PostgreSQL. Single and bulk sends, receipts, refusals, timeouts, a link
 * that drops, no SMSC at all, citizens' messages, bad bodies (400 and nothing stored or sent), roles.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import path from 'node:path';
import t from 'tap';
import smpp from 'smpp';
import { callerContext } from '../../src/calls/calls.repo.js';
import { smsHistoryOf } from '../../src/sms/sms.repo.js';
import { SmppGateway } from '../../src/sms/smpp-gateway.js';
import { createSmsTemplates } from '../../src/sms/sms-templates.js';
import { createSmsService, type SmsService } from '../../src/sms/sms.service.js';
import type { Db } from '../../src/db/db.js';
import { buildTestApp, testInfra, type TestInfra } from '../helpers/app.js';
import { TestSmsc } from '../helpers/smsc.js';
import { waitFor } from '../helpers/stack.js';

const TEMPLATES = path.join(import.meta.dirname, '../../config/sms-templates.yaml');
const infra = await testInfra(t, 'sms');
const { db } = infra;
const smsc = await TestSmsc.start(t);

/** an SMS service on its own gateway; closed at the end (before the schema goes: teardowns run last-in first) */
async function smsService(infra: TestInfra, url: string, opts: { password?: string; bulkMax?: number } = {}): Promise<{ sms: SmsService; gateway: SmppGateway }> {
  const gateway = new SmppGateway({ url, systemId: 'hotline', password: opts.password ?? 'test-pw', sourceAddr: '12345', log: infra.log, requestTimeoutMs: 800, minBackoffMs: 50, maxBackoffMs: 200 });
  const sms = createSmsService({ db: infra.db, gateway, templates: createSmsTemplates(TEMPLATES, infra.log, { watch: false }), bulkMax: opts.bulkMax ?? 200, log: infra.log });
  await sms.start();
  return { sms, gateway };
}

const { sms, gateway } = await smsService(infra, smsc.url);
const { api, tokens, app } = await buildTestApp(t, infra, { sms });
t.teardown(() => sms.close());
await waitFor(() => gateway.connected, 5000, 'the gateway to bind');

const rows = (db: Db, ids: string[]) => db.selectFrom('sms_messages').selectAll().where('id', 'in', ids).execute();
const count = async () => Number((await db.selectFrom('sms_messages').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
/** every message of these ids has left `queued`/`sent`: its final outcome is stored */
async function settled(ids: string[], db_: Db = db): Promise<Awaited<ReturnType<typeof rows>>> {
  return waitFor(async () => {
    const rs = await rows(db_, ids);
    return rs.length === ids.length && rs.every((r) => r.status !== 'queued' && r.status !== 'sent') ? rs : undefined;
  }, 10_000, `outcomes of ${ids.length} message(s)`);
}

t.test('given a template, when an agent sends it to one number, then the SMSC gets the Chinese text as UCS2 and the receipt marks it delivered', async (t) => {
  const before = smsc.submits.length;
  const r = await api('POST', '/api/v1/sms', tokens.agent, { to: ['+86 138-0013-8000'], template: 'ticket-received', params: { ticketNo: 'HN20261129001', days: 5 } });
  t.equal(r.status, 202);
  t.equal(r.body.rejected.length, 0);
  t.match(r.body.accepted, [{ number: '13800138000', id: String }]);
  const [row] = await settled([r.body.accepted[0].id]);
  const text = '您的诉求已受理，工单号HN20261129001，我们将在5个工作日内答复。【海南12345】';
  t.equal(smsc.submits.length, before + 1, 'one submit_sm');
  const sub = smsc.submits.at(-1)!;
  t.match(sub, { to: '13800138000', from: '12345', dataCoding: 8, registeredDelivery: 1, payload: false });
  t.equal(sub.text, text, 'the Chinese text arrives intact (UCS2)');
  const agent = await db.selectFrom('users').select('id').where('role', '=', 'agent').executeTakeFirstOrThrow();
  t.match(row, { direction: 'out', number: '13800138000', text, template: 'ticket-received', status: 'delivered', message_id: sub.messageId, error: null, sent_by: agent.id });
  t.type(row!.sent_at, Date);
  t.type(row!.delivered_at, Date);
  t.ok(row!.batch_id);

  const list = await api('GET', '/api/v1/sms?number=13800138000', tokens.agent);
  t.equal(list.status, 200);
  t.match(list.body.items[0], { id: row!.id, direction: 'out', number: '13800138000', text, status: 'delivered', messageId: sub.messageId, template: 'ticket-received' });
});

t.test('given 100 numbers, an invalid one and a repeat, when sent in bulk, then 100 go out (at most 10 at a time), 2 are reported, 100 receipts are stored', async (t) => {
  const numbers = Array.from({ length: 100 }, (_, i) => `1390000${String(i).padStart(4, '0')}`);
  const to = [...numbers.slice(0, 50), 'not-a-number', `+86 ${numbers[7]}`, ...numbers.slice(50)];
  const before = smsc.submits.length;
  smsc.answerDelayMs = 15;
  smsc.maxOutstanding = 0;
  t.teardown(() => void (smsc.answerDelayMs = 0));
  const r = await api('POST', '/api/v1/sms', tokens.supervisor, { to, text: '海南12345提醒：明日9时至12时系统维护，网上办事暂停。【海南12345】' });
  t.equal(r.status, 202);
  t.ok(smsc.submits.length - before < 100, 'the answer does not wait for the SMSC');
  t.same(
    r.body.accepted.map((a: { number: string }) => a.number),
    numbers,
    'in the order given',
  );
  t.same(r.body.rejected, [
    { number: 'not-a-number', reason: 'invalid-number' },
    { number: `+86 ${numbers[7]}`, reason: 'duplicate' },
  ]);
  const done = await settled(r.body.accepted.map((a: { id: string }) => a.id));
  t.equal(done.filter((x) => x.status === 'delivered').length, 100, '100 receipts stored');
  t.equal(new Set(done.map((x) => x.batch_id)).size, 1, 'one batch');
  t.ok(done.every((x) => x.message_id && x.delivered_at));
  const seen = smsc.submits.slice(before);
  t.equal(seen.length, 100, '100 submit_sm');
  t.same(new Set(seen.map((s) => s.to)), new Set(numbers), 'one per number');
  t.ok(smsc.maxOutstanding <= 10, `at most 10 in flight (saw ${smsc.maxOutstanding})`);
  t.ok(smsc.maxOutstanding > 1, 'more than one at a time');
});

t.test('given an SMSC that refuses a number, then that row is failed with the SMSC status; a throttled one is tried again', async (t) => {
  smsc.behaviour = (to, attempt) => (to === '13700000001' ? { status: smpp.errors.ESME_RINVDSTADR } : to === '13700000002' && attempt === 1 ? { status: smpp.errors.ESME_RTHROTTLED } : {});
  t.teardown(() => void (smsc.behaviour = () => ({})));
  const r = await api('POST', '/api/v1/sms', tokens.agent, { to: ['13700000001', '13700000002'], text: '测试' });
  t.equal(r.status, 202);
  const [refused, throttled] = await settled(r.body.accepted.map((a: { id: string }) => a.id));
  const byNumber = Object.fromEntries([refused!, throttled!].map((x) => [x.number, x]));
  t.match(byNumber['13700000001'], { status: 'failed', message_id: null, sent_at: null, error: /^the SMSC refused the message: ESME_RINVDSTADR \(0x0000000b\)$/ });
  t.match(byNumber['13700000002'], { status: 'delivered', error: null });
  t.equal(smsc.submits.filter((s) => s.to === '13700000002').length, 2, 'throttled, then accepted');
});

t.test('receipts that say undelivered, rejected or expired (text or TLV form) are stored with the SMSC words', async (t) => {
  const outcomes: Record<string, { stat: string; err?: string; tlv?: boolean }> = {
    '13600000001': { stat: 'UNDELIV', err: '012' },
    '13600000002': { stat: 'REJECTD', tlv: true },
    '13600000003': { stat: 'EXPIRED', tlv: true, err: '005' },
    '13600000004': { stat: 'DELIVRD', tlv: true },
  };
  smsc.behaviour = (to) => ({ receipt: outcomes[to] ?? null });
  t.teardown(() => void (smsc.behaviour = () => ({})));
  const r = await api('POST', '/api/v1/sms', tokens.admin, { to: Object.keys(outcomes), text: '您好' });
  const done = Object.fromEntries((await settled(r.body.accepted.map((a: { id: string }) => a.id))).map((x) => [x.number, x]));
  t.match(done['13600000001'], { status: 'failed', error: 'UNDELIV err:012', delivered_at: null });
  t.match(done['13600000002'], { status: 'rejected', error: 'REJECTD' });
  t.match(done['13600000003'], { status: 'expired', error: 'EXPIRED err:005' });
  t.match(done['13600000004'], { status: 'delivered', error: null });
});

t.test('given a receipt that overtakes the submit_sm_resp, then it is applied once the id is stored', async (t) => {
  smsc.behaviour = () => ({ receiptFirst: true });
  t.teardown(() => void (smsc.behaviour = () => ({})));
  const r = await api('POST', '/api/v1/sms', tokens.agent, { to: ['13500000009'], text: '先回执' });
  const [row] = await settled([r.body.accepted[0].id]);
  t.match(row, { status: 'delivered', message_id: smsc.submits.at(-1)!.messageId });
});

t.test('given an SMSC that does not answer a submit, then the row fails after the timeout', async (t) => {
  smsc.behaviour = () => ({ silent: true });
  t.teardown(() => void (smsc.behaviour = () => ({})));
  const r = await api('POST', '/api/v1/sms', tokens.agent, { to: ['13500000001'], text: 'hello' });
  const [row] = await settled([r.body.accepted[0].id]);
  t.match(row, { status: 'failed', error: 'the SMSC did not answer submit_sm within 800 ms' });
});

t.test('a long text goes whole in message_payload and arrives intact; a plain ASCII text in the default alphabet', async (t) => {
  const long = `尊敬的市民：${'您反映的问题已转交相关职能部门办理，'.repeat(6)}请耐心等待。【海南12345】`;
  t.ok(long.length > 70);
  const r = await api('POST', '/api/v1/sms', tokens.agent, { to: ['13800138001', '13800138002'], text: long });
  await settled(r.body.accepted.map((a: { id: string }) => a.id));
  t.match(smsc.submits.filter((s) => s.to === '13800138001'), [{ payload: true, dataCoding: 8, text: long }]);
  const ascii = await api('POST', '/api/v1/sms', tokens.agent, { to: ['+85291234567'], text: 'Your ticket HN001 is closed. Call 12345 for help.' });
  const [row] = await settled([ascii.body.accepted[0].id]);
  t.equal(row!.number, '+85291234567');
  t.match(smsc.submits.at(-1), { to: '85291234567', destTon: 1, dataCoding: 0, payload: false, text: 'Your ticket HN001 is closed. Call 12345 for help.' });
});

t.test('given a citizen texts the hotline, then it is stored as received, listed by number and in the caller history', async (t) => {
  const status = await smsc.deliverInbound('8613800138000', '12345', '请问工单HN20261129001办理进度如何？');
  t.equal(status, 0, 'acknowledged once stored');
  const list = await api('GET', `/api/v1/sms?number=${encodeURIComponent('+86 13800138000')}`, tokens.agent);
  t.equal(list.status, 200);
  t.match(list.body.items[0], { direction: 'in', number: '13800138000', text: '请问工单HN20261129001办理进度如何？', status: 'received', sentBy: null, messageId: null });
  t.equal(list.body.items[1].direction, 'out', 'with what we sent them');
  const inbound = await api('GET', '/api/v1/sms?number=13800138000&direction=in', tokens.supervisor);
  t.equal(inbound.body.items.length, 1);

  const history = await smsHistoryOf(db, '+86 138 0013 8000', 5);
  t.same(Object.keys(history[0]!).sort(), ['at', 'direction', 'id', 'status', 'text']);
  t.match(history, [
    { direction: 'in', status: 'received', text: '请问工单HN20261129001办理进度如何？' },
    { direction: 'out', status: 'delivered' },
  ]);
  t.type(history[0]!.at, Date);
  t.same(await smsHistoryOf(db, 'abc', 5), [], 'not a number: no history');

  // the screen pop reads the same messages and the caller's earlier calls in one statement
  const [earlier, older, now] = [randomUUID(), randomUUID(), randomUUID()];
  const call = (id: string, at: Date, agents: string[], answered: boolean) => ({
    id,
    direction: 'inbound' as const,
    caller: '13800138000',
    dialed: '12345',
    line: '12345',
    language: 'zh',
    channel_id: `chan-${id.slice(0, 8)}`,
    arrived_at: at,
    agents,
    disposition: answered ? ('answered' as const) : ('abandoned' as const),
  });
  const latest = randomUUID();
  await db
    .insertInto('calls')
    .values([
      call(older, new Date(Date.now() - 3 * 86400_000), ['a2'], true),
      call(earlier, new Date(Date.now() - 120_000), ['a1', 'a3'], true),
      call(latest, new Date(Date.now() - 60_000), [], false),
      call(now, new Date(), [], false),
    ])
    .execute();
  const pop = await callerContext(db, '13800138000', { exceptCallId: now, limit: 5, repeatDays: 30 });
  t.same(pop.sms, history.slice(0, 5), 'the same messages as smsHistoryOf, dates as dates');
  t.type(pop.sms[0]!.at, Date);
  t.match(pop.calls, [
    { callId: latest, agents: [], disposition: 'abandoned' },
    { callId: earlier, agents: ['a1', 'a3'], line: '12345', url: `/api/v1/calls/${earlier}` },
    { callId: older, agents: ['a2'] },
  ]);
  t.equal(pop.calls.length, 3, 'the call being offered is not in its own history');
  t.equal(pop.calls[1]!.arrivedAt, (await db.selectFrom('calls').select('arrived_at').where('id', '=', earlier).executeTakeFirstOrThrow()).arrived_at.toISOString());
  t.equal(pop.lastAgent, 'a3', 'repeat-caller routing: the last agent of the last answered call');
  t.equal((await callerContext(db, '13800138000', { exceptCallId: now, limit: 5, repeatDays: 2 })).lastAgent, 'a3');
  await db.updateTable('calls').set({ arrived_at: new Date(Date.now() - 5 * 86400_000) }).where('id', '=', earlier).execute();
  t.equal((await callerContext(db, '13800138000', { exceptCallId: now, limit: 5, repeatDays: 4 })).lastAgent, 'a2', 'the newest answered within the days');
  t.equal((await callerContext(db, '13800138000', { exceptCallId: now, limit: 5, repeatDays: 2 })).lastAgent, null, 'none within the days');
  t.equal((await callerContext(db, '13800138000', { exceptCallId: now, limit: 5, repeatDays: 0 })).lastAgent, null, 'repeat-caller routing off');
  t.same(await callerContext(db, 'anonymous', { exceptCallId: now, limit: 5, repeatDays: 30 }), { calls: [], sms: [], lastAgent: null }, 'a caller that is not a number: no messages, no error');
});

t.test('given the store fails, then the SMSC is told to deliver again (temporary error), not acknowledged', async (t) => {
  const other = new SmppGateway({ url: smsc.url, systemId: 'hotline', password: 'test-pw', sourceAddr: '12345', log: infra.log, minBackoffMs: 50 });
  other.onInbound(async () => {
    throw new Error('PostgreSQL is down');
  });
  other.start();
  t.teardown(() => other.close());
  await waitFor(() => smsc.sessions.length === 2 || undefined, 5000, 'the second session');
  t.equal(await smsc.deliverInbound('13800138000', '12345', '你好'), smpp.errors.ESME_RX_T_APPN);
});

t.test('given the link drops, then what waits for an answer fails at once, the gateway binds again by itself and sends work again', async (t) => {
  smsc.behaviour = () => ({ silent: true });
  t.teardown(() => void (smsc.behaviour = () => ({})));
  const waiting = await api('POST', '/api/v1/sms', tokens.agent, { to: ['13800138008'], text: '断线前' });
  await waitFor(() => smsc.submits.some((s) => s.to === '13800138008') || undefined, 2000, 'the submit to reach the SMSC');
  const binds = smsc.binds.length;
  smsc.dropSessions();
  const [lost] = await settled([waiting.body.accepted[0].id]);
  t.match(lost, { status: 'failed', error: /^the SMSC connection dropped/ }, 'failed by the drop, not by the timeout');
  await waitFor(() => (smsc.binds.length > binds && gateway.connected) || undefined, 5000, 'the gateway to bind again');
  smsc.behaviour = () => ({});
  const r = await api('POST', '/api/v1/sms', tokens.agent, { to: ['13800138009'], text: '重连后' });
  const [row] = await settled([r.body.accepted[0].id]);
  t.equal(row!.status, 'delivered');
});

t.test('given no SMSC at all, then the API still answers and every message is failed with a clear error', async (t) => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as { port: number }).port;
  await new Promise((r) => closed.close(r));
  const down = await smsService(infra, `smpp://127.0.0.1:${port}`);
  const app2 = await buildTestApp(t, infra, { sms: down.sms });
  t.teardown(() => down.sms.close());
  const r = await app2.api('POST', '/api/v1/sms', app2.tokens.agent, { to: ['13800138000', '13900000000'], text: '无短信中心' });
  t.equal(r.status, 202);
  t.equal(r.body.accepted.length, 2);
  const done = await settled(r.body.accepted.map((a: { id: string }) => a.id));
  for (const row of done) t.match(row, { status: 'failed', error: `not connected to the SMSC at smpp://127.0.0.1:${port}: ECONNREFUSED` });
  t.equal(down.gateway.connected, false);
  t.equal((await app2.api('GET', '/api/v1/sms?number=13900000000', app2.tokens.agent)).status, 200);
});

t.test('given a wrong SMPP password, then the bind is refused and sends fail naming it', async (t) => {
  const wrong = await smsService(infra, smsc.url, { password: 'nope' });
  t.teardown(() => wrong.sms.close());
  await waitFor(() => smsc.binds.some((b) => b.password === 'nope') || undefined, 3000, 'the refused bind');
  const [m] = (await wrong.sms.send({ to: ['13800138000'], text: '密码错误' }, { userId: 'test' })).accepted;
  const [row] = await settled([m!.id]);
  t.match(row, { status: 'failed', error: /the SMSC refused to bind SMPP_SYSTEM_ID "hotline": ESME_RBINDFAIL/ });
});

t.test('bad bodies are 400 with a code naming the problem, and nothing is stored or sent', async (t) => {
  const rowsBefore = await count();
  const submitsBefore = smsc.submits.length;
  const to = ['13800138000'];
  const bad: Array<[unknown, string]> = [
    [{}, 'invalid-request'],
    [{ text: 'x' }, 'invalid-request'],
    [{ to: [], text: 'x' }, 'invalid-request'],
    [{ to }, 'invalid-request'],
    [{ to, template: 'ticket-received', text: 'x', params: { ticketNo: '1', days: 1 } }, 'invalid-request'],
    [{ to, text: 'x', params: { a: 1 } }, 'invalid-request'],
    [{ to, template: 'no-such-template' }, 'unknown-template'],
    [{ to, template: 'ticket-received', params: { ticketNo: 'HN1' } }, 'missing-param'],
    [{ to, template: 'ticket-received', params: { ticketNo: 'HN1', days: 3, extra: 'x' } }, 'unknown-param'],
    [{ to, template: 'ticket-received', params: { ticketNo: 'HN1', 'bad key': 3 } }, 'invalid-request'],
    [{ to: Array.from({ length: 201 }, (_, i) => `1380000${String(i).padStart(4, '0')}`), text: 'x' }, 'too-many-numbers'],
    [{ to: Array.from({ length: 1001 }, () => '13800138000'), text: 'x' }, 'invalid-request'],
    [{ to, text: 'x', colour: 'red' }, 'invalid-request'],
    [{ to, text: '长'.repeat(501) }, 'invalid-request'],
    [{ to, text: '   ' }, 'invalid-request'],
    [{ to, text: 'x', callId: 'not-a-uuid' }, 'invalid-request'],
    [{ to: [{ number: '13800138000' }], text: 'x' }, 'invalid-request'],
  ];
  for (const [body, code] of bad) {
    const r = await api('POST', '/api/v1/sms', tokens.agent, body);
    t.equal(r.status, 400, JSON.stringify(body).slice(0, 80));
    t.equal(r.body.error?.code, code, JSON.stringify(body).slice(0, 80));
  }
  const missing = await api('POST', '/api/v1/sms', tokens.agent, { to, template: 'ticket-received', params: { ticketNo: 'HN1' } });
  t.match(missing.body.error, { message: 'template "ticket-received" needs the parameter "days"', details: { template: 'ticket-received', param: 'days' } });
  const unknown = await api('POST', '/api/v1/sms', tokens.agent, { to, template: 'no-such-template' });
  t.match(unknown.body.error.message, /no-such-template/);
  const json = await app.inject({ method: 'POST', url: '/api/v1/sms', headers: { authorization: `Bearer ${tokens.agent}`, 'content-type': 'application/json' }, payload: '{"to": [' });
  t.equal(json.statusCode, 400);
  t.equal(json.json().error.code, 'invalid-json');
  const allInvalid = await api('POST', '/api/v1/sms', tokens.agent, { to: ['abc', ''], text: '无有效号码' });
  t.equal(allInvalid.status, 202, 'a valid body whose numbers are all invalid: nothing to send, each reported');
  t.same(allInvalid.body, { accepted: [], rejected: [{ number: 'abc', reason: 'invalid-number' }, { number: '', reason: 'invalid-number' }] });
  await sms.idle();
  t.equal(await count(), rowsBefore, 'no rows');
  t.equal(smsc.submits.length, submitsBefore, 'nothing sent');
});

t.test('roles and tokens: agents, supervisors and admins send; an auditor reads; an agent lists one number only; no, bad or expired token is 401', async (t) => {
  const body = { to: ['13800138000'], text: 'x' };
  t.equal((await api('POST', '/api/v1/sms', tokens.auditor, body)).status, 403);
  t.equal((await api('POST', '/api/v1/sms', null, body)).status, 401);
  t.equal((await api('POST', '/api/v1/sms', 'not-a-token', body)).status, 401);
  const agent = await db.selectFrom('users').select('id').where('role', '=', 'agent').executeTakeFirstOrThrow();
  const expired = randomBytes(24).toString('base64url');
  await db
    .insertInto('auth_sessions')
    .values({ token_hash: createHash('sha256').update(expired).digest('hex'), user_id: agent.id, expires_at: new Date(Date.now() - 60_000) })
    .execute();
  const e = await api('POST', '/api/v1/sms', expired, body);
  t.equal(e.status, 401);
  t.equal(e.body.error.code, 'token-expired');
  t.equal((await api('GET', '/api/v1/sms?number=13800138000', expired)).status, 401);
  t.equal((await api('GET', '/api/v1/sms?number=13800138000', null)).status, 401);

  const all = await api('GET', '/api/v1/sms', tokens.agent);
  t.equal(all.status, 403, 'an agent lists by number');
  t.equal(all.body.error.code, 'forbidden');
  for (const role of ['supervisor', 'admin', 'auditor'] as const) t.equal((await api('GET', '/api/v1/sms?limit=1', tokens[role])).status, 200, role);
  for (const q of ['number=abc', 'cursor=bm9wZQ', 'limit=0', 'limit=201', 'status=lost', 'colour=red', 'batchId=1']) {
    t.equal((await api('GET', `/api/v1/sms?${q}`, tokens.supervisor)).status, 400, q);
  }
  t.equal((await api('GET', '/api/v1/sms?number=abc', tokens.supervisor)).body.error.code, 'invalid-number');
});

t.test('paging: newest first, a keyset cursor, no empty last page; filters by status and batch', async (t) => {
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const r = await api('GET', `/api/v1/sms?number=13800138000&limit=2${cursor ? `&cursor=${cursor}` : ''}`, tokens.agent);
    t.equal(r.status, 200);
    seen.push(...r.body.items.map((x: { id: string }) => x.id));
    cursor = r.body.nextCursor;
    pages++;
  } while (cursor && pages < 20);
  const expected = await db.selectFrom('sms_messages').select('id').where('number', '=', '13800138000').orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
  t.same(seen, expected.map((x) => x.id));
  t.equal(pages, Math.ceil(expected.length / 2));

  const failed = await api('GET', '/api/v1/sms?status=failed&limit=200', tokens.auditor);
  t.ok(failed.body.items.length > 0 && failed.body.items.every((x: { status: string }) => x.status === 'failed'));
  const one = failed.body.items[0];
  const batch = await api('GET', `/api/v1/sms?batchId=${one.batchId}`, tokens.supervisor);
  t.ok(batch.body.items.every((x: { batchId: string }) => x.batchId === one.batchId));
});

t.test('given messages a stopped process left queued, when the service starts, then they are failed with why', async (t) => {
  const [old] = await db
    .insertInto('sms_messages')
    .values({ direction: 'out', number: '13800000000', text: 'x', status: 'queued', created_at: new Date(Date.now() - 3600_000) })
    .returning('id')
    .execute();
  const [fresh] = await db.insertInto('sms_messages').values({ direction: 'out', number: '13800000000', text: 'x', status: 'queued' }).returning('id').execute();
  await sms.start();
  const [a, b] = await Promise.all([old!, fresh!].map(async (r) => db.selectFrom('sms_messages').selectAll().where('id', '=', r.id).executeTakeFirstOrThrow()));
  t.match(a, { status: 'failed', error: 'not sent: the service stopped before handing it to the SMSC' });
  t.equal(b!.status, 'queued', 'a recent one may still be on its way in another process');
  await db.deleteFrom('sms_messages').where('id', '=', fresh!.id).execute();
});

t.test('OpenAPI describes the SMS routes', async (t) => {
  const doc = await api('GET', '/docs/json', null);
  t.ok(doc.body.paths['/api/v1/sms/'].post.responses['202']);
  t.ok(doc.body.paths['/api/v1/sms/'].get);
});
