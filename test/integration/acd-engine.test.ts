/**
 * Claiming agents for waiting calls with the Redis ACD engine (real Redis at REDIS_URL): who gets which agent,
 * FIFO across processes, skill relaxation, pub/sub between processes, and two engines racing for 200 reservations.
 */
import { Redis } from 'ioredis';
import t from 'tap';
import type { AcdEngine, Stage, WaitingCall } from '../../src/acd/engine.js';
import { CLAIM_SCAN_AHEAD, WAITING_TTL_SECONDS } from '../../src/acd/redis-engine.js';
import { AGENT_TRANSITIONS, type AgentState } from '../../src/agents/agent.state.js';
import { REDIS_URL, openEngine, readyAgent, readyInvariantViolations, testPrefix } from '../helpers/acd-engine.js';

const FILE_PREFIX = testPrefix();
let n = 0;
/** each test gets its own key prefix, so agents left ready by one test cannot be claimed in another */
const fresh = (t: Parameters<typeof openEngine>[0]) => openEngine(t, `${FILE_PREFIX}-${++n}`);

const T0 = 1_760_000_000_000;
const RU1: Stage[] = [{ afterSeconds: 0, needs: [{ skill: 'ru', minLevel: 1 }] }];
const EN1: Stage[] = [{ afterSeconds: 0, needs: [{ skill: 'en', minLevel: 1 }] }];
const call = (callId: string, queue: string, enqueuedAt: number, stages: Stage[], more: Partial<WaitingCall> = {}): WaitingCall => ({
  callId,
  queue,
  priority: 0,
  enqueuedAt,
  stages,
  ...more,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('given agents of several levels and idle times, when calls claim, then the highest level goes first, then the longest idle', async (t) => {
  const te = await fresh(t);
  const { engine } = te;
  await readyAgent(engine, 'lvl3-old', { ru: 3 }, T0 - 9_000);
  await readyAgent(engine, 'lvl5-new', { ru: 5 }, T0 - 1_000);
  await readyAgent(engine, 'lvl5-old', { ru: 5 }, T0 - 5_000);
  await readyAgent(engine, 'en9', { en: 9 }, T0 - 9_000);
  const got: Array<string | null> = [];
  for (const id of ['c1', 'c2', 'c3', 'c4']) {
    await engine.enqueue(call(id, 'q', T0, RU1));
    got.push(await engine.claim('q', id, T0));
    t.same(await readyInvariantViolations(te), [], `after claiming for ${id}, the ready sets hold exactly the ready agents`);
  }
  t.same(got, ['lvl5-old', 'lvl5-new', 'lvl3-old', null]);
  const a = (await engine.getAgent('lvl5-old'))!;
  t.same([a.state, a.callId, a.since], ['reserved', 'c1', T0], 'reserved for the call, since the claim');
  t.same(await engine.waiting('q'), [call('c4', 'q', T0, RU1)], 'claimed calls leave the queue');
  t.equal(await engine.position('q', 'c1'), null);
});

t.test('given a stage with several needs, then the best agent across them is taken by level, then idle time', async (t) => {
  const { engine } = await fresh(t);
  await readyAgent(engine, 'ru4', { ru: 4 }, T0 - 9_000);
  await readyAgent(engine, 'en6', { en: 6 }, T0 - 1_000);
  await readyAgent(engine, 'ru6', { ru: 6 }, T0 - 2_000);
  const both: Stage[] = [{ afterSeconds: 0, needs: [{ skill: 'ru', minLevel: 1 }, { skill: 'en', minLevel: 1 }] }];
  const got: Array<string | null> = [];
  for (const id of ['c1', 'c2', 'c3']) {
    await engine.enqueue(call(id, 'q', T0, both));
    got.push(await engine.claim('q', id, T0));
  }
  t.same(got, ['ru6', 'en6', 'ru4']);
});

t.test('given two calls of equal priority, then the earlier one is served first', async (t) => {
  const { engine } = await fresh(t);
  await engine.enqueue(call('late', 'q', T0 + 1_000, RU1));
  await engine.enqueue(call('early', 'q', T0, RU1));
  t.same((await engine.waiting('q')).map((c) => c.callId), ['early', 'late']);
  t.same([await engine.position('q', 'early'), await engine.position('q', 'late')], [1, 2]);
  await readyAgent(engine, 'a1', { ru: 5 }, T0);
  t.equal(await engine.claim('q', 'late', T0 + 2_000), null, 'the later call does not take the agent the earlier one can have');
  t.equal((await engine.getAgent('a1'))!.state, 'ready', 'and leaves it ready');
  t.equal(await engine.claim('q', 'early', T0 + 2_000), 'a1');
  await readyAgent(engine, 'a2', { ru: 1 }, T0 + 2_000);
  t.equal(await engine.claim('q', 'late', T0 + 3_000), 'a2', 'then the later one is next');
});

t.test('given a higher-priority call that came later, then it is served first', async (t) => {
  const { engine } = await fresh(t);
  await engine.enqueue(call('normal', 'q', T0, RU1));
  await engine.enqueue(call('vip', 'q', T0 + 5_000, RU1, { priority: 2 }));
  t.same((await engine.waiting('q')).map((c) => c.callId), ['vip', 'normal']);
  t.equal(await engine.position('q', 'normal'), 2);
  await readyAgent(engine, 'a1', { ru: 5 }, T0);
  t.equal(await engine.claim('q', 'normal', T0 + 6_000), null);
  t.equal(await engine.claim('q', 'vip', T0 + 6_000), 'a1');
  t.equal(await engine.position('q', 'normal'), 1);
});

t.test('given a call needing ru >= 3, then it relaxes to any ru agent after 30 s and to the English pool after 90 s', async (t) => {
  const { engine } = await fresh(t);
  const stages: Stage[] = [
    { afterSeconds: 0, needs: [{ skill: 'ru', minLevel: 3 }] },
    { afterSeconds: 30, needs: [{ skill: 'ru', minLevel: 1 }] },
    { afterSeconds: 90, needs: [{ skill: 'en', minLevel: 1 }] },
  ];
  await readyAgent(engine, 'ru1', { ru: 1 }, T0 - 60_000);
  await readyAgent(engine, 'en5', { en: 5 }, T0 - 60_000);
  await engine.enqueue(call('c1', 'q', T0, stages));
  t.equal(await engine.claim('q', 'c1', T0 + 10_000), null, 'no level-1 agent at 10 s');
  t.equal(await engine.claim('q', 'c1', T0 + 29_999), null, 'nor just before 30 s');
  t.equal(await engine.claim('q', 'c1', T0 + 30_000), 'ru1', 'the level-1 agent at 30 s');

  await engine.enqueue(call('c2', 'q', T0, stages));
  t.equal(await engine.claim('q', 'c2', T0 + 60_000), null, 'the English agent is not offered at 60 s');
  t.equal(await engine.claim('q', 'c2', T0 + 90_000), 'en5', 'the English pool at 90 s');
});

t.test('given a repeat caller with a preferred agent, then that agent takes the call when ready and skilled for the stage', async (t) => {
  const { engine } = await fresh(t);
  await readyAgent(engine, 'best', { ru: 9 }, T0 - 60_000);
  await readyAgent(engine, 'last', { ru: 2 }, T0);
  await readyAgent(engine, 'english', { en: 9 }, T0 - 60_000);
  await engine.enqueue(call('c1', 'q', T0, RU1, { preferredAgent: 'last' }));
  t.equal(await engine.claim('q', 'c1', T0 + 1_000), 'last', 'the preferred agent, although another is better');

  await engine.enqueue(call('c2', 'q', T0, RU1, { preferredAgent: 'last' }));
  t.equal(await engine.claim('q', 'c2', T0 + 1_000), 'best', 'the best one when the preferred agent is busy');

  await readyAgent(engine, 'ru3', { ru: 3 }, T0);
  await engine.enqueue(call('c3', 'q', T0, RU1, { preferredAgent: 'english' }));
  t.equal(await engine.claim('q', 'c3', T0 + 1_000), 'ru3', 'not a preferred agent the current stage does not accept');
  await readyAgent(engine, 'ru1', { ru: 1 }, T0);
  await engine.enqueue(call('c4', 'q', T0, RU1, { preferredAgent: 'nobody' }));
  t.equal(await engine.claim('q', 'c4', T0 + 1_000), 'ru1', 'an unknown preferred agent is ignored');
});

t.test('given an earlier call that can be served, then a later call of the same queue does not claim', async (t) => {
  const { engine } = await fresh(t);
  await readyAgent(engine, 'ru5', { ru: 5, en: 2 }, T0);
  await engine.enqueue(call('first', 'q', T0, EN1));
  await engine.enqueue(call('second', 'q', T0 + 1, RU1));
  t.equal(await engine.claim('q', 'second', T0 + 5_000), null, 'even though it needs another skill the same agent has');
  t.same((await engine.waiting('q')).map((c) => c.callId), ['first', 'second']);
});

t.test('given an earlier call no ready agent can serve, then a later call that can be served claims', async (t) => {
  const { engine } = await fresh(t);
  await readyAgent(engine, 'ru5', { ru: 5 }, T0);
  await engine.enqueue(call('english', 'q', T0, EN1));
  await engine.enqueue(call('russian', 'q', T0 + 1, RU1));
  t.equal(await engine.claim('q', 'russian', T0 + 5_000), 'ru5');
  t.same((await engine.waiting('q')).map((c) => c.callId), ['english'], 'the earlier call still waits, first in line');
  t.equal(await engine.position('q', 'english'), 1);
});

t.test(`given more than ${CLAIM_SCAN_AHEAD} calls ahead, then only the first ${CLAIM_SCAN_AHEAD} are checked`, async (t) => {
  const { engine } = await fresh(t);
  await readyAgent(engine, 'ru5', { ru: 5 }, T0);
  for (let i = 0; i < CLAIM_SCAN_AHEAD; i++) await engine.enqueue(call(`en${i}`, 'q', T0 + i, EN1));
  await engine.enqueue(call('ru-unchecked', 'q', T0 + 100, RU1));
  await engine.enqueue(call('ru-claiming', 'q', T0 + 101, RU1));
  t.equal(await engine.position('q', 'ru-claiming'), CLAIM_SCAN_AHEAD + 2);
  t.equal(await engine.claim('q', 'ru-claiming', T0 + 5_000), 'ru5', 'documented limit: a servable call beyond the window does not block');
});

t.test('given a call that is not waiting, or whose data expired, then claim returns null', async (t) => {
  const { engine, redis, keys } = await fresh(t);
  await readyAgent(engine, 'ru5', { ru: 5 }, T0);
  t.equal(await engine.claim('q', 'never', T0), null);
  await engine.enqueue(call('gone', 'q', T0, RU1));
  await redis.del(keys.acdWaitingCall('q', 'gone'));
  t.equal(await engine.claim('q', 'gone', T0), null);
  t.equal(await redis.zscore(keys.acdWaiting('q'), 'gone'), null, 'its id is dropped from the queue');
  t.equal((await engine.getAgent('ru5'))!.state, 'ready');
});

t.test('given a ready set that lists an agent that is not ready, then claim drops it instead of reserving it', async (t) => {
  const { engine, redis, keys } = await fresh(t);
  await readyAgent(engine, 'ok', { ru: 1 }, T0);
  await engine.upsertAgent('broken', { ru: 9 }, 'PJSIP/x');
  await redis.zadd(keys.acdReadyAgents('ru'), 0, 'broken'); // as if someone wrote Redis by hand
  await engine.enqueue(call('c1', 'q', T0, RU1));
  t.equal(await engine.claim('q', 'c1', T0), 'ok');
  t.equal(await redis.zscore(keys.acdReadyAgents('ru'), 'broken'), null);
});

t.test('given a waiting call, when it is enqueued again, removed or left, then its place, data and TTLs are right', async (t) => {
  const { engine, redis, keys } = await fresh(t);
  await engine.enqueue(call('c1', 'q', T0, RU1));
  await engine.enqueue(call('c2', 'q', T0 + 10, RU1));
  const again = call('c1', 'q', T0, EN1, { preferredAgent: 'a9' });
  await engine.enqueue(again);
  t.same(await engine.waiting('q'), [again, call('c2', 'q', T0 + 10, RU1)], 'data replaced, place kept with the same enqueuedAt');
  const ttl = await redis.ttl(keys.acdWaitingCall('q', 'c1'));
  t.ok(ttl > WAITING_TTL_SECONDS - 10 && ttl <= WAITING_TTL_SECONDS, `waiting call data expires (${ttl} s)`);
  t.ok((await redis.ttl(keys.acdWaiting('q'))) > 0, 'so does the queue');
  await engine.remove('q', 'c1');
  t.equal(await engine.position('q', 'c1'), null);
  t.equal(await engine.position('q', 'c2'), 1);
  t.equal(await redis.exists(keys.acdWaitingCall('q', 'c1')), 0);
  await redis.del(keys.acdWaitingCall('q', 'c2'));
  t.same(await engine.waiting('q'), [], 'a call whose data expired is not listed');
  t.equal(await engine.position('q', 'c2'), null);

  await t.rejects(engine.enqueue(call('bad', 'q', T0, [{ afterSeconds: 0, needs: [{ skill: 'ru', minLevel: 0 }] }])), RangeError);
  await t.rejects(engine.enqueue(call('bad', 'q', T0, RU1, { priority: 1e6 })), RangeError);
  await t.rejects(engine.enqueue(call('bad', 'q', T0, [])), RangeError);
});

t.test('given two engines on their own connections, when an agent becomes ready in one, then the other hears of it', async (t) => {
  const prefix = `${FILE_PREFIX}-${++n}`;
  const a = await openEngine(t, prefix);
  const b = await openEngine(t, prefix);
  const heard: string[] = [];
  const unsubscribe = b.engine.onAgentReady((id) => heard.push(id));
  for (let i = 0; (await a.redis.pubsub('NUMSUB', a.keys.acdAgentReadyChannel()))[1] !== 1; i++) {
    if (i > 100) throw new Error('the subscription never became active');
    await sleep(10);
  }
  await readyAgent(a.engine, 'a1', { ru: 2 }, T0);
  await a.engine.transition('a1', 'ready', { now: T0 + 5 }); // unchanged: no news
  await until(() => heard.length > 0);
  await sleep(100);
  t.same(heard, ['a1'], 'one event for one agent becoming ready');
  unsubscribe();
  await sleep(50);
  await readyAgent(a.engine, 'a2', { ru: 2 }, T0);
  await sleep(100);
  t.same(heard, ['a1'], 'no events after unsubscribing');
});

async function until(cond: () => boolean, ms = 2_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(5);
  }
}

t.test('given two engines on separate connections racing for 200 reservations, then no agent is double-booked and every queue stays FIFO', async (t) => {
  const prefix = `${FILE_PREFIX}-${++n}`;
  const engines = [await openEngine(t, prefix), await openEngine(t, prefix)];
  const { keys } = engines[0]!;

  // Redis's own record of what ran, in order, including the commands inside the scripts
  const base = new Redis(REDIS_URL);
  const monitor = await base.monitor();
  t.teardown(() => {
    monitor.disconnect();
    base.disconnect();
  });
  const moves: Array<{ agentId: string; state: AgentState; callId: string }> = [];
  const agentKeyPrefix = keys.acdAgent('');
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args[0]?.toLowerCase() !== 'hset' || !args[1]?.startsWith(agentKeyPrefix) || args[2] !== 'state') return;
    moves.push({ agentId: args[1].slice(agentKeyPrefix.length), state: args[3] as AgentState, callId: args[args.indexOf('callId') + 1] ?? '' });
  });

  const queues: Record<string, Stage[]> = {
    ru: RU1,
    en: EN1,
    expert: [{ afterSeconds: 0, needs: [{ skill: 'ru', minLevel: 6 }, { skill: 'en', minLevel: 6 }] }],
  };
  const now0 = Date.now();
  for (let i = 0; i < 20; i++) {
    const level = 1 + (i % 9);
    const skills: Record<string, number> = i % 3 === 0 ? { ru: level } : i % 3 === 1 ? { en: level } : { ru: 10 - level, en: level };
    await readyAgent(engines[i % 2]!.engine, `ag${i}`, skills, now0 - 100_000 + i);
  }
  const queueOf = new Map<string, string>();
  const pending: Record<string, string[]> = { ru: [], en: [], expert: [] };
  const all: WaitingCall[] = [];
  for (let i = 0; i < 200; i++) {
    const q = Object.keys(queues)[i % 3]!;
    const c = call(`call${i}`, q, now0 - 60_000 + i * 7, queues[q]!, { priority: i % 7 === 0 ? 1 : i % 11 === 0 ? 2 : 0 });
    all.push(c);
    queueOf.set(c.callId, q);
    await engines[i % 2]!.engine.enqueue(c);
  }
  // the order each queue must serve its calls in: higher priority, then earlier
  const expected: Record<string, string[]> = {};
  for (const q of Object.keys(queues)) {
    expected[q] = all.filter((c) => c.queue === q).sort((x, y) => y.priority - x.priority || x.enqueuedAt - y.enqueuedAt).map((c) => c.callId);
    pending[q] = [...expected[q]!];
  }

  const claimedBy = new Map<string, string>(); // call -> agent
  const holding = new Map<string, string>(); // agent -> call, from its claim until just before it is ready again
  const doubleBooked: string[] = [];
  const claimedTwice: string[] = [];
  const perEngine = [0, 0];
  let nulls = 0;
  const releases: Promise<void>[] = [];
  const deadline = Date.now() + 60_000;

  const release = async (agentId: string, callId: string) => {
    const via = () => engines[Math.floor(Math.random() * 2)]!.engine; // any process may move the agent on
    await sleep(Math.random() * 3);
    await via().transition(agentId, 'on_call', { expectCallId: callId });
    await sleep(Math.random() * 3);
    await via().transition(agentId, 'wrap_up', { expectCallId: callId });
    await sleep(Math.random() * 3);
    holding.delete(agentId);
    await via().transition(agentId, 'ready', { expectCallId: callId });
  };

  const worker = async (e: number) => {
    const engine: AcdEngine = engines[e]!.engine;
    while (claimedBy.size < 200 && Date.now() < deadline) {
      const open = Object.keys(pending).filter((q) => pending[q]!.length > 0);
      if (open.length === 0) break;
      const q = open[Math.floor(Math.random() * open.length)]!;
      const line = pending[q]!;
      // a session near the head of the line: often not the first, so FIFO is really put to the test
      const callId = line[Math.floor(Math.random() * Math.min(4, line.length))]!;
      const agentId = await engine.claim(q, callId);
      if (!agentId) {
        nulls++;
        await sleep(Math.random() * 2);
        continue;
      }
      perEngine[e]!++;
      if (claimedBy.has(callId)) claimedTwice.push(callId);
      claimedBy.set(callId, agentId);
      const i = line.indexOf(callId);
      if (i >= 0) line.splice(i, 1);
      if (holding.has(agentId)) doubleBooked.push(`${agentId} for ${holding.get(agentId)} and ${callId}`);
      holding.set(agentId, callId);
      releases.push(release(agentId, callId));
    }
  };
  await Promise.all([0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1].map(worker));
  await Promise.all(releases);
  await sleep(200); // the monitor stream lags the replies a little

  t.equal(claimedBy.size, 200, 'every call claimed');
  t.same(claimedTwice, [], 'no call claimed twice');
  t.same(doubleBooked, [], 'no agent reserved while still holding another call');
  t.ok(perEngine[0]! > 0 && perEngine[1]! > 0, `both engines reserved agents (${perEngine.join(' + ')}), ${nulls} claims came back empty`);

  // what Redis executed, in its order
  const reservations = moves.filter((m) => m.state === 'reserved');
  t.equal(reservations.length, 200, 'Redis made exactly 200 reservations');
  for (const q of Object.keys(queues)) {
    t.same(
      reservations.filter((m) => queueOf.get(m.callId) === q).map((m) => m.callId),
      expected[q],
      `queue ${q} was served in priority, then arrival order`,
    );
  }
  const last = new Map<string, AgentState>();
  const illegal: string[] = [];
  for (const m of moves) {
    const from = last.get(m.agentId);
    if (from && !AGENT_TRANSITIONS[from].includes(m.state)) illegal.push(`${m.agentId} ${from} -> ${m.state}`);
    last.set(m.agentId, m.state);
  }
  t.same(illegal, [], 'every agent only made legal moves (so never reserved twice without being ready in between)');
  t.same(
    reservations.map((m) => `${m.callId}:${m.agentId}`),
    reservations.map((m) => `${m.callId}:${claimedBy.get(m.callId)}`),
    'each reservation Redis made is the one the claiming engine was told of',
  );

  const agents = await engines[0]!.engine.listAgents();
  t.same(agents.filter((a) => a.state !== 'ready').map((a) => a.agentId), [], 'all agents are ready again');
  t.same(await readyInvariantViolations(engines[0]!), [], 'the ready sets hold exactly the ready agents');
  for (const q of Object.keys(queues)) t.same(await engines[1]!.engine.waiting(q), [], `queue ${q} is empty`);
  const left = await engines[0]!.redis.keys(keys.acdWaitingCall('*', '*'));
  t.same(left, [], 'no waiting-call data left behind');
});

