/**
 * The agent desktop (issue 5): sign-in to the ACD with an extension, sign-out, failed sign-ins limited, breaks
 * (request, approve now or at release, expiry by the sweep, reject, resume), the live events over a real
 * WebSocket, and the "today" panel. Real PostgreSQL and Redis (a schema and a key prefix of this file's own),
 * the real ACD engine in Redis; no Asterisk (calls are placed in the engine directly).
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { pino } from 'pino';
import t from 'tap';
import { WebSocket } from 'ws';
import { createQueuesConfig } from '../../src/acd/queues.config.js';
import { createRedisEngine } from '../../src/acd/redis-engine.js';
import { createAgentDesk } from '../../src/agents/agent-desk.js';
import { createAgentStates } from '../../src/agents/agent-states.js';
import { createBreaks } from '../../src/agents/breaks.js';
import { createLoginLimiter } from '../../src/auth/login-limiter.js';
import { hashPassword } from '../../src/auth/passwords.js';
import { createEventBus } from '../../src/events/bus.js';
import { buildTestApp, testInfra } from '../helpers/app.js';
import { waitFor } from '../helpers/stack.js';

const infra = await testInfra(t, 'agent-desk');
const { db } = infra;

// the app's log, kept to check what sign-in failures and the socket's URL write
const logLines: Array<Record<string, unknown>> = [];
const log = pino(
  { level: 'info' },
  new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logLines.push(JSON.parse(line));
      done();
    },
  }),
);

const engine = createRedisEngine({ redis: infra.redis, subscriber: await infra.subscriber(), keys: infra.keys, log: infra.log });
t.teardown(() => engine.close());
const events = await createEventBus({ redis: infra.redis, subscriber: await infra.subscriber(), keys: infra.keys, log: infra.log });
t.teardown(() => events.close());
const agentStates = createAgentStates({ engine, db, log: infra.log, events });
const queues = createQueuesConfig(path.join(import.meta.dirname, '../../config/queues.yaml'), infra.log, { watch: false });
t.teardown(() => queues.close());
const breaks = createBreaks({ db, engine, agentStates, events, log: infra.log });
const desk = createAgentDesk({ db, engine, agentStates, queues });
const WINDOW_SECONDS = 2;
const loginLimiter = createLoginLimiter({ redis: infra.redis, keys: infra.keys, maxFailuresPerUser: 5, maxFailuresPerAddress: 8, windowSeconds: WINDOW_SECONDS });
const { app, api, tokens } = await buildTestApp(t, { ...infra, log }, { engine, agentStates, queues, events, breaks, desk, loginLimiter, eventsHub: { tokenCheckMs: 200, pingMs: 1000 } });
await app.listen({ host: '127.0.0.1', port: 0 });
const port = (app.server.address() as AddressInfo).port;

const PASSWORD = 'pw-desk-secret';
// A and B: agents with a skill of their own each (so a call can be offered to one of them only) and general
const A = '8101';
const B = '8102';
const SKILLS: Record<string, Record<string, number>> = { [A]: { general: 5, en: 3, 'only-a': 5 }, [B]: { general: 4, 'only-b': 5 } };
for (const id of [A, B]) {
  const skills = SKILLS[id]!;
  await db
    .insertInto('agents')
    .values({
      employee_no: id,
      name: `Agent ${id}`,
      skills: JSON.stringify(Object.entries(skills).map(([skill, level]) => ({ skill, level }))),
      phone_kind: 'uri',
      phone_uri: `sip:agent${id}@127.0.0.1:5999`,
      endpoint: `PJSIP/agent${id}`,
    })
    .execute();
  await db.insertInto('users').values({ username: id, password_hash: await hashPassword(PASSWORD), role: 'agent', agent_id: id }).execute();
  await engine.upsertAgent(id, skills, `PJSIP/agent${id}`);
}
await db.insertInto('users').values({ username: 'sup-one', password_hash: await hashPassword(PASSWORD), role: 'supervisor', agent_id: null }).execute();

async function login(username: string, password = PASSWORD, extra: Record<string, unknown> = {}, address = '127.0.0.1') {
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password, ...extra }, remoteAddress: address });
  return { status: res.statusCode, body: res.json(), headers: res.headers };
}
async function tokenOf(username: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await login(username, PASSWORD, extra);
  if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.token;
}
const logout = (token: string) => api('POST', '/api/v1/auth/logout', token);
const live = async (id: string) => (await engine.getAgent(id))!;
const stateOf = async (id: string) => (await live(id)).state;

/** the agent through legal moves to this state (ready / not_ready / logged_out), as a supervisor would */
async function setState(id: string, to: 'ready' | 'not_ready' | 'logged_out') {
  const r = await api('PUT', `/api/v1/agents/${id}/state`, tokens.supervisor, { state: to });
  if (r.status !== 200) throw new Error(`state ${id} -> ${to}: ${r.status} ${JSON.stringify(r.body)}`);
}

