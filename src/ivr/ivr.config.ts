/**
 * The operators' IVR files, read and checked as a whole (issue: IVR driven by config files):
 *   config/lines.yaml        dialed number -> flow, default queue, blacklist treatment
 *   config/ivr/<flow>.yaml   a graph of nodes (menu, play, collect, language, schedule, queue, voicemail, transfer, hangup)
 *   config/prompts/<lang>.yaml  prompt id -> text (generated into wav by scripts/sounds.sh)
 *   config/holidays.yaml     the holiday calendar schedules use (Asia/Shanghai dates)
 * Every problem is reported as `file:line: what is wrong`; a set of files with any problem is refused whole.
 * This module only reads and checks: ivr.runner.ts interprets a flow, ivr.store.ts reloads and serves the files.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { isMap, isSeq, LineCounter, type Document } from 'yaml';
import { OperatorFileTooLarge, parseOperatorDocument, readOperatorFile } from '../shared/yaml.js';

export const LANGUAGES = ['zh', 'en', 'ru', 'ja', 'ko', 'de', 'fr'] as const;
export type Language = (typeof LANGUAGES)[number];
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

export type IvrNode =
  | { kind: 'play'; prompt: string; next: string }
  | { kind: 'menu'; prompt: string; options: Record<string, string>; timeoutSeconds: number; retries: number; invalidPrompt: string | null; noInput: string }
  | { kind: 'collect'; prompt: string; minDigits: number; maxDigits: number; timeoutSeconds: number; retries: number; variable: string; next: string; noInput: string; keys: string | null }
  | { kind: 'language'; language: Language; next: string }
  | { kind: 'schedule'; rules: Array<{ days: string[]; from: string; to: string; next: string }>; holiday: string | null; otherwise: string }
  | { kind: 'queue'; queue: string }
  | { kind: 'voicemail'; prompt: string | null }
  | { kind: 'transfer'; number: string }
  | { kind: 'hangup'; prompt: string | null };

/** prompts the service itself plays to a caller waiting in a queue, in the language the caller chose */
export const QUEUE_PROMPTS = ['ewt-next', 'ewt-1', 'ewt-3', 'ewt-5', 'ewt-long', 'callback-offer', 'callback-registered', 'unavailable'] as const;
/** prompts played by a voicemail node (or maintenance), in the caller's language */
export const VOICEMAIL_PROMPTS = ['voicemail-prompt', 'voicemail-saved'] as const;
/** prompts played before any flow (black list, maintenance): Mandarin */
export const LINE_PROMPTS = ['restricted', 'maintenance', 'maintenance-later', ...VOICEMAIL_PROMPTS] as const;

export interface MaintenanceFlag {
  enabled: boolean;
  /** the prompt played instead of the default `maintenance` */
  message: string | null;
  allowVoicemail: boolean;
}

export interface Flow {
  id: string;
  start: string;
  nodes: Map<string, IvrNode>;
}
export interface Line {
  number: string;
  name: string;
  flow: string;
  queue: string;
  blacklist: { restrict: true } | { queue: string };
  maintenance: MaintenanceFlag | null;
  /** the flow of the satisfaction survey at the end of an answered call (null: none) */
  survey: string | null;
  /** how the survey's key reads: 3 = 1 satisfied, 2 basically satisfied, 3 dissatisfied; 5 = 1..5, 5 best */
  surveyScale: 3 | 5;
  /** the caller hears the survey when the agent hangs up its phone (the normal end of a call) */
  surveyAfterAgent: boolean;
}
export interface IvrConfig {
  lines: Map<string, Line>;
  /** the line that serves a dialed number lines.yaml does not list */
  defaultLine: string;
  /** maintenance switched on for every line in lines.yaml */
  maintenance: MaintenanceFlag | null;
  /** every file read, with the first 12 hex digits of its SHA-256 (the loaded version) */
  files: Map<string, string>;
  flows: Map<string, Flow>;
  prompts: Map<Language, Map<string, string>>;
  holidays: Set<string>;
}

