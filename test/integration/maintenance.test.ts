/**
 * Maintenance mode switched at run time (API.md "Maintenance"): the API, how API rows and lines.yaml flags
 * combine for a line, and that every process sees a change at once (Redis) while PostgreSQL stays the truth.
 */
import { pino } from 'pino';
import t from 'tap';
import { MaintenanceState, type MaintenanceFlag, type MaintenanceFlags } from '../../src/maintenance/maintenance.js';
import { buildTestApp, testInfra } from '../helpers/app.js';
import { waitFor } from '../helpers/stack.js';

const infra = await testInfra(t, 'maintenance');
const PROMPTS = new Set(['maintenance', 'maintenance-storm', 'maintenance-upgrade']);
let config: { global: MaintenanceFlag | null; lines: Map<string, MaintenanceFlag> } = { global: null, lines: new Map() };

async function newState(db = infra.db): Promise<MaintenanceState> {
  const state = new MaintenanceState({
    db,
    redis: infra.redis,
    subscriber: await infra.subscriber(),
    keys: infra.keys,
    log: infra.log,
    configFlags: (): MaintenanceFlags => config,
    promptExists: (id) => PROMPTS.has(id),
  });
  await state.start();
  t.teardown(() => state.stop());
  return state;
}

const state = await newState();
const { api, tokens } = await buildTestApp(t, infra, { maintenance: state });
const put = (body: unknown, token = tokens.supervisor) => api('PUT', '/api/v1/maintenance', token, body);

t.test('given nothing switched, GET says so and no line is in maintenance', async (t) => {
  const r = await api('GET', '/api/v1/maintenance', tokens.auditor);
  t.equal(r.status, 200);
  t.same(r.body, { global: null, lines: [], config: { global: null, lines: [] } });
  t.equal(state.effective('12345'), null);
});

t.test('PUT then GET: the switch is stored with who set it, and applies at once', async (t) => {
  const r = await put({ enabled: true, lines: ['12333'], message: 'maintenance-upgrade', allowVoicemail: false });
  t.equal(r.status, 200);
  t.match(r.body, { global: null, lines: [{ line: '12333', enabled: true, message: 'maintenance-upgrade', allowVoicemail: false, updatedBy: /^t-supervisor-/, updatedAt: String }] });
  t.same(state.effective('12333'), { source: 'api', scope: 'line', message: 'maintenance-upgrade', allowVoicemail: false });
  t.equal(state.effective('12345'), null, 'other lines stay in service');
  const g = await api('GET', '/api/v1/maintenance', tokens.admin);
  t.same(g.body, r.body);

  const off = await put({ enabled: false, lines: ['12333'], allowVoicemail: true });
  t.match(off.body.lines, [{ line: '12333', enabled: false, message: null, allowVoicemail: true }]);
  t.equal(state.effective('12333'), null);
});

t.test('a line row wins over the global row; a switched-off line row does not exempt the line', async (t) => {
  t.teardown(async () => {
    await put({ enabled: false, allowVoicemail: true });
    await put({ enabled: false, lines: ['12329', '95198'], allowVoicemail: true });
  });
  await put({ enabled: true, message: 'maintenance-storm', allowVoicemail: true });
  t.same(state.effective('12345'), { source: 'api', scope: 'global', message: 'maintenance-storm', allowVoicemail: true });
  t.same(state.effective('12333'), { source: 'api', scope: 'global', message: 'maintenance-storm', allowVoicemail: true }, 'the old switched-off 12333 row does not exempt it');

  const r = await put({ enabled: true, lines: ['12329', '95198'], message: null, allowVoicemail: false });
  t.equal(r.status, 200);
  t.match(r.body, { global: { enabled: true, message: 'maintenance-storm' }, lines: [{ line: '12329' }, { line: '12333' }, { line: '95198' }] });
  t.same(state.effective('12329'), { source: 'api', scope: 'line', message: null, allowVoicemail: false });
  t.same(state.effective('95198'), { source: 'api', scope: 'line', message: null, allowVoicemail: false });
  t.same(state.effective('12345'), { source: 'api', scope: 'global', message: 'maintenance-storm', allowVoicemail: true });

  await put({ enabled: false, lines: ['95198'], allowVoicemail: true });
  t.same(state.effective('95198'), { source: 'api', scope: 'global', message: 'maintenance-storm', allowVoicemail: true }, 'back under the global switch');
  await put({ enabled: false, allowVoicemail: true });
  t.same(state.effective('12329'), { source: 'api', scope: 'line', message: null, allowVoicemail: false }, 'the line switch stays after the global one goes');
  t.equal(state.effective('12345'), null);
});

