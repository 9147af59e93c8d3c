/**
 * The agent state machine as the Redis ACD engine applies it (real Redis at REDIS_URL, a fresh key prefix):
 * every legal move succeeds and keeps the ready-set invariant, illegal ones change nothing.
 */
import t from 'tap';
import { AgentCallMismatch, AgentNotFound } from '../../src/acd/redis-engine.js';
import { AGENT_STATES, AGENT_TRANSITIONS, IllegalAgentTransition, type AgentState } from '../../src/agents/agent.state.js';
import { agentIn, openEngine, readyAgent, readyInvariantViolations, testPrefix, type TestEngine } from '../helpers/acd-engine.js';

const te = await openEngine(t, testPrefix());
const { engine, redis, keys } = te;
const ATTACHED: AgentState[] = ['reserved', 'on_call', 'wrap_up'];

/** everything Redis holds about an agent: its hash and its score in each ready set */
async function snapshot(x: TestEngine, agentId: string): Promise<unknown> {
  const hash = await x.redis.hgetall(x.keys.acdAgent(agentId));
  const skills = Object.keys(JSON.parse(hash.skills ?? '{}') as Record<string, number>);
  return { hash, scores: await Promise.all(skills.map((s) => x.redis.zscore(x.keys.acdReadyAgents(s), agentId))) };
}

t.test('given an agent in each state, when it makes each legal move, then the move is applied and the ready sets follow', async (t) => {
  let n = 0;
  for (const from of AGENT_STATES) {
    for (const to of AGENT_TRANSITIONS[from]) {
      const id = `legal${++n}`;
      await agentIn(engine, id, from, { now: 1_000, callId: `c-${id}` });
      const at = 5_000 + n;
      const newCall = to === 'reserved' ? { callId: `c-new-${id}` } : {};
      const r = await engine.transition(id, to, { now: at, reason: to === 'not_ready' ? 'lunch' : null, ...newCall });
      t.same({ from: r.from, to: r.to, at: r.at }, { from, to, at }, `${from} -> ${to}`);
      const live = (await engine.getAgent(id))!;
      t.equal(live.state, to);
      t.equal(live.since, at);
      t.equal(live.reason, to === 'not_ready' ? 'lunch' : null);
      const expectedCall = to === 'reserved' ? `c-new-${id}` : ATTACHED.includes(to) ? `c-${id}` : null;
      t.equal(live.callId, expectedCall, `${from} -> ${to} leaves callId ${expectedCall}`);
      t.equal(r.callId, expectedCall);
    }
  }
  t.equal(n, Object.values(AGENT_TRANSITIONS).flat().length);
  t.same(await readyInvariantViolations(te), [], 'an agent is in its ready sets if and only if it is ready');
});

t.test('given an agent in each state, when it is asked to go to any state not in its list, then IllegalAgentTransition and nothing changes', async (t) => {
  let refused = 0;
  for (const from of AGENT_STATES) {
    const id = `illegal-${from}`;
    await agentIn(engine, id, from, { now: 1_000 });
    const before = await snapshot(te, id);
    for (const to of AGENT_STATES) {
      if (AGENT_TRANSITIONS[from].includes(to) || (from === 'ready' && to === 'ready')) continue;
      await t.rejects(engine.transition(id, to, { now: 9_000, reason: 'x', callId: 'other' }), new IllegalAgentTransition(id, from, to), `${from} -> ${to} refused`);
      refused++;
    }
    t.same(await snapshot(te, id), before, `an agent in ${from} is untouched by the refusals`);
  }
  t.ok(refused >= 10, `${refused} illegal moves refused`);
  t.same(await readyInvariantViolations(te), []);
});

t.test('given a ready agent, when it is set ready again, then nothing changes and it keeps its place in line', async (t) => {
  await readyAgent(engine, 'again', { ru: 4 }, 2_000);
  const before = await snapshot(te, 'again');
  const r = await engine.transition('again', 'ready', { now: 7_000 });
  t.same(r, { agentId: 'again', from: 'ready', to: 'ready', at: 2_000, reason: null, callId: null }, 'from = to, at = the unchanged since');
  t.same(await snapshot(te, 'again'), before);
});

