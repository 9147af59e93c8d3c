/**
 * The first flow's agent picker: a fixed list of agents (HOTLINE_AGENTS), each reserved atomically in Redis
 * for one call at a time, longest-idle first. Safe when several processes share the Redis (SET NX).
 * The ACD issue replaces this with skill queues and agent states; the reservation contract stays.
 */
import type { Redis } from 'ioredis';
import type { AgentEndpoint } from '../config/env.js';
import type { Keys } from '../redis/keys.js';

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export interface AgentPool {
  /** reserve the longest-idle free agent for this call, or null when all are busy */
  reserve(callId: string, ttlMs: number): Promise<AgentEndpoint | null>;
  /** keep the reservation while the agent talks */
  extend(agentId: string, callId: string, ttlMs: number): Promise<boolean>;
  /** free the agent, only if this call still holds it */
  release(agentId: string, callId: string): Promise<void>;
}

export function createAgentPool(redis: Redis, keys: Keys, agents: readonly AgentEndpoint[]): AgentPool {
  const lastReleased = new Map<string, number>();
  return {
    async reserve(callId, ttlMs) {
      const order = [...agents].sort((a, b) => (lastReleased.get(a.agentId) ?? 0) - (lastReleased.get(b.agentId) ?? 0));
      for (const agent of order) {
        const ok = await redis.set(keys.agentLock(agent.agentId), callId, 'PX', ttlMs, 'NX');
        if (ok === 'OK') return agent;
      }
      return null;
    },
    async extend(agentId, callId, ttlMs) {
      return (await redis.eval(EXTEND, 1, keys.agentLock(agentId), callId, String(ttlMs))) === 1;
    },
    async release(agentId, callId) {
      lastReleased.set(agentId, Date.now());
      await redis.eval(RELEASE, 1, keys.agentLock(agentId), callId);
    },
  };
}
