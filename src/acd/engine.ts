/**
 * The ACD engine's contract: agents' live state and waiting calls in Redis, with every decision that
 * two service processes could race on made atomically inside Redis (Lua). PostgreSQL keeps the
 * durable side (agents, the agent state log, call records); Redis may be wiped and is rebuilt.
 */
import type { AgentState } from '../agents/agent.state.js';

export interface AgentLive {
  agentId: string;
  state: AgentState;
  /** why not ready / on break ('ring-no-answer', 'lunch', ...), null otherwise */
  reason: string | null;
  /** epoch ms of the last state change */
  since: number;
  /** the call the agent is reserved for or talking on */
  callId: string | null;
  /** skill -> level (1..9, higher is better) */
  skills: Record<string, number>;
  /** the dial string of the agent's phone, e.g. PJSIP/agent1001 */
  endpoint: string;
}

export interface SkillNeed {
  skill: string;
  /** lowest acceptable level, 1..9 */
  minLevel: number;
}

/** From afterSeconds of waiting on, an agent matching any of needs may take the call (skill relaxation). */
export interface Stage {
  afterSeconds: number;
  needs: SkillNeed[];
}

export interface WaitingCall {
  callId: string;
  queue: string;
  /** higher goes first (whitelist, overflow); equal priority is first come first served */
  priority: number;
  /** epoch ms the call first entered the queue; kept when the call is put back (keeps its place) */
  enqueuedAt: number;
  /** ordered by afterSeconds, first stage afterSeconds = 0 */
  stages: Stage[];
  /** offered first to this agent if it is ready (repeat caller -> last agent) */
  preferredAgent?: string;
}

export interface TransitionResult {
  agentId: string;
  from: AgentState;
  to: AgentState;
  /** epoch ms */
  at: number;
  reason: string | null;
  callId: string | null;
}

export interface TransitionOptions {
  reason?: string | null;
  /** the call id to attach (reserved/on_call) or, with expectCallId, to check */
  callId?: string | null;
  /** refuse unless the agent is currently attached to this call (a stale call cannot move the agent) */
  expectCallId?: string;
  now?: number;
}

export interface AcdEngine {
  /** create or refresh an agent's live record (skills, endpoint); state untouched when it exists, logged_out when new */
  upsertAgent(agentId: string, skills: Record<string, number>, endpoint: string): Promise<void>;
  /**
   * Redis lost its data (restarted without persistence): put an agent it does not know back as PostgreSQL last
   * saw it. false (nothing changed) when the agent has a live record already.
   */
  restoreAgent(agentId: string, skills: Record<string, number>, endpoint: string, live: { state: AgentState; reason: string | null; since: number; callId: string | null }): Promise<boolean>;
  removeAgent(agentId: string): Promise<void>;
  getAgent(agentId: string): Promise<AgentLive | null>;
  /**
   * every agent's live state. maxAgeMs: a read made (or in flight) that recently may be shared (the live view,
   * statistics and wallboard read it together every tick: one read of all agents, not one each); default fresh.
   */
  listAgents(opts?: { maxAgeMs?: number }): Promise<AgentLive[]>;
  /**
   * atomic check-and-set along AGENT_TRANSITIONS; throws IllegalAgentTransition (or AgentNotFound). A move to
   * ready / not_ready of an agent with a waiting break (setWaitingBreak) is a move to on_break instead, where that
   * is legal: the result's `to` says which happened.
   */
  transition(agentId: string, to: AgentState, opts?: TransitionOptions): Promise<TransitionResult>;
  /**
   * A break approved while the agent is busy waits on its live record (its reason; null: none waits any more):
   * the agent's next move to ready / not_ready goes on_break with it, in the same atomic step, so the ACD can
   * offer no call in between (src/agents/breaks.ts). Going on_break or signing out clears it. false when there
   * is no such agent.
   */
  setWaitingBreak(agentId: string, reason: string | null): Promise<boolean>;

  enqueue(call: WaitingCall): Promise<void>;
  /**
   * Atomically: unless an earlier waiting call of the same queue can be served by an agent available
   * right now, reserve the best agent for this call (preferred agent if ready, else highest level of the
   * call's current stages, then longest idle), move it ready -> reserved with callId, and take the call
   * out of the waiting list. Returns the agent id, or null.
   */
  claim(queue: string, callId: string, now?: number): Promise<string | null>;
  /** take a call out of the waiting list (answered elsewhere, hung up, overflowed) */
  remove(queue: string, callId: string): Promise<void>;
  /** 1-based position in its queue, null when not waiting */
  position(queue: string, callId: string): Promise<number | null>;
  waiting(queue: string): Promise<WaitingCall[]>;
  /** the ids waiting in each of these queues, in order: one round trip for all of them */
  waitingIds(queues: string[]): Promise<Map<string, string[]>>;
  /** the calls waiting in each of these queues, in order: two round trips for all of them */
  waitingMany(queues: string[]): Promise<Map<string, WaitingCall[]>>;

  /** called (in every process sharing the Redis) whenever an agent becomes ready; returns unsubscribe */
  onAgentReady(listener: (agentId: string) => void): () => void;
  close(): Promise<void>;
}
