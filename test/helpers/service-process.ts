/**
 * The service as a process of its own (node src/main.ts), for the fault suite: it can be killed (-9),
 * stopped (SIGTERM) and started again against the same PostgreSQL, Redis prefix and Asterisk, as a real
 * deployment would be. Its log goes to a file under /tmp named after the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT, testEnv } from './stack.js';

export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  /** resolves with the exit code (or the signal) when the process is gone */
  exited: Promise<number | string>;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export async function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** env for every start of one deployment: the same Redis prefix and port each time */
export async function deploymentEnv(overrides: Record<string, string>): Promise<Record<string, string>> {
  return testEnv({ PORT: String(await freeTcpPort()), ...overrides });
}

/** `until`: 'ready' waits for /readyz 200 (a leader with everything up), 'alive' for /healthz (a standby too) */
export async function spawnService(name: string, env: Record<string, string>, readyTimeoutMs = 60_000, until: 'ready' | 'alive' = 'ready'): Promise<ServiceProcess> {
  const log = createWriteStream(path.join('/tmp', `hotline-fault-${name}.log`), { flags: 'a' });
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const url = `http://127.0.0.1:${env.PORT}`;
  const deadline = Date.now() + readyTimeoutMs;
  let gone: number | string | null = null;
  void exited.then((c) => (gone = c));
  for (;;) {
    if (gone !== null) throw new Error(`service ${name} exited (${gone}) before it was ready; see /tmp/hotline-fault-${name}.log`);
    const ok = await fetch(`${url}/${until === 'ready' ? 'readyz' : 'healthz'}`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`service ${name} not ready in ${readyTimeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    child,
    exited,
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (gone !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    },
  };
}