export class IvrConfigError extends Error {
  override name = 'IvrConfigError';
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

interface Src {
  file: string;
  doc: Document.Parsed;
  lc: LineCounter;
}

/** where a value sits in its file: file:line */
function at(src: Src, p: Array<string | number>): string {
  let node: unknown = src.doc.getIn(p, true);
  // a missing key: point at the nearest parent that exists
  for (let i = p.length; node === undefined && i > 0; i--) node = src.doc.getIn(p.slice(0, i - 1), true);
  const range = (node as { range?: [number, number] } | undefined)?.range ?? (src.doc.contents as { range?: [number, number] } | null)?.range;
  const line = range ? src.lc.linePos(range[0]).line : 1;
  return `${src.file}:${line}`;
}

function load(dir: string, rel: string, problems: string[], files?: Map<string, string>): Src | null {
  const file = path.join(dir, rel);
  let text: string;
  try {
    // size-capped (src/shared/yaml.ts): a huge file is refused unread
    text = readOperatorFile(file);
  } catch (err) {
    problems.push(`${rel}:1: cannot read: ${err instanceof OperatorFileTooLarge ? err.message : ((err as NodeJS.ErrnoException).code ?? (err as Error).message)}`);
    return null;
  }
  files?.set(rel, createHash('sha256').update(text).digest('hex').slice(0, 12));
  const lc = new LineCounter();
  // syntax, duplicate keys, unsafe tags (!!js/function ...), alias bombs: every problem with its line
  const { doc, problems: yamlProblems } = parseOperatorDocument(text, lc);
  if (yamlProblems.length) {
    for (const e of yamlProblems) problems.push(`${rel}:${e.line}: ${e.code === 'DUPLICATE_KEY' ? 'the same key twice (e.g. a digit used twice in a menu)' : `YAML: ${e.message}`}`);
    return null;
  }
  return { file: rel, doc, lc };
}

const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isInt = (v: unknown, min: number, max: number): v is number => Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
const TIME = /^([01]\d|2[0-3]):[0-5]\d$|^24:00$/;

/** read config/ (lines, ivr/, prompts/, holidays) and check it; throws IvrConfigError listing every problem */
export function loadIvrConfig(configDir: string, queueIds: ReadonlySet<string>): IvrConfig {
  const problems: string[] = [];
  const cfg: IvrConfig = { lines: new Map(), defaultLine: '', maintenance: null, files: new Map(), flows: new Map(), prompts: new Map(), holidays: new Set() };

  // prompts
  const unreadable = new Set<Language>();
  for (const lang of LANGUAGES) {
    const rel = `prompts/${lang}.yaml`;
    if (!existsSync(path.join(configDir, rel))) continue;
    const src = load(configDir, rel, problems, cfg.files);
    if (!src) {
      unreadable.add(lang); // its own problem is reported; no avalanche of "missing prompt" for that language
      continue;
    }
    const obj = src.doc.toJS() as unknown;
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
      problems.push(`${at(src, [])}: a prompts file maps prompt ids to texts`);
      continue;
    }
    const m = new Map<string, string>();
    for (const [id, text] of Object.entries(obj)) {
      if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(id)) problems.push(`${at(src, [id])}: prompt id "${id}" must be lower-case letters, digits and dashes`);
      else if (!isStr(text)) problems.push(`${at(src, [id])}: prompt "${id}" needs a text`);
      else m.set(id, text);
    }
    cfg.prompts.set(lang, m);
  }
  if (!cfg.prompts.has('zh') && !unreadable.has('zh')) problems.push('prompts/zh.yaml:1: the Mandarin prompts file is required');

  // holidays
  if (existsSync(path.join(configDir, 'holidays.yaml'))) {
    const src = load(configDir, 'holidays.yaml', problems, cfg.files);
    const list = src?.doc.get('holidays');
    if (src && isSeq(list)) {
      list.items.forEach((_, i) => {
        const d = src.doc.getIn(['holidays', i]);
        if (typeof d !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(d) || Number.isNaN(Date.parse(d))) problems.push(`${at(src, ['holidays', i])}: "${String(d)}" is not a date like 2026-10-01`);
        else cfg.holidays.add(d);
      });
    } else if (src) problems.push(`${at(src, [])}: expected holidays: [2026-10-01, ...]`);
  }

  // lines.yaml is read first: a flow named as a line's survey is checked in every language (a caller of
  // any language reaches it), the other flows from Mandarin on
  const lsrc = load(configDir, 'lines.yaml', problems, cfg.files);
  const surveyFlows = new Set<string>();
  const rawLines = lsrc ? ((lsrc.doc.toJS() as { lines?: unknown } | null)?.lines ?? null) : null;
  if (rawLines && typeof rawLines === 'object') {
    for (const l of Object.values(rawLines as Record<string, { survey?: unknown }>)) surveyFlows.add(typeof l?.survey === 'string' ? l.survey : 'survey');
  }

  // flows
  const ivrDir = path.join(configDir, 'ivr');
  const flowFiles = existsSync(ivrDir) ? readdirSync(ivrDir).filter((f) => f.endsWith('.yaml')).sort() : [];
  for (const f of flowFiles) {
    const rel = `ivr/${f}`;
    const src = load(configDir, rel, problems, cfg.files);
    const id = f.replace(/\.yaml$/, '');
    if (src) checkFlow(src, id, cfg, queueIds, problems, surveyFlows.has(id) ? [...cfg.prompts.keys()] : ['zh'], unreadable);
  }

  // lines
  const lines = lsrc?.doc.get('lines');
  if (lsrc && !isMap(lines)) problems.push(`${at(lsrc, [])}: expected lines: {"12345": {...}, ...}`);
  if (lsrc && isMap(lines)) {
    const top = lsrc.doc.toJS() as Record<string, unknown>;
    for (const k of Object.keys(top)) if (!['lines', 'default', 'maintenance', 'surveyAfterAgent'].includes(k)) problems.push(`${at(lsrc, [k])}: unknown field "${k}" (lines, default, maintenance, surveyAfterAgent)`);
    if (top.surveyAfterAgent !== undefined && typeof top.surveyAfterAgent !== 'boolean') problems.push(`${at(lsrc, ['surveyAfterAgent'])}: surveyAfterAgent is true or false`);
    // the default of every line that does not say
    const surveyAfterAgentDefault = top.surveyAfterAgent !== false;
    const maintenance = (v: unknown, p: Array<string | number>): MaintenanceFlag | null => {
      if (v === undefined || v === null) return null;
      const m = (typeof v === 'object' ? v : {}) as Record<string, unknown>;
      const where = at(lsrc, p);
      if (typeof v !== 'object' || Array.isArray(v)) problems.push(`${where}: maintenance is {enabled: true|false, message?: <prompt id>, allowVoicemail?: true|false}`);
      for (const k of Object.keys(m)) if (!['enabled', 'message', 'allowVoicemail'].includes(k)) problems.push(`${at(lsrc, [...p, k])}: unknown field "${k}" (enabled, message, allowVoicemail)`);
      if (typeof m.enabled !== 'boolean') problems.push(`${at(lsrc, [...p, 'enabled'])}: enabled must be true or false`);
      if (m.allowVoicemail !== undefined && typeof m.allowVoicemail !== 'boolean') problems.push(`${at(lsrc, [...p, 'allowVoicemail'])}: allowVoicemail must be true or false`);
      const message = m.message === undefined || m.message === null ? null : String(m.message);
      if (message !== null && !cfg.prompts.get('zh')?.has(message)) problems.push(`${at(lsrc, [...p, 'message'])}: prompt "${message}" has no zh text in prompts/zh.yaml`);
      return { enabled: m.enabled === true, message, allowVoicemail: m.allowVoicemail !== false };
    };
    cfg.maintenance = maintenance(top.maintenance, ['maintenance']);
    // survey: a flow in ivr/; omitted: the flow `survey` when there is one
    const surveyOf = (v: unknown, p: Array<string | number>): string | null => {
      if (v === undefined) return flowFiles.includes('survey.yaml') ? 'survey' : null;
      if (v === null || v === false) return null;
      if (!isStr(v) || !flowFiles.includes(`${v}.yaml`)) {
        problems.push(`${at(lsrc, p)}: no flow "${String(v)}" in ivr/ for the survey`);
        return null;
      }
      return v;
    };
    const all = top.lines as Record<string, unknown>;
    for (const [number, l] of Object.entries(all)) {
      const p = ['lines', number];
      const line = (l && typeof l === 'object' ? l : {}) as Record<string, unknown>;
      const where = at(lsrc, p);
      if (!/^\d{3,15}$/.test(number)) problems.push(`${where}: line "${number}" must be the dialed number (digits)`);
      for (const k of Object.keys(line)) if (!['name', 'flow', 'queue', 'blacklist', 'maintenance', 'survey', 'surveyScale', 'surveyAfterAgent'].includes(k)) problems.push(`${at(lsrc, [...p, k])}: unknown field "${k}"`);
      if (!isStr(line.flow) || !cfg.flows.has(line.flow) && !flowFiles.includes(`${line.flow}.yaml`)) problems.push(`${at(lsrc, [...p, 'flow'])}: no flow "${String(line.flow)}" in ivr/`);
      if (!isStr(line.queue) || !queueIds.has(line.queue)) problems.push(`${at(lsrc, [...p, 'queue'])}: no queue "${String(line.queue)}" in queues.yaml`);
      const bl = line.blacklist;
      let blacklist: Line['blacklist'] = { restrict: true };
      if (bl === undefined || bl === 'restrict') blacklist = { restrict: true };
      else if (bl && typeof bl === 'object' && isStr((bl as { queue?: unknown }).queue) && queueIds.has((bl as { queue: string }).queue)) blacklist = { queue: (bl as { queue: string }).queue };
      else problems.push(`${at(lsrc, [...p, 'blacklist'])}: blacklist is "restrict" or {queue: <a queue in queues.yaml>}`);
      cfg.lines.set(number, {
        number,
        name: isStr(line.name) ? line.name : number,
        flow: String(line.flow),
        queue: String(line.queue),
        blacklist,
        maintenance: maintenance(line.maintenance, [...p, 'maintenance']),
        survey: surveyOf(line.survey, [...p, 'survey']),
        surveyScale: line.surveyScale === 5 ? 5 : 3,
        surveyAfterAgent: typeof line.surveyAfterAgent === 'boolean' ? line.surveyAfterAgent : surveyAfterAgentDefault,
      });
      if (line.surveyScale !== undefined && line.surveyScale !== 3 && line.surveyScale !== 5) problems.push(`${at(lsrc, [...p, 'surveyScale'])}: surveyScale is 3 (satisfied / basically / dissatisfied) or 5 (1..5)`);
      if (line.surveyAfterAgent !== undefined && typeof line.surveyAfterAgent !== 'boolean') problems.push(`${at(lsrc, [...p, 'surveyAfterAgent'])}: surveyAfterAgent is true or false`);
    }
    // JS objects put integer-like keys first: the file's own order comes from the YAML map
    const firstInFile = lines.items[0] ? String((lines.items[0].key as { value?: unknown })?.value ?? lines.items[0].key) : undefined;
    const dflt = top.default === undefined ? firstInFile : String(top.default);
    if (!dflt || !cfg.lines.has(dflt)) problems.push(`${at(lsrc, ['default'])}: default must be one of the lines (the line for numbers not listed), got "${String(dflt)}"`);
    cfg.defaultLine = dflt ?? '';
  }
  const zh = cfg.prompts.get('zh');
  if (zh) {
    const missing = LINE_PROMPTS.filter((id) => !zh.has(id));
    if (missing.length) problems.push(`prompts/zh.yaml:1: the service needs these prompts: ${missing.join(', ')}`);
  }

  if (problems.length) throw new IvrConfigError(problems);
  return cfg;
}

