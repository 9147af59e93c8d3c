/**
 * The IVR files are checked as a whole, and every problem names file:line. Each case below starts from a
 * good set of files (test/fixtures/ivr/good) and breaks one thing, as an operator might.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { IvrConfigError, loadIvrConfig } from '../../src/ivr/ivr.config.js';

const GOOD = path.join(import.meta.dirname, '../fixtures/ivr/good');
const QUEUES = new Set(['general', 'en', 'ru', '12333', 'blacklist']);

function withChange(file: string, change: (text: string) => string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ivr-'));
  cpSync(GOOD, dir, { recursive: true });
  const p = path.join(dir, file);
  writeFileSync(p, change(readFileSync(p, 'utf8')));
  return dir;
}

function problemsOf(dir: string): string[] {
  try {
    loadIvrConfig(dir, QUEUES);
    return [];
  } catch (err) {
    if (err instanceof IvrConfigError) return err.problems;
    throw err;
  }
}

t.test('the good set loads: lines, flows, prompts and holidays', async (t) => {
  const c = loadIvrConfig(GOOD, QUEUES);
  t.same([...c.lines.keys()].sort(), ['089812345', '12333', '12345']);
  t.equal(c.flows.get('main')?.start, 'hours');
  t.match(c.flows.get('main')?.nodes.get('ticket'), { kind: 'collect', minDigits: 6, maxDigits: 6 });
  t.same(c.lines.get('12333')?.blacklist, { queue: 'blacklist' });
  t.ok(c.holidays.has('2026-10-01'));
  t.equal(c.defaultLine, '12345', 'the first line serves numbers not listed when no default is named');
  t.equal(c.maintenance, null);
  t.match(c.files.get('ivr/main.yaml'), /^[0-9a-f]{12}$/, 'each file has a version');
});

t.test('maintenance flags from lines.yaml: global and per line', async (t) => {
  const dir = withChange('lines.yaml', (s) => `maintenance: { enabled: false, message: maintenance }\n${s.replace('queue: "12333",', 'queue: "12333", maintenance: { enabled: true, allowVoicemail: false },')}`);
  const c = loadIvrConfig(dir, QUEUES);
  t.same(c.maintenance, { enabled: false, message: 'maintenance', allowVoicemail: true });
  t.same(c.lines.get('12333')?.maintenance, { enabled: true, message: null, allowVoicemail: false });
  t.equal(c.lines.get('12345')?.maintenance, null);
});

t.test('the shipped configuration (config/) loads with the shipped queues', async (t) => {
  const root = path.join(import.meta.dirname, '../..');
  const { parseQueues } = await import('../../src/acd/queues.config.js');
  const queues = new Set(parseQueues(readFileSync(path.join(root, 'config/queues.yaml'), 'utf8')).keys());
  const c = loadIvrConfig(path.join(root, 'config'), queues);
  t.same([...c.lines.keys()].sort(), ['089812345', '12329', '12333', '12345', '12367', '4009513513', '95198', '96345']);
  for (const lang of ['zh', 'en', 'ru', 'ja', 'ko', 'de', 'fr']) t.ok(c.prompts.get(lang as 'zh')?.size, `prompts in ${lang}`);
});

const cases: Array<[string, string, (s: string) => string, RegExp]> = [
  ['bad YAML', 'ivr/main.yaml', (s) => s.replace('kind: menu', 'kind: [menu'), /^ivr\/main\.yaml:1[1-9]: YAML/],
  ['unknown node kind', 'ivr/main.yaml', (s) => s.replace('consult: { kind: queue', 'consult: { kind: queu'), /^ivr\/main\.yaml:16: unknown node kind "queu"/],
  ['dangling target', 'ivr/main.yaml', (s) => s.replace('"2": complaint', '"2": complaints'), /^ivr\/main\.yaml:\d+: no node "complaints" in this flow/],
  ['missing prompt in a language the caller can speak there', 'prompts/ru.yaml', () => 'hello: Здравствуйте\n', /^ivr\/main\.yaml:\d+: prompt "connecting" has no ru text in prompts\/ru\.yaml/],
  ['unreachable node', 'ivr/main.yaml', (s) => s.replace('"0": languages, ', ''), /node "languages" cannot be reached from start "hours"/],
  ['bad schedule time', 'ivr/main.yaml', (s) => s.replace('to: "24:00"', 'to: "25:00"'), /^ivr\/main\.yaml:6: to must be a time like 08:30/],
  ['schedule that ends before it starts', 'ivr/main.yaml', (s) => s.replace('from: "00:00", to: "24:00"', 'from: "18:00", to: "08:00"'), /to must be later than from/],
  ['empty menu', 'ivr/main.yaml', (s) => s.replace('options: { "1": lang-ru }', 'options: {}'), /a menu needs at least one option/],
  ['the same digit twice', 'ivr/main.yaml', (s) => s.replace('"2": complaint', '"1": complaint'), /^ivr\/main\.yaml:14: the same key twice/],
  ['loop that never takes input', 'ivr/line-12333.yaml', (s) => s.replace('next: queue', 'next: again').replace('queue: { kind: queue, queue: "12333" }', 'again: { kind: play, prompt: welcome-12333, next: welcome }'), /loop without any input: welcome -> again -> welcome/],
  ['queue that queues.yaml does not have', 'ivr/main.yaml', (s) => s.replace('queue: ru }', 'queue: russian }'), /no queue "russian" in queues\.yaml/],
  ['line pointing at a missing flow', 'lines.yaml', (s) => s.replace('flow: line-12333', 'flow: line-1233'), /^lines\.yaml:4: no flow "line-1233" in ivr\//],
  ['collect with min above max', 'ivr/main.yaml', (s) => s.replace('maxDigits: 6', 'maxDigits: 4'), /maxDigits must not be below minDigits/],
  ['a language we do not serve', 'ivr/main.yaml', (s) => s.replace('language: ru', 'language: es'), /language must be one of zh, en, ru/],
  ['a field that does not exist', 'ivr/main.yaml', (s) => s.replace('invalidPrompt: invalid', 'invalidPromt: invalid'), /a menu node has no field "invalidPromt"/],
  ['a queue prompt missing in the language a waiting caller speaks', 'prompts/en.yaml', (s) => s.replace(/^ewt-3:.*\n/m, ''), /^ivr\/main\.yaml:\d+: prompt "ewt-3" has no en text in prompts\/en\.yaml/],
  ['a prompt the service needs before any flow', 'prompts/zh.yaml', (s) => s.replace(/^restricted:.*\n/m, ''), /^prompts\/zh\.yaml:1: the service needs these prompts: restricted/],
  ['a default line that is not a line', 'lines.yaml', (s) => `default: "99999"\n${s}`, /^lines\.yaml:1: default must be one of the lines/],
  ['maintenance with an unknown message prompt', 'lines.yaml', (s) => s.replace('queue: "12333",', 'queue: "12333", maintenance: { enabled: true, message: closed-for-typhoon },'), /^lines\.yaml:4: prompt "closed-for-typhoon" has no zh text/],
  ['maintenance without enabled', 'lines.yaml', (s) => `maintenance: { message: maintenance }\n${s}`, /^lines\.yaml:1: enabled must be true or false/],
  ['holiday that is not a date', 'holidays.yaml', () => 'holidays: [2026-13-45]\n', /^holidays\.yaml:1: "2026-13-45" is not a date/],
];

for (const [name, file, change, want] of cases) {
  t.test(`given ${name}, then the files are refused with file:line and the reason`, async (t) => {
    const problems = problemsOf(withChange(file, change));
    t.ok(problems.length >= 1, 'refused');
    t.ok(problems.some((p) => want.test(p)), `expected ${want}, got:\n${problems.join('\n')}`);
    t.ok(problems.every((p) => /^[\w./-]+\.yaml:\d+: /.test(p)), 'every problem starts with file:line');
  });
}
