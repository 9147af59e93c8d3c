/**
 * The call flow's races, with a fake Asterisk (src/ari/fake.ts) and the real PostgreSQL and Redis:
 * the orders of events that are hard to produce with SIPp on purpose.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { createQueuesConfig } from '../../src/acd/queues.config.js';
import { createRedisEngine } from '../../src/acd/redis-engine.js';
import { createAgentStates } from '../../src/agents/agent-states.js';
import { FakeAri, unreachable } from '../../src/ari/fake.js';
import type { OriginateRequest } from '../../src/ari/port.js';
import { createCallRouter } from '../../src/calls/calls.stasis.js';
import { createDb, ensureDatabase } from '../../src/db/db.js';
import { migrateToLatest } from '../../src/db/migrator.js';
import { connectRedis, createRedis } from '../../src/redis/client.js';
import { createKeys } from '../../src/redis/keys.js';
import { createIvrStore } from '../../src/ivr/ivr.store.js';
import { waitFor } from '../helpers/stack.js';
import { writeQueuesFile } from '../helpers/acd.js';

const dbUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/hotline_test';
await ensureDatabase(dbUrl);
const db = createDb(dbUrl);
await migrateToLatest(db);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const redis = createRedis(redisUrl);
const subscriber = createRedis(redisUrl);
await connectRedis(redis, redisUrl);
await connectRedis(subscriber, redisUrl);
const prefix = `test-session-${randomUUID().slice(0, 8)}`;
const keys = createKeys(prefix);
const log = pino({ level: 'silent' });
const engine = createRedisEngine({ redis, subscriber, keys, log });
const agentStates = createAgentStates({ engine, db, log });
const queues = createQueuesConfig(
  writeQueuesFile(
    'defaults: { ringSeconds: 5, wrapUpSeconds: 0, announceEverySeconds: 0, callbackOffer: null }\nqueues:\n  general: { skill: general }\n  en: { skill: en }\n  ru: { skill: ru }\n  "12333": { skill: "12333" }\n  blacklist: { skill: blacklist }\n',
  ),
  log,
  { watch: false },
);
const ari = new FakeAri();
const ivr = createIvrStore(path.join(import.meta.dirname, '../fixtures/ivr/good'), queues, log, { watch: false });
const maintenance = { on: null as null | { source: string; scope: string; message: string | null; allowVoicemail: boolean }, effective() { return this.on; } };
/** a service process's call router on this Asterisk (the take-over test makes two more) */
const routerOn = (port: typeof ari, repeatCallerDays = 0) =>
  createCallRouter({
    ari: port,
    db,
    redis,
    keys,
    engine,
    agentStates,
    queues,
    ivr,
    maintenance,
    dialTemplate: 'PJSIP/trunk/sip:{number}@127.0.0.1:5099',
    voicemailMaxSeconds: 60,
    repeatCallerDays,
    defaultHandleSeconds: 180,
    log,
  });
const router = routerOn(ari);
let offShared = ari.onEvent((e) => router.handle(e));
t.teardown(async () => {
  await engine.close();
  const left = await redis.keys(`${prefix}:*`);
  if (left.length) await redis.del(...left);
  redis.disconnect();
  subscriber.disconnect();
  await db.destroy();
});

const agentId = `9${String(Date.now()).slice(-5)}`;
await engine.upsertAgent(agentId, { general: 5 }, `PJSIP/agent${agentId}`);
await agentStates.transition(agentId, 'not_ready', { reason: 'signed in' });
await agentStates.transition(agentId, 'ready');

let numbers = 0;
const nextCaller = () => `1370000${String(Date.now() % 10000).padStart(4, '0')}${++numbers}`.slice(0, 13);
const recordOf = (caller: string) =>
  waitFor(async () => {
    const r = await db.selectFrom('calls').selectAll().where('caller', '=', caller).orderBy('arrived_at', 'desc').executeTakeFirst(); // its newest call
    return r?.ended_at ? r : undefined;
  }, 10_000, `record of ${caller}`);