t.test('lines.yaml flags combine with the API switches: either puts the line in maintenance, the API message wins', async (t) => {
  t.teardown(async () => {
    config = { global: null, lines: new Map() };
    await put({ enabled: false, lines: ['12367'], allowVoicemail: true });
    await put({ enabled: false, allowVoicemail: true });
  });
  config = { global: null, lines: new Map([['12367', { enabled: true, message: 'maintenance-upgrade', allowVoicemail: false }]]) };
  t.same(state.effective('12367'), { source: 'config', scope: 'line', message: 'maintenance-upgrade', allowVoicemail: false });
  t.equal(state.effective('12345'), null);

  await put({ enabled: true, lines: ['12367'], message: 'maintenance-storm', allowVoicemail: true });
  t.same(state.effective('12367'), { source: 'api', scope: 'line', message: 'maintenance-storm', allowVoicemail: true }, 'both: the API decides what callers hear');
  await put({ enabled: false, lines: ['12367'], allowVoicemail: true });
  t.same(state.effective('12367'), { source: 'config', scope: 'line', message: 'maintenance-upgrade', allowVoicemail: false }, 'the API switching off does not override lines.yaml');

  config = { global: { enabled: true, message: null, allowVoicemail: true }, lines: config.lines };
  t.same(state.effective('12345'), { source: 'config', scope: 'global', message: null, allowVoicemail: true });
  t.same(state.effective('12367'), { source: 'config', scope: 'line', message: 'maintenance-upgrade', allowVoicemail: false }, 'the config line flag wins over the config global flag');
  await put({ enabled: true, message: 'maintenance-storm', allowVoicemail: false });
  t.same(state.effective('12367'), { source: 'api', scope: 'global', message: 'maintenance-storm', allowVoicemail: false }, 'an API switch beats any config flag');

  const g = await api('GET', '/api/v1/maintenance', tokens.auditor);
  t.same(g.body.config, {
    global: { enabled: true, message: null, allowVoicemail: true },
    lines: [{ line: '12367', enabled: true, message: 'maintenance-upgrade', allowVoicemail: false }],
  });
});

t.test('validation: unknown prompt, unknown field, bad lines are 400; nothing is stored', async (t) => {
  const before = (await api('GET', '/api/v1/maintenance', tokens.admin)).body;
  const prompt = await put({ enabled: true, message: 'no-such-prompt', allowVoicemail: true });
  t.equal(prompt.status, 400);
  t.equal(prompt.body.error.code, 'unknown-prompt');
  const bad: unknown[] = [
    { enabled: true, allowVoicemail: true, reason: 'storm' },
    { enabled: true },
    { allowVoicemail: true },
    { enabled: 'yes', allowVoicemail: true },
    { enabled: true, allowVoicemail: true, lines: [] },
    { enabled: true, allowVoicemail: true, lines: ['12a45'] },
    { enabled: true, allowVoicemail: true, lines: ['12'] },
    { enabled: true, allowVoicemail: true, lines: ['1234567890123456'] },
    { enabled: true, allowVoicemail: true, lines: ['12345', '12345'] },
    { enabled: true, allowVoicemail: true, lines: Array.from({ length: 51 }, (_, i) => String(10000 + i)) },
  ];
  for (const body of bad) {
    const r = await put(body);
    t.equal(r.status, 400, JSON.stringify(body).slice(0, 80));
    t.equal(r.body.error.code, 'invalid-request');
  }
  t.same((await api('GET', '/api/v1/maintenance', tokens.admin)).body, before);
});

