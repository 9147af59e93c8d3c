import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AcdEngine } from '../acd/engine.js';
import type { AuditLog } from '../audit/audit.js';
import { auditActor } from '../audit/audit.routes.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { AppError, forbidden, notFound } from '../shared/errors.js';
import { IllegalAgentTransition, type AgentState } from './agent.state.js';
import type { AgentStates } from './agent-states.js';

const StateBody = Type.Object(
  {
    state: Type.Union([Type.Literal('ready'), Type.Literal('not_ready'), Type.Literal('outbound'), Type.Literal('logged_out')]),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  },
  { additionalProperties: false },
);
export const AgentLiveState = Type.Object({
  agentId: Type.String(),
  state: Type.String(),
  reason: Type.Union([Type.String(), Type.Null()]),
  since: Type.String({ format: 'date-time' }),
  callId: Type.Union([Type.String(), Type.Null()]),
});

export const agentStateRoutes: FastifyPluginAsyncTypebox<{ engine: AcdEngine; agentStates: AgentStates; audit: AuditLog; guard: Guard }> = async (app, { engine, agentStates, audit, guard }) => {
  app.put(
    '/:id/state',
    {
      preHandler: guard('agent', 'supervisor', 'admin'),
      schema: {
        tags: ['agents'],
        summary: "set an agent's state: an agent for itself, a supervisor for anyone",
        security: [{ bearer: [] }],
        params: Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9]{1,16}$' }) }, { additionalProperties: false }),
        body: StateBody,
        response: { 200: AgentLiveState, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (req) => {
      const p = req.principal!;
      const id = req.params.id;
      if (p.role === 'agent' && p.agentId !== id) throw forbidden('an agent may set only its own state');
      const live = await engine.getAgent(id);
      if (!live) throw notFound('no-such-agent', `no agent ${id}`);
      const to: AgentState = req.body.state;
      const reason = to === 'not_ready' ? (req.body.reason ?? 'manual') : (req.body.reason ?? null);
      const actor = p.role === 'agent' ? `agent:${p.username}` : `${p.role}:${p.username}`;
      try {
        // signing in to the ACD passes through not ready
        if (live.state === 'logged_out' && to !== 'logged_out' && to !== 'not_ready') {
          await agentStates.transition(id, 'not_ready', { reason: 'signed in', actor });
        }
        await agentStates.transition(id, to, { reason, actor });
      } catch (err) {
        if (err instanceof IllegalAgentTransition) throw new AppError(409, 'illegal-transition', err.message);
        throw err;
      }
      const now = (await engine.getAgent(id))!;
      if (p.agentId !== id) {
        // a supervisor forcing someone else's state (ready, not ready, sign-out) is on the audit trail
        await audit.record({ ...auditActor(req), action: 'agent.force-state', target: id, details: { from: live.state, to, reason, now: now.state } });
      }
      return { agentId: id, state: now.state, reason: now.reason, since: new Date(now.since).toISOString(), callId: now.callId };
    },
  );
};