const originated = (n: number) => waitFor(() => (ari.ops('originate').length >= n ? (ari.ops('originate')[n - 1]![0] as OriginateRequest) : undefined), 10_000, `originate #${n}`);
const agentState = async () => (await engine.getAgent(agentId))!;
/** a caller arrives on 12345 and presses 1: the agent phone the router rings for it */
const callerRung = async (caller: string) => {
  const n = ari.ops('originate').length + 1;
  const c = ari.callerArrives(caller, '12345');
  ari.press(c.id, '1');
  return { c, req: await originated(n) };
};

t.test('given a caller who presses 1, when the agent answers and the caller hangs up, then answered, and the agent is free again', async (t) => {
  const caller = nextCaller();
  const c = ari.callerArrives(caller, '12345');
  ari.press(c.id, '1');
  const req = await originated(1);
  t.equal(req.endpoint, `PJSIP/agent${agentId}`);
  // while the agent rings, the caller waits on its own channel with music: no bridge, no music announcer yet
  t.ok(ari.ops('startMoh').some((a) => a[0] === c.id), 'music on the caller channel');
  t.same(ari.ops('bridge.create'), [], 'no bridge while the caller waits');
  ari.answer(req.channelId);
  await waitFor(() => ari.ops('bridge.add').some((a) => (a[1] as string[]).includes(req.channelId)) || undefined, 5000, 'agent bridged');
  t.same(ari.ops('bridge.add').map((a) => a[1]), [[c.id, req.channelId]], 'caller and agent join the new bridge in one request');
  t.ok(ari.ops('stopMoh').some((a) => a[0] === c.id), "the caller channel's music stopped");
  t.same(ari.ops('bridge.moh'), [], 'no music announcer in the bridge');
  t.equal((await agentState()).state, 'on_call');
  // the live state supervisors and /metrics read: the call's hash (with its TTL) and the set of live calls
  const { id } = await waitFor(() => db.selectFrom('calls').select('id').where('caller', '=', caller).executeTakeFirst(), 5000, 'the call row');
  const live = await waitFor(async () => {
    const h = await redis.hgetall(keys.call(id));
    return h.state === 'talking' ? h : undefined;
  }, 5000, 'live state: talking');
  t.match(live, { state: 'talking', agentId, caller, dialed: '12345', queue: 'general' });
  const ttl = await redis.ttl(keys.call(id));
  t.ok(ttl > 5 * 3600 && ttl <= 6 * 3600, `the live state expires by itself (${ttl} s left)`);
  t.equal(await redis.sismember(keys.liveCalls(), id), 1, 'in the set of live calls');
  ari.hangupFromOutside(c.id);
  const rec = await recordOf(caller);
  t.equal(rec.disposition, 'answered');
  t.same(rec.agents, [agentId]);
  await waitFor(async () => ((await redis.exists(keys.call(id))) === 0 && (await redis.sismember(keys.liveCalls(), id)) === 0 ? true : undefined), 5000, 'live state removed at the end');
  await waitFor(async () => (await agentState()).state === 'ready' || undefined, 5000, 'agent ready after wrap-up');
  t.notOk(ari.live.has(req.channelId), 'the agent leg was hung up too');
  t.same(await ari.bridges.list(), [], 'the bridge was destroyed');
});

t.test('given a caller who hangs up during the welcome, then abandoned, never queued, nobody rung', async (t) => {
  const before = ari.ops('originate').length;
  const caller = nextCaller();
  const c = ari.callerArrives(caller, '12345');
  await waitFor(() => ari.ops('play').some((a) => a[0] === c.id) || undefined, 5000, 'the welcome');
  ari.hangupFromOutside(c.id);
  const rec = await recordOf(caller);
  t.equal(rec.disposition, 'abandoned');
  t.equal(rec.queued_at, null);
  t.equal(ari.ops('originate').length, before, 'no agent rung');
});