t.test('roles: supervisor and admin switch; auditor only reads; agent neither', async (t) => {
  t.teardown(() => put({ enabled: false, lines: ['12345'], allowVoicemail: true }));
  t.equal((await put({ enabled: true, lines: ['12345'], allowVoicemail: true }, tokens.admin)).status, 200);
  const auditor = await put({ enabled: false, lines: ['12345'], allowVoicemail: true }, tokens.auditor);
  t.equal(auditor.status, 403);
  t.equal(auditor.body.error.code, 'forbidden');
  t.equal((await put({ enabled: false, lines: ['12345'], allowVoicemail: true }, tokens.agent)).status, 403);
  t.equal((await api('GET', '/api/v1/maintenance', tokens.agent)).status, 403);
  t.equal((await api('GET', '/api/v1/maintenance', null)).status, 401);
  t.ok(state.effective('12345'), 'still on: the refused requests changed nothing');
});

t.test('two processes: a switch set in one is seen by the other at once; PostgreSQL is the truth', async (t) => {
  const other = await newState(infra.otherDb());
  t.teardown(async () => {
    await state.set({ enabled: false, lines: ['4009513513'], allowVoicemail: true }, 'test');
    await state.set({ enabled: false, allowVoicemail: true }, 'test');
  });
  t.equal(other.effective('4009513513'), null);
  await state.set({ enabled: true, lines: ['4009513513'], message: 'maintenance', allowVoicemail: false }, 'supervisor-a');
  const seen = await waitFor(() => other.effective('4009513513') ?? undefined, 3000, 'the other process to see the line switch');
  t.same(seen, { source: 'api', scope: 'line', message: 'maintenance', allowVoicemail: false });

  await other.set({ enabled: true, message: 'maintenance-storm', allowVoicemail: true }, 'supervisor-b');
  await waitFor(() => state.effective('12345') ?? undefined, 3000, 'the first process to see the global switch');
  t.same(state.effective('12345'), { source: 'api', scope: 'global', message: 'maintenance-storm', allowVoicemail: true });
  t.equal(state.snapshot().global?.updatedBy, 'supervisor-b');

  // a process started later (or restarted) reads the switches from PostgreSQL
  const fresh = await newState(infra.otherDb());
  t.same(fresh.snapshot(), state.snapshot());
  t.same(fresh.effective('4009513513'), { source: 'api', scope: 'line', message: 'maintenance', allowVoicemail: false });
  t.same(fresh.effective('12345'), { source: 'api', scope: 'global', message: 'maintenance-storm', allowVoicemail: true });
});

t.test('PostgreSQL unreadable: the last known switches stay in force', async (t) => {
  const db = infra.otherDb();
  const errors: string[] = [];
  const s = new MaintenanceState({
    db,
    redis: infra.redis,
    subscriber: await infra.subscriber(),
    keys: infra.keys,
    log: pino({ level: 'error' }, { write: (line: string) => void errors.push(JSON.parse(line).msg) }),
    configFlags: () => config,
    promptExists: () => true,
    reloadEveryMs: 50,
  });
  await s.start();
  t.teardown(() => s.stop());
  await state.set({ enabled: true, lines: ['12329'], allowVoicemail: true }, 'test');
  t.teardown(() => state.set({ enabled: false, lines: ['12329'], allowVoicemail: true }, 'test'));
  await waitFor(() => s.effective('12329') ?? undefined, 3000, 'the switch to arrive');
  await db.destroy(); // every query of this process fails from now on
  await waitFor(() => errors.includes('cannot read maintenance switches; keeping the last known ones'), 3000, 'a periodic reload to fail');
  t.same(s.effective('12329'), { source: 'api', scope: 'line', message: null, allowVoicemail: true });
});

t.test('OpenAPI describes the maintenance routes', async (t) => {
  const doc = await api('GET', '/docs/json', null);
  t.ok(doc.body.paths['/api/v1/maintenance/']?.get);
  t.ok(doc.body.paths['/api/v1/maintenance/']?.put);
});
