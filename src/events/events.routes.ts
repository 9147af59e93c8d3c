/**
 * `WS /api/v1/events?token=...` (API.md "Live state and events"): the desktops', supervisors' and wallboard's
 * live events over a WebSocket (@fastify/websocket). The token comes in the query string (browsers cannot set
 * headers on a WebSocket) or as `Authorization: Bearer`; a missing, unknown or expired token is refused before
 * the upgrade with 401. A plain GET without the upgrade gets 426.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { AuthService } from '../auth/auth.service.js';
import { ErrorBody } from '../http/schemas.js';
import { AppError, unauthorized } from '../shared/errors.js';
import type { EventBus } from './bus.js';
import { createEventHub, type HubOptions } from './hub.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** the token a WebSocket authenticated with (re-checked on a timer) */
    eventsToken?: string;
  }
}

const DESCRIPTION = `A WebSocket (send \`Upgrade: websocket\`; a plain GET gets 426). Authenticate with \`?token=<bearer token>\`
or \`Authorization: Bearer\`; a bad or expired token is refused with 401 before the upgrade.
Messages are JSON \`{type, at, data}\`: first \`hello\` \`{role, agentId}\`, then the events the principal may see
(an agent: its own and everyone's; supervisors and admins: all; auditors: everyone's and supervisors'):
\`agent.state\` \`{agentId, state, reason, since}\`, \`break.requested\`, \`break.approved\`, \`break.rejected\`, \`break.ended\`
\`{id, agentId, reason, break}\`, \`call.answered\`, ... The server pings every 20 s and drops a socket that does not
answer; it closes with 4001 when the token expires or is signed out, and drops a socket more than 1 MB behind.`;

export const eventsRoutes: FastifyPluginAsyncTypebox<{ events: Pick<EventBus, 'subscribe'>; auth: AuthService; log: Logger; options?: HubOptions }> = async (app, opts) => {
  const hub = createEventHub({ bus: opts.events, stillValid: (tokens) => opts.auth.stillValid(tokens), log: opts.log, ...(opts.options ? { options: opts.options } : {}) });
  app.addHook('onClose', async () => hub.close());

  app.route({
    method: 'GET',
    url: '/',
    schema: {
      tags: ['events'],
      summary: 'live events over a WebSocket',
      description: DESCRIPTION,
      security: [{ bearer: [] }],
      querystring: Type.Object({ token: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })) }, { additionalProperties: false }),
      response: { 101: Type.Null({ description: 'switching to the WebSocket protocol' }), 400: ErrorBody, 401: ErrorBody, 426: ErrorBody },
    },
    preHandler: async (req) => {
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      const token = (req.query as { token?: string }).token ?? m?.[1];
      if (!token) throw unauthorized('missing token: ?token=<bearer token> or Authorization: Bearer <token>');
      req.principal = await opts.auth.authenticate(token);
      req.eventsToken = token;
    },
    handler: async () => {
      throw new AppError(426, 'upgrade-required', 'this is a WebSocket: connect with Upgrade: websocket');
    },
    wsHandler: (socket: WebSocket, req) => {
      hub.add(socket, req.principal!, req.eventsToken!);
    },
  });
};
