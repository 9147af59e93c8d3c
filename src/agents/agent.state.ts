/**
 * The agent state machine (API.md "Agent states"). Pure: the table is also handed to the Redis
 * script that applies transitions atomically, so TypeScript and Lua can never disagree.
 *
 *   logged_out --login--> not_ready <--> ready --(routing)--> reserved --answer--> on_call --> wrap_up --> ready
 *                            ^  |          ^                  |  |                                  |
 *                            |  +-> on_break (approved break) |  +-- ring-no-answer --> not_ready    +--> not_ready
 *                            |  +-> outbound                  +-- caller gone before answer --> ready
 */
export type AgentState = 'logged_out' | 'not_ready' | 'ready' | 'reserved' | 'on_call' | 'wrap_up' | 'on_break' | 'outbound';

export const AGENT_STATES: readonly AgentState[] = ['logged_out', 'not_ready', 'ready', 'reserved', 'on_call', 'wrap_up', 'on_break', 'outbound'];

/** from -> the states it may move to */
export const AGENT_TRANSITIONS: Readonly<Record<AgentState, readonly AgentState[]>> = {
  logged_out: ['not_ready'],
  not_ready: ['ready', 'on_break', 'outbound', 'logged_out'],
  ready: ['not_ready', 'reserved', 'on_break', 'outbound', 'logged_out'],
  // reserved: only the routing engine and the call that reserved the agent move it on
  reserved: ['on_call', 'ready', 'not_ready'],
  // on_call -> logged_out: a supervisor's force sign-out; the call itself goes on
  on_call: ['wrap_up', 'logged_out'],
  wrap_up: ['ready', 'not_ready', 'on_break', 'logged_out'],
  on_break: ['ready', 'not_ready', 'logged_out'],
  outbound: ['not_ready', 'ready', 'logged_out'],
};

export class IllegalAgentTransition extends Error {
  override name = 'IllegalAgentTransition';
  constructor(
    readonly agentId: string,
    readonly from: AgentState,
    readonly to: AgentState,
  ) {
    super(`agent ${agentId} cannot go from ${from} to ${to}`);
  }
}

export function canTransition(from: AgentState, to: AgentState): boolean {
  return AGENT_TRANSITIONS[from].includes(to);
}