function checkFlow(src: Src, id: string, cfg: IvrConfig, queueIds: ReadonlySet<string>, problems: string[], startLanguages: Language[], unreadable: ReadonlySet<Language>): void {
  const raw = src.doc.toJS() as { start?: unknown; nodes?: unknown } | null;
  if (!raw || typeof raw !== 'object') {
    problems.push(`${at(src, [])}: a flow has start: and nodes:`);
    return;
  }
  for (const k of Object.keys(raw)) if (!['start', 'nodes'].includes(k)) problems.push(`${at(src, [k])}: unknown field "${k}"`);
  const rawNodes = (raw.nodes && typeof raw.nodes === 'object' ? raw.nodes : {}) as Record<string, Record<string, unknown>>;
  const nodes = new Map<string, IvrNode>();
  const edges = new Map<string, Array<{ to: string; path: Array<string | number> }>>();
  const bad = (p: Array<string | number>, msg: string) => problems.push(`${at(src, ['nodes', ...p])}: ${msg}`);

  for (const [name, n] of Object.entries(rawNodes)) {
    const e: Array<{ to: string; path: Array<string | number> }> = [];
    const target = (field: string, v: unknown, p: Array<string | number> = [name, field]) => {
      if (!isStr(v)) bad(p, `${field} must name a node`);
      else e.push({ to: v, path: p });
      return String(v);
    };
    const prompt = (field: string): string => {
      const v = n?.[field];
      if (!isStr(v)) bad([name, field], `${field} must name a prompt`);
      return String(v);
    };
    const optionalPrompt = (field: string): string | null => (n?.[field] === undefined ? null : prompt(field));
    const int = (field: string, dflt: number, min: number, max: number) => {
      const v = n?.[field] ?? dflt;
      if (!isInt(v, min, max)) bad([name, field], `${field} must be a whole number from ${min} to ${max}`);
      return Number(v);
    };
    const allowed: Record<string, string[]> = {
      play: ['prompt', 'next'],
      menu: ['prompt', 'options', 'timeoutSeconds', 'retries', 'invalidPrompt', 'noInput'],
      collect: ['prompt', 'minDigits', 'maxDigits', 'timeoutSeconds', 'retries', 'variable', 'next', 'noInput', 'keys'],
      language: ['language', 'next'],
      schedule: ['rules', 'holiday', 'otherwise'],
      queue: ['queue'],
      voicemail: ['prompt'],
      transfer: ['number'],
      hangup: ['prompt'],
    };
    const kind = n?.kind;
    if (typeof kind !== 'string' || !allowed[kind]) {
      bad([name, 'kind'], `unknown node kind "${String(kind)}" (one of ${Object.keys(allowed).join(', ')})`);
      edges.set(name, e);
      continue;
    }
    for (const k of Object.keys(n)) if (k !== 'kind' && !allowed[kind]!.includes(k)) bad([name, k], `a ${kind} node has no field "${k}"`);
    switch (kind) {
      case 'play':
        nodes.set(name, { kind, prompt: prompt('prompt'), next: target('next', n.next) });
        break;
      case 'menu': {
        const options = (n.options && typeof n.options === 'object' ? n.options : {}) as Record<string, unknown>;
        if (Object.keys(options).length === 0) bad([name, 'options'], 'a menu needs at least one option');
        for (const [digit, to] of Object.entries(options)) {
          if (!/^[0-9]$/.test(digit)) bad([name, 'options', digit], `option "${digit}" must be one digit 0-9 (* repeats, # ends entry)`);
          target(`option ${digit}`, to, [name, 'options', digit]);
        }
        nodes.set(name, {
          kind,
          prompt: prompt('prompt'),
          options: Object.fromEntries(Object.entries(options).map(([d, to]) => [d, String(to)])),
          timeoutSeconds: int('timeoutSeconds', 5, 1, 60),
          retries: int('retries', 2, 0, 9),
          invalidPrompt: optionalPrompt('invalidPrompt'),
          noInput: target('noInput', n.noInput),
        });
        break;
      }
      case 'collect': {
        const minDigits = int('minDigits', 1, 1, 32);
        const maxDigits = int('maxDigits', minDigits, 1, 32);
        if (maxDigits < minDigits) bad([name, 'maxDigits'], 'maxDigits must not be below minDigits');
        if (!isStr(n.variable) || !/^[a-z][a-zA-Z0-9_]{0,31}$/.test(n.variable)) bad([name, 'variable'], 'variable must be a name like ticketNo');
        // keys: the only digits accepted (a survey's "123"); another key is an invalid entry and asks again
        const keys = n.keys === undefined ? null : String(n.keys);
        if (keys !== null && !/^[0-9]{1,10}$/.test(keys)) bad([name, 'keys'], 'keys must be the accepted digits, e.g. "123"');
        nodes.set(name, {
          kind,
          prompt: prompt('prompt'),
          minDigits,
          maxDigits,
          timeoutSeconds: int('timeoutSeconds', 8, 1, 60),
          retries: int('retries', 2, 0, 9),
          variable: String(n.variable),
          next: target('next', n.next),
          noInput: target('noInput', n.noInput),
          keys,
        });
        break;
      }
      case 'language':
        if (!LANGUAGES.includes(n.language as Language)) bad([name, 'language'], `language must be one of ${LANGUAGES.join(', ')}`);
        nodes.set(name, { kind, language: n.language as Language, next: target('next', n.next) });
        break;
      case 'schedule': {
        const rules = Array.isArray(n.rules) ? (n.rules as Array<Record<string, unknown>>) : [];
        if (rules.length === 0) bad([name, 'rules'], 'a schedule needs at least one rule');
        rules.forEach((r, i) => {
          const days = Array.isArray(r.days) ? r.days : [];
          if (days.length === 0 || !days.every((d) => (DAYS as readonly string[]).includes(String(d)))) bad([name, 'rules', i, 'days'], `days must list ${DAYS.join(', ')}`);
          for (const f of ['from', 'to'] as const) if (typeof r[f] !== 'string' || !TIME.test(r[f] as string)) bad([name, 'rules', i, f], `${f} must be a time like 08:30 (00:00 to 24:00), got "${String(r[f])}"`);
          if (typeof r.from === 'string' && typeof r.to === 'string' && r.from >= r.to) bad([name, 'rules', i, 'to'], 'to must be later than from');
          target('next', r.next, [name, 'rules', i, 'next']);
        });
        nodes.set(name, {
          kind,
          rules: rules.map((r) => ({ days: (r.days as string[]) ?? [], from: String(r.from), to: String(r.to), next: String(r.next) })),
          holiday: n.holiday === undefined ? null : target('holiday', n.holiday),
          otherwise: target('otherwise', n.otherwise),
        });
        break;
      }
      case 'queue':
        if (!isStr(n.queue) || !queueIds.has(n.queue)) bad([name, 'queue'], `no queue "${String(n.queue)}" in queues.yaml`);
        nodes.set(name, { kind, queue: String(n.queue) });
        break;
      case 'voicemail':
        nodes.set(name, { kind, prompt: optionalPrompt('prompt') });
        break;
      case 'transfer':
        if (typeof n.number !== 'string' || !/^\+?\d{3,15}$/.test(n.number)) bad([name, 'number'], 'number must be a phone number (quote it)');
        nodes.set(name, { kind, number: String(n.number) });
        break;
      case 'hangup':
        nodes.set(name, { kind, prompt: optionalPrompt('prompt') });
        break;
    }
    edges.set(name, e);
  }

  // the graph: targets exist, start exists, every node reachable, no loop that never takes input
  for (const [name, es] of edges) for (const e of es) if (!rawNodes[e.to]) bad(e.path, `no node "${e.to}" in this flow`);
  const start = raw.start;
  if (!isStr(start) || !rawNodes[start]) {
    problems.push(`${at(src, ['start'])}: start must name a node of this flow`);
    return;
  }
  const seen = new Set<string>();
  const stack = [start];
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n) || !rawNodes[n]) continue;
    seen.add(n);
    for (const e of edges.get(n) ?? []) stack.push(e.to);
  }
  for (const name of Object.keys(rawNodes)) if (!seen.has(name)) bad([name], `node "${name}" cannot be reached from start "${start}"`);

  const takesInput = (n: string) => ['menu', 'collect'].includes(nodes.get(n)?.kind ?? '') || !edges.get(n)?.length;
  const state = new Map<string, 'open' | 'done'>();
  const visit = (n: string, trail: string[]): void => {
    if (takesInput(n) || state.get(n) === 'done') return;
    if (state.get(n) === 'open') {
      bad([n], `loop without any input: ${[...trail.slice(trail.indexOf(n)), n].join(' -> ')}`);
      return;
    }
    state.set(n, 'open');
    for (const e of edges.get(n) ?? []) if (rawNodes[e.to]) visit(e.to, [...trail, n]);
    state.set(n, 'done');
  };
  for (const n of seen) visit(n, []);

  // every prompt exists in every language the caller can be speaking at that node
  const langsAt = new Map<string, Set<Language>>();
  const work: Array<[string, Language]> = startLanguages.map((l) => [start, l]);
  while (work.length) {
    const [n, lang] = work.pop()!;
    const set = langsAt.get(n) ?? new Set();
    if (set.has(lang) || !nodes.has(n)) continue;
    set.add(lang);
    langsAt.set(n, set);
    const node = nodes.get(n)!;
    const next = node.kind === 'language' ? node.language : lang;
    for (const e of edges.get(n) ?? []) work.push([e.to, next]);
  }
  for (const [n, langs] of langsAt) {
    const node = nodes.get(n)!;
    const ids = [('prompt' in node ? node.prompt : null), node.kind === 'menu' ? node.invalidPrompt : null].filter((x): x is string => Boolean(x));
    // what the service plays at a queue (waiting) or a voicemail node, in the caller's language
    if (node.kind === 'queue') ids.push(...QUEUE_PROMPTS);
    if (node.kind === 'voicemail') ids.push(...VOICEMAIL_PROMPTS);
    for (const lang of langs) {
      if (unreadable.has(lang)) continue;
      for (const pid of ids) {
        if (!cfg.prompts.get(lang)?.has(pid)) bad([n, 'prompt' in node ? 'prompt' : 'kind'], `prompt "${pid}" has no ${lang} text in prompts/${lang}.yaml (a caller can reach this node speaking ${lang})`);
      }
    }
  }
  cfg.flows.set(id, { id, start, nodes });
}
