/**
 * The HTTP app alone (buildApp, app.inject) on the real PostgreSQL and Redis, with a fake Asterisk: for API
 * tests that need no calls. Each test file gets a PostgreSQL schema of its own (migrated, dropped at the end),
 * so switches such as a global maintenance row never reach other tests or a service using the same database,
 * and a fresh Redis key prefix.
 */
import type { IvrStore } from '../../src/ivr/ivr.store.js';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FileMigrationProvider, Migrator, sql } from 'kysely';
import { pino, type LevelWithSilent, type Logger } from 'pino';
import type { Redis } from 'ioredis';
import type { Recordings } from '../../src/ari/port.js';
import { createAuthService } from '../../src/auth/auth.service.js';
import { createLoginLimiter } from '../../src/auth/login-limiter.js';
import { hashPassword } from '../../src/auth/passwords.js';
import { createDb, ensureDatabase, type Db } from '../../src/db/db.js';
import type { Role } from '../../src/db/database.js';
import { buildApp, type App, type AppDeps } from '../../src/http/app.js';
import { AuditLog } from '../../src/audit/audit.js';
import { RecordingsService } from '../../src/recordings/recordings.service.js';
import type { MaintenanceState } from '../../src/maintenance/maintenance.js';
import { connectRedis, createRedis } from '../../src/redis/client.js';
import { createKeys, type Keys } from '../../src/redis/keys.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface TestInfra {
  db: Db;
  redis: Redis;
  keys: Keys;
  /** a new subscriber connection (closed at the end) */
  subscriber(): Promise<Redis>;
  /** another pool on the same schema, as a second process would have (closed at the end) */
  otherDb(): Db;
  /** the connection string of this schema (search_path set), for code that opens connections of its own */
  databaseUrl: string;
  log: Logger;
}

/** a migrated schema of its own in the test database, a Redis prefix of its own; all removed at teardown */
export async function testInfra(t: Teardown, name: string): Promise<TestInfra> {
  const base = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/hotline_test';
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const run = randomBytes(4).toString('hex');
  const schema = `test_${name.replace(/[^a-z0-9]/g, '_')}_${run}`;
  await ensureDatabase(base);
  const admin = createDb(base);
  await sql`create schema ${sql.id(schema)}`.execute(admin);
  const url = new URL(base);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const dbs: Db[] = [];
  const newDb = () => {
    const d = createDb(url.toString());
    dbs.push(d);
    return d;
  };
  const db = newDb();
  // the migrations' own table in this schema too: Kysely would otherwise find public.kysely_migration and
  // believe this schema migrated (then every query would fall through the search_path to public's tables)
  const { error } = await new Migrator({
    db,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: path.join(import.meta.dirname, '../../migrations') }),
    migrationTableSchema: schema,
  }).migrateToLatest();
  if (error) throw error;
  // guard: the tables under test must be this schema's own
  const own = await sql<{ n: number }>`select count(*)::int as n from information_schema.tables where table_schema = ${schema} and table_name in ('users', 'voicemails', 'maintenance')`.execute(db);
  if (own.rows[0]?.n !== 3) throw new Error(`test schema ${schema} was not migrated`);
  const prefix = `test-${name}-${run}`;
  const redis = createRedis(redisUrl);
  await connectRedis(redis, redisUrl);
  const conns: Redis[] = [redis];
  t.teardown(async () => {
    const left = await redis.keys(`${prefix}:*`);
    if (left.length) await redis.del(...left);
    for (const c of conns) c.disconnect();
    for (const d of dbs) await d.destroy().catch(() => undefined); // a test may have closed it already
    await sql`drop schema ${sql.id(schema)} cascade`.execute(admin);
    await admin.destroy();
  });
  return {
    db,
    redis,
    keys: createKeys(prefix),
    log: pino({ level: (process.env.TEST_LOG_LEVEL as LevelWithSilent | undefined) ?? 'silent' }),
    otherDb: newDb,
    databaseUrl: url.toString(),
    async subscriber() {
      const s = createRedis(redisUrl);
      await connectRedis(s, redisUrl);
      conns.push(s);
      return s;
    },
  };
}

export interface TestApp {
  app: App;
  /** bearer tokens of one fresh user per role */
  tokens: Record<Role, string>;
  /** a request through app.inject; body is sent as JSON */
  api(method: 'GET' | 'PUT' | 'POST' | 'DELETE' | 'PATCH', url: string, token: string | null, body?: unknown): Promise<{ status: number; body: any; headers: Record<string, unknown>; raw: Buffer }>;
}

