/**
 * The operators' IVR files on the real stack: SIPp callers (keys from SIPp's RFC 4733 DTMF pcaps) ->
 * Asterisk 22 -> the service running the shipped config/ (copied to a folder of the test's own, so the
 * reload cases can break it) -> the call records in PostgreSQL.
 * Without agents: a caller who reaches a queue hangs up while waiting, and the record says which queue,
 * along which path, in which language.
 */
import { cpSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { runSipp, startSipp } from '../sipp/sipp.js';
import { callerScript, type ScriptStep } from '../sipp/caller-script.js';
import { ariChannels, getJson, login, resetAri, ROOT, startTestService, waitFor } from '../helpers/stack.js';

await resetAri();
const ivrDir = mkdtempSync(path.join(tmpdir(), 'hotline-ivr-'));
cpSync(path.join(ROOT, 'config'), ivrDir, { recursive: true });
// two lines of the test's own on top of the shipped ones: a voicemail flow and a transfer to an outside number
writeFileSync(path.join(ivrDir, 'ivr/test-voicemail.yaml'), 'start: vm\nnodes:\n  vm: { kind: voicemail }\n');
writeFileSync(path.join(ivrDir, 'ivr/test-transfer.yaml'), 'start: out\nnodes:\n  out: { kind: transfer, number: "13900009999" }\n');
const shippedLines = readFileSync(path.join(ivrDir, 'lines.yaml'), 'utf8');
writeFileSync(
  path.join(ivrDir, 'lines.yaml'),
  `${shippedLines}  "12398": { name: test voicemail, flow: test-voicemail, queue: general }\n  "12399": { name: test transfer, flow: test-transfer, queue: general }\n`,
);
// the shipped queues too: no caller here waits long enough for an announcement or the callback offer
const service = await startTestService(t, 'ivr', { IVR_DIR: ivrDir, QUEUES_FILE: path.join(ROOT, 'config/queues.yaml'), REPEAT_CALLER_DAYS: '0' });
const token = await login(service.url);
const tag = String(Date.now()).slice(-5);
let n = 0;
const nextCaller = () => `1370${tag}${String(++n).padStart(2, '0')}`;

/** seconds of an installed prompt (8 kHz 16-bit mono wav): to press keys after a prompt, not during it */
function promptMs(lang: string, id: string): number {
  const file = path.join(process.env.HOTLINE_CACHE ?? '/var/cache/hotline', 'sounds', lang, `${id}.wav`);
  return Math.round(((statSync(file).size - 44) / 16000) * 1000);
}

async function call(dialed: string, steps: ScriptStep[], holdMs: number, caller = nextCaller()) {
  const result = await runSipp({ scenario: callerScript(steps, holdMs), remote: '127.0.0.1:5060', service: dialed, callerNumber: caller, timeoutSeconds: 120 });
  const record = await waitFor(
    async () => {
      const r = await getJson(service.url, `/api/v1/calls?caller=${caller}&limit=1`, token);
      const c = r.body.items?.[0];
      return c?.endedAt ? (await getJson(service.url, `/api/v1/calls/${c.id}`, token)).body : undefined;
    },
    20_000,
    `the record of ${caller}`,
  );
  return { result, record, caller };
}
const events = (rec: any, type: string) => rec.events.filter((e: { type: string }) => e.type === type).map((e: { data: any }) => e.data);

t.test('for each line, a call reaches the flow of that line', async (t) => {
  const want: Record<string, string> = {
    '12345': 'main',
    '089812345': 'main',
    '12333': 'line-12333',
    '12329': 'line-12329',
    '4009513513': 'line-talent',
    '95198': 'line-95198',
    '12367': 'line-12367',
    '96345': 'line-business',
  };
  const calls = await Promise.all(Object.keys(want).map((dialed) => call(dialed, [], 2500)));
  for (const [i, dialed] of Object.keys(want).entries()) {
    const { record } = calls[i]!;
    t.match(events(record, 'ivr.started')[0], { line: dialed, flow: want[dialed] }, `${dialed} -> ${want[dialed]}`);
    t.equal(record.line, dialed);
  }
  // the special lines go straight to their desks after the welcome
  const talent = await call('4009513513', [], promptMs('zh', 'welcome-talent') + 2000);
  t.equal(talent.record.queue, '4009513513');
  t.equal(talent.record.disposition, 'abandoned');
});

t.test('menus: each option of the main menu, type-ahead, an invalid key, * repeat, collect, and no input at all', async (t) => {
  const welcome = promptMs('zh', 'welcome') + 500;
  const options: Array<[string, ScriptStep[], string, string]> = [
    ['1 consultation', [{ keys: '1' }], 'general', 'main-menu:1'],
    ['2 complaints', [{ keys: '2' }], 'general', 'main-menu:2'],
    ['3 business environment', [{ keys: '3' }], 'business', 'main-menu:3'],
    ['5 Hainanese', [{ keys: '5' }], 'dialect', 'main-menu:5'],
    ['9 English', [{ keys: '9' }], 'en', 'main-menu:9'],
    ['0 then 1 Russian', [{ keys: '0' }, { pause: 1500 }, { keys: '1' }], 'ru', 'languages:1'],
    ['0 then 2 Japanese', [{ keys: '0' }, { pause: 1500 }, { keys: '2' }], 'ja', 'languages:2'],
  ];
  // all at once: the longest (no input on 12367: three rounds of its menu) sets the pace
  const [menuCalls, typeAhead, invalid, repeat, collect, noInput] = await Promise.all([
    Promise.all(options.map(([, keys]) => call('12345', [{ pause: welcome }, ...keys], 9000))),
    call('12345', [{ pause: 800 }, { keys: '2' }], 6000),
    call('12345', [{ pause: welcome + 500 }, { keys: '7' }, { pause: promptMs('zh', 'invalid') + 1500 }, { keys: '1' }], 6000),
    call('12345', [{ pause: welcome + 500 }, { keys: '*' }, { pause: 2000 }, { keys: '9' }], 6000),
    call('12345', [{ pause: welcome }, { keys: '4' }, { pause: 1500 }, { keys: '123456#' }], promptMs('zh', 'ticket-received') + 4000),
    // 12367: a menu with 5 s to answer and 2 retries, then the desk
    call('12367', [], 3 * (promptMs('zh', 'welcome-12367') + 5000) + 4000),
  ]);
  for (const [i, [name, , queue, step]] of options.entries()) {
    const { record } = menuCalls[i]!;
    t.equal(record.queue, queue, `${name}: queue ${queue}`);
    t.ok(record.ivrPath.includes(step), `${name}: path ${record.ivrPath.join(' > ')} has ${step}`);
  }
  t.equal(menuCalls[4]!.record.language, 'en', 'the English caller is recorded in English');
  t.equal(menuCalls[5]!.record.language, 'ru');
  const en = (await getJson(service.url, '/api/v1/queues/en', token)).body;
  t.match(en.title, /English/, 'the queue an English caller waits in says English');

  t.equal(typeAhead.record.queue, 'general', 'a key pressed during the welcome is kept for the menu');
  t.match(events(invalid.record, 'ivr.digit'), [{ digit: '7', valid: false }, { digit: '1', valid: true }]);
  t.equal(invalid.record.queue, 'general');
  t.equal(events(repeat.record, 'ivr.repeat').length, 1, '* asked for the menu again');
  t.equal(events(repeat.record, 'ivr.timeout').length, 0, 'and that was no retry');
  t.equal(repeat.record.queue, 'en');

  t.match(events(collect.record, 'ivr.collected'), [{ variable: 'ticketNo', length: 6 }]);
  t.match(events(collect.record, 'ivr.completed')[0], { outcome: 'queue', variables: { ticketNo: '123456' } });
  t.equal(collect.record.queue, 'general');
  t.ok(collect.record.ivrPath.includes('main-menu:4'));

  t.equal(events(noInput.record, 'ivr.timeout').length, 3, 'the menu was played three times (two retries)');
  t.equal(events(noInput.record, 'ivr.no_input').length, 1, 'then the fallback');
  t.equal(noInput.record.queue, '12367');
});

t.test('a voicemail node records the caller; the message is listed and its audio downloadable', async (t) => {
  const { record, caller } = await call('12398', [{ pause: promptMs('zh', 'voicemail-prompt') + 700 }, { audio: 'g711a' }, { keys: '#' }], 15_000);
  t.equal(record.disposition, 'voicemail');
  const vm = await waitFor(async () => (await getJson(service.url, `/api/v1/voicemails?caller=${caller}`, token)).body.items?.[0], 5000, 'voicemail listed');
  t.match(vm, { status: 'saved', line: '12398', reason: 'ivr', callId: record.id });
  t.ok(vm.durationSeconds >= 4, `about 7 s of speech recorded (${vm.durationSeconds} s)`);
  const audio = await fetch(`${service.url}/api/v1/voicemails/${vm.id}/audio?download=1`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(audio.status, 200);
  t.equal(audio.headers.get('content-type'), 'audio/wav');
  t.match(audio.headers.get('content-disposition'), /attachment; filename="voicemail-12398-/);
  const bytes = Buffer.from(await audio.arrayBuffer());
  t.equal(bytes.subarray(0, 4).toString(), 'RIFF', 'a wav file');
  t.ok(bytes.length > 8000 * 2 * 3, `at least 3 s of 8 kHz audio (${bytes.length} bytes)`);
});

t.test('a transfer node rings the outside number through the trunk and connects the caller', async (t) => {
  // the "outside world" answers on 127.0.0.1:5099 (CALLBACK_DIAL's trunk in development)
  const outside = await startSipp({ scenario: 'agent-answer', localPort: 5099, calls: 1, vars: { ring_ms: '300' } });
  const { record } = await call('12399', [], 5000);
  const far = await outside.stop();
  t.equal(far.succeeded, 1, 'the outside number answered and the call ended cleanly');
  t.match(events(record, 'ivr.transfer')[0], { number: '13900009999' });
  t.equal(events(record, 'ivr.transfer_answered').length, 1);
  t.equal(record.disposition, 'ivr_completed');
});

t.test('maintenance switched on through the API: announcement and voicemail; off again: the menu, without a restart', async (t) => {
  const put = (body: unknown) =>
    fetch(`${service.url}/api/v1/maintenance`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  t.teardown(() => put({ enabled: false, lines: ['12345'], allowVoicemail: true }));
  t.equal((await put({ enabled: true, lines: ['12345'], allowVoicemail: true })).status, 200);
  const pause = promptMs('zh', 'maintenance') + promptMs('zh', 'voicemail-prompt') + 900;
  const during = await call('12345', [{ pause }, { audio: 'g711a' }, { keys: '#' }], 15_000);
  t.match(events(during.record, 'maintenance')[0], { scope: 'line', source: 'api', allowVoicemail: true });
  t.equal(during.record.disposition, 'voicemail');
  t.equal(events(during.record, 'ivr.started').length, 0, 'no menu while in maintenance');
  const vm = await waitFor(async () => (await getJson(service.url, `/api/v1/voicemails?caller=${during.caller}`, token)).body.items?.[0], 5000, 'voicemail listed');
  t.match(vm, { status: 'saved', reason: 'maintenance', line: '12345' });
  const audio = await fetch(`${service.url}/api/v1/voicemails/${vm.id}/audio`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(audio.status, 200);
  t.ok((await audio.arrayBuffer()).byteLength > 8000 * 2 * 3, 'the message is there to hear');
  // another line is not affected
  const other = await call('12333', [], 2500);
  t.equal(events(other.record, 'maintenance').length, 0, '12333 still served');

  t.equal((await put({ enabled: false, lines: ['12345'], allowVoicemail: true })).status, 200);
  const after = await call('12345', [], 2500);
  t.equal(events(after.record, 'maintenance').length, 0);
  t.match(events(after.record, 'ivr.started')[0], { flow: 'main' });
});

t.test('a broken file is refused on reload and the version in force keeps serving; fixing it loads it', async (t) => {
  const status = async () => (await getJson(service.url, '/api/v1/ivr/status', token)).body;
  const before = await status();
  t.equal(before.lastError, null);
  const mainFile = path.join(ivrDir, 'ivr/main.yaml');
  const good = readFileSync(mainFile, 'utf8');
  t.teardown(() => writeFileSync(mainFile, good));
  // an operator points option 2 at a node that does not exist, and saves
  writeFileSync(mainFile, good.replace('"2": complaint', '"2": complaints'));
  const reload = await fetch(`${service.url}/api/v1/ivr/reload`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  t.equal(reload.status, 422);
  const body = (await reload.json()) as any;
  t.equal(body.error.code, 'invalid-ivr-config');
  t.match(body.error.details.problems, [/^ivr\/main\.yaml:\d+: no node "complaints" in this flow/]);
  const refused = await status();
  t.equal(refused.version, before.version, 'the version in force did not change');
  t.match(refused.lastError.problems, [/no node "complaints"/]);
  const during = await call('12345', [{ pause: promptMs('zh', 'welcome') + 500 }, { keys: '2' }], 4000);
  t.match(events(during.record, 'ivr.started')[0], { flow: 'main', version: before.version }, 'calls still run the last good version');
  t.equal(during.record.queue, 'general', 'option 2 still works');

  // the operator fixes the file while a caller is in the menu: the watcher picks it up without an API
  // call, and the caller already in the flow finishes on the version it began with
  const inFlight = call('12345', [{ pause: promptMs('zh', 'welcome') + 4000 }, { keys: '2' }], 4000);
  await new Promise((r) => setTimeout(r, 1500));
  writeFileSync(mainFile, good.replace('complaint: { kind: queue, queue: general }', 'complaint: { kind: queue, queue: complaint }'));
  const fixed = await waitFor(async () => {
    const s = await status();
    return s.lastError === null && s.version !== before.version ? s : undefined;
  }, 5000, 'the fixed file loaded by the watcher');
  const old = await inFlight;
  t.match(events(old.record, 'ivr.started')[0], { version: before.version }, 'the caller in the menu kept its version');
  t.equal(old.record.queue, 'general', 'and its option 2 as it was when the call began');
  const after = await call('12345', [{ pause: promptMs('zh', 'welcome') + 500 }, { keys: '2' }], 4000);
  t.match(events(after.record, 'ivr.started')[0], { version: fixed.version });
  t.equal(after.record.queue, 'complaint', 'the new option 2 serves new calls');
});

t.test('nothing is left behind in Asterisk', async (t) => {
  const left = await waitFor(async () => ((await ariChannels()).length === 0 ? [] : undefined), 10_000, 'no channels').catch(async () => ariChannels());
  t.same(left, []);
});
