import type { FastifyPluginAsync } from 'fastify';

export interface ReadinessReport {
  ari: boolean;
  redis: boolean;
  postgres: boolean;
  /** active-standby: a standby is alive but not ready (ARI is the leader's) */
  role?: 'leader' | 'standby';
}
export type Readiness = () => Promise<ReadinessReport>;

export const healthRoutes: FastifyPluginAsync<{ readiness: Readiness; metrics: () => string | Promise<string> }> = async (app, opts) => {
  app.get('/healthz', { schema: { tags: ['service'], summary: 'the process is alive' }, logLevel: 'warn' }, async () => ({ status: 'ok' }));

  app.get(
    '/readyz',
    { schema: { tags: ['service'], summary: 'ARI connected, Redis and PostgreSQL reachable; 503 names what is down' }, logLevel: 'warn' },
    async (_req, reply) => {
      const report = await opts.readiness();
      const down = (['ari', 'redis', 'postgres'] as const).filter((name) => !report[name]);
      return reply.status(down.length ? 503 : 200).send({ status: down.length ? 'unavailable' : 'ready', down, ...report });
    },
  );

  app.get('/metrics', { schema: { tags: ['service'], summary: 'Prometheus text' }, logLevel: 'warn' }, async (_req, reply) =>
    reply.type('text/plain; version=0.0.4').send(await opts.metrics()),
  );
};
