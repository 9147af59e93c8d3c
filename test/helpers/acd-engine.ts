/**
 * Helpers for the ACD engine tests on the real Redis: an engine on connections of its own under a fresh key
 * prefix (deleted at teardown), agents put in a state along legal moves, and the ready-set invariant checked.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { AcdEngine } from '../../src/acd/engine.js';
import { createRedisEngine } from '../../src/acd/redis-engine.js';
import { AGENT_TRANSITIONS, type AgentState } from '../../src/agents/agent.state.js';
import { connectRedis, createRedis } from '../../src/redis/client.js';
import { createKeys, type Keys } from '../../src/redis/keys.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface TestEngine {
  engine: AcdEngine;
  /** the engine's command connection (also fine for the test's own look-ups) */
  redis: Redis;
  keys: Keys;
  prefix: string;
}

export function testPrefix(): string {
  return `test-acd-${randomBytes(4).toString('hex')}`;
}

/** a Redis connection configured as in production, closed at teardown */
export async function connection(t: Teardown): Promise<Redis> {
  const redis = createRedis(REDIS_URL);
  await connectRedis(redis, REDIS_URL);
  t.teardown(() => redis.disconnect());
  return redis;
}

/** an engine with its own two connections, as one service process has; its keys are deleted at teardown */
export async function openEngine(t: Teardown, prefix: string): Promise<TestEngine> {
  const redis = await connection(t);
  const subscriber = await connection(t);
  const keys = createKeys(prefix);
  const engine = createRedisEngine({ redis, subscriber, keys });
  // teardowns run last-registered first: close the engine and delete the keys before the connections go
  t.teardown(async () => {
    await engine.close();
    await deleteKeys(redis, prefix);
  });
  return { engine, redis, keys, prefix };
}

export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
    cursor = next;
    if (found.length) await redis.del(...found);
  } while (cursor !== '0');
}

/** the shortest chain of legal moves from logged_out to each state */
export function pathTo(target: AgentState): AgentState[] {
  const seen = new Map<AgentState, AgentState[]>([['logged_out', []]]);
  const todo: AgentState[] = ['logged_out'];
  while (todo.length) {
    const s = todo.shift()!;
    for (const next of AGENT_TRANSITIONS[s]) {
      if (seen.has(next)) continue;
      seen.set(next, [...seen.get(s)!, next]);
      todo.push(next);
    }
  }
  const path = seen.get(target);
  if (!path) throw new Error(`${target} cannot be reached from logged_out`);
  return path;
}

/** create the agent and walk it to `state` (a reservation is for `callId`) */
export async function agentIn(engine: AcdEngine, agentId: string, state: AgentState, opts: { skills?: Record<string, number>; callId?: string; now?: number } = {}): Promise<void> {
  await engine.upsertAgent(agentId, opts.skills ?? { ru: 3, en: 7 }, `PJSIP/agent${agentId}`);
  for (const to of pathTo(state)) {
    await engine.transition(agentId, to, { now: opts.now ?? Date.now(), ...(to === 'reserved' ? { callId: opts.callId ?? `call-of-${agentId}` } : {}) });
  }
}

/** a ready agent (readySince = `at`) */
export async function readyAgent(engine: AcdEngine, agentId: string, skills: Record<string, number>, at: number): Promise<void> {
  await engine.upsertAgent(agentId, skills, `PJSIP/agent${agentId}`);
  await engine.transition(agentId, 'not_ready', { now: at });
  await engine.transition(agentId, 'ready', { now: at });
}

/**
 * Everything wrong with "an agent is in its skills' ready sets, scored by level and ready-since, if and
 * only if it is ready"; empty when all is well.
 */
export async function readyInvariantViolations(te: TestEngine): Promise<string[]> {
  const { engine, redis, keys } = te;
  const out: string[] = [];
  const agents = await engine.listAgents();
  const byId = new Map(agents.map((a) => [a.agentId, a]));
  for (const a of agents) {
    for (const [skill, level] of Object.entries(a.skills)) {
      const score = await redis.zscore(keys.acdReadyAgents(skill), a.agentId);
      if (a.state !== 'ready' && score !== null) out.push(`${a.agentId} is ${a.state} but in the ${skill} ready set`);
      if (a.state === 'ready' && score === null) out.push(`${a.agentId} is ready but not in the ${skill} ready set`);
      if (a.state === 'ready' && score !== null && Number(score) !== (10 - level) * 1e13 + a.since) out.push(`${a.agentId} has score ${score} in ${skill}`);
    }
  }
  const setPrefix = keys.acdReadyAgents('');
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', keys.acdReadyAgents('*'), 'COUNT', 500);
    cursor = next;
    for (const key of found) {
      const skill = key.slice(setPrefix.length);
      for (const id of await redis.zrange(key, '0', '-1')) {
        const a = byId.get(id);
        if (!a || a.state !== 'ready' || !(skill in a.skills)) out.push(`${skill} ready set lists ${id} (${a?.state ?? 'no record'})`);
      }
    }
  } while (cursor !== '0');
  return out;
}
