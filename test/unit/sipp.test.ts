/**
 * The SIPp wrapper (test/sipp/sipp.ts) and its scenarios, SIPp against SIPp on 127.0.0.1: no Asterisk.
 * Needs `sipp` (Debian package sip-tester, 3.6.1) and, for the DTMF (play_dtmf sends through a raw
 * socket), root or CAP_NET_RAW.
 */
import t from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  parseSippLog,
  parseStatCsv,
  renderScenario,
  runSipp,
  SippNotFoundError,
  SippScenarioError,
  SippStartError,
  sippDurationMs,
  startSipp,
  templateVariables,
} from '../sipp/sipp.js';

const tmp = await mkdtemp(path.join(tmpdir(), 'sipp-unit-'));

/** A UDP socket standing in for the agent phone's RTP port: decodes RFC 4733 events (payload type 96). */
async function rtpSink(): Promise<{ port: number; digits: () => string; packets: () => number; close: () => void }> {
  const socket: Socket = createSocket('udp4');
  const events: Array<{ ts: number; event: number }> = [];
  let packets = 0;
  socket.on('message', (m) => {
    packets++;
    if (m.length < 16 || (m[1]! & 0x7f) !== 96) return;
    const ts = m.readUInt32BE(4);
    if (!events.some((e) => e.ts === ts)) events.push({ ts, event: m[12]! });
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    digits: () => events.map((e) => '0123456789*#ABCD'[e.event] ?? '?').join(''),
    packets: () => packets,
    close: () => socket.close(),
  };
}

t.test('scenario templates: @var defaults, {{name}} values, the rest to -key/-set, typos refused', async (t) => {
  const xml = [
    '<!--',
    '  @var talk_ms  6000   how long',
    '  @var empty    ""     nothing',
    '-->',
    '<scenario name="x"><Global variables="g1, g2"/>',
    '<pause milliseconds="{{talk_ms}}"/><send><![CDATA[X [k] {{empty}}|{{pcap_dir}}]]></send></scenario>',
  ].join('\n');
  t.same(templateVariables(xml).map((v) => [v.name, v.default]), [['talk_ms', '6000'], ['empty', '']]);
  const plain = renderScenario(xml, '/s/x.xml');
  t.match(plain.xml, /milliseconds="6000"/, 'the default');
  t.match(plain.xml, /X \[k\] \|\/usr\/share\/sip-tester/, 'empty default and the built-in pcap_dir');
  t.same(plain.args, []);
  const given = renderScenario(xml, '/s/x.xml', { talk_ms: '1500', k: 'kv', g2: 'gv' });
  t.match(given.xml, /milliseconds="1500"/, 'a var overrides the default');
  t.same(given.args, ['-key', 'k', 'kv', '-set', 'g2', 'gv'], '[k] goes to -key, a Global to -set');
  t.throws(() => renderScenario(xml, '/s/x.xml', { talkms: '1' }), SippScenarioError, 'a typo is refused');
  t.throws(() => renderScenario(xml, '/s/x.xml', { talk_ms: '1"/><x' }), SippScenarioError, 'XML in a value is refused');
  t.throws(() => renderScenario('<x a="{{nope}}"/>', '/s/x.xml'), /no value for \{\{nope\}\}/, 'a placeholder without a value');
});

t.test('the stat CSV and logs: last complete row, rtds, counters, durations', async (t) => {
  t.equal(sippDurationMs('00:00:06:321000'), 6321);
  t.equal(sippDurationMs('01:02:03:000500'), 3_723_000.5);
  const header =
    'StartTime;TotalCallCreated;CurrentCall;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);' +
    'ResponseTimeanswer(P);ResponseTimeanswer(C);ResponseTimeanswerStDev(P);ResponseTimeanswerStDev(C);' +
    'CallLength(P);CallLength(C);CallLengthStDev(P);CallLengthStDev(C);answered(P);answered(C);' +
    'ResponseTimeRepartitionanswer;ResponseTimeRepartitionanswer_<100;CallLengthRepartition;CallLengthRepartition_<1000;';
  const row = (created: number, ok: number) =>
    `2026-01-01\t00:00:00.0\t1.0;${created};0;0;${ok};0;1;00:00:00:000000;00:00:00:308000;0;0;0;00:00:02:816000;0;0;0;${ok};;1;;0;`;
  const s = parseStatCsv([header, row(0, 0), row(2, 2), 'truncated;row'].join('\n'));
  t.equal(s.attempted, 2);
  t.equal(s.succeeded, 2);
  t.equal(s.failed, 1);
  t.equal(s.openCalls, 0);
  t.same(s.responseTimeMs, { answer: { avg: 308 } });
  t.same(s.callLengthMs, { avg: 2816 });
  t.same(s.counters, { answered: 2 });
  t.same(
    parseSippLog('The following events occurred:\n2026-11-29\t03:13:38.05\t1795922018.05: first2026-11-29\t03:13:39.05\t1795922019.05: second\nline two\n'),
    ['first', 'second\nline two'],
    'SIPp does not always end an entry with a newline',
  );
});

t.test('given SIPP_BIN points at a missing file, then SippNotFoundError naming sip-tester', async (t) => {
  const saved = process.env.SIPP_BIN;
  process.env.SIPP_BIN = path.join(tmp, 'no-such-sipp');
  t.teardown(() => {
    if (saved === undefined) delete process.env.SIPP_BIN;
    else process.env.SIPP_BIN = saved;
  });
  await t.rejects(runSipp({ scenario: 'caller-dtmf', remote: '127.0.0.1:5999' }), SippNotFoundError);
  await t.rejects(startSipp({ scenario: 'agent-answer' }), { name: 'SippNotFoundError', message: /sip-tester/ });
});

t.test('given a scenario with broken XML, then SippScenarioError with SIPp own reason', async (t) => {
  const file = path.join(tmp, 'broken.xml');
  await writeFile(
    file,
    '<?xml version="1.0"?>\n<scenario name="broken">\n  <send><![CDATA[\n    OPTIONS sip:x@[remote_ip] SIP/2.0\n  ]]></send>\n  <recv response="200">\n</scenario>\n',
  );
  const err = await runSipp({ scenario: file, remote: '127.0.0.1:5999' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, SippScenarioError);
  const e = err as SippScenarioError;
  t.match(e.reason, /Unexpected <\/scenario> \(expected <\/recv>\)/, "SIPp's reason");
  t.match(e.message, /Invalid XML in scenario/);
  t.equal(e.exitCode, 1, 'SIPp exits 1 when it refuses a scenario');
  await t.rejects(startSipp({ scenario: file }), SippScenarioError, 'startSipp too');
  await t.rejects(runSipp({ scenario: 'no-such-scenario' }), SippScenarioError, 'a missing scenario file');
});

t.test('given the SIP port is taken, then startSipp rejects with SippStartError (exit 254)', async (t) => {
  const squatter = createSocket('udp4');
  await new Promise<void>((resolve) => squatter.bind(0, '127.0.0.1', resolve));
  t.teardown(() => squatter.close());
  await t.rejects(startSipp({ scenario: 'agent-answer', localPort: squatter.address().port }), {
    name: 'SippStartError',
    exitCode: 254,
    reason: /Address already in use/,
  });
});

t.test('given an agent-answer UAS, when caller-dtmf calls it and presses 5#, then one clean call on both sides and the digits in RTP', async (t) => {
  const sink = await rtpSink();
  t.teardown(() => sink.close());
  // The agent offers the sink's port in its SDP, so the caller's DTMF lands where the test can read it.
  const agent = await startSipp({ scenario: 'agent-answer', vars: { ring_ms: '300', rtp_port: String(sink.port) }, timeoutSeconds: 30 });
  const call = await runSipp({
    scenario: 'caller-dtmf',
    remote: `127.0.0.1:${agent.localPort}`,
    service: '12345',
    callerNumber: '13912345678',
    vars: { digit: '5#', welcome_ms: '200', talk_ms: '1500' },
    timeoutSeconds: 30,
  });
  const answered = await agent.stop();

  t.equal(call.exitCode, 0, `caller exit 0 (errors: ${call.errors.join(' | ')}; ${call.artefactsDir})`);
  t.equal(call.attempted, 1, 'caller: 1 attempted');
  t.equal(call.succeeded, 1, 'caller: 1 succeeded');
  t.equal(call.failed, 0, 'caller: 0 failed');
  t.ok(call.callLengthMs.avg > 1700, `call length ${call.callLengthMs.avg} ms > welcome + talk`);
  t.ok(call.responseTimeMs.answer && call.responseTimeMs.answer.avg >= 300, `answered after ${call.responseTimeMs.answer?.avg} ms of ringing`);
  t.ok(call.mediaPort >= 40000 && call.mediaPort % 2 === 0, `media port ${call.mediaPort}: even, >= 40000`);

  t.equal(answered.exitCode, 0, `agent exit 0 (${answered.artefactsDir})`);
  t.equal(answered.attempted, 1, 'agent: 1 attempted');
  t.equal(answered.succeeded, 1, 'agent: 1 succeeded');
  t.equal(answered.failed, 0, 'agent: 0 failed');

  t.equal(sink.digits(), '5#', `RFC 4733 events 5 then # reached the agent's RTP port (${sink.packets()} packets)`);
  const received = await readFile(path.join(agent.artefactsDir, 'messages.log'), 'utf8');
  t.match(received, /^INVITE sip:12345@127\.0\.0\.1:\d+ SIP\/2\.0\r?\n/m, 'the dialled number in the Request-URI');
  t.match(received, /^From: "13912345678" <sip:13912345678@/m, 'the caller number in From');
});

t.test('given agent-ring-no-answer, when caller-abandon gives up, then CANCEL/487 ends it cleanly on both sides', async (t) => {
  const agent = await startSipp({ scenario: 'agent-ring-no-answer', timeoutSeconds: 30 });
  const call = await runSipp({ scenario: 'caller-abandon', remote: `127.0.0.1:${agent.localPort}`, service: '12345', vars: { hold_ms: '1000' }, timeoutSeconds: 30 });
  const rang = await agent.stop();

  t.equal(call.exitCode, 0, `caller exit 0 (${call.artefactsDir})`);
  t.equal(call.attempted, 1);
  t.equal(call.succeeded, 1, 'an abandon that ends with CANCEL, 200, 487, ACK is a successful call');
  t.equal(call.failed, 0);
  t.same(call.counters, { answered: 0, cancelled: 1 }, 'the CANCEL way');
  t.ok(call.callLengthMs.avg >= 1000, `held ${call.callLengthMs.avg} ms`);
  t.equal(rang.succeeded, 1, 'agent: the ringing phone was cancelled cleanly');
  t.equal(rang.failed, 0);
  const messages = await readFile(path.join(rang.artefactsDir, 'messages.log'), 'utf8');
  t.match(messages, /^CANCEL sip:12345@/m, 'the agent got the CANCEL');
});

t.test('given an agent that answers, when caller-abandon holds, then it hangs up with BYE', async (t) => {
  const agent = await startSipp({ scenario: 'agent-answer', vars: { ring_ms: '100' }, timeoutSeconds: 30 });
  const call = await runSipp({ scenario: 'caller-abandon', remote: `127.0.0.1:${agent.localPort}`, service: '12345', vars: { welcome_ms: '100', hold_ms: '500' }, timeoutSeconds: 30 });
  const answered = await agent.stop();
  t.equal(call.succeeded, 1, `caller succeeded (${call.artefactsDir})`);
  t.same(call.counters, { answered: 1, cancelled: 0 }, 'the BYE way');
  t.equal(answered.succeeded, 1, 'agent succeeded');
});

t.test('given agent-answer-hangup, when caller-dtmf-wait-bye calls, then the agent hangs up and both sides succeed', async (t) => {
  const agent = await startSipp({ scenario: 'agent-answer-hangup', vars: { ring_ms: '100', talk_ms: '1500' }, timeoutSeconds: 30 });
  const call = await runSipp({ scenario: 'caller-dtmf-wait-bye', remote: `127.0.0.1:${agent.localPort}`, service: '12345', vars: { welcome_ms: '200', bye_timeout_ms: '5000' }, timeoutSeconds: 30 });
  const hungUp = await agent.stop();
  t.equal(call.succeeded, 1, `caller succeeded (${call.errors.join(' | ')}; ${call.artefactsDir})`);
  t.equal(call.failed, 0);
  t.equal(hungUp.succeeded, 1, `agent succeeded (${hungUp.artefactsDir})`);
  t.equal(hungUp.failed, 0);
  t.match(await readFile(path.join(call.artefactsDir, 'messages.log'), 'utf8'), /^BYE sip:13800138000@/m, 'the BYE came from the agent');
});

t.test('given agent-answer with calls: 3, when three callers come one after another, then it takes all three', async (t) => {
  const agent = await startSipp({ scenario: 'agent-answer', calls: 3, vars: { ring_ms: '50' }, timeoutSeconds: 30 });
  const calls = await runSipp({ scenario: 'caller-dtmf', remote: `127.0.0.1:${agent.localPort}`, calls: 3, rate: 5, vars: { welcome_ms: '100', talk_ms: '300' }, timeoutSeconds: 30 });
  const answered = await agent.result; // -m 3: it exits by itself after the third call
  t.equal(calls.succeeded, 3, `callers: 3 succeeded (${calls.artefactsDir})`);
  t.equal(answered.attempted, 3);
  t.equal(answered.succeeded, 3, 'agent: 3 succeeded');
  t.equal(answered.exitCode, 0);
});

t.test('given the far end sends UPDATE and a re-INVITE mid-call (connected line), then the caller answers them and still succeeds', async (t) => {
  const file = path.join(tmp, 'uas-reinvite.xml');
  const response = (extra: string) => `<send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]${extra}
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:agent@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8

]]></send>`;
  const request = (method: string, cseq: number, sdp: boolean) => `<send retrans="500"><![CDATA[

${method} [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$local_party];tag=[pid]SIPpTag01[call_number]
To: [$remote_party]
Call-ID: [call_id]
CSeq: ${cseq} ${method}
Contact: <sip:agent@[local_ip]:[local_port]>
${sdp ? 'Content-Type: application/sdp\nContent-Length: [len]\n\nv=0\no=- 1 2 IN IP4 [local_ip]\ns=-\nc=IN IP4 [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 8\n' : 'Content-Length: 0\n'}
]]></send>`;
  await writeFile(
    file,
    `<?xml version="1.0"?>
<scenario name="uas-reinvite">
  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp="[^ \\t].*" search_in="hdr" header="From:" assign_to="remote_party"/>
      <ereg regexp="[^ \\t].*" search_in="hdr" header="To:" assign_to="local_party"/>
    </action>
  </recv>
  ${response(';tag=[pid]SIPpTag01[call_number]')}
  <recv request="ACK"/>
  <pause milliseconds="200"/>
  ${request('UPDATE', 1, false)}
  <recv response="200"/>
  ${request('INVITE', 2, true)}
  <recv response="200"/>
  ${request('ACK', 2, false).replace('retrans="500"', '')}
  <recv request="BYE"/>
  ${response('').replace(/Content-Type[\s\S]*?\]\]>/, 'Content-Length: 0\n\n]]>')}
</scenario>
`,
  );
  const agent = await startSipp({ scenario: file, timeoutSeconds: 30 });
  const call = await runSipp({ scenario: 'caller-dtmf', remote: `127.0.0.1:${agent.localPort}`, vars: { welcome_ms: '100', talk_ms: '1000' }, timeoutSeconds: 30 });
  const far = await agent.stop();
  t.equal(call.succeeded, 1, `caller succeeded (${call.errors.join(' | ')}; ${call.artefactsDir})`);
  t.equal(far.succeeded, 1, `far end succeeded (${far.errors.join(' | ')}; ${far.artefactsDir})`);
  t.ok(call.errors.some((e) => /Automatic response mode .* UPDATE/.test(e)), 'the UPDATE was answered by -aa');
});

t.test('native SIPp variables: [key] through -key and a Global through -set', async (t) => {
  const file = path.join(tmp, 'native.xml');
  await writeFile(
    file,
    `<?xml version="1.0"?>
<scenario name="native">
  <Global variables="subject"/>
  <send><![CDATA[

      OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[who]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Subject: [$subject]
      Content-Length: 0

  ]]></send>
</scenario>
`,
  );
  const sink = await rtpSink(); // just somewhere to send the OPTIONS
  t.teardown(() => sink.close());
  const r = await runSipp({ scenario: file, remote: `127.0.0.1:${sink.port}`, vars: { who: 'alice', subject: 'hello' } });
  t.equal(r.succeeded, 1);
  const sent = await readFile(path.join(r.artefactsDir, 'messages.log'), 'utf8');
  t.match(sent, /From: <sip:alice@/);
  t.match(sent, /Subject: hello/);
});

t.test('given a caller stuck in a ringing call, when its global timeout passes, then the wrapper ends SIPp and says so', async (t) => {
  const agent = await startSipp({ scenario: 'agent-ring-no-answer', timeoutSeconds: 30 });
  const call = await runSipp({ scenario: 'caller-dtmf', remote: `127.0.0.1:${agent.localPort}`, timeoutSeconds: 1 });
  const rang = await agent.stop(500);
  t.equal(call.exitCode, 97, 'SIPp: global timeout with no successful call');
  t.ok(call.timedOut, 'timedOut');
  t.equal(call.attempted, 1);
  t.equal(call.succeeded + call.failed, 0, 'neither succeeded nor failed');
  t.equal(call.openCalls, 1, 'one call still open');
  t.ok(call.durationMs < 6000, `ended after ${call.durationMs} ms (timeout 1 s + 2 s grace, then SIGTERM)`);
  t.equal(rang.openCalls, 1, 'the agent was stopped mid-ring');
});
