import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AuditLog } from '../audit/audit.js';
import { auditActor } from '../audit/audit.routes.js';
import type { Db } from '../db/db.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { badRequest, forbidden, notFound } from '../shared/errors.js';

const Body = Type.Object(
  {
    // printable text: no control characters; blanks around it are trimmed
    category: Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f\\u007f]+$', description: 'the business category, e.g. consultation, complaint' }),
  },
  { additionalProperties: false },
);
const Params = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });

/**
 * PUT /api/v1/calls/{id}/category: the business category of a call (recordings are searched by it).
 * An agent sets it on calls it took part in; a supervisor or an admin on any call, audited as `call.category`
 * when the call is someone else's.
 */
export const callCategoryRoutes: FastifyPluginAsyncTypebox<{ db: Db; audit: Pick<AuditLog, 'record'>; guard: Guard }> = async (app, { db, audit, guard }) => {
  app.put(
    '/:id/category',
    {
      preHandler: guard('agent', 'supervisor', 'admin'),
      schema: {
        tags: ['calls'],
        summary: "set a call's business category (an agent: its own calls)",
        security: [{ bearer: [] }],
        params: Params,
        body: Body,
        response: {
          200: Type.Object({ id: Type.String({ format: 'uuid' }), category: Type.String() }),
          400: ErrorBody,
          401: ErrorBody,
          403: ErrorBody,
          404: ErrorBody,
        },
      },
    },
    async (req) => {
      const p = req.principal!;
      const category = req.body.category.trim();
      if (category === '') throw badRequest('invalid-request', 'category must not be blank');
      const call = await db.selectFrom('calls').select(['id', 'agents', 'category']).where('id', '=', req.params.id).executeTakeFirst();
      if (!call) throw notFound('no-such-call', `no call ${req.params.id}`);
      const own = p.agentId !== null && call.agents.includes(p.agentId);
      if (p.role === 'agent' && !own) throw forbidden('an agent may only categorise calls it took part in');
      await db.updateTable('calls').set({ category }).where('id', '=', call.id).execute();
      if (!own && call.category !== category) {
        await audit.record({ ...auditActor(req), action: 'call.category', target: call.id, details: { from: call.category, to: category, agents: call.agents } });
      }
      return { id: call.id, category };
    },
  );
};