t.test('given an agent reserved for one call, when another call tries to move it, then it is refused', async (t) => {
  await agentIn(engine, 'held', 'reserved', { callId: 'c1', now: 1_000 });
  const err = await engine.transition('held', 'ready', { expectCallId: 'c2', now: 2_000 }).catch((e: unknown) => e);
  t.ok(err instanceof AgentCallMismatch, 'AgentCallMismatch');
  t.ok(err instanceof IllegalAgentTransition, 'which is an IllegalAgentTransition');
  t.match((err as Error).message, /held is on call c1, not c2/);
  t.equal((await engine.getAgent('held'))!.state, 'reserved', 'still reserved');

  await engine.transition('held', 'on_call', { expectCallId: 'c1', now: 3_000 });
  await engine.transition('held', 'wrap_up', { expectCallId: 'c1', now: 4_000 });
  const stale = await engine.transition('held', 'ready', { expectCallId: 'c2' }).catch((e: unknown) => e);
  t.ok(stale instanceof IllegalAgentTransition, 'wrap-up keeps the call, so a stale call cannot end it');
  const r = await engine.transition('held', 'ready', { expectCallId: 'c1', now: 5_000 });
  t.same([r.from, r.to, r.callId], ['wrap_up', 'ready', null], 'the call itself ends wrap-up, and the call id is cleared');
  await t.rejects(engine.transition('held', 'not_ready', { expectCallId: 'c1' }), AgentCallMismatch, 'a ready agent is attached to no call');
});

t.test('given no such agent, when it is moved, then AgentNotFound', async (t) => {
  await t.rejects(engine.transition('nobody', 'ready'), AgentNotFound);
  t.equal(await engine.getAgent('nobody'), null);
});

t.test('given agents, when they are created, re-skilled and removed, then the live records and ready sets follow', async (t) => {
  await engine.upsertAgent('up1', { ru: 3 }, 'PJSIP/agent1');
  const fresh = (await engine.getAgent('up1'))!;
  t.same({ ...fresh, since: 0 }, { agentId: 'up1', state: 'logged_out', reason: null, since: 0, callId: null, skills: { ru: 3 }, endpoint: 'PJSIP/agent1' }, 'a new agent is logged out');

  await engine.transition('up1', 'not_ready', { now: 1_000 });
  await engine.transition('up1', 'ready', { now: 3_000 });
  await engine.upsertAgent('up1', { ru: 6, fr: 2 }, 'PJSIP/agent1b');
  const live = (await engine.getAgent('up1'))!;
  t.same([live.state, live.since, live.endpoint, live.skills], ['ready', 3_000, 'PJSIP/agent1b', { ru: 6, fr: 2 }], 'state kept, skills and phone refreshed');
  t.equal(await redis.zscore(keys.acdReadyAgents('ru'), 'up1'), String(4e13 + 3_000), 'ru re-scored at level 6');
  t.equal(await redis.zscore(keys.acdReadyAgents('fr'), 'up1'), String(8e13 + 3_000), 'ready for its new skill');
  await engine.upsertAgent('up1', { fr: 2 }, 'PJSIP/agent1b');
  t.equal(await redis.zscore(keys.acdReadyAgents('ru'), 'up1'), null, 'out of the set of a skill it lost');
  t.same(await readyInvariantViolations(te), []);

  t.ok((await engine.listAgents()).some((a) => a.agentId === 'up1'));
  await engine.removeAgent('up1');
  t.equal(await engine.getAgent('up1'), null);
  t.notOk((await engine.listAgents()).some((a) => a.agentId === 'up1'));
  t.equal(await redis.zscore(keys.acdReadyAgents('fr'), 'up1'), null, 'a removed agent cannot be reserved');
  t.equal(await redis.ttl(keys.acdAgent('legal1')), -1, 'agent records have no TTL');

  await t.rejects(engine.upsertAgent('bad', { ru: 10 }, 'PJSIP/x'), RangeError, 'levels are 1..9');
});