t.test('given the caller leaves while the agent phone rings, when the agent answers a moment later, then the agent leg is hung up and the agent is ready', async (t) => {
  const caller = nextCaller();
  const { c, req } = await callerRung(caller);
  ari.hangupFromOutside(c.id);
  await recordOf(caller);
  if (ari.live.has(req.channelId)) ari.answer(req.channelId); // too late
  await waitFor(() => !ari.live.has(req.channelId) || undefined, 5000, 'the late agent leg hung up');
  await waitFor(async () => (await agentState()).state === 'ready' || undefined, 5000, 'agent ready');
  t.equal((await db.selectFrom('calls').select('disposition').where('caller', '=', caller).executeTakeFirstOrThrow()).disposition, 'abandoned');
});

t.test('given Asterisk does not answer the originate, then the agent is not blamed (stays ready) and the next try connects', async (t) => {
  const caller = nextCaller();
  const n = ari.ops('originate').length + 1;
  ari.originateFailure = unreachable();
  const c = ari.callerArrives(caller, '12345');
  ari.press(c.id, '1');
  await originated(n);
  const second = await originated(n + 1);
  const log = await db.selectFrom('agent_state_log').select(['to_state', 'reason']).where('agent_id', '=', agentId).orderBy('id', 'desc').limit(4).execute();
  t.notOk(log.some((r) => r.reason === 'ring-no-answer'), 'never set not ready for it');
  ari.answer(second.channelId);
  await waitFor(async () => (await agentState()).state === 'on_call' || undefined, 5000, 'on call');
  ari.hangupFromOutside(c.id);
  t.equal((await recordOf(caller)).disposition, 'answered');
  await waitFor(async () => (await agentState()).state === 'ready' || undefined, 5000, 'agent ready');
});

t.test('given the agent phone rings out, then the agent is not ready (ring-no-answer) and the caller keeps waiting', async (t) => {
  const caller = nextCaller();
  const n = ari.ops('originate').length + 1;
  const c = ari.callerArrives(caller, '12345');
  ari.press(c.id, '1');
  const req = await originated(n);
  ari.hangupFromOutside(req.channelId); // no answer: Asterisk destroys the originated channel
  await waitFor(async () => (await agentState()).state === 'not_ready' || undefined, 5000, 'agent not ready');
  t.equal((await agentState()).reason, 'ring-no-answer');
  t.equal(await engine.position('general', router.get(`${(await db.selectFrom('calls').select('id').where('caller', '=', caller).executeTakeFirstOrThrow()).id}`)!.id), 1, 'the caller is back in line, first');
  ari.hangupFromOutside(c.id);
  t.equal((await recordOf(caller)).disposition, 'abandoned');
  await agentStates.transition(agentId, 'ready');
});

t.test('given a take-over, when the caller of a connected call hangs up between the channel list and its adoption, then the record is closed all the same', async (t) => {
  // the first process: it connects the call, then "dies" (hears nothing more)
  const ownerA = routerOn(ari);
  // the shared router above stays deaf for this test: only ownerA, then ownerB hear the fake
  offShared();
  const offA = ari.onEvent((e) => ownerA.handle(e));
  const caller = nextCaller();
  const n = ari.ops('originate').length + 1;
  const c = ari.callerArrives(caller, '12345');
  ari.press(c.id, '1');
  const req = await originated(n);
  ari.answer(req.channelId);
  await waitFor(() => ari.ops('bridge.add').some((a) => (a[1] as string[]).includes(req.channelId)) || undefined, 5000, 'agent bridged');
  await waitFor(async () => ((await db.selectFrom('calls').select('answered_at').where('caller', '=', caller).executeTakeFirst())?.answered_at ? true : undefined), 5000, 'answered on record');
  offA();
  // the successor lists Asterisk's channels; the caller hangs up right after that list, before it is tracked
  let listed = 0;
  const channelsB = {
    ...ari.channels,
    list: async () => {
      const r = await ari.channels.list();
      if (++listed === 1) setImmediate(() => ari.hangupFromOutside(c.id));
      return r;
    },
  };
  const ariB = new Proxy(ari, { get: (target, prop) => (prop === 'channels' ? channelsB : Reflect.get(target, prop, target)) });
  const ownerB = routerOn(ariB);
  const offB = ari.onEvent((e) => ownerB.handle(e));
  t.teardown(offB);
  await ownerB.resync();
  t.ok(listed >= 2, 'the channels were listed again at the end');
  const rec = await recordOf(caller);
  t.equal(rec.disposition, 'answered', 'closed as an answered call');
  t.equal(rec.end_reason, 'caller');
  t.notOk(ari.live.has(req.channelId), 'the agent leg was hung up');
  offB();
  // the shared router hears the fake again for the tests after this one
  offShared = ari.onEvent((e) => router.handle(e));
  await waitFor(async () => (await agentState()).state === 'ready' || undefined, 5000, 'agent ready again');
});

