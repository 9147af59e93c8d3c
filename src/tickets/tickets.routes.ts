import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { ErrorBody } from '../http/schemas.js';
import { AppError, badRequest, unauthorized } from '../shared/errors.js';
import { verifySignature } from './signature.js';
import type { TicketsService } from './tickets.service.js';

const TicketStatus = Type.Union([
  Type.Literal('created'),
  Type.Literal('dispatched'),
  Type.Literal('returned'),
  Type.Literal('resolved_first_contact'),
  Type.Literal('closed'),
]);

const TicketEventBody = Type.Object(
  {
    eventId: Type.String({ minLength: 1, maxLength: 128 }),
    ticketId: Type.String({ minLength: 1, maxLength: 128 }),
    type: TicketStatus,
    at: Type.String({ format: 'date-time' }),
    callerNumber: Type.String({ maxLength: 64 }),
    callId: Type.Optional(Type.Union([Type.String({ format: 'uuid' }), Type.Null()])),
    unit: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
    summary: Type.Optional(Type.Union([Type.String({ maxLength: 4000 }), Type.Null()])),
  },
  { additionalProperties: false },
);

const Accepted = Type.Object({ ticketId: Type.String(), status: TicketStatus, duplicate: Type.Boolean() });

/** requests whose X-Signature matched their raw body */
const signed = new WeakSet<FastifyRequest>();

/**
 * POST /api/v1/tickets/events: the ticket system's webhook. No bearer token: the body is authenticated by
 * X-Signature (HMAC-SHA256 of the raw bytes with TICKET_WEBHOOK_SECRET). This plugin's own JSON parser keeps
 * the raw bytes, checks the signature BEFORE parsing (an unsigned body is never parsed nor stored), then parses.
 */
export const ticketsRoutes: FastifyPluginAsyncTypebox<{ tickets: TicketsService; secret: string }> = async (app, { tickets, secret }) => {
  // Fastify's own JSON parser: __proto__ and constructor.prototype keys are refused, as everywhere else
  const parseJson = app.getDefaultJsonParser('error', 'error');
  // encapsulated: replaces the JSON parser for this plugin's routes only
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: 64 * 1024 }, (req, body, done) => {
    const raw = body as Buffer;
    if (!verifySignature(secret, raw, req.headers['x-signature'])) {
      done(unauthorized(req.headers['x-signature'] ? 'X-Signature does not match the body' : 'missing X-Signature'), undefined);
      return;
    }
    signed.add(req);
    parseJson(req, raw.toString('utf8'), (err, parsed) => {
      if (err) done(badRequest('invalid-json', 'the body is not valid JSON (or holds __proto__ / constructor.prototype keys)'), undefined);
      else done(null, parsed);
    });
  });
  // a request that reached no parser (no body) is unsigned too: 401 before the schema says anything
  app.addHook('preValidation', async (req) => {
    const type = req.headers['content-type'];
    if (type && !/^application\/json\s*(;|$)/i.test(type)) throw new AppError(415, 'unsupported-media-type', `send application/json, not ${type.split(';')[0]}`);
    if (!signed.has(req)) throw unauthorized(req.headers['x-signature'] ? 'X-Signature does not match the body' : 'missing X-Signature');
  });

  app.post(
    '/events',
    {
      schema: {
        tags: ['tickets'],
        summary: 'an event from the ticket system (idempotent by eventId; applied by event time)',
        description:
          'Authenticated by `X-Signature: sha256=<hex>` (or bare hex): HMAC-SHA256 of the raw body with TICKET_WEBHOOK_SECRET. ' +
          'A repeated eventId answers `duplicate: true` and changes nothing. A `closed` ticket gets one callback within 24 h, due inside calling hours.',
        headers: Type.Object({ 'x-signature': Type.Optional(Type.String()) }),
        body: TicketEventBody,
        response: { 200: Accepted, 400: ErrorBody, 401: ErrorBody, 413: ErrorBody, 415: ErrorBody },
      },
    },
    async (req) => {
      if (Number.isNaN(Date.parse(req.body.at))) throw new AppError(400, 'invalid-request', 'at is not a valid time');
      return tickets.applyEvent(req.body);
    },
  );
};
