import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AgentDesk } from '../agents/agent-desk.js';
import { AppError, unauthorized } from '../shared/errors.js';
import { ErrorBody } from '../http/schemas.js';
import type { AuthService } from './auth.service.js';
import type { LoginLimiter } from './login-limiter.js';

const LoginBody = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 64 }),
    password: Type.String({ minLength: 1, maxLength: 256 }),
    extension: Type.Optional(Type.String({ pattern: '^[0-9]{2,16}$', description: "the extension of the phone in front of the agent (its desk for this session)" })),
  },
  { additionalProperties: false },
);
const LoginReply = Type.Object({
  token: Type.String(),
  role: Type.Union([Type.Literal('agent'), Type.Literal('supervisor'), Type.Literal('admin'), Type.Literal('auditor')]),
  agentId: Type.Union([Type.String(), Type.Null()]),
  expiresAt: Type.String({ format: 'date-time' }),
});

export const authRoutes: FastifyPluginAsyncTypebox<{ auth: AuthService; limiter: LoginLimiter; desk: AgentDesk }> = async (app, { auth, limiter, desk }) => {
  app.post(
    '/login',
    {
      // a sign-in is a few hundred bytes: no anonymous megabyte bodies
      bodyLimit: 16 * 1024,
      schema: {
        tags: ['auth'],
        summary: 'sign in; returns a bearer token. A user with an agent record is signed in to the ACD (not ready) at the desk of `extension`',
        description: 'Failed sign-ins are limited per user name and per client address: over the limit, 429 too-many-attempts with Retry-After.',
        body: LoginBody,
        response: { 200: LoginReply, 400: ErrorBody, 401: ErrorBody, 429: ErrorBody },
      },
    },
    async (req, reply) => {
      const { username, password, extension } = req.body;
      const address = req.ip;
      const wait = await limiter.lockedFor(username, address);
      if (wait !== null) {
        req.log.warn({ username, address, retryAfterSeconds: wait }, 'sign-in refused: too many failed attempts');
        reply.header('retry-after', String(wait));
        throw new AppError(429, 'too-many-attempts', `too many failed sign-ins; try again in ${wait} s`, { retryAfterSeconds: wait });
      }
      let r: Awaited<ReturnType<AuthService['login']>>;
      try {
        r = await auth.login(username, password);
      } catch (err) {
        if (err instanceof AppError && err.status === 401) {
          req.log.warn({ username, address }, 'sign-in failed');
          await limiter.failed(username, address);
        }
        throw err;
      }
      await limiter.succeeded(username);
      if (r.agentId) await desk.signIn(r.agentId, extension, `${r.role}:${username}`);
      req.log.info({ username, role: r.role, ...(extension ? { extension } : {}) }, 'signed in');
      return { ...r, expiresAt: r.expiresAt.toISOString() };
    },
  );

  app.post(
    '/logout',
    {
      schema: {
        tags: ['auth'],
        summary: "end this token; an agent's token also signs the agent out of the ACD (409 on-call while it has a call, the token stays)",
        security: [{ bearer: [] }],
        response: { 204: Type.Null(), 401: ErrorBody, 409: ErrorBody },
      },
    },
    async (req, reply) => {
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      if (!m) throw unauthorized('missing Authorization: Bearer <token>');
      const p = await auth.authenticate(m[1]!);
      if (p.agentId) await desk.signOut(p.agentId, `${p.role}:${p.username}`);
      await auth.logout(m[1]!);
      return reply.status(204).send(null);
    },
  );
};
