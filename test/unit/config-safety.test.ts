/**
 * Operators' YAML files (queues.yaml, the IVR files, sms-templates.yaml) are refused, with file:line, when
 * they carry a YAML bomb (alias expansion), an unsafe or custom tag (!!js/function, !!python/object, !foo),
 * or are huge; a refused reload keeps the version in force. Nothing in them can run code or pollute
 * prototypes.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { createQueuesConfig, parseQueues, QueuesConfigError } from '../../src/acd/queues.config.js';
import { IvrConfigError, loadIvrConfig } from '../../src/ivr/ivr.config.js';
import { parseSmsTemplates, SmsTemplatesError } from '../../src/sms/sms-templates.js';
import { OPERATOR_YAML_MAX_BYTES, OperatorFileTooLarge, parseOperatorDocument, parseOperatorYaml, readOperatorFile } from '../../src/shared/yaml.js';

const fail = (m: string) => new Error(m);
const silent = pino({ level: 'silent' });

/** billion laughs: 9 levels of 9 aliases each, ~387 million strings once expanded */
function bomb(levels = 9): string {
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < levels; i++) {
    const prev = String.fromCharCode(96 + i);
    const cur = String.fromCharCode(97 + i);
    lines.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(',')}]`);
  }
  return `${lines.join('\n')}\n`;
}

function tmp(): string {
  return mkdtempSync(path.join(tmpdir(), 'config-safety-'));
}

t.test('a YAML bomb (billion laughs) is refused quickly, naming the line of its first alias', async (t) => {
  const started = Date.now();
  t.throws(() => parseOperatorYaml(bomb(), fail), /^YAML error at line 2, column \d+: .*(aliases|alias)/);
  t.ok(Date.now() - started < 2000, 'without expanding it');
  // a small bomb below the alias count, still expanding past maxAliasCount
  const small = 'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
  t.throws(() => parseOperatorYaml(small, fail), /^YAML error at line 2, column \d+: aliases expand too much/);
  // too many aliases, each harmless
  const many = `base: &b x\nlist: [${Array(150).fill('*b').join(', ')}]\n`;
  t.throws(() => parseOperatorYaml(many, fail), /150 aliases \(\*name\); at most 100/);
  // a few anchors and aliases are fine
  t.same(parseOperatorYaml('d: &d { ringSeconds: 15 }\nq1: *d\nq2: *d\n', fail), { d: { ringSeconds: 15 }, q1: { ringSeconds: 15 }, q2: { ringSeconds: 15 } });
});

t.test('unsafe and custom tags are refused with their line, never read as strings', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['a: 1\nb: !!js/function "function () { return process.exit(1) }"\n', /^YAML error at line 2, column 4: the tag !!js\/function is not allowed/],
    ['a: 1\n\nb: !!js/undefined ""\n', /^YAML error at line 3, column 4: the tag !!js\/undefined is not allowed/],
    ['x: !!python/object/apply:os.system ["id"]\n', /^YAML error at line 1, column 4: the tag !!python\/object\/apply:os.system is not allowed/],
    ['x: !ruby/object:Gem::Installer\n  i: x\n', /^YAML error at line 1, column 4: the tag !ruby\/object:Gem::Installer is not allowed/],
    ['x: !custom thing\n', /^YAML error at line 1, column 4: the tag !custom is not allowed/],
    ['x: !!binary aGVsbG8=\n', /^YAML error at line 1, column 4: the tag !!binary is not allowed/],
    ['x: !!set { a, b }\n', /^YAML error at line 1, column 4: the tag !!set is not allowed/],
    ['x: !<tag:example.com,2000:app/foo> bar\n', /^YAML error at line 1, column 4: the tag tag:example.com,2000:app\/foo is not allowed/],
  ];
  for (const [text, re] of cases) t.throws(() => parseOperatorYaml(text, fail), re, JSON.stringify(text).slice(0, 50));
  // the core schema's own tags are plain values
  t.same(parseOperatorYaml('a: !!str 12\nb: !!int "7"\nc: !!bool true\nd: !!null ""\n', fail), { a: '12', b: 7, c: true, d: null });
  // << merge keys are not YAML 1.2: an ordinary key, never a merge
  t.same(parseOperatorYaml('base: &b { x: 1 }\nq: { <<: *b }\n', fail), { base: { x: 1 }, q: { '<<': { x: 1 } } });
});

t.test('__proto__ keys stay data: no prototype is polluted', async (t) => {
  const doc = parseOperatorYaml('__proto__: { polluted: yes }\nconstructor: { prototype: { polluted: yes } }\n', fail) as Record<string, unknown>;
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  t.ok(Object.prototype.hasOwnProperty.call(doc, '__proto__'), 'an own key like any other');
  // and a schema refuses such keys where they do not belong
  t.throws(() => parseQueues('queues:\n  general: { skill: general }\n__proto__: { x: 1 }\n'), QueuesConfigError);
});

t.test('huge files are refused before they are read or parsed', async (t) => {
  const dir = tmp();
  const big = path.join(dir, 'big.yaml');
  writeFileSync(big, `a: "${'x'.repeat(OPERATOR_YAML_MAX_BYTES)}"\n`);
  t.throws(() => readOperatorFile(big), OperatorFileTooLarge);
  t.throws(() => readOperatorFile(big), /bytes; at most 1048576 are read/);
  const ok = path.join(dir, 'ok.yaml');
  writeFileSync(ok, 'a: 1\n');
  t.equal(readOperatorFile(ok), 'a: 1\n');
  t.throws(() => parseOperatorYaml(`a: "${'x'.repeat(OPERATOR_YAML_MAX_BYTES)}"`, fail), /larger than 1048576 bytes/);
  t.match(parseOperatorDocument('a: 1').problems, [], 'a small text has no problem');
});

t.test('queues.yaml: a bomb, a tag or a huge file is refused and the version in force keeps routing', async (t) => {
  t.throws(() => parseQueues(`queues:\n  general: { skill: general }\n${bomb()}`), /^YAML error at line \d+, column \d+: .*alias/);
  t.throws(() => parseQueues('queues:\n  general: { skill: !!js/function "x" }\n'), /^YAML error at line 2, column 21: the tag !!js\/function is not allowed/);
  const dir = tmp();
  const file = path.join(dir, 'queues.yaml');
  writeFileSync(file, 'queues:\n  general: { skill: general }\n');
  const store = createQueuesConfig(file, silent, { watch: false });
  t.teardown(() => store.close());
  const v1 = store.status().version;
  for (const [what, text] of [
    ['bomb', `queues:\n  general: { skill: general }\n${bomb()}`],
    ['tag', 'queues:\n  general: !!js/function "x"\n'],
    ['huge', `queues:\n  general: { skill: general }\n# ${'x'.repeat(OPERATOR_YAML_MAX_BYTES)}\n`],
  ] as const) {
    writeFileSync(file, text);
    const r = store.reload();
    t.equal(r.ok, false, `${what}: refused`);
    t.equal(store.status().version, v1, `${what}: the version in force stays`);
    t.ok(store.get('general'), `${what}: still routing`);
  }
  t.match(store.status().lastError?.message, /bytes; at most 1048576 are read/);
});