/** a citizen's call that only this agent's own skill can take, claimed by it (reserved); returns the call id */
async function reserve(id: string): Promise<string> {
  const callId = randomUUID();
  const queue = `q-${id}`;
  await engine.enqueue({ callId, queue, priority: 0, enqueuedAt: Date.now(), stages: [{ afterSeconds: 0, needs: [{ skill: `only-${id === A ? 'a' : 'b'}`, minLevel: 1 }] }] });
  const got = await engine.claim(queue, callId);
  if (got !== id) throw new Error(`expected ${id} to be reserved, got ${got}`);
  agentStates.reserved(id, callId);
  return callId;
}

/** whether a call only this agent can take would be offered to it now (the claim is undone) */
async function offered(id: string): Promise<boolean> {
  const callId = randomUUID();
  const queue = `q-${id}`;
  await engine.enqueue({ callId, queue, priority: 0, enqueuedAt: Date.now(), stages: [{ afterSeconds: 0, needs: [{ skill: `only-${id === A ? 'a' : 'b'}`, minLevel: 1 }] }] });
  const got = await engine.claim(queue, callId);
  await engine.remove(queue, callId);
  if (got) await engine.transition(got, 'ready', { expectCallId: callId });
  return got === id;
}

interface Client {
  ws: WebSocket;
  messages: any[];
  closed: Promise<{ code: number; reason: string }>;
  next(pred: (m: any) => boolean, what: string, ms?: number): Promise<any>;
  /** every message up to a marker published now to everyone (the socket's order is the bus's order) */
  drain(): Promise<any[]>;
}
const clients: WebSocket[] = [];
t.teardown(() => clients.forEach((c) => c.terminate()));

function connect(token: string | null, how: 'query' | 'header' = 'query'): Promise<Client> {
  const url = `ws://127.0.0.1:${port}/api/v1/events${token && how === 'query' ? `?token=${encodeURIComponent(token)}` : ''}`;
  const ws = new WebSocket(url, token && how === 'header' ? { headers: { authorization: `Bearer ${token}` } } : {});
  clients.push(ws);
  const messages: any[] = [];
  ws.on('message', (d) => messages.push(JSON.parse(String(d))));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  const client: Client = {
    ws,
    messages,
    closed,
    next: (pred, what, ms = 3000) => waitFor(() => messages.find(pred), ms, what),
    async drain() {
      const marker = randomUUID();
      events.publish('ivr.reload', { marker }, { everyone: true });
      await waitFor(() => messages.some((m) => m.data?.marker === marker), 3000, 'the marker');
      return messages.filter((m) => m.data?.marker !== marker);
    },
  };
  return new Promise((resolve, reject) => {
    // the hub registers a socket, then says hello: events published after the hello reach it
    ws.once('open', () => void waitFor(() => messages.find((m) => m.type === 'hello'), 3000, 'hello').then(() => resolve(client), reject));
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`refused: ${res.statusCode}`), { statusCode: res.statusCode }));
      ws.terminate();
    });
    ws.once('error', reject);
  });
}
const refusal = (p: Promise<unknown>) => p.then(() => 'opened', (err: { statusCode?: number }) => err.statusCode ?? 'error');

async function breakRows() {
  return db.selectFrom('breaks').select(['id', 'agent_id', 'status']).orderBy('id').execute();
}

t.test('sign-in with an extension: the agent joins the ACD not ready, at that desk', async (t) => {
  t.equal(await stateOf(A), 'logged_out');
  const r = await login(A, PASSWORD, { extension: '8001' });
  t.equal(r.status, 200);
  t.same(Object.keys(r.body).sort(), ['agentId', 'expiresAt', 'role', 'token'], 'the reply is unchanged');
  t.match(r.body, { role: 'agent', agentId: A });
  t.match(await live(A), { state: 'not_ready', reason: 'signed-in' });
  t.equal((await db.selectFrom('agents').select('desk_extension').where('employee_no', '=', A).executeTakeFirstOrThrow()).desk_extension, '8001');
  await waitFor(
    () => db.selectFrom('agent_state_log').selectAll().where('agent_id', '=', A).where('to_state', '=', 'not_ready').executeTakeFirst(),
    3000,
    'the state log row',
  ).then((row) => t.match(row, { from_state: 'logged_out', reason: 'signed-in', actor: `agent:${A}` }));

  // signed in elsewhere: the state stays, the new desk is recorded; no extension leaves the desk alone
  await setState(A, 'ready');
  t.equal((await login(A, PASSWORD, { extension: '8002' })).status, 200);
  t.equal(await stateOf(A), 'ready', 'a second sign-in keeps the state');
  t.equal((await login(A)).status, 200);
  const today = await api('GET', `/api/v1/agents/${A}/today`, r.body.token);
  t.equal(today.body.extension, '8002', 'the last extension given is the desk');
  t.equal(today.body.state.state, 'ready');

  const sessions = async () => (await db.selectFrom('auth_sessions').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow()).n;
  const before = await sessions();
  for (const extension of ['1', 'abc', '12345678901234567', '80 01', '']) {
    const bad = await login(A, PASSWORD, { extension });
    t.equal(bad.status, 400, `extension "${extension}": 400`);
    t.equal(bad.body.error.code, 'invalid-request');
  }
  t.equal(await sessions(), before, 'no token issued for a bad body');

  const sup = await login('sup-one');
  t.equal(sup.status, 200, 'a user without an agent record signs in as before');
  t.equal(sup.body.agentId, null);
});

