/**
 * The life of one inbound call as a small explicit state machine (STYLE rule 5).
 * transition() is pure: side effects live in the session that drives it.
 *
 *   arrived --ivr--> ivr --queue--> queued --offer--> ringing --agent_answered--> talking
 *                                     ^                 |
 *                                     +---no_answer-----+
 *   transfers from talking: --queue--> queued (to a queue), --offer--> ringing (to an agent),
 *   --ivr--> ivr (to a flow; --agent_answered--> talking when it returns to the agent);
 *   queued --queue--> queued (back in line after a transfer target did not answer)
 *   any state but ended --end--> ended
 */
export type CallState = 'arrived' | 'ivr' | 'queued' | 'ringing' | 'talking' | 'ended';
export type CallEvent = 'ivr' | 'queue' | 'offer' | 'no_answer' | 'agent_answered' | 'end';

const TABLE: Record<CallState, Partial<Record<CallEvent, CallState>>> = {
  arrived: { ivr: 'ivr', queue: 'queued', end: 'ended' },
  ivr: { queue: 'queued', agent_answered: 'talking', end: 'ended' },
  queued: { offer: 'ringing', queue: 'queued', end: 'ended' },
  ringing: { no_answer: 'queued', agent_answered: 'talking', end: 'ended' },
  talking: { queue: 'queued', offer: 'ringing', ivr: 'ivr', end: 'ended' },
  ended: {},
};

export class IllegalTransition extends Error {
  override name = 'IllegalTransition';
  constructor(
    readonly from: CallState,
    readonly event: CallEvent,
  ) {
    super(`call cannot ${event} while ${from}`);
  }
}

export function transition(from: CallState, event: CallEvent): CallState {
  const to = TABLE[from][event];
  if (!to) throw new IllegalTransition(from, event);
  return to;
}

/** what a call that ends in this state is recorded as */
export function dispositionOnEnd(state: CallState, wasAnswered: boolean): 'answered' | 'abandoned' {
  return wasAnswered || state === 'talking' ? 'answered' : 'abandoned';
}
