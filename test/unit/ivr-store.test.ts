/**
 * The IVR store: a broken set never replaces the one in force, the problems stay visible until a good
 * set loads, a call keeps the snapshot it started with, and a saved file is picked up by the watcher.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { createQueuesConfig } from '../../src/acd/queues.config.js';
import { IvrConfigError } from '../../src/ivr/ivr.config.js';
import { createIvrStore } from '../../src/ivr/ivr.store.js';

const GOOD = path.join(import.meta.dirname, '../fixtures/ivr/good');
const log = pino({ level: 'silent' });

function setUp(t: { teardown(fn: () => void): void }, watch = false) {
  const dir = mkdtempSync(path.join(tmpdir(), 'ivr-store-'));
  cpSync(GOOD, dir, { recursive: true });
  const qfile = path.join(dir, 'queues.yaml');
  writeFileSync(qfile, 'queues:\n  general: { skill: general }\n  en: { skill: en }\n  ru: { skill: ru }\n  "12333": { skill: "12333" }\n  blacklist: { skill: blacklist }\n');
  const queues = createQueuesConfig(qfile, log, { watch: false });
  const store = createIvrStore(dir, queues, log, { watch });
  t.teardown(() => store.close());
  return { dir, store, queues, qfile };
}

t.test('a broken set is refused whole; the version in force keeps serving and the problems are shown', async (t) => {
  const { dir, store } = setUp(t);
  const before = store.current();
  const v1 = store.status().version;
  t.match(v1, /^[0-9a-f]{12}$/);
  t.same(store.status().files.map((f) => f.file), ['holidays.yaml', 'ivr/line-12333.yaml', 'ivr/main.yaml', 'lines.yaml', 'prompts/en.yaml', 'prompts/ru.yaml', 'prompts/zh.yaml']);

  const main = path.join(dir, 'ivr/main.yaml');
  const good = readFileSync(main, 'utf8');
  writeFileSync(main, good.replace('"2": complaint', '"2": nowhere'));
  const r = store.reload();
  t.equal(r.ok, false);
  t.match(store.status().lastError?.problems, [/^ivr\/main\.yaml:\d+: no node "nowhere"/]);
  t.equal(store.status().version, v1, 'version unchanged');
  t.equal(store.current(), before, 'the same configuration object keeps serving');

  writeFileSync(main, good.replace('complaint: { kind: queue, queue: general }', 'complaint: { kind: queue, queue: en }'));
  const ok = store.reload();
  t.match(ok, { ok: true, changed: true });
  t.equal(store.status().lastError, null, 'the error clears once a good set loads');
  t.not(store.status().version, v1);
  t.same(before.flows.get('main')?.nodes.get('complaint'), { kind: 'queue', queue: 'general' }, 'a call that took the old snapshot still sees the old flow');
  t.same(store.current().flows.get('main')?.nodes.get('complaint'), { kind: 'queue', queue: 'en' });
  t.match(store.reload(), { ok: true, changed: false }, 'reloading the same files changes nothing');
});

t.test('lines: a listed number, and the default line for one that is not', async (t) => {
  const { store } = setUp(t);
  t.match(store.lineFor('12333'), { listed: true, line: { flow: 'line-12333' } });
  t.match(store.lineFor('88888'), { listed: false, line: { number: '12345', flow: 'main' } });
  t.equal(store.promptExists('welcome'), true);
  t.equal(store.promptExists('no-such-prompt'), false);
  t.same(store.maintenanceFlags(), { global: null, lines: new Map() });
});

t.test('a first load that fails stops start-up with every problem', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ivr-store-'));
  cpSync(GOOD, dir, { recursive: true });
  writeFileSync(path.join(dir, 'lines.yaml'), 'lines: [12345]\n');
  const qfile = path.join(dir, 'queues.yaml');
  writeFileSync(qfile, 'queues:\n  general: { skill: general }\n');
  const queues = createQueuesConfig(qfile, log, { watch: false });
  t.throws(() => createIvrStore(dir, queues, log, { watch: false }), IvrConfigError);
});

t.test('a queue removed from queues.yaml that a flow still uses: refused, the last good version stays', async (t) => {
  const { store, queues, qfile } = setUp(t);
  const v = store.status().version;
  writeFileSync(qfile, 'queues:\n  general: { skill: general }\n  en: { skill: en }\n  "12333": { skill: "12333" }\n  blacklist: { skill: blacklist }\n');
  t.match(queues.reload(), { ok: true });
  t.match(store.status().lastError?.problems, [/no queue "ru" in queues\.yaml/]);
  t.equal(store.status().version, v);
});

t.test('the watcher picks up a saved file', async (t) => {
  const { dir, store } = setUp(t, true);
  const v = store.status().version;
  const zh = path.join(dir, 'prompts/zh.yaml');
  writeFileSync(zh, `${readFileSync(zh, 'utf8')}extra: 额外的提示。\n`);
  const deadline = Date.now() + 5000;
  while (store.status().version === v && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.not(store.status().version, v, 'reloaded by the watcher');
  t.equal(store.promptExists('extra'), true);
});