t.test('sign-out: the agent leaves the ACD; on a call it cannot (409, the token stays); a supervisor can force it', async (t) => {
  const token = await tokenOf(A, { extension: '8003' });
  t.equal((await logout(token)).status, 204);
  t.match(await live(A), { state: 'logged_out', reason: 'signed-out' });
  t.equal((await db.selectFrom('agents').select('desk_extension').where('employee_no', '=', A).executeTakeFirstOrThrow()).desk_extension, null, 'the desk is cleared');
  t.equal((await api('GET', `/api/v1/agents/${A}/today`, token)).status, 401, 'the token is dead');

  const tb = await tokenOf(B);
  await setState(B, 'ready');
  const callId = await reserve(B);
  const refusedReserved = await logout(tb);
  t.equal(refusedReserved.status, 409, 'reserved for a call: 409');
  t.equal(refusedReserved.body.error.code, 'on-call');
  await agentStates.transition(B, 'on_call', { expectCallId: callId, callId });
  const refused = await logout(tb);
  t.equal(refused.status, 409, 'on a call: 409');
  t.equal(refused.body.error.code, 'on-call');
  t.equal(await stateOf(B), 'on_call', 'the call goes on');
  t.equal((await api('GET', `/api/v1/agents/${B}/today`, tb)).status, 200, 'the token still works');

  await setState(B, 'logged_out'); // the supervisor's force sign-out
  t.equal(await stateOf(B), 'logged_out');
  t.equal((await logout(tb)).status, 204, 'then its own sign-out just ends the token');
});

t.test('failed sign-ins: 5 per user name, then 429 with Retry-After until the window passes; another user is not affected', async (t) => {
  await db.insertInto('users').values({ username: 'rl-user', password_hash: await hashPassword(PASSWORD), role: 'supervisor', agent_id: null }).execute();
  const at = '10.1.0.1';
  for (let i = 1; i <= 5; i++) {
    const r = await login('rl-user', `wrong-${i}`, {}, at);
    t.equal(r.status, 401, `failure ${i}: 401`);
  }
  const sixth = await login('rl-user', 'wrong-6', {}, at);
  t.equal(sixth.status, 429, 'the 6th: 429');
  t.equal(sixth.body.error.code, 'too-many-attempts');
  const retryAfter = Number(sixth.headers['retry-after']);
  t.ok(retryAfter >= 1 && retryAfter <= WINDOW_SECONDS, `Retry-After ${retryAfter}`);
  t.equal((await login('rl-user', PASSWORD, {}, at)).status, 429, 'the right password too, until the window passes');
  t.equal((await login('rl-user', PASSWORD, {}, '10.1.0.9')).status, 429, 'from another address too (the user name is locked)');
  t.equal((await login('sup-one', PASSWORD, {}, at)).status, 200, 'another user from the same address signs in');

  await new Promise((r) => setTimeout(r, WINDOW_SECONDS * 1000 + 200));
  t.equal((await login('rl-user', PASSWORD, {}, '10.1.0.2')).status, 200, 'after the window: signed in');

  // a success clears the user name's count: 4 failures, a success, 4 failures are never 5 in a row
  for (let i = 0; i < 4; i++) await login('rl-user', 'wrong', {}, '10.1.0.3');
  t.equal((await login('rl-user', PASSWORD, {}, '10.1.0.4')).status, 200);
  for (let i = 0; i < 4; i++) t.equal((await login('rl-user', 'wrong', {}, '10.1.0.5')).status, 401);

  const failures = logLines.filter((l) => l.msg === 'sign-in failed' && l.username === 'rl-user');
  t.ok(failures.length >= 13, `every failure is logged (${failures.length})`);
  t.match(failures[0], { username: 'rl-user', address: at });
  t.notOk(
    logLines.some((l) => /wrong-\d|pw-desk-secret/.test(JSON.stringify(l))),
    'no password in the log',
  );
});

t.test('failed sign-ins: per client address, across user names', async (t) => {
  const at = '10.2.0.1';
  for (let i = 1; i <= 8; i++) t.equal((await login(`nobody-${i}`, 'x', {}, at)).status, 401);
  const locked = await login('sup-one', PASSWORD, {}, at);
  t.equal(locked.status, 429, 'that address is locked, even for a right password');
  t.ok(Number(locked.headers['retry-after']) >= 1);
  t.equal((await login('sup-one', PASSWORD, {}, '10.2.0.2')).status, 200, 'another address is not');
});