/** the app with the routes under test wired for real; deps the tests do not reach are left out */
/** the agent desktop's deps a test may wire (ACD, breaks, desk, live events, the sign-in limiter) */
export type DeskDeps = Partial<Pick<AppDeps, 'engine' | 'agentStates' | 'queues' | 'queueStats' | 'events' | 'breaks' | 'desk' | 'loginLimiter' | 'eventsHub'>>;

export async function buildTestApp(t: Teardown, infra: TestInfra, deps: { recordings?: Pick<Recordings, 'file'> & Partial<Pick<Recordings, 'delete'>>; recordingsService?: AppDeps['recordingsService']; maintenance?: MaintenanceState; ivr?: IvrStore; calls?: AppDeps['calls']; sms?: AppDeps['sms']; audit?: AppDeps['audit']; liveView?: AppDeps['liveView']; tickets?: AppDeps['tickets'] } & DeskDeps & Partial<Pick<AppDeps, 'wallboard' | 'audioTickets' | 'webDir'>> & Partial<Pick<AppDeps, 'jobs'>>): Promise<TestApp> {
  const auth = createAuthService(infra.db, { tokenTtlHours: 1 });
  const unused = new Proxy({}, { get: (_o, p) => { throw new Error(`test app: ${String(p)} is not wired in this test`); } });
  const app = await buildApp({
    log: infra.log,
    db: infra.db,
    auth,
    engine: deps.engine ?? (unused as AppDeps['engine']),
    agentStates: deps.agentStates ?? (unused as AppDeps['agentStates']),
    agents: unused as AppDeps['agents'],
    queues: deps.queues ?? (unused as AppDeps['queues']),
    queueStats: deps.queueStats ?? (unused as AppDeps['queueStats']),
    breaks: deps.breaks ?? (unused as AppDeps['breaks']),
    desk: deps.desk ?? (unused as AppDeps['desk']),
    // sign-ins through the route are counted for real (generous limits unless the test brings its own)
    loginLimiter: deps.loginLimiter ?? createLoginLimiter({ redis: infra.redis, keys: infra.keys, maxFailuresPerUser: 50, maxFailuresPerAddress: 500, windowSeconds: 300 }),
    // no live events unless the test brings a bus
    events: deps.events ?? { subscribe: () => () => undefined },
    ...(deps.eventsHub ? { eventsHub: deps.eventsHub } : {}),
    recordings: deps.recordings ?? (unused as AppDeps['recordings']),
    // call recordings over the same fake Asterisk recordings (the test's own service when it brings one)
    recordingsService:
      deps.recordingsService ??
      new RecordingsService({
        db: infra.db,
        ari: { file: (name) => (deps.recordings ?? (unused as Recordings)).file(name), delete: (name) => ((deps.recordings ?? unused) as Recordings).delete(name) },
        audit: deps.audit ?? new AuditLog(infra.db),
        log: infra.log,
        retentionDays: 180,
      }),
    ivr: deps.ivr ?? (unused as AppDeps['ivr']),
    calls: deps.calls ?? (unused as AppDeps['calls']),
    clickToCall: unused as AppDeps['clickToCall'],
    maintenance: deps.maintenance ?? (unused as AppDeps['maintenance']),
    sms: deps.sms ?? (unused as AppDeps['sms']),
    audit: deps.audit ?? new AuditLog(infra.db),
    liveView: deps.liveView ?? (unused as AppDeps['liveView']),
    ...(deps.tickets ? { tickets: deps.tickets } : {}),
    ...(deps.jobs ? { jobs: deps.jobs } : {}),
    ...(deps.wallboard ? { wallboard: deps.wallboard } : {}),
    ...(deps.audioTickets ? { audioTickets: deps.audioTickets } : {}),
    ...(deps.webDir ? { webDir: deps.webDir } : {}),
    readiness: async () => ({ ari: true, redis: true, postgres: true }),
    metrics: () => '',
  });
  t.teardown(() => app.close());

  const api: TestApp['api'] = async (method, url, token, body) => {
    const res = await app.inject({
      method,
      url,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    let parsed: unknown = res.body;
    try {
      parsed = JSON.parse(res.body);
    } catch {
      /* not JSON (audio) */
    }
    return { status: res.statusCode, body: parsed, headers: res.headers, raw: res.rawPayload };
  };

  const tokens = {} as Record<Role, string>;
  for (const role of ['agent', 'supervisor', 'admin', 'auditor'] as const) {
    const username = `t-${role}-${randomBytes(4).toString('hex')}`;
    await infra.db
      .insertInto('users')
      .values({ username, password_hash: await hashPassword('pw-secret'), role, agent_id: role === 'agent' ? '7001' : null })
      .execute();
    tokens[role] = (await auth.login(username, 'pw-secret')).token;
  }
  return { app, tokens, api };
}