t.test('waitingIds / waitingMany read several queues at once; listAgents with maxAgeMs shares a recent read, without it reads fresh', async (t) => {
  const te = await fresh(t);
  const { engine } = te;
  await engine.enqueue(call('w1', 'qa', T0, RU1));
  await engine.enqueue(call('w2', 'qa', T0 + 1, RU1));
  await engine.enqueue(call('w3', 'qb', T0, EN1));
  const ids = await engine.waitingIds(['qa', 'qb', 'qc']);
  t.same([...ids], [['qa', ['w1', 'w2']], ['qb', ['w3']], ['qc', []]]);
  const many = await engine.waitingMany(['qa', 'qb', 'qc']);
  t.same(many.get('qa'), await engine.waiting('qa'), 'the same calls as one queue at a time');
  t.same(many.get('qb'), await engine.waiting('qb'));
  t.same(many.get('qc'), []);

  await readyAgent(engine, 'm1', { ru: 1 }, T0);
  const first = await engine.listAgents({ maxAgeMs: 60_000 });
  t.same(first.map((a) => a.agentId), ['m1']);
  await readyAgent(engine, 'm2', { ru: 1 }, T0);
  t.same((await engine.listAgents({ maxAgeMs: 60_000 })).map((a) => a.agentId), ['m1'], 'a read younger than maxAgeMs is shared');
  first[0]!.skills.ru = 99;
  t.equal((await engine.listAgents({ maxAgeMs: 60_000 }))[0]!.skills.ru, 1, 'each caller gets its own copy');
  t.same((await engine.listAgents()).map((a) => a.agentId), ['m1', 'm2'], 'without maxAgeMs: fresh');
  t.same((await engine.listAgents({ maxAgeMs: 60_000 })).map((a) => a.agentId), ['m1', 'm2'], 'and the fresh read is the one shared next');
});