t.test('a break: requested (supervisors hear) -> approved -> on break (the agent hears) -> no call offered -> resumed -> ready', async (t) => {
  const ta = await tokenOf(A);
  const tb = await tokenOf(B);
  await setState(A, 'ready');
  await setState(B, 'ready');
  const sup = await connect(tokens.supervisor);
  const aud = await connect(tokens.auditor);
  const wa = await connect(ta);
  const wb = await connect(tb, 'header');

  const req = await api('POST', `/api/v1/agents/${A}/breaks`, ta, { reason: 'lunch', minutes: 30 });
  t.equal(req.status, 201);
  t.match(req.body, { id: String, agentId: A, reason: 'lunch', minutes: 30, status: 'pending', requestedAt: String, requestedBy: `agent:${A}` });
  const id = req.body.id as string;
  const heard = await sup.next((m) => m.type === 'break.requested' && m.data.id === id, 'break.requested to the supervisor');
  t.same(Object.keys(heard).sort(), ['at', 'data', 'type'], 'the message is {type, at, data}');
  t.match(heard.data, { id, agentId: A, reason: 'lunch', minutes: 30, status: 'pending' });
  await aud.next((m) => m.type === 'break.requested' && m.data.id === id, 'break.requested to the auditor');
  t.notOk((await wa.drain()).some((m) => m.type === 'break.requested'), 'agents do not get the supervisors’ events');

  const pending = await api('GET', '/api/v1/breaks?status=pending', tokens.supervisor);
  t.equal(pending.status, 200);
  t.same(
    pending.body.items.map((b: { id: string }) => b.id),
    [id],
  );

  const approved = await api('POST', `/api/v1/breaks/${id}/approve`, tokens.supervisor);
  t.equal(approved.status, 200);
  t.match(approved.body, { id, status: 'active', decidedBy: /^supervisor:/, startedAt: String, endsAt: String });
  t.equal(Date.parse(approved.body.endsAt) - Date.parse(approved.body.startedAt), 30 * 60_000, 'ends 30 minutes after it started');
  t.match(await live(A), { state: 'on_break', reason: 'lunch' });
  await wa.next((m) => m.type === 'break.approved' && m.data.id === id && m.data.status === 'active', 'break.approved to the agent');
  const st = await wa.next((m) => m.type === 'agent.state' && m.data.state === 'on_break', 'agent.state on_break to the agent');
  t.same(Object.keys(st.data).sort(), ['agentId', 'reason', 'since', 'state']);
  t.match(st.data, { agentId: A, state: 'on_break', reason: 'lunch', since: String });
  await sup.next((m) => m.type === 'agent.state' && m.data.agentId === A && m.data.state === 'on_break', 'the supervisor sees it too');
  t.notOk((await wb.drain()).some((m) => m.data?.agentId === A), "B gets none of A's events");
  t.notOk((await aud.drain()).some((m) => m.type === 'agent.state'), "the auditor gets no agent's own events");

  t.equal(await offered(A), false, 'on break: the ACD offers A no call');
  const busy = await api('POST', `/api/v1/agents/${A}/breaks`, ta, { reason: 'again', minutes: 5 });
  t.equal(busy.status, 409, 'one break at a time');
  t.equal(busy.body.error.code, 'break-exists');

  const resumed = await api('DELETE', `/api/v1/agents/${A}/break`, ta);
  t.equal(resumed.status, 200);
  t.match(resumed.body, { id, status: 'ended', endReason: 'resumed', endedAt: String });
  t.equal(await stateOf(A), 'ready');
  await wa.next((m) => m.type === 'break.ended' && m.data.id === id, 'break.ended to the agent').then((m) => t.match(m.data, { agentId: A, reason: 'resumed', break: { reason: 'lunch' } }));
  t.equal(await offered(A), true, 'ready again: offered calls');

  // B's own change reaches B and the supervisor, not A
  await setState(B, 'not_ready');
  await sup.next((m) => m.type === 'agent.state' && m.data.agentId === B && m.data.state === 'not_ready', 'the supervisor sees B');
  await wb.next((m) => m.type === 'agent.state' && m.data.agentId === B, 'B sees itself');
  t.notOk((await wa.drain()).some((m) => m.data?.agentId === B), "A gets none of B's events");
});

