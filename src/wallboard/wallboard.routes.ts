/**
 * GET /api/v1/wallboard: the floor's video wall in one read (src/wallboard/wallboard.service.ts has the
 * formulas). Open to a supervisor, admin or auditor token (header or `?token=`), or to the read-only
 * wallboard key (`?key=`, WALLBOARD_KEY): see wallboard-auth.ts.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AuthService } from '../auth/auth.service.js';
import { ErrorBody } from '../http/schemas.js';
import { wallboardGuard } from './wallboard-auth.js';
import type { WallboardService } from './wallboard.service.js';

const Rate = Type.Union([Type.Number(), Type.Null()]);
const Met = Type.Union([Type.Boolean(), Type.Null()], { description: 'the target met, missed, or null: nothing to judge yet' });
const Queue = Type.Object({
  name: Type.String(),
  title: Type.String(),
  waiting: Type.Integer(),
  longestWaitSeconds: Type.Number(),
  agents: Type.Record(Type.String(), Type.Integer()),
  offeredToday: Type.Integer(),
  answeredToday: Type.Integer(),
  abandonedToday: Type.Integer(),
  serviceLevelToday: Rate,
  serviceLevelSeconds: Type.Number(),
  estimatedWaitSeconds: Rate,
});
const Snapshot = Type.Object({
  at: Type.String({ format: 'date-time' }),
  day: Type.String({ description: 'today on the hotline clock (Asia/Shanghai), YYYY-MM-DD' }),
  thresholds: Type.Object({ amberSeconds: Type.Integer(), redSeconds: Type.Integer() }, { description: 'longest-wait colours (WALLBOARD_AMBER_SECONDS, WALLBOARD_RED_SECONDS)' }),
  targets: Type.Object({ answerRate: Type.Number(), avgWaitSeconds: Type.Number(), satisfaction: Type.Number(), serviceLevelSeconds: Type.Number() }),
  queues: Type.Array(Queue),
  agents: Type.Object({ total: Type.Integer(), byState: Type.Record(Type.String(), Type.Integer()) }),
  kpi: Type.Object(
    {
      offered: Type.Integer({ description: 'inbound calls that arrived today and ended, less restricted ones' }),
      answered: Type.Integer({ description: 'answered by an agent' }),
      ivrCompleted: Type.Integer({ description: 'completed in the self-service IVR' }),
      abandoned: Type.Integer({ description: 'abandoned, short abandons not included' }),
      shortAbandoned: Type.Integer({ description: 'abandoned within 5 s of arriving (left out of the rates)' }),
      slAnswered: Type.Integer({ description: 'answered (agent or IVR) within serviceLevelSeconds of arrival' }),
      ratings: Type.Integer(),
      satisfied: Type.Integer(),
      answerRate: Type.Union([Type.Number(), Type.Null()], { description: '(answered + ivrCompleted) / (offered - shortAbandoned)' }),
      avgWaitSeconds: Type.Union([Type.Number(), Type.Null()], { description: 'arrival to first answer (agent, or end of the self-service)' }),
      serviceLevel: Type.Union([Type.Number(), Type.Null()], { description: 'slAnswered / (offered - shortAbandoned)' }),
      satisfaction: Type.Union([Type.Number(), Type.Null()], { description: 'satisfied / ratings' }),
      targetsMet: Type.Object({ answerRate: Met, avgWaitSeconds: Met, satisfaction: Met }),
    },
    { description: "today's KPIs as src/kpi/definitions.ts defines them (GET /api/v1/kpi's), counted live from the calls" },
  ),
  series: Type.Object({
    slotMinutes: Type.Integer(),
    slots: Type.Array(
      Type.Object({
        start: Type.String({ format: 'date-time' }),
        startLocal: Type.String(),
        calls: Type.Integer({ description: 'calls that reached a queue, by the quarter-hour of arrival' }),
        forecast: Type.Number({ description: "half of the staffing forecast's half-hour" }),
      }),
    ),
  }),
  waiting: Type.Array(
    Type.Object({
      queue: Type.String(),
      queueTitle: Type.String(),
      caller: Type.Union([Type.String(), Type.Null()], { description: 'masked, e.g. 138****5678' }),
      kind: Type.Union([Type.Literal('call'), Type.Literal('callback')]),
      enqueuedAt: Type.String({ format: 'date-time' }),
      waitSeconds: Type.Integer(),
    }),
  ),
});

export const wallboardRoutes: FastifyPluginAsyncTypebox<{ service: WallboardService; auth: Pick<AuthService, 'authenticate'>; key: string | null }> = async (app, { service, auth, key }) => {
  app.get(
    '/',
    {
      preHandler: wallboardGuard(auth, key),
      schema: {
        tags: ['supervision'],
        summary: "the wallboard: queues, agents by state, today's KPIs against the contract, calls per 15 min against the forecast, the longest-waiting callers (masked)",
        description:
          'Authenticate with a supervisor, admin or auditor token (`Authorization: Bearer` or `?token=`), or with the read-only wallboard key `?key=` (WALLBOARD_KEY). ' +
          'Between two reads the WebSocket (`/api/v1/events`, same `?token=` or `?key=`) pushes queue.stats and agent.board.',
        security: [{ bearer: [] }],
        querystring: Type.Object(
          {
            key: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'the wallboard key (WALLBOARD_KEY)' })),
            token: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'a bearer token, for a page that cannot set headers' })),
            top: Type.Integer({ minimum: 0, maximum: 50, default: 10, description: 'how many waiting callers to list' }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Snapshot, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req, reply) => {
      reply.header('cache-control', 'no-store');
      return service.snapshot({ top: req.query.top });
    },
  );
};
