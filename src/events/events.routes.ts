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
import { WALLBOARD_KEY_TOKEN, WALLBOARD_PRINCIPAL, wallboardKeyMatches } from '../wallboard/wallboard-auth.js';
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
answer; it closes with 4001 when the token expires or is signed out, and drops a socket more than 1 MB behind.
A wallboard may connect with \`?key=<WALLBOARD_KEY>\` instead of a token: it sees what an auditor sees (queue.stats, agent.board).`;

export const eventsRoutes: FastifyPluginAsyncTypebox<{ events: Pick<EventBus, 'subscribe'>; auth: AuthService; log: Logger; options?: HubOptions; wallboardKey?: string | null }> = async (app, opts) => {
  // a socket opened with the wallboard key holds no session: it stays valid while the process runs with that key
  const stillValid = async (tokens: string[]) => {
    const valid = await opts.auth.stillValid(tokens.filter((t) => t !== WALLBOARD_KEY_TOKEN));
    if (opts.wallboardKey && tokens.includes(WALLBOARD_KEY_TOKEN)) valid.add(WALLBOARD_KEY_TOKEN);
    return valid;
  };
  const hub = createEventHub({ bus: opts.events, stillValid, log: opts.log, ...(opts.options ? { options: opts.options } : {}) });
  app.addHook('onClose', async () => hub.close());

  app.route({
    method: 'GET',
    url: '/',
    schema: {
      tags: ['events'],
      summary: 'live events over a WebSocket',
      description: DESCRIPTION,
      security: [{ bearer: [] }],
      querystring: Type.Object(
        {
          token: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
          key: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'the read-only wallboard key (WALLBOARD_KEY) instead of a token' })),
        },
        { additionalProperties: false },
      ),
      response: { 101: Type.Null({ description: 'switching to the WebSocket protocol' }), 400: ErrorBody, 401: ErrorBody, 426: ErrorBody },
    },
    preHandler: async (req) => {
      const { key } = req.query as { key?: string };
      if (key !== undefined) {
        if (!wallboardKeyMatches(key, opts.wallboardKey)) throw unauthorized('the wallboard key is wrong (or none is configured: WALLBOARD_KEY)');
        req.principal = { ...WALLBOARD_PRINCIPAL };
        req.eventsToken = WALLBOARD_KEY_TOKEN;
        return;
      }
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
