/**
 * Click-to-call (POST /api/v1/calls {to}): an agent in `outbound` state rings its own phone first, then
 * the citizen, who sees the hotline's number. One at a time per agent. The call runs as an
 * agent-first outbound session (src/callbacks/callback.session.ts), routed like every other call.
 */
import type { AcdEngine } from '../acd/engine.js';
import { CallbackSession, type CallbackSessionDeps } from '../callbacks/callback.session.js';
import { ControlError } from './call.session.js';
import type { CallRouter } from './calls.stasis.js';

export type ClickToCall = (agentId: string, number: string, requestedBy: string) => Promise<{ callId: string }>;

export function createClickToCall(deps: {
  engine: AcdEngine;
  router: Pick<CallRouter, 'adopt' | 'sessionDeps'>;
  session: Omit<CallbackSessionDeps, 'track' | 'untrack' | 'ended'>;
  ringSeconds: number;
}): ClickToCall {
  const busy = new Set<string>();
  return async (agentId, number, requestedBy) => {
    const agent = await deps.engine.getAgent(agentId);
    if (!agent) throw new ControlError('no-such-agent', `no agent ${agentId} is signed in`, 404);
    if (agent.state !== 'outbound') throw new ControlError('not-outbound', `agent ${agentId} is ${agent.state}: switch to outbound first (inbound calls would compete)`);
    if (!agent.endpoint) throw new ControlError('no-phone', `agent ${agentId} has no phone`, 422);
    if (busy.has(agentId)) throw new ControlError('busy', `agent ${agentId} is already placing a call`);
    busy.add(agentId);
    const session = new CallbackSession(
      {
        ...deps.session,
        ...deps.router.sessionDeps,
        ended: (s) => {
          busy.delete(agentId);
          deps.router.sessionDeps.ended(s);
        },
      },
      { kind: 'click', number, agentId, endpoint: agent.endpoint, requestedBy, ringSeconds: deps.ringSeconds },
    );
    deps.router.adopt(session);
    return { callId: session.id };
  };
}
