import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { createQueuesConfig, parseQueues, QueuesConfigError } from '../../src/acd/queues.config.js';

const shipped = readFileSync(path.join(import.meta.dirname, '../../config/queues.yaml'), 'utf8');

t.test('the shipped file loads: every queue API.md names, relaxation and overflow as written', async (t) => {
  const q = parseQueues(shipped);
  for (const id of ['general', 'en', 'ru', 'ja', 'ko', 'de', 'fr', 'dialect', 'blacklist', 'callbacks', '12333', '12329', '4009513513', '95198', '12367']) {
    t.ok(q.has(id), `queue ${id}`);
  }
  t.same(q.get('general')!.stages, [{ afterSeconds: 0, needs: [{ skill: 'general', minLevel: 1 }] }]);
  t.same(q.get('ru')!.stages.map((s) => s.afterSeconds), [0, 30, 90]);
  t.same(q.get('12333')!.overflow, { afterSeconds: 120, queue: 'general' });
  t.equal(q.get('general')!.ringSeconds, 15, 'defaults apply');
  t.equal(q.get('blacklist')!.maxWait.action, 'hangup', 'a queue overrides a default');
});

t.test('a file with a mistake is refused with the place named', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['queues:\n  general: { skill: general\n', /^YAML error at line/],
    ['queues:\n  general: { skill: General }\n', /^queues\.general\.skill/],
    ['queues:\n  general: { skill: general, colour: red }\n', /^queues\.general/],
    ['queues:\n  general: { name: x }\n', /queues\.general: needs a skill or stages/],
    ['queues:\n  general: { skill: general, stages: [{ afterSeconds: 0, needs: [{ skill: general, minLevel: 1 }] }] }\n', /either skill or stages/],
    ['queues:\n  ru:\n    stages:\n      - { afterSeconds: 0, needs: [{ skill: ru, minLevel: 3 }] }\n      - { afterSeconds: -5, needs: [{ skill: ru, minLevel: 1 }] }\n', /^queues\.ru\.stages\[1\]\.afterSeconds/],
    ['queues:\n  ru:\n    stages:\n      - { afterSeconds: 0, needs: [{ skill: ru, minLevel: 10 }] }\n', /^queues\.ru\.stages\[0\]\.needs\[0\]\.minLevel/],
    ['queues:\n  ru:\n    stages:\n      - { afterSeconds: 10, needs: [{ skill: ru, minLevel: 1 }] }\n', /stages\[0\]\.afterSeconds must be 0/],
    ['queues:\n  ru:\n    stages:\n      - { afterSeconds: 0, needs: [{ skill: ru, minLevel: 1 }] }\n      - { afterSeconds: 0, needs: [{ skill: en, minLevel: 1 }] }\n', /later than the stage before/],
    ['queues:\n  a: { skill: a, overflow: { afterSeconds: 10, queue: b } }\n', /overflow\.queue: no queue "b"/],
    ['queues:\n  a: { skill: a, overflow: { afterSeconds: 10, queue: b } }\n  b: { skill: b, overflow: { afterSeconds: 10, queue: a } }\n', /circle/],
    ['queues:\n  a: { skill: a, maxWait: { seconds: 60, action: voicemail } }\n', /^queues\.a\.maxWait\.action/],
    ['queues:\n  a: { skill: a }\n  a: { skill: b }\n', /^YAML error/],
    ['queues: {}\n', /at least one queue/],
    ['', /^file/],
  ];
  for (const [text, re] of bad) t.throws(() => parseQueues(text), re, JSON.stringify(text).slice(0, 60));
  t.throws(() => parseQueues('queues: {}'), QueuesConfigError);
});

t.test('reload keeps the last good version when the new file is broken, and says why', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'queues-'));
  const file = path.join(dir, 'queues.yaml');
  writeFileSync(file, 'queues:\n  general: { skill: general }\n');
  const store = createQueuesConfig(file, pino({ level: 'silent' }), { watch: false });
  t.teardown(() => store.close());
  const v1 = store.status().version;
  writeFileSync(file, 'queues:\n  general: { skill: 12 }\n');
  const r = store.reload();
  t.equal(r.ok, false);
  t.ok(store.get('general'), 'still routing with the last good version');
  t.equal(store.status().version, v1);
  t.match(store.status().lastError?.message, /queues\.general\.skill/);
  writeFileSync(file, 'queues:\n  general: { skill: general }\n  en: { skill: en }\n');
  t.equal(store.reload().ok, true);
  t.ok(store.get('en'));
  t.equal(store.status().lastError, null);
  t.throws(() => createQueuesConfig(path.join(dir, 'missing.yaml'), pino({ level: 'silent' }), { watch: false }), /cannot read/);
});
