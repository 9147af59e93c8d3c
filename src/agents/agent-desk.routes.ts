/**
 * The agent desktop's routes beside the agents API: breaks (request, approve, reject, resume, list) and the
 * "today" panel. An agent acts on itself; a supervisor (or an admin) on anyone.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Principal } from '../auth/auth.service.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { forbidden, notFound } from '../shared/errors.js';
import type { AgentDesk } from './agent-desk.js';
import type { BreaksService } from './breaks.js';

const AgentId = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9]{1,16}$' }) }, { additionalProperties: false });
const BreakId = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });
const BreakStatus = Type.Union([
  Type.Literal('pending'),
  Type.Literal('approved'),
  Type.Literal('active'),
  Type.Literal('rejected'),
  Type.Literal('ended'),
  Type.Literal('cancelled'),
]);
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

export const Break = Type.Object({
  id: Type.String({ format: 'uuid' }),
  agentId: Type.String(),
  reason: Type.String(),
  minutes: Type.Integer(),
  status: Type.String({ description: 'pending | approved (starts when the agent is released from its call) | active | rejected | ended | cancelled' }),
  requestedAt: Type.String({ format: 'date-time' }),
  requestedBy: Nullable(Type.String()),
  decidedBy: Nullable(Type.String()),
  decidedAt: Nullable(Type.String({ format: 'date-time' })),
  startedAt: Nullable(Type.String({ format: 'date-time' })),
  endsAt: Nullable(Type.String({ format: 'date-time' })),
  endedAt: Nullable(Type.String({ format: 'date-time' })),
  endReason: Nullable(Type.String({ description: 'resumed | expired | cancelled | signed-out | state-changed' })),
});

const BreakBody = Type.Object(
  {
    reason: Type.String({ minLength: 1, maxLength: 64 }),
    minutes: Type.Integer({ minimum: 1, maximum: 120 }),
  },
  { additionalProperties: false },
);

const Today = Type.Object({
  queues: Type.Array(Type.Object({ name: Type.String(), title: Type.String(), waiting: Type.Integer(), longestWaitSeconds: Type.Integer() })),
  answered: Type.Integer({ description: 'calls the agent answered today (Asia/Shanghai)' }),
  talkSeconds: Type.Integer({ description: 'talk time of those calls' }),
  state: Type.Object({
    state: Type.String(),
    reason: Nullable(Type.String()),
    since: Type.String({ format: 'date-time' }),
    callId: Nullable(Type.String()),
  }),
  extension: Nullable(Type.String({ description: 'the extension given at sign-in (the current desk)' })),
  break: Type.Union([Break, Type.Null()]),
});

const actorOf = (p: Principal) => `${p.role}:${p.username}`;
function mustActFor(p: Principal, agentId: string): void {
  if (p.role === 'agent' && p.agentId !== agentId) throw forbidden('an agent may act only for itself');
}

export const agentDeskRoutes: FastifyPluginAsyncTypebox<{ breaks: BreaksService; desk: AgentDesk; guard: Guard }> = async (app, { breaks, desk, guard }) => {
  const agentOrSupervisor = guard('agent', 'supervisor', 'admin');
  const supervisor = guard('supervisor', 'admin');
  const security = [{ bearer: [] }];

  app.post(
    '/agents/:id/breaks',
    {
      preHandler: agentOrSupervisor,
      schema: {
        tags: ['breaks'],
        summary: 'ask for a break (an agent for itself, a supervisor for anyone); a supervisor approves it',
        security,
        params: AgentId,
        body: BreakBody,
        response: { 201: Break, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (req, reply) => {
      mustActFor(req.principal!, req.params.id);
      const b = await breaks.request(req.params.id, req.body.reason, req.body.minutes, actorOf(req.principal!));
      return reply.status(201).send(b);
    },
  );

  app.delete(
    '/agents/:id/break',
    {
      preHandler: agentOrSupervisor,
      schema: {
        tags: ['breaks'],
        summary: "end the agent's break: an active one ends (the agent is ready again), a pending or approved one is cancelled",
        security,
        params: AgentId,
        response: { 200: Break, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (req) => {
      mustActFor(req.principal!, req.params.id);
      return breaks.end(req.params.id, actorOf(req.principal!));
    },
  );

  for (const decision of ['approve', 'reject'] as const) {
    app.post(
      `/breaks/:id/${decision}`,
      {
        preHandler: supervisor,
        schema: {
          tags: ['breaks'],
          summary:
            decision === 'approve'
              ? 'approve a pending break: the agent goes on break now if it is ready or not ready, else when its call is over'
              : 'reject a pending break',
          security,
          params: BreakId,
          response: { 200: Break, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
        },
      },
      async (req) => (decision === 'approve' ? breaks.approve(req.params.id, actorOf(req.principal!)) : breaks.reject(req.params.id, actorOf(req.principal!))),
    );
  }

  app.get(
    '/breaks',
    {
      preHandler: supervisor,
      schema: {
        tags: ['breaks'],
        summary: 'breaks, e.g. ?status=pending for the requests to decide (pending oldest first, otherwise newest first)',
        security,
        querystring: Type.Object(
          {
            status: Type.Optional(BreakStatus),
            agentId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9]{1,16}$' })),
            limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(Break) }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => ({ items: await breaks.list(req.query) }),
  );

  app.get(
    '/agents/:id/today',
    {
      preHandler: agentOrSupervisor,
      schema: {
        tags: ['agents'],
        summary: "the agent desktop's panel: the agent's queues now, its answered calls and talk time today, its state and break",
        security,
        params: AgentId,
        response: { 200: Today, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (req) => {
      mustActFor(req.principal!, req.params.id);
      const [today, current] = await Promise.all([desk.today(req.params.id), breaks.current(req.params.id)]);
      if (!today) throw notFound('no-such-agent', `no agent ${req.params.id}`);
      return { ...today, break: current };
    },
  );
};
