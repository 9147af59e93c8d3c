/**
 * The ACD engine on Redis: agents' live state and the waiting calls, with every decision that two
 * processes could race on (a state change, a reservation) made inside one Lua script (lua/scripts.ts).
 *
 * Layout (names from src/redis/keys.ts):
 *   acdAgent(id)          hash   state, reason, since, callId, endpoint, skills (JSON); no TTL
 *   acdAgents()           set    agent ids with a live record
 *   acdReadyAgents(skill) zset   READY agents with the skill, score (10 - level) * 1e13 + readySinceMs
 *   acdWaiting(queue)     zset   waiting call ids, score -priority * 1e13 + enqueuedAt; TTL refreshed by enqueue
 *   acdWaitingCall(q, id) string the WaitingCall JSON; TTL 24 h
 *   acdAgentReadyChannel()       pub/sub, the id of each agent that has just become ready
 * Redis must be a single instance (or Sentinel): the scripts touch keys they derive from the agent's skills.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { AGENT_STATES, IllegalAgentTransition, type AgentState } from '../agents/agent.state.js';
import type { Keys } from '../redis/keys.js';
import type { AcdEngine, AgentLive, TransitionResult, WaitingCall } from './engine.js';
import { CLAIM, REMOVE_AGENT, RESTORE_AGENT, SET_BREAK, TRANSITION, UPSERT_AGENT } from './lua/scripts.js';

/** a waiting call's data outlives any real wait; it only guards against a process that died mid-wait */
export const WAITING_TTL_SECONDS = 24 * 60 * 60;
/** claim() checks at most this many calls at the head of the queue before the claiming one (see CLAIM) */
export const CLAIM_SCAN_AHEAD = 50;
/** priorities are integers in [-MAX_PRIORITY, MAX_PRIORITY], so the waiting score stays exact in a double */
export const MAX_PRIORITY = 800;
const SPAN = 1e13;

export class AgentNotFound extends Error {
  override name = 'AgentNotFound';
  constructor(readonly agentId: string) {
    super(`no live record for agent ${agentId}`);
  }
}

/** the agent is attached to another call than the one asking to move it (a stale call); still an IllegalAgentTransition */
export class AgentCallMismatch extends IllegalAgentTransition {
  override name = 'AgentCallMismatch';
  constructor(
    agentId: string,
    from: AgentState,
    to: AgentState,
    readonly expectedCallId: string,
    readonly actualCallId: string | null,
  ) {
    super(agentId, from, to);
    this.message = `agent ${agentId} is on call ${actualCallId ?? '(none)'}, not ${expectedCallId}: cannot go from ${from} to ${to}`;
  }
}

/** a builder's output cut around its argument, for the Lua scripts to build the same names */
function template(build: (arg: string) => string): [string, string] {
  const parts = build('\u0000').split('\u0000');
  if (parts.length !== 2) throw new Error(`key builder must use its argument exactly once: ${build('<arg>')}`);
  return [parts[0]!, parts[1]!];
}

function checkLevel(level: unknown, what: string): void {
  if (!Number.isInteger(level) || (level as number) < 1 || (level as number) > 9) throw new RangeError(`${what} must be an integer 1..9, got ${String(level)}`);
}

