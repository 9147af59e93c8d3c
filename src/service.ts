/**
 * Builds and starts the whole service from a config: the one place that wires modules together
 * (main.ts adds process concerns: signals, exit codes). Tests start it in-process with their own config.
 */
import { sql } from 'kysely';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createAgentPool } from './acd/agent-pool.js';
import { AriClient } from './ari/client.js';
import { createAuthService } from './auth/auth.service.js';
import { createCallRouter, type CallRouter } from './calls/calls.stasis.js';
import type { Config } from './config/env.js';
import { createDb, ensureDatabase, type Db } from './db/db.js';
import { migrateToLatest } from './db/migrator.js';
import { buildApp, type App } from './http/app.js';
import type { ReadinessReport } from './http/health.routes.js';
import { connectRedis, createRedis } from './redis/client.js';
import { createKeys } from './redis/keys.js';

export interface Service {
  app: App;
  db: Db;
  redis: Redis;
  ari: AriClient;
  calls: CallRouter;
  /** the address the HTTP API listens on */
  url: string;
  readiness(): Promise<ReadinessReport>;
  stop(): Promise<void>;
}

async function probe(p: Promise<unknown>, ms = 1500): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise((_, rej) => (timer = setTimeout(() => rej(new Error('timeout')), ms)))]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export async function startService(config: Readonly<Config>, log: Logger): Promise<Service> {
  const started = Date.now();
  await ensureDatabase(config.databaseUrl);
  const db = createDb(config.databaseUrl);
  const applied = await migrateToLatest(db);
  if (applied.length) log.info({ applied }, 'migrations applied');

  const redis = createRedis(config.redisUrl);
  await connectRedis(redis, config.redisUrl);
  const keys = createKeys(config.redisPrefix);

  const auth = createAuthService(db, { tokenTtlHours: config.tokenTtlHours });
  await auth.ensureAdmin(config.admin.user, config.admin.password);

  const ari = new AriClient({ ...config.ari, log });
  const calls = createCallRouter({
    ari,
    db,
    redis,
    keys,
    agents: createAgentPool(redis, keys, config.agents),
    agentRingSeconds: config.agentRingSeconds,
    log,
  });
  ari.onEvent((e) => calls.handle(e));
  let wasDown = false;
  ari.onConnection((state) => {
    if (state === 'down') wasDown = true;
    if (state === 'up' && wasDown) {
      wasDown = false;
      calls.resync().catch((err) => log.warn({ err: (err as Error).message }, 'resync after reconnect failed'));
    }
  });
  await ari.start();

  const readiness = async (): Promise<ReadinessReport> => {
    const [redisUp, pgUp] = await Promise.all([probe(redis.ping()), probe(sql`select 1`.execute(db))]);
    return { ari: ari.connected, redis: redisUp, postgres: pgUp };
  };
  const metrics = () =>
    [
      '# HELP hotline_ari_connected 1 while the ARI event socket is open',
      '# TYPE hotline_ari_connected gauge',
      `hotline_ari_connected ${ari.connected ? 1 : 0}`,
      '# HELP hotline_calls_active calls this process is handling',
      '# TYPE hotline_calls_active gauge',
      `hotline_calls_active ${calls.active}`,
      '# HELP process_resident_memory_bytes resident memory',
      '# TYPE process_resident_memory_bytes gauge',
      `process_resident_memory_bytes ${process.memoryUsage().rss}`,
      '',
    ].join('\n');

  const app = await buildApp({ log, db, auth, readiness, metrics });
  const url = await app.listen({ host: config.host, port: config.port });
  log.info({ url, ariApp: config.ari.app, startupMs: Date.now() - started }, 'hotline control plane ready');

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      log.info('stopping');
      await app.close().catch((err) => log.warn({ err }, 'http close failed'));
      await calls.drain(5000);
      await ari.close();
      redis.disconnect();
      await db.destroy().catch(() => undefined);
      log.info('stopped');
    })());

  return { app, db, redis, ari, calls, url, readiness, stop };
}