t.test('approved during a call: the break starts when the agent is released', async (t) => {
  const tb = await tokenOf(B);
  await setState(B, 'ready');
  const callId = await reserve(B);
  await agentStates.transition(B, 'on_call', { expectCallId: callId, callId });
  const id = (await api('POST', `/api/v1/agents/${B}/breaks`, tb, { reason: 'coffee', minutes: 10 })).body.id as string;
  const approved = await api('POST', `/api/v1/breaks/${id}/approve`, tokens.supervisor);
  t.match(approved.body, { status: 'approved', startedAt: null, endsAt: null }, 'waits for the call');
  t.equal(await stateOf(B), 'on_call', 'the call is not disturbed');
  await agentStates.transition(B, 'wrap_up', { expectCallId: callId });
  t.equal((await breaks.get(id))!.status, 'approved', 'wrap-up is part of the call');

  const released = await agentStates.tryTransition(B, 'ready', { expectCallId: callId, reason: null });
  t.equal(released?.to, 'on_break', 'released: on break instead of ready (never offered a call in between)');
  t.match(await live(B), { state: 'on_break', reason: 'coffee' });
  await waitFor(async () => (await breaks.get(id))!.status === 'active', 3000, 'the break active');
  t.ok((await breaks.get(id))!.endsAt, 'with its end');
  t.equal((await api('DELETE', `/api/v1/agents/${B}/break`, tb)).status, 200);
  t.equal(await stateOf(B), 'ready');

  // released from reserved (the caller hung up while B's phone rang): reserved -> on_break is no move, so B is
  // released to ready as asked and the sweep starts the break
  const call2 = await reserve(B);
  const id2 = (await api('POST', `/api/v1/agents/${B}/breaks`, tb, { reason: 'tea', minutes: 10 })).body.id as string;
  t.equal((await api('POST', `/api/v1/breaks/${id2}/approve`, tokens.supervisor)).body.status, 'approved');
  await agentStates.tryTransition(B, 'ready', { expectCallId: call2, reason: null });
  t.equal(await stateOf(B), 'ready');
  await breaks.sweep();
  t.match(await live(B), { state: 'on_break', reason: 'tea' }, 'the sweep started it');
  t.equal((await breaks.get(id2))!.status, 'active');
  t.equal((await api('DELETE', `/api/v1/agents/${B}/break`, tokens.supervisor)).status, 200, 'a supervisor ends it');
  t.equal(await stateOf(B), 'ready');
});

t.test('a waiting break lives on the agent record: withdrawn, it no longer waits; lost with Redis, the sweep writes it again', async (t) => {
  const tb = await tokenOf(B);
  const waitingBreak = () => infra.redis.hget(infra.keys.acdAgent(B), 'break');
  await setState(B, 'ready');
  const callId = await reserve(B);
  await agentStates.transition(B, 'on_call', { expectCallId: callId, callId });
  const id = (await api('POST', `/api/v1/agents/${B}/breaks`, tb, { reason: 'coffee', minutes: 10 })).body.id as string;
  t.equal((await api('POST', `/api/v1/breaks/${id}/approve`, tokens.supervisor)).body.status, 'approved');
  t.equal(await waitingBreak(), 'coffee', 'waits on the live record');
  const withdrawn = await api('DELETE', `/api/v1/agents/${B}/break`, tb);
  t.match(withdrawn.body, { id, status: 'cancelled', endReason: 'cancelled' });
  t.equal(await waitingBreak(), null, 'no longer waits');
  await agentStates.transition(B, 'wrap_up', { expectCallId: callId });
  t.equal((await agentStates.tryTransition(B, 'ready', { expectCallId: callId, reason: null }))?.to, 'ready', 'released to ready: the withdrawn break does not start');

  // approved during the next call; Redis loses it (restarted without persistence): the sweep writes it again
  const call2 = await reserve(B);
  await agentStates.transition(B, 'on_call', { expectCallId: call2, callId: call2 });
  const id2 = (await api('POST', `/api/v1/agents/${B}/breaks`, tb, { reason: 'tea', minutes: 10 })).body.id as string;
  await api('POST', `/api/v1/breaks/${id2}/approve`, tokens.supervisor);
  await infra.redis.hdel(infra.keys.acdAgent(B), 'break');
  await breaks.sweep();
  t.equal(await waitingBreak(), 'tea', 'written again by the sweep');
  t.equal(await stateOf(B), 'on_call', 'the call is not disturbed');
  await agentStates.transition(B, 'wrap_up', { expectCallId: call2 });
  t.equal((await agentStates.tryTransition(B, 'not_ready', { expectCallId: call2, reason: 'after call' }))?.to, 'on_break', 'released: on break');
  t.match(await live(B), { state: 'on_break', reason: 'tea' });
  t.equal(await waitingBreak(), null, 'started: no longer waits');
  await waitFor(async () => (await breaks.get(id2))!.status === 'active', 3000, 'the break active');
  t.equal((await api('DELETE', `/api/v1/agents/${B}/break`, tb)).status, 200);
  t.equal(await stateOf(B), 'ready');
  t.equal((await agentStates.tryTransition(B, 'ready', { reason: null }))?.to, 'ready', 'and nothing waits after it');
});

