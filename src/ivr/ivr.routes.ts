/** GET /api/v1/ivr/status and POST /api/v1/ivr/reload: what the operators' IVR files look like to the service. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { AppError } from '../shared/errors.js';
import type { IvrStore } from './ivr.store.js';

const Status = Type.Object({
  configDir: Type.String(),
  version: Type.Union([Type.String(), Type.Null()], { description: 'version of the whole set in force (hash of the files)' }),
  loadedAt: Type.Union([Type.String(), Type.Null()]),
  files: Type.Array(Type.Object({ file: Type.String(), version: Type.String() }), { description: 'every file in force, with its own version' }),
  lines: Type.Integer(),
  flows: Type.Integer(),
  lastError: Type.Union([Type.Object({ at: Type.String(), problems: Type.Array(Type.String()) }), Type.Null()], {
    description: 'the problems of the last refused reload (file:line: what is wrong); null once a good set loads',
  }),
});

export const ivrRoutes: FastifyPluginAsyncTypebox<{ ivr: IvrStore; guard: Guard }> = async (app, { ivr, guard }) => {
  app.get(
    '/status',
    {
      preHandler: guard('supervisor', 'admin', 'auditor'),
      schema: { tags: ['ivr'], summary: 'the IVR files in force and the last error', security: [{ bearer: [] }], response: { 200: Status, 401: ErrorBody, 403: ErrorBody } },
    },
    async () => ivr.status(),
  );
  app.post(
    '/reload',
    {
      preHandler: guard('supervisor', 'admin'),
      schema: {
        tags: ['ivr'],
        summary: 're-read config/lines.yaml, config/ivr/, config/prompts/ and config/holidays.yaml now',
        description: 'A set with any problem is refused whole (422, every problem listed) and the version in force keeps serving. Calls already in a flow finish on the version they began with.',
        security: [{ bearer: [] }],
        response: { 200: Status, 401: ErrorBody, 403: ErrorBody, 422: ErrorBody },
      },
    },
    async (req) => {
      const r = ivr.reload();
      if (!r.ok) throw new AppError(422, 'invalid-ivr-config', `${r.problems.length} problem(s); the version in force keeps serving`, { problems: r.problems });
      req.log.info({ version: r.version, changed: r.changed }, 'IVR reload requested');
      return ivr.status();
    },
  );
};
