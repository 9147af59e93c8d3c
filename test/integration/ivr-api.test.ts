/**
 * GET /api/v1/ivr/status and POST /api/v1/ivr/reload over the real store (a copy of the shipped config/),
 * and `npm run ivr:check` as operators run it.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { createQueuesConfig } from '../../src/acd/queues.config.js';
import { createIvrStore } from '../../src/ivr/ivr.store.js';
import { buildTestApp, testInfra } from '../helpers/app.js';
import { ROOT } from '../helpers/stack.js';

const infra = await testInfra(t, 'ivr-api');
const dir = mkdtempSync(path.join(tmpdir(), 'ivr-api-'));
cpSync(path.join(ROOT, 'config'), dir, { recursive: true });
const queues = createQueuesConfig(path.join(dir, 'queues.yaml'), infra.log, { watch: false });
const ivr = createIvrStore(dir, queues, infra.log, { watch: false });
t.teardown(() => ivr.close());
const { api, tokens } = await buildTestApp(t, infra, { ivr });
const mainFile = path.join(dir, 'ivr/main.yaml');
const good = readFileSync(mainFile, 'utf8');

t.test('status: the version in force, every file with its version, no error', async (t) => {
  const r = await api('GET', '/api/v1/ivr/status', tokens.supervisor);
  t.equal(r.status, 200);
  t.match(r.body, { version: /^[0-9a-f]{12}$/, lines: 8, flows: 9, lastError: null });
  t.ok(r.body.files.some((f: { file: string }) => f.file === 'prompts/ja.yaml'));
  t.equal((await api('GET', '/api/v1/ivr/status', tokens.auditor)).status, 200, 'auditors read it');
  t.equal((await api('GET', '/api/v1/ivr/status', tokens.agent)).status, 403, 'agents do not');
  t.equal((await api('GET', '/api/v1/ivr/status', null)).status, 401);
});

t.test('reload: a broken file is refused with every problem and changes nothing; a good one loads', async (t) => {
  const before = (await api('GET', '/api/v1/ivr/status', tokens.admin)).body;
  writeFileSync(mainFile, good.replace('"1": consult', '"1": consult\n      "1": complaint').replace('invalidPrompt: invalid', 'invalidPrompt: no-such-prompt'));
  const bad = await api('POST', '/api/v1/ivr/reload', tokens.admin);
  t.equal(bad.status, 422);
  t.equal(bad.body.error.code, 'invalid-ivr-config');
  t.match(bad.body.error.details.problems, [/^ivr\/main\.yaml:\d+: the same key twice/]);
  const after = (await api('GET', '/api/v1/ivr/status', tokens.admin)).body;
  t.equal(after.version, before.version, 'still the version in force');
  t.match(after.lastError.problems, [/the same key twice/]);
  t.equal((await api('POST', '/api/v1/ivr/reload', tokens.agent)).status, 403);

  writeFileSync(mainFile, good.replace('"2": complaint', '"2": consult').replace('  complaint: { kind: queue, queue: general }\n', ''));
  const ok = await api('POST', '/api/v1/ivr/reload', tokens.supervisor);
  t.equal(ok.status, 200);
  t.equal(ok.body.lastError, null);
  t.not(ok.body.version, before.version);
});

t.test('npm run ivr:check: exit 0 on the shipped files, exit 1 with file:line problems on broken ones', async (t) => {
  const run = promisify(execFile);
  const tsx = ['--import', 'tsx', path.join(ROOT, 'src/ivr/ivr.check.ts')];
  const shipped = await run(process.execPath, [...tsx, path.join(ROOT, 'config')], { cwd: ROOT });
  t.match(shipped.stdout, /^ok: 8 lines, 9 flows, prompts \(zh \d+, en \d+/);
  writeFileSync(mainFile, good.replace('kind: menu', 'kind: menus'));
  const broken = await run(process.execPath, [...tsx, dir], { cwd: ROOT }).then(
    () => null,
    (err: { code: number; stderr: string }) => err,
  );
  t.equal(broken?.code, 1);
  t.match(broken?.stderr, /ivr\/main\.yaml:\d+: unknown node kind "menus"/);
  t.match(broken?.stderr, /problem\(s\): nothing was changed/);
});
