import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { badRequest } from '../shared/errors.js';
import type { AuditEntry, AuditLog } from './audit.js';

/** who and from where, for an audit entry written while serving this (authenticated) request */
export function auditActor(req: FastifyRequest): Pick<AuditEntry, 'actor' | 'actorRole' | 'address'> {
  return { actor: req.principal?.username ?? 'anonymous', actorRole: req.principal?.role ?? 'none', address: req.ip };
}

const Entry = Type.Object({
  seq: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
  actor: Type.String(),
  actorRole: Type.String(),
  action: Type.String(),
  target: Type.Union([Type.String(), Type.Null()]),
  details: Type.Record(Type.String(), Type.Unknown()),
  address: Type.Union([Type.String(), Type.Null()]),
  hash: Type.String(),
});

const ListQuery = Type.Object(
  {
    from: Type.Optional(Type.String({ format: 'date-time' })),
    to: Type.Optional(Type.String({ format: 'date-time' })),
    actor: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    action: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z][a-z0-9.-]*(\\.\\*)?$', description: '`recording.download`, or a family: `monitor.*`' })),
    target: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'nextCursor of the previous page' })),
  },
  { additionalProperties: false },
);

export const auditRoutes: FastifyPluginAsyncTypebox<{ audit: AuditLog; guard: Guard }> = async (app, { audit, guard }) => {
  app.get(
    '/',
    {
      preHandler: guard('supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['audit'],
        summary: 'the audit trail of supervisor actions, newest first',
        security: [{ bearer: [] }],
        querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(Entry), nextCursor: Type.Union([Type.String(), Type.Null()]) }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query;
      const from = q.from ? new Date(q.from) : undefined;
      const to = q.to ? new Date(q.to) : undefined;
      if (from && to && from >= to) throw badRequest('invalid-range', '`from` must be before `to`');
      const page = await audit.list({
        ...(from ? { from } : {}),
        ...(to ? { to } : {}),
        ...(q.actor ? { actor: q.actor } : {}),
        ...(q.action ? { action: q.action } : {}),
        ...(q.target ? { target: q.target } : {}),
        ...(q.cursor ? { before: Number(q.cursor) } : {}),
        limit: q.limit,
      });
      return {
        items: page.items.map((r) => ({ ...r, at: r.at.toISOString() })),
        nextCursor: page.nextBefore === null ? null : String(page.nextBefore),
      };
    },
  );

  app.get(
    '/verify',
    {
      preHandler: guard('admin', 'auditor'),
      schema: {
        tags: ['audit'],
        summary: 'check the hash chain of the whole trail; brokenAt names the first row that does not match',
        security: [{ bearer: [] }],
        response: { 200: Type.Object({ ok: Type.Boolean(), rows: Type.Integer(), brokenAt: Type.Union([Type.Integer(), Type.Null()]) }), 401: ErrorBody, 403: ErrorBody },
      },
    },
    async () => audit.verify(),
  );
};
