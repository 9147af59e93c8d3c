import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { AppError, notFound } from '../shared/errors.js';
import type { QueuesConfigStore } from './queues.config.js';
import type { QueueStatsService } from './queues.stats.js';

/** one queue's live numbers: GET /api/v1/queues and the supervisors' live view */
export const QueueStats = Type.Object({
  name: Type.String(),
  title: Type.String(),
  waiting: Type.Integer(),
  longestWaitSeconds: Type.Number(),
  agents: Type.Record(Type.String(), Type.Integer()),
  offeredToday: Type.Integer(),
  answeredToday: Type.Integer(),
  abandonedToday: Type.Integer(),
  serviceLevelToday: Type.Union([Type.Number(), Type.Null()]),
  serviceLevelSeconds: Type.Integer(),
  estimatedWaitSeconds: Type.Union([Type.Number(), Type.Null()]),
});

const ConfigStatus = Type.Object({
  file: Type.String(),
  version: Type.Union([Type.String(), Type.Null()]),
  loadedAt: Type.Union([Type.String(), Type.Null()]),
  queues: Type.Integer(),
  lastError: Type.Union([Type.Object({ at: Type.String(), message: Type.String() }), Type.Null()]),
});

export const queuesRoutes: FastifyPluginAsyncTypebox<{ stats: QueueStatsService; queues: QueuesConfigStore; guard: Guard }> = async (app, { stats, queues, guard }) => {
  const readers = guard('agent', 'supervisor', 'admin', 'auditor');
  app.get(
    '/queues',
    { preHandler: readers, schema: { tags: ['queues'], summary: 'live numbers of every queue', security: [{ bearer: [] }], response: { 200: Type.Array(QueueStats), 401: ErrorBody } } },
    async () => stats.all(),
  );
  app.get(
    '/queues/:name',
    {
      preHandler: readers,
      schema: {
        tags: ['queues'],
        summary: 'live numbers of one queue',
        security: [{ bearer: [] }],
        params: Type.Object({ name: Type.String({ pattern: '^[A-Za-z0-9_-]{1,32}$', description: 'the queue name (queues.yaml)' }) }, { additionalProperties: false }),
        response: { 200: QueueStats, 401: ErrorBody, 404: ErrorBody },
      },
    },
    async (req) => {
      if (!queues.get(req.params.name)) throw notFound('no-such-queue', `no queue ${req.params.name}`);
      return (await stats.all([req.params.name]))[0]!;
    },
  );
  app.get(
    '/config/queues',
    { preHandler: guard('supervisor', 'admin'), schema: { tags: ['queues'], summary: 'the loaded queues file: version and last error', security: [{ bearer: [] }], response: { 200: ConfigStatus } } },
    async () => queues.status(),
  );
  app.post(
    '/config/queues/reload',
    { preHandler: guard('admin'), schema: { tags: ['queues'], summary: 're-read config/queues.yaml now', security: [{ bearer: [] }], response: { 200: ConfigStatus, 422: ErrorBody } } },
    async () => {
      const r = queues.reload();
      if (!r.ok) throw new AppError(422, 'invalid-queues-file', r.error);
      return queues.status();
    },
  );
};
