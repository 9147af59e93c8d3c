import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';
import { redact } from '../config/env.js';
import { withTimeout } from '../shared/timeout.js';
import type { Database } from './database.js';

export type Db = Kysely<Database>;

/** PostgreSQL is not reachable or refuses us: start-up stops with this one line. */
export class DatabaseUnavailable extends Error {
  override name = 'DatabaseUnavailable';
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return [e.code, e.message].filter(Boolean).join(' ') || String(err);
}

/**
 * Create the database named in the URL when it is missing (connecting to the server's `postgres`
 * database to do it). Two processes racing here is fine: "already exists" counts as success.
 */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const target = new URL(databaseUrl);
  const name = decodeURIComponent(target.pathname.replace(/^\//, '')) || 'postgres';
  const probe = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  try {
    await probe.connect();
    return;
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') {
      throw new DatabaseUnavailable(`cannot reach PostgreSQL at DATABASE_URL ${redact(databaseUrl)}: ${describe(err)}`);
    }
  } finally {
    await probe.end().catch(() => undefined);
  }
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
  } catch (err) {
    if ((err as { code?: string }).code !== '42P04') {
      throw new DatabaseUnavailable(`cannot create database "${name}" at DATABASE_URL ${redact(databaseUrl)}: ${describe(err)}`);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** every query's limit unless a caller sets its own (withQueryDeadline): the KPI rollups and reports stay well under it */
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

/** a query that did not answer in time (client side): its connection has been closed, the query may or may not have run */
export class QueryTimeout extends Error {
  override name = 'QueryTimeout';
}

/** the pool behind each Db made by createDb (withQueryDeadline binds a Db of its own to it) */
const pools = new WeakMap<Db, { pool: pg.Pool; timeoutMs: number }>();

/**
 * Run `fn` with every query it makes on the Db it is given bound to `ms` from now (shorter or longer than the
 * pool's default): a query still unanswered at the deadline fails with QueryTimeout and its connection is reset
 * (so it cannot reach PostgreSQL later and land behind writes made since); a query that would start after the
 * deadline (e.g. after waiting for a free connection) is never sent. `fn` itself is abandoned at the deadline too.
 * A longer server-side limit needs `set local statement_timeout` inside a transaction as well.
 *
 * The deadline travels in the Db handed to `fn` (same pool), not in an AsyncLocalStorage: on Node 20 one
 * AsyncLocalStorage turns on promise hooks for the whole process, which made every promise of every call
 * (Redis, ARI, HTTP) two to three times dearer (docs/decisions.md). A Db not made by createDb (a transaction)
 * is handed over as it is: only `fn` is abandoned at the deadline.
 */
export function withQueryDeadline<T>(db: Db, ms: number, fn: (db: Db) => Promise<T>): Promise<T> {
  const deadline = Date.now() + ms;
  const p = pools.get(db);
  const bound = p ? new Kysely<Database>({ dialect: new PostgresDialect({ pool: guardedPool(p.pool, p.timeoutMs, deadline) }) }) : db;
  return withTimeout(fn(bound), ms, () => new QueryTimeout(`no answer from PostgreSQL within ${ms} ms`));
}

/** pg's own messages for a connection that died or a read that timed out (no SQLSTATE) */
function connectionLost(err: unknown): boolean {
  if (err instanceof QueryTimeout) return true;
  const code = (err as { code?: unknown }).code;
  return !(typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code));
}

/** close the socket with a reset: what is still unsent (a query written into a stalled link) is dropped, not delivered later */
function resetSocket(client: pg.PoolClient): void {
  const stream = (client as unknown as { connection?: { stream?: { destroyed?: boolean; resetAndDestroy?: () => void; destroy: () => void } } }).connection?.stream;
  if (!stream || stream.destroyed) return;
  try {
    if (typeof stream.resetAndDestroy === 'function') stream.resetAndDestroy();
    else stream.destroy();
  } catch {
    stream.destroy(); // not a TCP socket (unix socket): a plain close
  }
}

/** pool clients given their error listener (once per client, not per checkout) */
const listened = new WeakSet<pg.PoolClient>();

/**
 * The pool as Kysely sees it, with a client-side limit on every query (pg's query_timeout: what is left until
 * `deadline` when one is given, else the default) and one rule pg lacks: a client whose query timed out or whose
 * connection failed is reset and removed from the pool, never handed out again (pg would keep it, busy with a
 * query whose answer may never come, and every later query on it would time out as well). A pool bound to a
 * deadline (withQueryDeadline) never ends the shared pool.
 */
function guardedPool(pool: pg.Pool, defaultTimeoutMs: number, deadline?: number): PostgresPool {
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    let broken = false;
    const guarded = {
      async query(text: string, parameters: ReadonlyArray<unknown>) {
        let timeout = defaultTimeoutMs;
        if (deadline !== undefined) {
          timeout = deadline - Date.now();
          if (timeout <= 0) throw new QueryTimeout('the deadline passed before the query was sent');
        }
        try {
          return await client.query({ text, values: [...parameters], query_timeout: timeout } as pg.QueryConfig);
        } catch (err) {
          if (connectionLost(err)) {
            broken = true;
            resetSocket(client);
          }
          throw err;
        }
      },
      release(destroy?: boolean) {
        client.release(broken || destroy ? true : undefined);
      },
    };
    return guarded as unknown as PostgresPoolClient;
  };
  return {
    async connect() {
      const client = await pool.connect();
      if (!listened.has(client)) {
        // a connection dropped while checked out: the query fails (above), the process must not
        listened.add(client);
        client.on('error', () => undefined);
      }
      return wrap(client);
    },
    end: deadline === undefined ? () => pool.end() : async () => undefined,
  };
}

/**
 * The pool: at most 10 connections, 5 s to connect, and every query limited on both sides (`queryTimeoutMs`,
 * default 30 s): PostgreSQL cancels a statement that runs longer (statement_timeout) and the client gives up on
 * one that does not answer (a dead or silent link), so nothing waits on PostgreSQL for ever.
 */
export function createDb(databaseUrl: string, opts: { queryTimeoutMs?: number } = {}): Db {
  const timeout = opts.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
    statement_timeout: timeout,
    query_timeout: timeout,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // an idle client losing its connection must not crash the process; the next query reconnects
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: guardedPool(pool, timeout) }) });
  pools.set(db, { pool, timeoutMs: timeout });
  return db;
}
