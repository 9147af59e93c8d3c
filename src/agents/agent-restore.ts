/**
 * Redis keeps nothing on disk here (DESIGN §1): when it restarts it comes back empty, and with it the ACD's
 * live agent records (states, ready sets). PostgreSQL has the truth: the agents and their state log. A marker
 * key tells an empty Redis from one that kept its data; on every (re)connection an empty one gets each active
 * agent back as the state log last saw it, so nobody has to sign in again after a Redis restart:
 * - ready / not ready / on break / signed out: as they were (same reason, same since);
 * - on a call that is still open (its record has no end): on that call; the call's session releases it;
 * - reserved, wrap-up, or a call that is over: ready (their timers and rings were in the lost state).
 * Waiting calls put themselves back (the queue loop sees its entry gone), callbacks' jobs are rebuilt from
 * PostgreSQL by their sweep, the leader writes its lease again (src/ha/leadership.ts).
 */
import { sql } from 'kysely';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AcdEngine } from '../acd/engine.js';
import type { Db } from '../db/db.js';
import type { AgentState } from './agent.state.js';

export interface RestoreDeps {
  db: Db;
  redis: Redis;
  engine: Pick<AcdEngine, 'restoreAgent'>;
  /** the active agents (PostgreSQL) */
  listActive: () => Promise<Array<{ id: string; endpoint: string; skills: Array<{ skill: string; level: number }> }>>;
  markerKey: string;
  log: Logger;
}

/** the state an agent goes back to, from its last state-log row and whether that row's call is still open */
export function restoredState(last: { to_state: string; reason: string | null; call_id: string | null } | undefined, callOpen: boolean): { state: AgentState; reason: string | null; callId: string | null } {
  if (!last) return { state: 'logged_out', reason: null, callId: null };
  switch (last.to_state as AgentState) {
    case 'ready':
    case 'not_ready':
    case 'on_break':
    case 'logged_out':
      return { state: last.to_state as AgentState, reason: last.reason, callId: null };
    case 'on_call':
    case 'outbound':
      return callOpen && last.call_id ? { state: last.to_state as AgentState, reason: null, callId: last.call_id } : { state: 'ready', reason: null, callId: null };
    default:
      return { state: 'ready', reason: null, callId: null };
  }
}

export function createAgentRestore(deps: RestoreDeps) {
  const log = deps.log.child({ module: 'agent-restore' });
  let running: Promise<number> | null = null;

  async function restore(): Promise<number> {
    const agents = await deps.listActive();
    if (agents.length === 0) return 0;
    const last = await sql<{ agent_id: string; to_state: string; reason: string | null; call_id: string | null; at: Date; call_open: boolean }>`
      select distinct on (l.agent_id) l.agent_id, l.to_state, l.reason, l.call_id, l.at,
             (c.id is not null and c.ended_at is null) as call_open
      from agent_state_log l left join calls c on c.id = l.call_id
      where l.agent_id in (${sql.join(agents.map((a) => a.id))})
      order by l.agent_id, l.at desc, l.id desc`.execute(deps.db);
    const byAgent = new Map(last.rows.map((r) => [r.agent_id, r]));
    let restored = 0;
    for (const a of agents) {
      const row = byAgent.get(a.id);
      const s = restoredState(row, row?.call_open ?? false);
      const since = s.state === (row?.to_state ?? 'logged_out') && row ? row.at.getTime() : Date.now();
      const skills = Object.fromEntries(a.skills.map((x) => [x.skill, x.level]));
      if (await deps.engine.restoreAgent(a.id, skills, a.endpoint, { ...s, since })) restored++;
    }
    return restored;
  }

  return {
    /** at start: mark this Redis (its data is what the ACD has) */
    async mark(): Promise<void> {
      await deps.redis.set(deps.markerKey, new Date().toISOString(), 'NX');
    },
    /** after a reconnection: an empty Redis (no marker) gets the agents back; the number restored */
    async checkAfterReconnect(): Promise<number> {
      if (running) return running;
      running = (async () => {
        const fresh = await deps.redis.set(deps.markerKey, new Date().toISOString(), 'NX');
        if (fresh !== 'OK') return 0; // the marker is there: Redis kept its data
        log.warn('Redis came back empty: rebuilding the agents and their states from PostgreSQL');
        const n = await restore();
        log.warn({ restored: n }, 'agents restored from PostgreSQL');
        return n;
      })().finally(() => (running = null));
      return running;
    },
  };
}
