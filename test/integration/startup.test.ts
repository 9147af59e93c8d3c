/**
 * Start-up fails fast, with one readable line, when DATABASE_URL or ARI_URL cannot work.
 * Runs the real entry point (src/main.ts) as a child process, as `npm start` does.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { ROOT, testEnv } from '../helpers/stack.js';

function start(env: Record<string, string>, timeoutMs = 40_000): Promise<{ code: number | null; stderr: string; ms: number }> {
  const began = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts')], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...testEnv({ LOG_LEVEL: 'silent', ...env }) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, ms: Date.now() - began });
    });
  });
}

const cases: Array<{ name: string; env: Record<string, string>; message: RegExp }> = [
  { name: 'DATABASE_URL that is not a URL', env: { DATABASE_URL: 'hotline database' }, message: /configuration error: DATABASE_URL is not a valid URL/ },
  { name: 'DATABASE_URL of another kind of database', env: { DATABASE_URL: 'mysql://root@127.0.0.1/hotline' }, message: /DATABASE_URL must start with postgres:/ },
  { name: 'DATABASE_URL where no PostgreSQL listens', env: { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/hotline_test' }, message: /cannot reach PostgreSQL at DATABASE_URL postgres:\/\/postgres@127\.0\.0\.1:1\/hotline_test: ECONNREFUSED/ },
  { name: 'ARI_URL that is not http', env: { ARI_URL: 'ws://127.0.0.1:8088' }, message: /configuration error: ARI_URL must start with http:/ },
  { name: 'ARI_URL with a wrong password', env: { ARI_PASSWORD: 'wrong-password' }, message: /ARI_URL http:\/\/127\.0\.0\.1:8088 refused ARI_USER "hotline"/ },
  { name: 'ARI_URL on a port that does not speak HTTP', env: { ARI_URL: 'http://127.0.0.1:6379' }, message: /ARI_URL http:\/\/127\.0\.0\.1:6379 does not answer HTTP/ },
  { name: 'ARI_URL where nothing listens', env: { ARI_URL: 'http://127.0.0.1:1', ARI_STARTUP_TIMEOUT_SECONDS: '2' }, message: /cannot reach Asterisk ARI at ARI_URL http:\/\/127\.0\.0\.1:1/ },
];

// a web server that is not Asterisk: someone pointed ARI_URL at the wrong host
const web = createServer((_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>'));
await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
t.teardown(() => web.close());
const webUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
cases.push({ name: 'ARI_URL of a web server that is not Asterisk', env: { ARI_URL: webUrl }, message: /does not look like Asterisk ARI \(HTTP 404/ });

for (const c of cases) {
  t.test(`given ${c.name}, when the service starts, then it exits 1 with one readable line`, async (t) => {
    const r = await start(c.env);
    t.equal(r.code, 1, 'exit code 1');
    const lines = r.stderr.trim().split('\n');
    t.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
    t.match(lines[0], c.message);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
    t.ok(r.ms < 20_000, `fails fast (${r.ms} ms)`);
  });
}

t.test('given IVR files with problems, when the service starts, then it exits 1 listing each as file:line', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hotline-ivr-broken-'));
  cpSync(path.join(ROOT, 'config'), dir, { recursive: true });
  const main = path.join(dir, 'ivr/main.yaml');
  writeFileSync(main, readFileSync(main, 'utf8').replace('"3": business', '"3": nowhere').replace('timeoutSeconds: 5', 'timeoutSeconds: 500'));
  const r = await start({ IVR_DIR: dir });
  t.equal(r.code, 1, 'exit code 1');
  t.match(r.stderr, /^hotline: start-up failed: the IVR files in .* have 4 problem\(s\):/);
  t.match(r.stderr, /ivr\/main\.yaml:\d+: no node "nowhere" in this flow/);
  t.match(r.stderr, /ivr\/main\.yaml:\d+: timeoutSeconds must be a whole number from 1 to 60/);
  t.match(r.stderr, /node "business" cannot be reached/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

t.test('given an SMS templates file with a broken placeholder, when the service starts, then it exits 1 with one line naming the template', async (t) => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'hotline-sms-broken-')), 'sms-templates.yaml');
  writeFileSync(file, 'ticket-received: "您的工单号{ticket No}【海南12345】"\n');
  const r = await start({ SMS_TEMPLATES_FILE: file });
  t.equal(r.code, 1, 'exit code 1');
  t.equal(r.stderr.trim().split('\n').length, 1, `one line on stderr, got: ${r.stderr}`);
  t.match(r.stderr, /^hotline: start-up failed: .*sms-templates\.yaml: ticket-received: "\{ticket No\}" is not a placeholder/);
});