t.test('a break runs out: the sweep puts the agent back to ready and tells it (expired); two sweepers act once', async (t) => {
  const ta = await tokenOf(A);
  await setState(A, 'ready');
  const wa = await connect(ta);
  const sup = await connect(tokens.supervisor);
  const id = (await api('POST', `/api/v1/agents/${A}/breaks`, ta, { reason: 'rest', minutes: 1 })).body.id as string;
  t.equal((await api('POST', `/api/v1/breaks/${id}/approve`, tokens.supervisor)).body.status, 'active');
  await breaks.sweep();
  t.equal(await stateOf(A), 'on_break', 'not due yet: nothing happens');

  await db.updateTable('breaks').set({ ends_at: new Date(Date.now() - 1000) }).where('id', '=', id).execute();
  // another process on the same database and Redis sweeping at the same moment
  const otherStates = createAgentStates({ engine, db: infra.otherDb(), log: infra.log, events });
  const other = createBreaks({ db: infra.otherDb(), engine, agentStates: otherStates, events, log: infra.log });
  await Promise.all([breaks.sweep(), other.sweep()]);
  t.equal(await stateOf(A), 'ready');
  t.match(await breaks.get(id), { status: 'ended', endReason: 'expired', endedAt: String });
  const ended = await wa.next((m) => m.type === 'break.ended' && m.data.id === id, 'break.ended to the agent');
  t.equal(ended.data.reason, 'expired');
  t.equal((await sup.drain()).filter((m) => m.type === 'break.ended' && m.data.id === id).length, 1, 'one process acted');

  // and the periodic sweep does it by itself
  const id2 = (await api('POST', `/api/v1/agents/${A}/breaks`, ta, { reason: 'rest', minutes: 1 })).body.id as string;
  await api('POST', `/api/v1/breaks/${id2}/approve`, tokens.supervisor);
  t.equal(await stateOf(A), 'on_break');
  await db.updateTable('breaks').set({ ends_at: new Date(Date.now() - 1000) }).where('id', '=', id2).execute();
  const stop = breaks.startSweeper(100);
  t.teardown(stop);
  await waitFor(async () => (await stateOf(A)) === 'ready', 3000, 'A ready again');
  await wa.next((m) => m.type === 'break.ended' && m.data.id === id2 && m.data.reason === 'expired', 'break.ended expired');
  stop();
});

t.test('a state change ends the break; a sign-out ends or cancels it', async (t) => {
  const ta = await tokenOf(A);
  await setState(A, 'ready');
  const id = (await api('POST', `/api/v1/agents/${A}/breaks`, ta, { reason: 'walk', minutes: 15 })).body.id as string;
  await api('POST', `/api/v1/breaks/${id}/approve`, tokens.supervisor);
  t.equal(await stateOf(A), 'on_break');
  await setState(A, 'not_ready'); // a supervisor moves A off the break
  await waitFor(async () => (await breaks.get(id))!.status === 'ended', 3000, 'the break ended');
  t.equal((await breaks.get(id))!.endReason, 'state-changed');

  const pending = (await api('POST', `/api/v1/agents/${A}/breaks`, ta, { reason: 'later', minutes: 15 })).body.id as string;
  t.equal((await logout(ta)).status, 204);
  await waitFor(async () => (await breaks.get(pending))!.status === 'cancelled', 3000, 'the pending break cancelled');
  t.equal((await breaks.get(pending))!.endReason, 'signed-out');
});

t.test('reject: the agent hears, and may ask again; a pending break can be withdrawn', async (t) => {
  const ta = await tokenOf(A);
  const wa = await connect(ta);
  const id = (await api('POST', `/api/v1/agents/${A}/breaks`, ta, { reason: 'errand', minutes: 20 })).body.id as string;
  const rejected = await api('POST', `/api/v1/breaks/${id}/reject`, tokens.admin);
  t.equal(rejected.status, 200);
  t.match(rejected.body, { id, status: 'rejected', decidedBy: /^admin:/, decidedAt: String });
  await wa.next((m) => m.type === 'break.rejected' && m.data.id === id, 'break.rejected to the agent');
  t.equal(await stateOf(A), 'not_ready', 'the state is untouched');
  t.equal((await api('POST', `/api/v1/breaks/${id}/approve`, tokens.supervisor)).body.error.code, 'break-not-pending', 'a decided break stays decided');

  const again = await api('POST', `/api/v1/agents/${A}/breaks`, ta, { reason: 'errand', minutes: 10 });
  t.equal(again.status, 201, 'a new request after a rejection');
  const withdrawn = await api('DELETE', `/api/v1/agents/${A}/break`, ta);
  t.match(withdrawn.body, { id: again.body.id, status: 'cancelled', endReason: 'cancelled' });
  await wa.next((m) => m.type === 'break.ended' && m.data.id === again.body.id && m.data.reason === 'cancelled', 'break.ended cancelled');
  t.equal((await api('DELETE', `/api/v1/agents/${A}/break`, ta)).body.error.code, 'no-break', 'nothing left to end');
});

