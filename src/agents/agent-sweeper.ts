/**
 * Frees agents that a lost process left behind. Wrap-up ends on a timer in the process that handled the
 * call, and a reservation ends when that call's session moves on: if that process died (crash, deploy),
 * the agent would stay in wrap_up or reserved forever and the queue would starve. Every process runs
 * this sweep; the moves are check-and-set on the same call id, so two sweepers racing is harmless.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AcdEngine } from '../acd/engine.js';
import type { QueuesConfigStore } from '../acd/queues.config.js';
import type { Keys } from '../redis/keys.js';
import type { AgentStates } from './agent-states.js';

export function startAgentSweeper(deps: {
  engine: AcdEngine;
  agentStates: AgentStates;
  queues: QueuesConfigStore;
  redis: Redis;
  keys: Keys;
  log: Logger;
  intervalMs?: number;
}): () => void {
  const log = deps.log.child({ module: 'agent-sweeper' });
  let running = false;
  const sweep = async () => {
    if (running) return;
    running = true;
    try {
      const qs = deps.queues.all();
      const maxWrapMs = (Math.max(0, ...qs.map((q) => q.wrapUpSeconds)) + 30) * 1000;
      const maxRingMs = (Math.max(0, ...qs.map((q) => q.ringSeconds)) + 60) * 1000;
      const now = Date.now();
      for (const a of await deps.engine.listAgents()) {
        const age = now - a.since;
        const stuckWrap = a.state === 'wrap_up' && age > maxWrapMs;
        const stuckReserved = a.state === 'reserved' && age > maxRingMs && !(a.callId && (await deps.redis.exists(deps.keys.call(a.callId))));
        if (!stuckWrap && !stuckReserved) continue;
        log.warn({ agentId: a.agentId, state: a.state, ageMs: age, callId: a.callId }, 'freeing an agent left behind');
        await deps.agentStates.tryTransition(a.agentId, 'ready', { ...(a.callId ? { expectCallId: a.callId } : {}), reason: null, actor: 'system:sweeper' });
      }
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'agent sweep failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void sweep(), deps.intervalMs ?? 10_000);
  timer.unref();
  return () => clearInterval(timer);
}
