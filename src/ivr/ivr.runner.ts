/**
 * Runs one caller through an IVR flow (config/ivr/<flow>.yaml, checked by ivr.config.ts) until the flow
 * hands the call on: to a queue, voicemail, an external number, or a hang-up. Audio and keys go through
 * the narrow CallIo, so the interpreter is the same for a real call and for a unit test.
 * Semantics an operator can rely on:
 * - any prompt of a menu, collect or play node can be interrupted by a key (barge-in); a key pressed during a
 *   play node's prompt is kept for the next menu (type-ahead: a caller who knows the menu need not wait);
 * - `*` repeats the menu (not counted as a retry);
 *   a key that is not an option plays the invalid-input prompt and counts as a retry; no key within
 *   timeoutSeconds counts as a retry; after `retries` retries the call goes to `noInput`;
 * - collect reads up to maxDigits (a `#` ends the entry early) and needs at least minDigits;
 * - schedule compares the time in Asia/Shanghai: a holiday from holidays.yaml goes to `holiday` when
 *   given, otherwise the first rule whose day and [from, to) match, else `otherwise`;
 * - language switches the prompts' language for the rest of the call.
 */
import type { Flow, IvrNode, Language } from './ivr.config.js';
import { wallDate, wallHHmm, wallTime } from '../shared/zoned-time.js';

export type KeyResult = { status: 'keys'; keys: string } | { status: 'timeout' } | { status: 'hangup' };

export interface CallIo {
  /** play a prompt that a key interrupts, then read keys: up to maxKeys, `#` ends early, timeout after the prompt */
  ask(prompt: string, language: Language, opts: { maxKeys: number; timeoutMs: number }): Promise<KeyResult>;
  /** play to the end; false when the caller hung up */
  play(prompt: string, language: Language): Promise<boolean>;
  /** step log for the call record */
  step(type: string, data: Record<string, unknown>): void;
}

export type IvrOutcome =
  | { kind: 'queue'; queue: string }
  | { kind: 'voicemail'; prompt: string | null }
  | { kind: 'transfer'; number: string }
  | { kind: 'hangup' }
  | { kind: 'gone' };

export interface IvrResult {
  outcome: IvrOutcome;
  /** the nodes the caller went through, with the keys that chose the way */
  path: string[];
  language: Language;
  variables: Record<string, string>;
}

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
/** a flow that runs this many nodes without ending is broken beyond what the checker can see */
const MAX_STEPS = 500;

/** the date, weekday and HH:MM of an instant in Asia/Shanghai (src/shared/zoned-time.ts: one cached formatter) */
export function shanghaiClock(at: Date): { date: string; day: string; time: string } {
  const w = wallTime(at);
  return { date: wallDate(w), day: DAY_NAMES[w.weekday]!, time: wallHHmm(w) };
}

export async function runFlow(flow: Flow, io: CallIo, opts: { holidays: ReadonlySet<string>; now?: () => Date; language?: Language }): Promise<IvrResult> {
  let language: Language = opts.language ?? 'zh';
  const path: string[] = [];
  const variables: Record<string, string> = {};
  const now = opts.now ?? (() => new Date());
  let at = flow.start;
  for (let steps = 0; steps < MAX_STEPS; steps++) {
    const node: IvrNode | undefined = flow.nodes.get(at);
    if (!node) throw new Error(`flow ${flow.id}: no node ${at}`);
    path.push(at);
    switch (node.kind) {
      case 'play':
        if (!(await io.play(node.prompt, language))) return { outcome: { kind: 'gone' }, path, language, variables };
        at = node.next;
        break;
      case 'language':
        language = node.language;
        io.step('ivr.language', { language });
        at = node.next;
        break;
      case 'schedule': {
        const c = shanghaiClock(now());
        const rule = node.rules.find((r) => r.days.includes(c.day) && c.time >= r.from && c.time < r.to);
        at = opts.holidays.has(c.date) && node.holiday ? node.holiday : rule ? rule.next : node.otherwise;
        io.step('ivr.schedule', { node: path.at(-1), date: c.date, day: c.day, time: c.time, holiday: opts.holidays.has(c.date), to: at });
        break;
      }
      case 'menu': {
        const r = await menu(node, io, language);
        if (r === 'gone') return { outcome: { kind: 'gone' }, path, language, variables };
        if (r === 'no-input') {
          io.step('ivr.no_input', { node: path.at(-1) });
          at = node.noInput;
        } else {
          path[path.length - 1] = `${at}:${r}`;
          at = node.options[r]!;
        }
        break;
      }
      case 'collect': {
        const r = await collect(node, io, language);
        if (r === 'gone') return { outcome: { kind: 'gone' }, path, language, variables };
        if (r === 'no-input') at = node.noInput;
        else {
          variables[node.variable] = r;
          io.step('ivr.collected', { variable: node.variable, length: r.length });
          at = node.next;
        }
        break;
      }
      case 'queue':
        return { outcome: { kind: 'queue', queue: node.queue }, path, language, variables };
      case 'voicemail':
        return { outcome: { kind: 'voicemail', prompt: node.prompt }, path, language, variables };
      case 'transfer':
        return { outcome: { kind: 'transfer', number: node.number }, path, language, variables };
      case 'hangup':
        if (node.prompt && !(await io.play(node.prompt, language))) return { outcome: { kind: 'gone' }, path, language, variables };
        return { outcome: { kind: 'hangup' }, path, language, variables };
    }
  }
  throw new Error(`flow ${flow.id}: more than ${MAX_STEPS} steps without an end`);
}

async function menu(node: Extract<IvrNode, { kind: 'menu' }>, io: CallIo, language: Language): Promise<string | 'no-input' | 'gone'> {
  let tries = 0;
  while (tries <= node.retries) {
    const r = await io.ask(node.prompt, language, { maxKeys: 1, timeoutMs: node.timeoutSeconds * 1000 });
    if (r.status === 'hangup') return 'gone';
    if (r.status === 'timeout') {
      tries++;
      io.step('ivr.timeout', { attempt: tries });
      continue;
    }
    const key = r.keys[0] ?? '';
    if (key === '*') {
      io.step('ivr.repeat', {}); // the caller asked to hear the menu again: not a retry
      continue;
    }
    io.step('ivr.digit', { digit: key, valid: key in node.options });
    if (key in node.options) return key;
    tries++;
    if (node.invalidPrompt && !(await io.play(node.invalidPrompt, language))) return 'gone';
  }
  return 'no-input';
}

async function collect(node: Extract<IvrNode, { kind: 'collect' }>, io: CallIo, language: Language): Promise<string | 'no-input' | 'gone'> {
  for (let tries = 0; tries <= node.retries; tries++) {
    const r = await io.ask(node.prompt, language, { maxKeys: node.maxDigits, timeoutMs: node.timeoutSeconds * 1000 });
    if (r.status === 'hangup') return 'gone';
    if (r.status === 'timeout') continue;
    const digits = r.keys.replace(/#$/, '');
    const allowed = node.keys === null || [...digits].every((d) => node.keys!.includes(d));
    if (/^\d+$/.test(digits) && digits.length >= node.minDigits && digits.length <= node.maxDigits && allowed) return digits;
    io.step('ivr.invalid_entry', { length: digits.length });
  }
  return 'no-input';
}
