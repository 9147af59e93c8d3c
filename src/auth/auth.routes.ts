import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { unauthorized } from '../shared/errors.js';
import { ErrorBody } from '../http/schemas.js';
import type { AuthService } from './auth.service.js';

const LoginBody = Type.Object(
  { username: Type.String({ minLength: 1, maxLength: 64 }), password: Type.String({ minLength: 1, maxLength: 256 }) },
  { additionalProperties: false },
);
const LoginReply = Type.Object({
  token: Type.String(),
  role: Type.Union([Type.Literal('agent'), Type.Literal('supervisor'), Type.Literal('admin'), Type.Literal('auditor')]),
  agentId: Type.Union([Type.String(), Type.Null()]),
  expiresAt: Type.String({ format: 'date-time' }),
});

export const authRoutes: FastifyPluginAsyncTypebox<{ auth: AuthService }> = async (app, { auth }) => {
  app.post(
    '/login',
    { schema: { tags: ['auth'], summary: 'sign in; returns a bearer token', body: LoginBody, response: { 200: LoginReply, 401: ErrorBody } } },
    async (req) => {
      const r = await auth.login(req.body.username, req.body.password);
      req.log.info({ username: req.body.username, role: r.role }, 'signed in');
      return { ...r, expiresAt: r.expiresAt.toISOString() };
    },
  );

  app.post(
    '/logout',
    { schema: { tags: ['auth'], summary: 'end this token', security: [{ bearer: [] }], response: { 204: Type.Null(), 401: ErrorBody } } },
    async (req, reply) => {
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      if (!m) throw unauthorized('missing Authorization: Bearer <token>');
      await auth.authenticate(m[1]!);
      await auth.logout(m[1]!);
      return reply.status(204).send(null);
    },
  );
};
