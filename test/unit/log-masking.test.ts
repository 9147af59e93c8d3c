/**
 * Citizens' phone numbers never appear whole in the service log: everything logged through the service's
 * logger (src/shared/logger.ts, as main.ts and the test stack create it) is masked as 138****5678, in fields,
 * child bindings, messages and error messages alike. The hotline's own numbers (dnis/line 12345) and ids stay.
 */
import t from 'tap';
import { buildApp } from '../../src/http/app.js';
import { createLogger, maskLogLine, maskNumber } from '../../src/shared/logger.js';

function capture() {
  const lines: string[] = [];
  const log = createLogger('debug', { test: 'masking' }, { write: (s: string) => void lines.push(s) });
  return { log, lines, text: () => lines.join(''), json: () => lines.map((l) => JSON.parse(l) as Record<string, any>) };
}

const MOBILE = '13812345678';
const WHOLE = [/13812345678/, /13912345678/, /66123456/, /089866123456/, /441234567890/];

t.test('maskNumber keeps the first 3 and last 4 digits', async (t) => {
  t.equal(maskNumber('13812345678'), '138****5678');
  t.equal(maskNumber('+86 138-1234-5678'), '+86 1**-****-5678', 'the spelling stays, the digits are masked');
  t.equal(maskNumber('089866123456'), '089*****3456');
  t.equal(maskNumber('12345'), '12345', 'service numbers are short and stay');
  t.equal(maskNumber('110'), '110');
});

t.test('number fields, nested fields, arrays, bindings, messages and errors are masked', async (t) => {
  const { log, text, json } = capture();
  log.info({ caller: MOBILE, callerNumber: '+8613912345678', to: ['089866123456', '13912345678'], number: 66123456, dnis: '12345', line: '12345' }, 'call arrived');
  log.child({ caller: MOBILE }).info({ call: { caller: MOBILE, dialed: '12345' } }, 'nested');
  log.warn({ err: new Error(`no channel for ${MOBILE} (PJSIP/callers/sip:${MOBILE}@127.0.0.1:5099)`) }, 'failed');
  log.error(`callback to +441234567890 and 0898-6612-3456 failed; caller ${MOBILE}`);
  const out = text();
  for (const re of WHOLE) t.notMatch(out, re, `nothing matches ${re}`);
  const [first, second, third, fourth] = json();
  t.equal(first!.caller, '138****5678');
  t.equal(first!.callerNumber, '+861******5678');
  t.same(first!.to, ['089*****3456', '139****5678']);
  t.equal(first!.number, '661*3456', 'a local number without area code, in a number field');
  t.equal(first!.dnis, '12345', 'the hotline line stays');
  t.equal(first!.line, '12345');
  t.equal(second!.caller, '138****5678', 'a child binding');
  t.equal(second!.call.caller, '138****5678', 'a nested field');
  t.equal(second!.call.dialed, '12345');
  t.match(third!.err.message, /no channel for 138\*\*\*\*5678 \(PJSIP\/callers\/sip:138\*\*\*\*5678@127\.0\.0\.1:5099\)/);
  t.notMatch(third!.err.stack, /13812345678/, 'the stack too');
  t.match(fourth!.msg, /callback to \+441\*+7890 and 089\*-\*{4}-3456 failed; caller 138\*\*\*\*5678/);
});

t.test('ids, timestamps, sizes and dates are left alone; the line stays valid JSON', async (t) => {
  const { log, json } = capture();
  const id = '3f1a2b4c-1111-4222-8333-138123456789';
  const digitsId = '12345678-0898-4612-8456-013812345678';
  log.info({ callId: id, recordingId: digitsId, sizeBytes: 13812345678, at: '2026-01-01T08:00:00.000Z', from: '2026-01-01', to: '2026-01-02', seq: 13812345678, hash: 'ab13812345678cd' }, 'kept');
  const [line] = json();
  t.equal(line!.callId, id);
  t.equal(line!.recordingId, digitsId, 'a uuid of digits');
  t.equal(line!.sizeBytes, 13812345678, 'a number outside number fields');
  t.equal(line!.seq, 13812345678);
  t.equal(line!.from, '2026-01-01');
  t.equal(line!.to, '2026-01-02', 'a date in a field named like a number');
  t.equal(line!.hash, 'ab13812345678cd', 'inside a longer token');
  t.equal(maskLogLine('{"caller":"anonymous","number":"12345"}'), '{"caller":"anonymous","number":"12345"}');
});

t.test('secrets are still redacted', async (t) => {
  const { log, text } = capture();
  log.info({ password: 'pw-secret-1', body: { password: 'pw-secret-2', sipPassword: 'sip-secret' }, token: 'tok-secret' }, 'x');
  const out = text();
  for (const s of ['pw-secret-1', 'pw-secret-2', 'sip-secret', 'tok-secret']) t.notMatch(out, s);
});

t.test('the HTTP app logs through the same logger: request URLs with numbers are masked', async (t) => {
  const { log, text } = capture();
  const unused = new Proxy({}, { get: () => () => undefined });
  const app = await buildApp({
    log,
    auth: { authenticate: async () => { throw new Error('no'); } },
    readiness: async () => ({ ari: true, redis: true, postgres: true }),
    metrics: () => '',
    events: { subscribe: () => () => undefined },
    ...Object.fromEntries(['db', 'engine', 'agentStates', 'desk', 'breaks', 'loginLimiter', 'agents', 'queues', 'queueStats', 'recordings', 'maintenance', 'ivr', 'sms', 'calls', 'clickToCall', 'audit', 'recordingsService', 'liveView'].map((k) => [k, unused])),
  } as never);
  t.teardown(() => app.close());
  await app.inject({ method: 'GET', url: `/api/v1/calls?caller=${MOBILE}` });
  await app.inject({ method: 'DELETE', url: `/api/v1/lists/black/entries/${MOBILE}` });
  await app.inject({ method: 'GET', url: `/api/v1/recordings?caller=${encodeURIComponent(`+86${MOBILE}`)}&line=${encodeURIComponent(' 0898 6612 3456')}` });
  const out = text();
  t.match(out, /138\*\*\*\*5678/, 'the request was logged');
  t.notMatch(out, /13812345678/, 'never whole');
  t.notMatch(out, /66123456|6612%203456/, 'nor URL-escaped');
  t.match(out, /caller=%2B861\*{6}5678/, 'masked after a URL escape');
  t.match(out, /line=%20089\*%20\*{4}%203456/, 'URL-escaped blanks stay escapes');
});

t.test('a burst of lines is masked fast enough for the call path', async (t) => {
  const { log, lines } = capture();
  const started = process.hrtime.bigint();
  for (let i = 0; i < 5000; i++) log.info({ callId: '3f1a2b4c-1111-4222-8333-000000000000', caller: MOBILE, state: 'ringing', agentId: '8001' }, 'call state');
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.equal(lines.length, 5000);
  t.ok(ms < 2000, `5000 lines in ${ms.toFixed(0)} ms`);
});
