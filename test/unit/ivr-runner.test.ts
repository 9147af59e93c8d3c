/** The IVR interpreter against the good fixture flows, with a scripted caller instead of a phone. */
import path from 'node:path';
import t from 'tap';
import { loadIvrConfig } from '../../src/ivr/ivr.config.js';
import { runFlow, shanghaiClock, type CallIo, type KeyResult } from '../../src/ivr/ivr.runner.js';

const cfg = loadIvrConfig(path.join(import.meta.dirname, '../fixtures/ivr/good'), new Set(['general', 'en', 'ru', '12333', 'blacklist']));
const main = cfg.flows.get('main')!;

/** a caller who answers each question with the next scripted result */
function caller(script: KeyResult[]) {
  const heard: string[] = [];
  const steps: Array<[string, Record<string, unknown>]> = [];
  const io: CallIo = {
    async ask(prompt, language) {
      heard.push(`${language}:${prompt}`);
      return script.shift() ?? { status: 'hangup' };
    },
    async play(prompt, language) {
      heard.push(`${language}:${prompt}`);
      return true;
    },
    step: (type, data) => void steps.push([type, data]),
  };
  return { io, heard, steps };
}
const keys = (k: string): KeyResult => ({ status: 'keys', keys: k });
const timeout: KeyResult = { status: 'timeout' };
const opts = { holidays: cfg.holidays, now: () => new Date('2026-11-30T02:00:00Z') }; // a Monday, 10:00 in Hainan

t.test('each option of the main menu reaches its queue', async (t) => {
  for (const [digit, queue] of [['1', 'general'], ['2', 'general'], ['9', 'en']] as const) {
    const c = caller([keys(digit)]);
    const r = await runFlow(main, c.io, opts);
    t.same(r.outcome, { kind: 'queue', queue }, `key ${digit}`);
  }
});

t.test('English: the language switches, and the English queue is announced in English', async (t) => {
  const c = caller([keys('9')]);
  const r = await runFlow(main, c.io, opts);
  t.equal(r.language, 'en');
  t.same(c.heard, ['zh:welcome', 'zh:main-menu', 'en:connecting']);
  t.same(r.path, ['hours', 'welcome', 'main-menu:9', 'lang-en', 'en-connecting', 'en-queue']);
});

t.test('a sub-menu language (Russian) two levels down', async (t) => {
  const r = await runFlow(main, caller([keys('0'), keys('1')]).io, opts);
  t.same(r.outcome, { kind: 'queue', queue: 'ru' });
  t.equal(r.language, 'ru');
});

t.test('timeout, retry, then the fallback', async (t) => {
  const c = caller([timeout, timeout, timeout]);
  const r = await runFlow(main, c.io, opts);
  t.same(r.outcome, { kind: 'queue', queue: 'general' }, 'no input: the consultation queue');
  t.equal(c.heard.filter((h) => h === 'zh:main-menu').length, 3, 'asked three times (retries: 2)');
  t.ok(c.steps.some(([type]) => type === 'ivr.no_input'));
});

t.test('an invalid key plays the invalid prompt and asks again; * repeats without using a retry', async (t) => {
  const c = caller([keys('7'), keys('*'), keys('*'), keys('2')]);
  const r = await runFlow(main, c.io, opts);
  t.same(r.outcome, { kind: 'queue', queue: 'general' });
  t.same(c.heard, ['zh:welcome', 'zh:main-menu', 'zh:invalid', 'zh:main-menu', 'zh:main-menu', 'zh:main-menu']);
});

t.test('collect a 6-digit ticket number, with # ending entry; a short entry is asked again', async (t) => {
  const c = caller([keys('6'), keys('123'), keys('123456#')]);
  const r = await runFlow(main, c.io, opts);
  t.same(r.variables, { ticketNo: '123456' });
  t.same(r.outcome, { kind: 'queue', queue: 'general' });
  t.ok(c.steps.some(([type, d]) => type === 'ivr.invalid_entry' && d.length === 3));
});

t.test('the caller hanging up mid-menu ends the flow as gone', async (t) => {
  const r = await runFlow(main, caller([{ status: 'hangup' }]).io, opts);
  t.same(r.outcome, { kind: 'gone' });
});

t.test('schedule: Asia/Shanghai time, weekdays and holidays', async (t) => {
  t.same(shanghaiClock(new Date('2026-11-29T16:30:00Z')), { date: '2026-11-30', day: 'mon', time: '00:30' }, 'UTC Sunday evening is Monday in Hainan');
  const office = {
    id: 'office',
    start: 's',
    nodes: new Map<string, any>([
      ['s', { kind: 'schedule', rules: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '08:30', to: '17:30', next: 'open' }], holiday: 'holiday', otherwise: 'closed' }],
      ['open', { kind: 'queue', queue: 'general' }],
      ['closed', { kind: 'hangup', prompt: null }],
      ['holiday', { kind: 'voicemail', prompt: null }],
    ]),
  };
  const at = (iso: string) => runFlow(office, caller([]).io, { holidays: new Set(['2026-10-01']), now: () => new Date(iso) });
  t.same((await at('2026-11-30T02:00:00Z')).outcome, { kind: 'queue', queue: 'general' }, 'Monday 10:00: open');
  t.same((await at('2026-11-30T09:30:00Z')).outcome, { kind: 'hangup' }, 'Monday 17:30: closed (to is exclusive)');
  t.same((await at('2026-11-29T02:00:00Z')).outcome, { kind: 'hangup' }, 'Sunday: closed');
  t.same((await at('2026-10-01T02:00:00Z')).outcome, { kind: 'voicemail', prompt: null }, 'National Day (a Thursday): holiday');
});
