/**
 * The supervisor seat (../shared/API.md): the live view of the floor, and listen / whisper / barge on a
 * live call from the supervisor's phone. Every monitoring action is written to the audit trail.
 * Force actions live with the routes they force: PUT /agents/{id}/state, POST /calls/{id}/hangup.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { sql } from 'kysely';
import { Type } from '@sinclair/typebox';
import type { AuditLog } from '../audit/audit.js';
import { auditActor } from '../audit/audit.routes.js';
import { CallSession } from '../calls/call.session.js';
import type { CallRouter } from '../calls/calls.stasis.js';
import type { Db } from '../db/db.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { QueueStats } from '../acd/queues.routes.js';
import { AppError, notFound } from '../shared/errors.js';
import type { LiveView } from './live-view.js';
import { MonitorError, type MonitorMode, type Supervisor } from './monitor.js';

const Params = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });
const MonitorBody = Type.Object(
  {
    extension: Type.String({
      pattern: '^[0-9]{2,16}$',
      description: "the supervisor's phone: an employee number with a provisioned phone, or the desk extension an agent signed in at",
    }),
  },
  { additionalProperties: false },
);
const MonitorDto = Type.Object({ callId: Type.String(), supervisor: Type.String(), extension: Type.String(), mode: Type.String(), since: Type.String({ format: 'date-time' }) });
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 502: ErrorBody };

const AgentDto = Type.Object({
  agentId: Type.String(),
  name: Type.Union([Type.String(), Type.Null()]),
  state: Type.String(),
  reason: Type.Union([Type.String(), Type.Null()]),
  since: Type.String({ format: 'date-time' }),
  stateSeconds: Type.Integer(),
  callId: Type.Union([Type.String(), Type.Null()]),
  callSeconds: Type.Union([Type.Integer(), Type.Null()]),
  answeredToday: Type.Integer(),
  talkSecondsToday: Type.Number(),
  deskExtension: Type.Union([Type.String(), Type.Null()]),
});

export const supervisionRoutes: FastifyPluginAsyncTypebox<{ calls: Pick<CallRouter, 'get'>; db: Db; audit: AuditLog; live: LiveView; guard: Guard }> = async (app, { calls, db, audit, live, guard }) => {
  const supervisors = guard('supervisor', 'admin');

  app.get(
    '/live',
    {
      preHandler: guard('supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['supervision'],
        summary: 'the floor now: every queue and every agent (the WebSocket pushes queue.stats and agent.board as they change)',
        security: [{ bearer: [] }],
        response: { 200: Type.Object({ at: Type.String({ format: 'date-time' }), queues: Type.Array(QueueStats), agents: Type.Array(AgentDto) }), 401: ErrorBody, 403: ErrorBody },
      },
    },
    async () => live.snapshot(),
  );

  function session(id: string): CallSession {
    const s = calls.get(id);
    if (!(s instanceof CallSession)) throw notFound('no-such-call', `no live call ${id} on this service`);
    return s;
  }

  /** the phone behind an extension: an agent's (or supervisor's) own phone, or the desk an agent signed in at */
  async function phoneOf(extension: string): Promise<Supervisor['endpoint']> {
    const row = await db
      .selectFrom('agents')
      .select(['employee_no', 'endpoint', 'desk_extension'])
      .where('deleted_at', 'is', null)
      .where((eb) => eb.or([eb('employee_no', '=', extension), eb('desk_extension', '=', extension)]))
      .orderBy(sql`employee_no = ${extension}`, 'desc')
      .executeTakeFirst();
    if (!row) throw new AppError(404, 'no-such-extension', `no phone is known at extension ${extension}`);
    return row.endpoint;
  }

  async function monitor(req: FastifyRequest, callId: string, extension: string, mode: MonitorMode) {
    const s = session(callId);
    const p = req.principal!;
    const endpoint = await phoneOf(extension);
    try {
      const view = await s.monitor(mode, { username: p.username, endpoint, extension });
      await audit.record({ ...auditActor(req), action: `monitor.${mode}`, target: callId, details: { extension } });
      return { callId, ...view };
    } catch (err) {
      if (err instanceof MonitorError) {
        await audit.record({ ...auditActor(req), action: `monitor.${mode}`, target: callId, details: { extension, refused: err.code } });
        throw new AppError(err.status, err.code, err.message);
      }
      throw err;
    }
  }

  const monitorSchema = (summary: string) => ({ tags: ['supervision'], summary, security: [{ bearer: [] }], params: Params, body: MonitorBody, response: { 200: MonitorDto, ...errors } });
  app.post('/calls/:id/listen', { preHandler: supervisors, schema: monitorSchema("listen: the supervisor's phone hears caller and agent; neither can hear it or see a change") }, (req) => monitor(req, req.params.id, req.body.extension, 'listen'));
  app.post('/calls/:id/whisper', { preHandler: supervisors, schema: monitorSchema('whisper (coach): the agent hears the supervisor, the caller does not') }, (req) => monitor(req, req.params.id, req.body.extension, 'whisper'));
  app.post('/calls/:id/barge', { preHandler: supervisors, schema: monitorSchema("barge-in: the supervisor joins the conversation; the agent's desktop gets monitor.barge") }, (req) => monitor(req, req.params.id, req.body.extension, 'barge'));

  app.post(
    '/calls/:id/monitor/stop',
    {
      preHandler: supervisors,
      schema: {
        tags: ['supervision'],
        summary: "stop monitoring: the supervisor's phone is hung up, the call is as it was",
        security: [{ bearer: [] }],
        params: Params,
        response: { 200: Type.Object({ callId: Type.String(), stopped: Type.Boolean() }), ...errors },
      },
    },
    async (req) => {
      const s = session(req.params.id);
      const stopped = await s.monitors.stop(req.principal!.username);
      if (!stopped) throw new AppError(409, 'not-monitoring', 'you are not monitoring this call');
      await audit.record({ ...auditActor(req), action: 'monitor.stop', target: req.params.id });
      return { callId: req.params.id, stopped };
    },
  );

  app.get(
    '/calls/:id/monitors',
    {
      preHandler: supervisors,
      schema: {
        tags: ['supervision'],
        summary: 'who is monitoring this call, and how',
        security: [{ bearer: [] }],
        params: Params,
        response: { 200: Type.Object({ items: Type.Array(Type.Object({ supervisor: Type.String(), extension: Type.String(), mode: Type.String(), since: Type.String() })) }), ...errors },
      },
    },
    async (req) => ({ items: session(req.params.id).monitors.list() }),
  );
};