t.test('bad requests are refused and change nothing', async (t) => {
  const ta = await tokenOf(A);
  await tokenOf(B);
  const pending = await api('POST', `/api/v1/agents/${A}/breaks`, ta, { reason: 'nap', minutes: 5 });
  t.equal(pending.status, 201);
  const rowsBefore = await breakRows();
  const statesBefore = [await live(A), await live(B)];

  const bodies: Array<[string, unknown]> = [
    ['an empty reason', { reason: '', minutes: 5 }],
    ['a reason of 65 characters', { reason: 'x'.repeat(65), minutes: 5 }],
    ['0 minutes', { reason: 'x', minutes: 0 }],
    ['121 minutes', { reason: 'x', minutes: 121 }],
    ['1.5 minutes', { reason: 'x', minutes: 1.5 }],
    ['no minutes', { reason: 'x' }],
    ['an unknown field', { reason: 'x', minutes: 5, approved: true }],
    ['not an object', ['x', 5]],
  ];
  for (const [what, body] of bodies) {
    const r = await api('POST', `/api/v1/agents/${B}/breaks`, tokens.supervisor, body);
    t.equal(r.status, 400, `${what}: 400`);
    t.equal(r.body.error.code, 'invalid-request', `${what}: invalid-request`);
  }
  t.equal((await api('POST', `/api/v1/agents/${A}/breaks`, ta, { reason: 'x', minutes: 5 })).body.error.code, 'break-exists');
  t.equal((await api('POST', '/api/v1/agents/NOBODY/breaks', tokens.supervisor, { reason: 'x', minutes: 5 })).body.error.code, 'no-such-agent');
  t.equal((await api('POST', '/api/v1/agents/not-an-id!/breaks', tokens.supervisor, { reason: 'x', minutes: 5 })).status, 400);

  const unknown = randomUUID();
  for (const d of ['approve', 'reject']) {
    const r = await api('POST', `/api/v1/breaks/${unknown}/${d}`, tokens.supervisor);
    t.equal(r.status, 404, `${d} an unknown break: 404`);
    t.equal(r.body.error.code, 'no-such-break');
    t.equal((await api('POST', `/api/v1/breaks/not-a-uuid/${d}`, tokens.supervisor)).status, 400, `${d} a malformed id: 400`);
  }
  t.equal((await api('DELETE', `/api/v1/agents/${B}/break`, tokens.supervisor)).body.error.code, 'no-break', 'B has no break: 404');

  // roles: an agent acts for itself only and decides nothing
  t.equal((await api('POST', `/api/v1/breaks/${pending.body.id}/approve`, ta)).status, 403, 'an agent cannot approve (even its own)');
  t.equal((await api('POST', `/api/v1/breaks/${pending.body.id}/reject`, ta)).status, 403);
  t.equal((await api('POST', `/api/v1/agents/${B}/breaks`, ta, { reason: 'x', minutes: 5 })).status, 403, "another agent's break request: 403");
  t.equal((await api('DELETE', `/api/v1/agents/${B}/break`, ta)).status, 403, "another agent's break: 403");
  const tb = await tokenOf(B);
  t.equal((await api('DELETE', `/api/v1/agents/${A}/break`, tb)).status, 403, "B ending A's break: 403");
  t.equal((await api('GET', `/api/v1/agents/${B}/today`, ta)).status, 403);
  t.equal((await api('GET', '/api/v1/breaks?status=pending', ta)).status, 403, 'an agent does not list breaks');
  t.equal((await api('POST', `/api/v1/agents/${A}/breaks`, tokens.auditor, { reason: 'x', minutes: 5 })).status, 403, 'nor does an auditor ask');
  t.equal((await api('GET', '/api/v1/breaks?status=later', tokens.supervisor)).status, 400, 'an unknown status: 400');
  t.equal((await api('GET', '/api/v1/breaks?colour=red', tokens.supervisor)).status, 400, 'an unknown query field: 400');

  // an expired token: 401 everywhere, the socket refused
  const expiring = await tokenOf(A);
  await db.updateTable('auth_sessions').set({ expires_at: new Date(Date.now() - 1000) }).where('expires_at', '>', new Date()).where('user_id', '=', db.selectFrom('users').select('id').where('username', '=', A).limit(1)).execute();
  for (const [method, url, body] of [
    ['POST', `/api/v1/agents/${A}/breaks`, { reason: 'x', minutes: 5 }],
    ['DELETE', `/api/v1/agents/${A}/break`, undefined],
    ['GET', `/api/v1/agents/${A}/today`, undefined],
    ['POST', '/api/v1/auth/logout', undefined],
  ] as const) {
    const r = await api(method, url, expiring, body);
    t.equal(r.status, 401, `${method} ${url} with an expired token: 401`);
    t.equal(r.body.error.code, 'token-expired');
  }
  t.equal(await refusal(connect(expiring)), 401, 'the socket refuses it');
  t.equal((await api('GET', `/api/v1/agents/${A}/today`, ta)).status, 401, "A's other tokens expired with it");

  t.same(await breakRows(), rowsBefore, 'no break changed');
  t.same([await live(A), await live(B)], statesBefore, 'no agent moved');
  t.equal((await api('DELETE', `/api/v1/agents/${A}/break`, tokens.supervisor)).status, 200, 'clean up: withdraw the pending break');
});

