/**
 * Agent state changes: applied atomically in Redis by the ACD engine, then appended to the agent state
 * log in PostgreSQL (the durable history supervisors and KPIs read), then announced to listeners and
 * published as an `agent.state` live event (to the agent; supervisors see every event).
 * Everything that moves an agent (the API, calls, the sweepers) goes through here.
 */
import type { Logger } from 'pino';
import type { AcdEngine, TransitionOptions, TransitionResult } from '../acd/engine.js';
import type { Db } from '../db/db.js';
import type { EventBus } from '../events/bus.js';
import { recordOutbox, type RecordOpArgs } from '../db/record-ops.js';
import type { AgentState } from './agent.state.js';

export interface AgentStates {
  transition(agentId: string, to: AgentState, opts?: TransitionOptions & { actor?: string }): Promise<TransitionResult>;
  /** like transition, but a refusal (the agent moved on meanwhile) is logged and returns null */
  tryTransition(agentId: string, to: AgentState, opts?: TransitionOptions & { actor?: string }): Promise<TransitionResult | null>;
  /** the routing engine reserved this agent for a call (ready -> reserved happened inside Redis): log and announce it */
  reserved(agentId: string, callId: string): void;
  onChange(fn: (r: TransitionResult) => void): void;
}

export function createAgentStates(deps: { engine: AcdEngine; db: Db; log: Logger; events?: Pick<EventBus, 'publish'> }): AgentStates {
  const listeners: Array<(r: TransitionResult) => void> = [];
  const log = deps.log.child({ module: 'agent-states' });

  /** the agent's state log, in order per agent, through the record outbox (never lost to a PostgreSQL outage) */
  function record(r: TransitionResult, actor: string | undefined): Promise<void> {
    return recordOutbox(deps.db, log).write(
      `agent-state:${r.agentId}`,
      'agentState.log',
      { agentId: r.agentId, at: new Date(r.at), from: r.from, to: r.to, reason: r.reason, callId: r.callId, actor: actor ?? null } satisfies RecordOpArgs['agentState.log'],
      log,
    );
  }

  function applied(r: TransitionResult, actor: string | undefined): void {
    if (r.from === r.to) return; // ready -> ready changes nothing: nothing to log or announce
    // the call flow's own moves (reserved, on call, wrap-up, ready: four per call, all in agent_state_log) at debug;
    // a move someone made (the agent, a supervisor, a sweeper, a take-over) at info
    (actor ? log.info : log.debug).call(log, { agentId: r.agentId, from: r.from, to: r.to, reason: r.reason, callId: r.callId, actor }, `agent ${r.from} -> ${r.to}`);
    void record(r, actor);
    deps.events?.publish('agent.state', { agentId: r.agentId, state: r.to, reason: r.reason, since: new Date(r.at).toISOString() }, { agentId: r.agentId });
    for (const fn of listeners) {
      try {
        fn(r);
      } catch (err) {
        log.error({ err }, 'agent state listener failed');
      }
    }
  }

  async function transition(agentId: string, to: AgentState, opts: TransitionOptions & { actor?: string } = {}): Promise<TransitionResult> {
    const { actor, ...rest } = opts;
    // a break approved while the agent was busy starts as it is released, before the ACD can offer it a call: the
    // engine moves it on_break instead of ready / not_ready in the same atomic step (AcdEngine.setWaitingBreak)
    const r = await deps.engine.transition(agentId, to, rest);
    applied(r, actor);
    return r;
  }

  return {
    transition,
    async tryTransition(agentId, to, opts = {}) {
      try {
        return await transition(agentId, to, opts);
      } catch (err) {
        log.info({ agentId, to, err: (err as Error).message }, 'agent state change not applied');
        return null;
      }
    },
    reserved: (agentId, callId) => applied({ agentId, from: 'ready', to: 'reserved', at: Date.now(), reason: null, callId }, 'system:routing'),
    onChange: (fn) => void listeners.push(fn),
  };
}