export function createRedisEngine(deps: { redis: Redis; subscriber: Redis; keys: Keys; log?: Logger }): AcdEngine {
  const { redis, subscriber, keys } = deps;
  const log = deps.log?.child({ module: 'acd-engine' });
  const channel = keys.acdAgentReadyChannel();
  const agentTemplates = { agent: template(keys.acdAgent), ready: template(keys.acdReadyAgents) };
  const agentArg = JSON.stringify(agentTemplates);

  /** EVALSHA, falling back to EVAL once when Redis does not know the script (restarted, flushed) */
  function script(lua: string) {
    const sha = createHash('sha1').update(lua).digest('hex');
    return async (keyNames: string[], args: string[]): Promise<unknown> => {
      try {
        return await redis.evalsha(sha, keyNames.length, ...keyNames, ...args);
      } catch (err) {
        if (!(err as Error).message.startsWith('NOSCRIPT')) throw err;
        return redis.eval(lua, keyNames.length, ...keyNames, ...args);
      }
    };
  }
  const run = { restore: script(RESTORE_AGENT), upsert: script(UPSERT_AGENT), remove: script(REMOVE_AGENT), transition: script(TRANSITION), claim: script(CLAIM), setBreak: script(SET_BREAK) };

  function toAgent(agentId: string, h: Record<string, string>): AgentLive | null {
    if (!h.state) return null;
    return {
      agentId,
      state: h.state as AgentState,
      reason: h.reason || null,
      since: Number(h.since),
      callId: h.callId || null,
      skills: JSON.parse(h.skills ?? '{}') as Record<string, number>,
      endpoint: h.endpoint ?? '',
    };
  }

  /** the stored calls for these ids, in order; ids whose data has expired are dropped from the waiting set */
  async function loadCalls(queue: string, ids: string[]): Promise<WaitingCall[]> {
    if (ids.length === 0) return [];
    const raws = await redis.mget(ids.map((id) => keys.acdWaitingCall(queue, id)));
    const stale = ids.filter((_, i) => raws[i] == null);
    if (stale.length) await redis.zrem(keys.acdWaiting(queue), ...stale);
    return raws.filter((r): r is string => r != null).map((r) => JSON.parse(r) as WaitingCall);
  }

  /** the last read of every agent (listAgents' maxAgeMs): when it started, and its result */
  let lastList: { at: number; result: Promise<AgentLive[]> } | null = null;
  async function readAgents(): Promise<AgentLive[]> {
    const ids = (await redis.smembers(keys.acdAgents())).sort();
    if (ids.length === 0) return [];
    const pipe = redis.pipeline();
    for (const id of ids) pipe.hgetall(keys.acdAgent(id));
    const rows = (await pipe.exec()) ?? [];
    return ids.map((id, i) => toAgent(id, (rows[i]?.[1] ?? {}) as Record<string, string>)).filter((a): a is AgentLive => a !== null);
  }

  async function waitingIds(queues: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (queues.length === 0) return out;
    const pipe = redis.pipeline();
    for (const q of queues) pipe.zrange(keys.acdWaiting(q), '0', '-1');
    const res = (await pipe.exec()) ?? [];
    queues.forEach((q, i) => {
      const [err, ids] = res[i] ?? [new Error('no reply'), null];
      if (err) throw err;
      out.set(q, (ids as string[] | null) ?? []);
    });
    return out;
  }

  // pub/sub: one SUBSCRIBE while anyone listens; ioredis re-subscribes by itself after a reconnect
  const listeners = new Set<(agentId: string) => void>();
  const onMessage = (ch: string, agentId: string) => {
    if (ch !== channel) return;
    for (const fn of [...listeners]) {
      try {
        fn(agentId);
      } catch (err) {
        log?.error({ err, agentId }, 'agent-ready listener failed');
      }
    }
  };
  subscriber.on('message', onMessage);
  let subscribed = false;
  async function subscribe(): Promise<void> {
    if (subscribed) return;
    subscribed = true;
    try {
      await subscriber.subscribe(channel);
    } catch (err) {
      // not connected yet (no offline queue): try again once the connection is up
      subscribed = false;
      log?.warn({ err: (err as Error).message }, 'cannot subscribe to agent-ready yet, retrying when Redis is back');
      subscriber.once('ready', () => {
        if (listeners.size > 0) void subscribe();
      });
    }
  }
  async function unsubscribe(): Promise<void> {
    if (!subscribed) return;
    subscribed = false;
    await subscriber.unsubscribe(channel).catch((err: Error) => log?.warn({ err: err.message }, 'agent-ready unsubscribe failed'));
  }

  return {
    async upsertAgent(agentId, skills, endpoint) {
      for (const [skill, level] of Object.entries(skills)) checkLevel(level, `skill ${skill} level`);
      await run.upsert([keys.acdAgent(agentId), keys.acdAgents()], [agentArg, agentId, JSON.stringify(skills), endpoint, String(Date.now())]);
    },

    async restoreAgent(agentId, skills, endpoint, live) {
      for (const [skill, level] of Object.entries(skills)) checkLevel(level, `skill ${skill} level`);
      const done = await run.restore(
        [keys.acdAgent(agentId), keys.acdAgents()],
        [agentArg, agentId, JSON.stringify(skills), endpoint, live.state, live.reason ?? '', String(live.since), live.callId ?? ''],
      );
      return done === 1;
    },

    async removeAgent(agentId) {
      await run.remove([keys.acdAgent(agentId), keys.acdAgents()], [agentArg, agentId]);
    },

    async getAgent(agentId) {
      return toAgent(agentId, await redis.hgetall(keys.acdAgent(agentId)));
    },

    listAgents(opts) {
      const now = Date.now();
      if (opts?.maxAgeMs && lastList && now - lastList.at <= opts.maxAgeMs) return lastList.result.then((list) => list.map((a) => ({ ...a, skills: { ...a.skills } })));
      const result = readAgents();
      lastList = { at: now, result };
      result.catch(() => {
        if (lastList?.result === result) lastList = null;
      });
      return result.then((list) => list.map((a) => ({ ...a, skills: { ...a.skills } })));
    },

    async transition(agentId, to, opts = {}) {
      if (!AGENT_STATES.includes(to)) throw new RangeError(`unknown agent state ${String(to)}`);
      const now = opts.now ?? Date.now();
      const has = (v: unknown) => (v == null ? '0' : '1');
      const r = (await run.transition(
        [keys.acdAgent(agentId)],
        [agentArg, agentId, to, opts.reason ?? '', has(opts.callId), opts.callId ?? '', has(opts.expectCallId), opts.expectCallId ?? '', String(now), channel],
      )) as string[];
      const [status, from, moved, at, reason, callId] = r as [string, AgentState, AgentState, string, string, string];
      if (status === 'not_found') throw new AgentNotFound(agentId);
      if (status === 'illegal') throw new IllegalAgentTransition(agentId, from, to);
      if (status === 'call_mismatch') throw new AgentCallMismatch(agentId, from, to, opts.expectCallId!, r[2] || null);
      // `moved` is on_break instead of `to` when a waiting break started (setWaitingBreak)
      return { agentId, from, to: moved, at: Number(at), reason: reason || null, callId: callId || null } satisfies TransitionResult;
    },

    async setWaitingBreak(agentId, reason) {
      if (reason === null) {
        await redis.hdel(keys.acdAgent(agentId), 'break');
        return true;
      }
      if (reason === '') throw new RangeError('a waiting break needs its reason');
      return (await run.setBreak([keys.acdAgent(agentId)], [agentArg, reason])) === 1;
    },

    async enqueue(call) {
      if (!Number.isInteger(call.priority) || Math.abs(call.priority) > MAX_PRIORITY) throw new RangeError(`priority must be an integer within ±${MAX_PRIORITY}`);
      if (!Number.isInteger(call.enqueuedAt) || call.enqueuedAt < 0 || call.enqueuedAt >= SPAN) throw new RangeError('enqueuedAt must be epoch milliseconds');
      if (call.stages.length === 0) throw new RangeError(`call ${call.callId} has no stages`);
      for (const s of call.stages) for (const n of s.needs) checkLevel(n.minLevel, `minLevel of ${n.skill}`);
      const stages = [...call.stages].sort((a, b) => a.afterSeconds - b.afterSeconds);
      const data: WaitingCall = { ...call, stages };
      const waitingKey = keys.acdWaiting(call.queue);
      await redis
        .multi()
        .set(keys.acdWaitingCall(call.queue, call.callId), JSON.stringify(data), 'EX', WAITING_TTL_SECONDS)
        .zadd(waitingKey, String(-call.priority * SPAN + call.enqueuedAt), call.callId)
        .expire(waitingKey, WAITING_TTL_SECONDS)
        .exec();
    },

    async claim(queue, callId, now = Date.now()) {
      const arg = JSON.stringify({ ...agentTemplates, call: template((id) => keys.acdWaitingCall(queue, id)) });
      const agentId = await run.claim([keys.acdWaiting(queue)], [arg, callId, String(now), String(CLAIM_SCAN_AHEAD)]);
      if (typeof agentId !== 'string') return null;
      log?.debug({ queue, callId, agentId }, 'agent reserved for call');
      return agentId;
    },

    async remove(queue, callId) {
      await redis.multi().zrem(keys.acdWaiting(queue), callId).del(keys.acdWaitingCall(queue, callId)).exec();
    },

    async position(queue, callId) {
      const res = await redis.multi().zrank(keys.acdWaiting(queue), callId).exists(keys.acdWaitingCall(queue, callId)).exec();
      const rank = res?.[0]?.[1] as number | null | undefined;
      if (rank == null) return null;
      if (res?.[1]?.[1] !== 1) {
        await redis.zrem(keys.acdWaiting(queue), callId);
        return null;
      }
      return rank + 1;
    },

    async waiting(queue) {
      return loadCalls(queue, await redis.zrange(keys.acdWaiting(queue), '0', '-1'));
    },

    waitingIds,

    async waitingMany(queues) {
      const ids = await waitingIds(queues);
      const all = queues.flatMap((q) => (ids.get(q) ?? []).map((id) => [q, id] as const));
      const out = new Map<string, WaitingCall[]>(queues.map((q) => [q, []]));
      if (all.length === 0) return out;
      const raws = await redis.mget(all.map(([q, id]) => keys.acdWaitingCall(q, id)));
      const stale = redis.pipeline();
      let nStale = 0;
      all.forEach(([q, id], i) => {
        const r = raws[i];
        if (r == null) {
          stale.zrem(keys.acdWaiting(q), id);
          nStale++;
        } else out.get(q)!.push(JSON.parse(r) as WaitingCall);
      });
      if (nStale > 0) await stale.exec();
      return out;
    },

    onAgentReady(listener) {
      listeners.add(listener);
      void subscribe();
      return () => {
        if (!listeners.delete(listener) || listeners.size > 0) return;
        void unsubscribe();
      };
    },

    /** stops listening; the connections belong to the caller, who closes them */
    async close() {
      listeners.clear();
      subscriber.off('message', onMessage);
      await unsubscribe();
    },
  };
}
