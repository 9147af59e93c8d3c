/**
 * Test helpers for the real stack: the service started in-process against the local Asterisk,
 * PostgreSQL (database hotline_test) and Redis (a fresh key prefix per test file), and raw ARI
 * look-ups for asserting what is left in Asterisk.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { loadConfig, type Config } from '../../src/config/env.js';
import { startService, type Service } from '../../src/service.js';
import { createLogger } from '../../src/shared/logger.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const execFileP = promisify(execFile);

export const ARI = {
  url: process.env.ARI_URL ?? 'http://127.0.0.1:8088',
  user: process.env.ARI_USER ?? 'hotline',
  password: process.env.ARI_PASSWORD ?? 'hotline-dev',
};

export function testEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'test',
    DATABASE_URL: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/hotline_test',
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    REDIS_PREFIX: `test-${randomUUID().slice(0, 8)}`,
    ARI_URL: ARI.url,
    ARI_USER: ARI.user,
    ARI_PASSWORD: ARI.password,
    PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info',
    // a test's service stops at its teardown: calls it still has do not hold it up long
    DRAIN_SECONDS: '2',
    HOTLINE_ADMIN_USER: 'admin',
    HOTLINE_ADMIN_PASSWORD: 'admin',
    ...overrides,
  };
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** the service, in this process, logging to a file under /tmp named after the test */
export async function startTestService(t: Teardown, name: string, env: Record<string, string> = {}): Promise<Service & { config: Readonly<Config>; logFile: string }> {
  const config = loadConfig(testEnv(env));
  const logFile = path.join('/tmp', `hotline-test-${name}.log`);
  // the service's own logger options (citizens' numbers masked, secrets redacted), into a file
  const log = createLogger(config.logLevel, { test: name }, pino.destination({ dest: logFile, sync: true }));
  const service = await startService(config, log);
  t.teardown(() => service.stop());
  return Object.assign(service, { config, logFile });
}

async function ari(method: string, p: string): Promise<any> {
  const res = await fetch(`${ARI.url}/ari${p}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from(`${ARI.user}:${ARI.password}`).toString('base64')}` },
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

export const ariChannels = async (): Promise<Array<{ id: string; name: string }>> => ari('GET', '/channels');
export const ariBridges = async (): Promise<Array<{ id: string; channels: string[] }>> => ari('GET', '/bridges');

/** hang up every channel and destroy every bridge (wazo's reset_ari): each test starts from nothing */
export async function resetAri(): Promise<void> {
  for (const c of await ariChannels()) await ari('DELETE', `/channels/${encodeURIComponent(c.id)}`).catch(() => undefined);
  for (const b of await ariBridges()) await ari('DELETE', `/bridges/${encodeURIComponent(b.id)}`).catch(() => undefined);
  await waitFor(async () => (await ariChannels()).length === 0 || undefined, 5000, 'channels to go').catch(() => undefined);
}

/** poll until fn returns something other than undefined/false */
export async function waitFor<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function asteriskCtl(command: 'start' | 'stop' | 'status'): Promise<{ code: number; out: string }> {
  try {
    const r = await execFileP('bash', [path.join(ROOT, 'scripts/asterisk.sh'), command], { timeout: 120_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

export async function login(baseUrl: string, username = 'admin', password = 'admin'): Promise<string> {
  const res = await fetch(`${baseUrl}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

export async function getJson(baseUrl: string, p: string, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${baseUrl}${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body };
}
