/**
 * Call control on a live call (../shared/API.md "On a live call"): hold, resume, hang-up, the survey,
 * blind and attended transfers, three-way conference. An agent acts on the call it is on; supervisors
 * and admins on any call. Each action is applied to Asterisk before the reply, and written to the
 * call's event timeline.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit/audit.js';
import { auditActor } from '../audit/audit.routes.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { AppError, notFound } from '../shared/errors.js';
import { normalizePhone } from '../shared/phone.js';
import { CallSession, ControlError, type TransferTarget } from './call.session.js';
import type { CallRouter } from './calls.stasis.js';
import type { ClickToCall } from './click-to-call.js';

const Params = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });
const Done = Type.Object({ callId: Type.String(), action: Type.String(), state: Type.String(), agents: Type.Array(Type.String()) });
const AgentTarget = Type.Object({ agent: Type.String({ pattern: '^[0-9]{2,16}$' }) }, { additionalProperties: false });
const NumberTarget = Type.Object({ number: Type.String({ minLength: 3, maxLength: 32 }) }, { additionalProperties: false });
const QueueTarget = Type.Object({ queue: Type.String({ minLength: 1, maxLength: 32 }) }, { additionalProperties: false });
const IvrTarget = Type.Object({ ivr: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,63}$' }) }, { additionalProperties: false });
const TransferBody = Type.Object(
  {
    target: Type.Union([AgentTarget, QueueTarget, NumberTarget, IvrTarget]),
    mode: Type.Union([Type.Literal('blind'), Type.Literal('attended')], { default: 'blind' }),
    returnToAgent: Type.Optional(Type.Boolean({ description: 'IVR target only: the caller comes back to the same agent after the flow' })),
  },
  { additionalProperties: false },
);
const ConferenceBody = Type.Object({ target: Type.Union([AgentTarget, NumberTarget]) }, { additionalProperties: false });
const responses = { 200: Done, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 422: ErrorBody };

const ClickBody = Type.Object({ to: Type.String({ minLength: 3, maxLength: 32, description: "the citizen's number" }) }, { additionalProperties: false });

export const callControlRoutes: FastifyPluginAsyncTypebox<{ calls: Pick<CallRouter, 'get'>; clickToCall: ClickToCall; audit: AuditLog; guard: Guard }> = async (app, { calls, clickToCall, audit, guard }) => {
  const who = guard('agent', 'supervisor', 'admin');

  app.post(
    '/',
    {
      preHandler: guard('agent'),
      schema: {
        tags: ['call control'],
        summary: "click-to-call: the signed-in agent's phone rings first, then the citizen's, who sees the hotline's number",
        description: 'The agent must be in `outbound` state (PUT /api/v1/agents/{id}/state), so no inbound call competes. 202 with the new call id; its record and events follow at /api/v1/calls/{id}.',
        security: [{ bearer: [] }],
        body: ClickBody,
        response: { 202: Type.Object({ callId: Type.String() }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 422: ErrorBody },
      },
    },
    async (req, reply) => {
      const number = normalizePhone(req.body.to);
      if (!number) throw new AppError(400, 'invalid-number', `"${req.body.to}" is not a phone number`);
      const agentId = req.principal!.agentId;
      if (!agentId) throw new AppError(403, 'not-an-agent', 'only an agent places calls from its own phone');
      try {
        const r = await clickToCall(agentId, number, req.principal!.username);
        req.log.info({ callId: r.callId, agentId }, 'click-to-call');
        return reply.status(202).send(r);
      } catch (err) {
        if (err instanceof ControlError) throw new AppError(err.status, err.code, err.message);
        throw err;
      }
    },
  );

  /** the live call, if the principal may act on it */
  function sessionFor(req: FastifyRequest, id: string): CallSession {
    const s = calls.get(id);
    if (!(s instanceof CallSession)) throw notFound('no-such-call', `no live call ${id} on this service`);
    const p = req.principal!;
    if (p.role === 'agent' && (!p.agentId || !s.agentsOnCall.includes(p.agentId))) throw new AppError(403, 'not-your-call', 'an agent acts only on the call it is on');
    return s;
  }
  const by = (req: FastifyRequest) => req.principal!.agentId ?? req.principal!.username;
  async function act(req: FastifyRequest, id: string, action: string, fn: (s: CallSession) => Promise<void>) {
    const s = sessionFor(req, id);
    try {
      await fn(s);
    } catch (err) {
      if (err instanceof ControlError) throw new AppError(err.status, err.code, err.message);
      throw err;
    }
    req.log.info({ callId: id, action, by: by(req) }, 'call control');
    return { callId: id, action, state: s.state, agents: s.agentsOnCall };
  }
  const schema = (summary: string) => ({ tags: ['call control'], summary, security: [{ bearer: [] }], params: Params, response: responses });

  app.post('/:id/hold', { preHandler: who, schema: schema('hold: the caller hears music; agent and caller cannot hear each other') }, (req) =>
    act(req, req.params.id, 'hold', (s) => s.hold(by(req))),
  );
  app.post('/:id/resume', { preHandler: who, schema: schema('take the caller off hold') }, (req) => act(req, req.params.id, 'resume', (s) => s.resume(by(req))));
  app.post(
    '/:id/hangup',
    {
      preHandler: who,
      schema: schema(
        'hang up: by the agent on its call (recorded as an agent hang-up; the normal end is the survey), or forced by a supervisor (the call ends for everyone, the agent is released; audited)',
      ),
    },
    async (req) => {
      const p = req.principal!;
      const s = calls.get(req.params.id);
      const onIt = Boolean(p.agentId && s instanceof CallSession && s.agentsOnCall.includes(p.agentId));
      if (p.role === 'agent' || onIt) return act(req, req.params.id, 'hangup', (x) => x.hangupByAgent(by(req)));
      const r = await act(req, req.params.id, 'force-hangup', (x) => x.forceHangup(p.username));
      await audit.record({ ...auditActor(req), action: 'call.force-hangup', target: req.params.id, details: { agents: r.agents } });
      return r;
    },
  );
  app.post('/:id/survey', { preHandler: who, schema: schema("end the agent's part: the caller hears the satisfaction survey") }, (req) =>
    act(req, req.params.id, 'survey', (s) => s.toSurvey(by(req))),
  );
  app.post(
    '/:id/transfer',
    {
      preHandler: who,
      schema: {
        tags: ['call control'],
        summary: 'transfer: blind to an agent, a queue, an outside number or an IVR flow; attended (consult first) to an agent or a number',
        description: 'Attended: the caller is held while the agent talks to the target; then POST .../transfer/complete or .../transfer/cancel. The reply comes once the target answered (or 409 no-answer).',
        security: [{ bearer: [] }],
        params: Params,
        body: TransferBody,
        response: responses,
      },
    },
    (req) => {
      const { target, mode, returnToAgent } = req.body;
      const t = normaliseTarget(target);
      if (mode === 'attended') {
        if (!('agent' in t) && !('number' in t)) throw new AppError(422, 'attended-needs-party', 'an attended transfer goes to an agent or a number');
        return act(req, req.params.id, 'transfer.consult', (s) => s.consultStart(t, by(req)));
      }
      if (returnToAgent && !('ivr' in t)) throw new AppError(422, 'return-needs-ivr', 'returnToAgent applies to a transfer to an IVR flow');
      return act(req, req.params.id, 'transfer', (s) => s.transfer(t, by(req), returnToAgent ?? false));
    },
  );
  app.post('/:id/transfer/complete', { preHandler: who, schema: schema('attended transfer: hand the caller to the consulted party') }, (req) =>
    act(req, req.params.id, 'transfer.complete', (s) => s.consultComplete(by(req))),
  );
  app.post('/:id/transfer/cancel', { preHandler: who, schema: schema('attended transfer: call it off; the agent has the caller back') }, (req) =>
    act(req, req.params.id, 'transfer.cancel', (s) => s.consultCancel(by(req))),
  );
  app.post('/:id/conference', {
      preHandler: who,
      schema: { tags: ['call control'], summary: 'three-way: another agent or an outside expert joins the call (the reply comes once it answered)', security: [{ bearer: [] }], params: Params, body: ConferenceBody, response: responses },
    }, (req) => {
    const t = normaliseTarget(req.body.target) as { agent: string } | { number: string };
    return act(req, req.params.id, 'conference', (s) => s.conference(t, by(req)));
  });
};

/** outside numbers are normalised in one place (src/shared/phone.ts) */
function normaliseTarget(t: TransferTarget): TransferTarget {
  if (!('number' in t)) return t;
  const n = normalizePhone(t.number);
  if (!n) throw new AppError(400, 'invalid-number', `"${t.number}" is not a phone number`);
  return { number: n };
}
