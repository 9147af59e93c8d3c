import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import { SMS_BULK_LIMIT } from '../config/env.js';
import type { SmsRow } from '../db/database.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { forbidden } from '../shared/errors.js';
import { normalizePhone } from '../shared/phone.js';
import { SMS_MAX_CHARS } from './sms-templates.js';
import type { SmsService } from './sms.service.js';

const Status = Type.Union(
  [Type.Literal('queued'), Type.Literal('sent'), Type.Literal('delivered'), Type.Literal('failed'), Type.Literal('rejected'), Type.Literal('expired'), Type.Literal('received')],
  { description: 'queued, sent, delivered, failed, rejected, expired (out); received (in)' },
);
const Direction = Type.Union([Type.Literal('out'), Type.Literal('in')]);

const Sms = Type.Object({
  id: Type.String({ format: 'uuid' }),
  direction: Direction,
  number: Type.String(),
  text: Type.String(),
  template: Type.Union([Type.String(), Type.Null()]),
  status: Status,
  /** the SMSC's id */
  messageId: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  sentBy: Type.Union([Type.String(), Type.Null()]),
  callId: Type.Union([Type.String(), Type.Null()]),
  batchId: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  sentAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  deliveredAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
type SmsDto = Static<typeof Sms>;

const SendBody = Type.Object(
  {
    to: Type.Array(Type.String({ maxLength: 64 }), {
      minItems: 1,
      maxItems: SMS_BULK_LIMIT,
      description: 'numbers in any spelling; at most SMS_BULK_MAX (default 200). Invalid numbers and repeats are reported in `rejected`, the rest are sent',
    }),
    template: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'a template id of config/sms-templates.yaml' })),
    params: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,31}$' }), Type.Union([Type.String({ maxLength: 200 }), Type.Number()]), {
        additionalProperties: false,
        description: "the template's placeholders: every one, and no other",
      }),
    ),
    text: Type.Optional(Type.String({ minLength: 1, maxLength: SMS_MAX_CHARS, pattern: '\\S', description: 'the text itself, instead of a template' })),
    callId: Type.Optional(Type.String({ format: 'uuid', description: 'the call the message belongs to' })),
  },
  { additionalProperties: false },
);
const SendResult = Type.Object({
  accepted: Type.Array(Type.Object({ number: Type.String({ description: 'normalised' }), id: Type.String({ format: 'uuid' }) })),
  rejected: Type.Array(Type.Object({ number: Type.String({ description: 'as given' }), reason: Type.Union([Type.Literal('invalid-number'), Type.Literal('duplicate')]) })),
});

const ListQuery = Type.Object(
  {
    number: Type.Optional(Type.String({ minLength: 1, maxLength: 32, description: 'any spelling; required for agents' })),
    direction: Type.Optional(Direction),
    status: Type.Optional(Status),
    batchId: Type.Optional(Type.String({ format: 'uuid' })),
    limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

function toDto(row: SmsRow): SmsDto {
  return {
    id: row.id,
    direction: row.direction,
    number: row.number,
    text: row.text,
    template: row.template,
    status: row.status,
    messageId: row.message_id,
    error: row.error,
    sentBy: row.sent_by,
    callId: row.call_id,
    batchId: row.batch_id,
    createdAt: row.created_at.toISOString(),
    sentAt: row.sent_at?.toISOString() ?? null,
    deliveredAt: row.delivered_at?.toISOString() ?? null,
  };
}

/** SMS to one number or many, from a template or as text; the list of messages both ways */
export const smsRoutes: FastifyPluginAsyncTypebox<{ sms: SmsService; guard: Guard }> = async (app, { sms, guard }) => {
  app.post(
    '/',
    {
      preHandler: guard('agent', 'supervisor', 'admin'),
      schema: {
        tags: ['sms'],
        summary: 'send an SMS to one number or many; 202: stored and being sent (the outcome follows in GET /api/v1/sms)',
        security: [{ bearer: [] }],
        body: SendBody,
        response: { 202: SendResult, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const result = await sms.send(
        {
          to: b.to,
          ...(b.template !== undefined ? { template: b.template } : {}),
          ...(b.params !== undefined ? { params: b.params } : {}),
          ...(b.text !== undefined ? { text: b.text } : {}),
          ...(b.callId !== undefined ? { callId: b.callId } : {}),
        },
        { userId: req.principal!.userId },
      );
      return reply.status(202).send(result);
    },
  );

  app.get(
    '/',
    {
      preHandler: guard('agent', 'supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['sms'],
        summary: 'messages both ways, newest first; an agent lists those of one number it had a call with or messaged (the caller history)',
        security: [{ bearer: [] }],
        querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(Sms), nextCursor: Type.Union([Type.String(), Type.Null()]) }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query;
      const p = req.principal!;
      if (p.role === 'agent') {
        if (q.number === undefined) throw forbidden('an agent lists the messages of one number: give ?number=');
        // object level: only its own correspondents (a number of one of its calls, or one it messaged)
        const n = normalizePhone(q.number);
        if (n !== null && !(await sms.isCorrespondent(n, { userId: p.userId, agentId: p.agentId }))) {
          throw forbidden('an agent lists the messages of its own callers only (a number of one of its calls, or one it messaged)');
        }
      }
      const page = await sms.list({
        ...(q.number !== undefined ? { number: q.number } : {}),
        ...(q.direction ? { direction: q.direction } : {}),
        ...(q.status ? { status: q.status } : {}),
        ...(q.batchId ? { batchId: q.batchId } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
        limit: q.limit,
      });
      return { items: page.items.map(toDto), nextCursor: page.nextCursor };
    },
  );
};