t.test('given a reconciliation under way (a hand-over, a reconnection), when a caller arrives while the channel list is on its way, then that call goes on', async (t) => {
  // the list answers with what Asterisk had when it was asked; the new caller arrives (and is taken) before the answer
  const caller = nextCaller();
  const realList = ari.channels.list;
  t.teardown(() => {
    ari.channels.list = realList;
  });
  let c: ReturnType<typeof ari.callerArrives> | null = null;
  ari.channels.list = async () => {
    const before = await realList();
    c = ari.callerArrives(caller, '12345');
    await waitFor(async () => ((await db.selectFrom('calls').select('id').where('caller', '=', caller).executeTakeFirst()) ? true : undefined), 5000, 'the new call on record');
    return before;
  };
  await router.resync();
  ari.channels.list = realList;
  t.ok(c, 'the caller arrived during the reconciliation');
  const n = ari.ops('originate').length + 1;
  ari.press(c!.id, '1');
  const req = await originated(n);
  ari.answer(req.channelId);
  await waitFor(() => ari.ops('bridge.add').some((a) => (a[1] as string[]).includes(req.channelId)) || undefined, 5000, 'agent bridged');
  ari.hangupFromOutside(c!.id);
  const rec = await recordOf(caller);
  t.equal(rec.disposition, 'answered', 'answered by an agent, not ended as vanished');
  await waitFor(async () => (await agentState()).state === 'ready' || undefined, 5000, 'agent ready again');
});

t.test('given a repeat caller, then it is offered first to the agent of its last answered call, though another agent has waited longer', async (t) => {
  const other = `8${String(Date.now()).slice(-5)}`;
  await engine.upsertAgent(other, { general: 5 }, `PJSIP/agent${other}`);
  await agentStates.transition(other, 'not_ready', { reason: 'signed in' });
  await agentStates.transition(other, 'ready');
  // agentId is ready again after `other`: longest idle first would offer `other`
  await agentStates.transition(agentId, 'not_ready');
  await agentStates.transition(agentId, 'ready');
  const caller = nextCaller();
  await db
    .insertInto('calls')
    .values({ id: randomUUID(), direction: 'inbound', caller, dialed: '12345', line: '12345', language: 'zh', channel_id: 'chan-earlier', arrived_at: new Date(Date.now() - 3600_000), agents: [agentId], disposition: 'answered' })
    .execute();
  offShared();
  const repeat = routerOn(ari, 30);
  const off = ari.onEvent((e) => repeat.handle(e));
  const ringsFor = async (number: string) => {
    const { c, req } = await callerRung(number);
    ari.hangupFromOutside(c.id);
    await recordOf(number);
    await waitFor(async () => ((await engine.getAgent(agentId))!.state === 'ready' && (await engine.getAgent(other))!.state === 'ready') || undefined, 5000, 'both agents ready');
    return req.endpoint;
  };
  t.equal(await ringsFor(caller), `PJSIP/agent${agentId}`, 'the agent of its last answered call');
  t.equal(await ringsFor(nextCaller()), `PJSIP/agent${other}`, 'a caller without history: the agent idle longest');
  off();
  offShared = ari.onEvent((e) => router.handle(e));
  await agentStates.transition(other, 'not_ready');
  await engine.removeAgent(other);
});
