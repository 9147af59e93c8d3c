import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { redact } from '../config/env.js';
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

export function createDb(databaseUrl: string): Db {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10, connectionTimeoutMillis: 5000, idleTimeoutMillis: 30000 });
  // an idle client losing its connection must not crash the process; the next query reconnects
  pool.on('error', () => undefined);
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
