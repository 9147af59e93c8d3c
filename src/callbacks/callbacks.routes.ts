import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Db } from '../db/db.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';

const Status = Type.Union([Type.Literal('pending'), Type.Literal('dialing'), Type.Literal('done'), Type.Literal('failed'), Type.Literal('cancelled')]);
const Callback = Type.Object({
  id: Type.String(),
  number: Type.String(),
  callId: Type.Union([Type.String(), Type.Null()]),
  queue: Type.Union([Type.String(), Type.Null()]),
  reason: Type.String(),
  status: Type.String(),
  requestedAt: Type.String({ format: 'date-time' }),
  dueAt: Type.String({ format: 'date-time' }),
  attempts: Type.Integer(),
  /** the closed ticket this callback is owed for (null: an abandoned or waiting caller's callback) */
  ticketId: Type.Union([Type.String(), Type.Null()]),
  deadlineAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  doneAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  /** answered | busy | no_answer | failed | interrupted | not-reached: how the last attempt ended */
  lastOutcome: Type.Union([Type.String(), Type.Null()]),
  surveyScore: Type.Union([Type.Integer(), Type.Null()]),
});

/** the callbacks supervisors work through: abandoned and max-wait callers, and the callbacks owed for closed tickets (src/callbacks/ticket-callbacks.ts) */
export const callbacksRoutes: FastifyPluginAsyncTypebox<{ db: Db; guard: Guard }> = async (app, { db, guard }) => {
  app.get(
    '/',
    {
      preHandler: guard('supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['callbacks'],
        summary: 'callback requests, oldest due first',
        security: [{ bearer: [] }],
        querystring: Type.Object(
          {
            status: Type.Optional(Status),
            from: Type.Optional(Type.String({ format: 'date-time' })),
            to: Type.Optional(Type.String({ format: 'date-time' })),
            limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(Callback) }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query;
      let sel = db.selectFrom('callbacks').selectAll();
      if (q.status) sel = sel.where('status', '=', q.status);
      if (q.from) sel = sel.where('requested_at', '>=', new Date(q.from));
      if (q.to) sel = sel.where('requested_at', '<', new Date(q.to));
      const rows = await sel.orderBy('due_at').orderBy('id').limit(q.limit).execute();
      return {
        items: rows.map((r) => ({
          id: r.id,
          number: r.number,
          callId: r.call_id,
          queue: r.queue,
          reason: r.reason,
          status: r.status,
          requestedAt: r.requested_at.toISOString(),
          dueAt: r.due_at.toISOString(),
          attempts: r.attempts,
          ticketId: r.ticket_id,
          deadlineAt: r.deadline_at ? r.deadline_at.toISOString() : null,
          doneAt: r.done_at ? r.done_at.toISOString() : null,
          lastOutcome: r.last_outcome,
          surveyScore: r.survey_score,
        })),
      };
    },
  );
};