t.test('the events socket: bad tokens refused, hello, the token ending closes it; documented in OpenAPI', async (t) => {
  t.equal(await refusal(connect(null)), 401, 'no token: 401');
  t.equal(await refusal(connect('made-up-token')), 401, 'an unknown token: 401');
  t.equal(await refusal(connect('made-up-token', 'header')), 401, 'an unknown bearer header: 401');
  const plain = await app.inject({ method: 'GET', url: `/api/v1/events?token=${tokens.supervisor}` });
  t.equal(plain.statusCode, 426, 'a plain GET: 426');
  t.equal(plain.json().error.code, 'upgrade-required');

  const ta = await tokenOf(A);
  const wa = await connect(ta);
  const hello = await wa.next((m) => m.type === 'hello', 'hello');
  t.same(hello.data, { role: 'agent', agentId: A });
  t.ok(!Number.isNaN(Date.parse(hello.at)));
  const sup = await connect(tokens.supervisor, 'header');
  t.same((await sup.next((m) => m.type === 'hello', 'hello')).data, { role: 'supervisor', agentId: null });

  // signed out elsewhere (another process, say): the token check closes the socket
  t.equal((await logout(ta)).status, 204);
  const closed = await Promise.race([wa.closed, new Promise<null>((r) => setTimeout(() => r(null), 3000))]);
  t.equal(closed?.code, 4001, 'closed with 4001 once the token is gone');

  // an expiring token likewise
  const tb = await tokenOf(B);
  const wb = await connect(tb);
  await db.updateTable('auth_sessions').set({ expires_at: new Date(Date.now() - 1000) }).where('expires_at', '>', new Date()).where('user_id', '=', db.selectFrom('users').select('id').where('username', '=', B).limit(1)).execute();
  const closedB = await Promise.race([wb.closed, new Promise<null>((r) => setTimeout(() => r(null), 3000))]);
  t.equal(closedB?.code, 4001, 'an expired token closes its socket');
  t.equal(sup.ws.readyState, WebSocket.OPEN, 'the others stay');

  const urls = logLines.filter((l) => l.msg === 'incoming request' && JSON.stringify(l).includes('/api/v1/events'));
  t.ok(urls.length > 0);
  t.notOk(urls.some((l) => JSON.stringify(l).includes(tokens.supervisor) || JSON.stringify(l).includes(ta)), 'no token in the request log');

  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
  const p = doc.paths['/api/v1/events/'] ?? doc.paths['/api/v1/events'];
  t.ok(p?.get, 'the socket is in the OpenAPI document');
  t.match(p.get.description, /WebSocket/);
  for (const path of ['/api/v1/agents/{id}/breaks', '/api/v1/agents/{id}/break', '/api/v1/breaks/{id}/approve', '/api/v1/breaks/{id}/reject', '/api/v1/breaks/', '/api/v1/agents/{id}/today']) {
    t.ok(doc.paths[path] ?? doc.paths[path.replace(/\/$/, '')], `documents ${path}`);
  }
});

t.test("today: the agent's queues, its answered calls and talk time today, its state", async (t) => {
  const ta = await tokenOf(A, { extension: '8009' });
  const call = (agents: string[], answeredAt: Date | null, talk: number | null) => ({
    id: randomUUID(),
    direction: 'inbound' as const,
    caller: '13800138000',
    dialed: '12345',
    channel_id: `ch-${randomUUID()}`,
    arrived_at: answeredAt ?? new Date(),
    answered_at: answeredAt,
    agents,
    talk_seconds: talk,
  });
  await db
    .insertInto('calls')
    .values([
      call([A], new Date(), 30),
      call([B, A], new Date(Date.now() - 60_000), 45.4),
      call([A], null, null), // not answered
      call([A], new Date(Date.now() - 2 * 86400_000), 100), // two days ago
      call([B], new Date(), 50), // someone else's
    ])
    .execute();
  const waitingSince = Date.now() - 12_000;
  await engine.enqueue({ callId: randomUUID(), queue: 'general', priority: 0, enqueuedAt: waitingSince, stages: [{ afterSeconds: 0, needs: [{ skill: 'nobody-has-this', minLevel: 1 }] }] });

  const r = await api('GET', `/api/v1/agents/${A}/today`, ta);
  t.equal(r.status, 200);
  t.match(r.body, { answered: 2, talkSeconds: 75, extension: '8009', state: { state: 'not_ready', reason: 'signed-in', since: String, callId: null }, break: null });
  const names = r.body.queues.map((q: { name: string }) => q.name);
  t.ok(names.includes('general') && names.includes('en'), `A's skills' queues: ${names.join(', ')}`);
  t.notOk(names.includes('ja'), 'not queues it has no skill for');
  const general = r.body.queues.find((q: { name: string }) => q.name === 'general');
  t.match(general, { title: String, waiting: 1 });
  t.ok(general.longestWaitSeconds >= 12 && general.longestWaitSeconds < 30, `longest wait ${general.longestWaitSeconds}`);
  t.equal((await api('GET', `/api/v1/agents/${A}/today`, tokens.supervisor)).status, 200, 'a supervisor reads it too');
  t.equal((await api('GET', '/api/v1/agents/NOBODY/today', tokens.supervisor)).status, 404);
});