t.test('IVR files: every problem names file:line', async (t) => {
  const GOOD = path.join(import.meta.dirname, '../fixtures/ivr/good');
  const QUEUES = new Set(['general', 'en', 'ru', '12333', 'blacklist']);
  const problemsWith = (file: string, change: (s: string) => string) => {
    const dir = tmp();
    cpSync(GOOD, dir, { recursive: true });
    const p = path.join(dir, file);
    writeFileSync(p, change(readFileSync(p, 'utf8')));
    try {
      loadIvrConfig(dir, QUEUES);
      return [];
    } catch (err) {
      if (err instanceof IvrConfigError) return err.problems;
      throw err;
    }
  };
  t.match(problemsWith('lines.yaml', (s) => `${s}evil: !!js/function "function () {}"\n`), [/^lines\.yaml:\d+: YAML: the tag !!js\/function is not allowed/]);
  t.match(problemsWith('lines.yaml', (s) => `${s}${bomb()}`), [/^lines\.yaml:\d+: YAML: .*alias/]);
  t.match(problemsWith('holidays.yaml', (s) => `${s}\n# ${'x'.repeat(OPERATOR_YAML_MAX_BYTES)}\n`), [/^holidays\.yaml:1: cannot read: the file is \d+ bytes/]);
  t.match(problemsWith('prompts/zh.yaml', (s) => `${s}\nx: !python/object:os.system "id"\n`), [/^prompts\/zh\.yaml:\d+: YAML: the tag !python\/object:os.system is not allowed/]);
});

t.test('SMS templates: a tag or a bomb is refused with its line', async (t) => {
  t.throws(() => parseSmsTemplates('hello: "hi"\nevil: !!js/function "x"\n'), SmsTemplatesError);
  t.throws(() => parseSmsTemplates('hello: "hi"\nevil: !!js/function "x"\n'), /^YAML error at line 2, column 7: the tag !!js\/function/);
  t.throws(() => parseSmsTemplates(bomb()), /aliases/);
});
