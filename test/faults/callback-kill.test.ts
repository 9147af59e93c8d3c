/**
 * Fault suite (npm run test:faults), issue 9: "a worker killed while placing a callback: the citizen is not
 * called twice". The service as a process of its own (one deployment: the same Redis prefix every start),
 * a closed ticket through the signed webhook owes a callback, the citizen's phone is a SIPp UAS behind the
 * trunk (CALLBACK_DIAL at 127.0.0.1:5471, scenario citizen-ring-answer) whose SIP log tells every INVITE
 * it received and when each call ended.
 *  A. kill -9 while the citizen's phone rings; start again: the ringing channel is cleaned up, the dead
 *     process's attempt ends on record (interrupted), the next attempt is a new number, the phone never had
 *     two calls at once and got exactly one INVITE per attempt on record; the callback ends done.
 *  B. kill -9 after the citizen answered (during the closure summary / survey); start again: the callback
 *     is done, the phone gets no further INVITE for several retry + sweep periods, the citizen's channel is
 *     hung up by the restarted process and the call record is closed.
 * Each ends with the invariants: no open call record for the number, nothing left in Asterisk, no
 * unhandled rejection in the service's log, every attempt row of the callback in an end state.
 *
 * The lease of an attempt is CALLBACK_RING_SECONDS + 300 s (src/callbacks/ticket-callbacks.ts), but the sweep
 * takes a dead process's attempt back as soon as the process that took Asterisk over closed its call as lost
 * (the channel is hung up then): scenario A checks it happens long before the lease would run out.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startSipp, type SippProcess, type SippResult } from '../sipp/sipp.js';
import { dtmfPcap } from '../sipp/caller-script.js';
import { ARI, ariBridges, ariChannels, resetAri, waitFor } from '../helpers/stack.js';
import { deploymentEnv, spawnService, type ServiceProcess } from '../helpers/service-process.js';
import { logMark, settledLog } from '../helpers/faults.js';
import { createDb } from '../../src/db/db.js';

const SECRET = 'fault-callback-kill-secret-0123456789';
const CITIZEN_PORT = 5471;
const RING_SECONDS = 25; // CALLBACK_RING_SECONDS: longer than the phone's ring in A
const RETRY_SECONDS = 3;
const SWEEP_SECONDS = 1;

await resetAri();
const env = await deploymentEnv({
  TICKET_WEBHOOK_SECRET: SECRET,
  CALLBACK_HOURS: '00:00-24:00',
  CALLBACK_SWEEP_SECONDS: String(SWEEP_SECONDS),
  CALLBACK_RETRY_SECONDS: String(RETRY_SECONDS),
  CALLBACK_RING_SECONDS: String(RING_SECONDS),
  CALLBACK_DEADLINE_SECONDS: '600',
  CALLBACK_OVERDUE_ALERT_SECONDS: '0',
  CALLBACK_DIAL: `PJSIP/callers/sip:{number}@127.0.0.1:${CITIZEN_PORT}`,
  LOG_LEVEL: 'info',
});
const db = createDb(env.DATABASE_URL!);
const NAME = 'callback-kill';
const logFile = `/tmp/hotline-fault-${NAME}.log`;
const logStart = logMark(logFile);
const serviceLog = () => readFileSync(logFile, 'utf8').slice(logStart);

let svc: ServiceProcess = await spawnService(NAME, env);
const phones: SippProcess[] = [];
t.teardown(async () => {
  await svc.stop().catch(() => undefined);
  for (const p of phones) await p.stop(1000).catch(() => undefined);
  await db.destroy();
});
const tag = String(Date.now()).slice(-5);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// the key the citizen presses (1: satisfied), an RFC 4733 pcap
const keyDir = mkdtempSync(path.join(tmpdir(), 'hotline-callback-kill-'));
const key1 = path.join(keyDir, 'key-1.pcap');
writeFileSync(key1, dtmfPcap('1', 0));

async function citizenPhone(label: string, vars: { ring_ms: number; key_after_ms: number }): Promise<SippProcess> {
  const p = await startSipp({
    scenario: 'citizen-ring-answer',
    localPort: CITIZEN_PORT,
    calls: 10,
    timeoutSeconds: 150,
    label,
    vars: { ring_ms: String(vars.ring_ms), key_after_ms: String(vars.key_after_ms), key_pcap: key1, hold_ms: '40000' },
  });
  phones.push(p);
  return p;
}

async function closeTicket(number: string): Promise<string> {
  const ticketId = `T-KILL-${tag}-${randomUUID().slice(0, 6)}`;
  const body = JSON.stringify({ eventId: randomUUID(), ticketId, type: 'closed', at: new Date().toISOString(), callerNumber: number, summary: 'street lamp repaired' });
  const res = await fetch(`${svc.url}/api/v1/tickets/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-signature': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}` },
    body,
  });
  if (res.status >= 300) throw new Error(`webhook: ${res.status} ${await res.text()}`);
  return ticketId;
}

const callbackOf = (ticketId: string) => db.selectFrom('callbacks').selectAll().where('ticket_id', '=', ticketId).executeTakeFirst();
const attemptsOf = (callbackId: string) => db.selectFrom('callback_attempts').selectAll().where('callback_id', '=', callbackId).orderBy('attempt').execute();
const callsOf = (number: string) => db.selectFrom('calls').selectAll().where('caller', '=', number).orderBy('arrived_at').execute();

async function ariChannelsFull(): Promise<Array<{ id: string; name: string; state: string }>> {
  const res = await fetch(`${ARI.url}/ari/channels`, { headers: { authorization: `Basic ${Buffer.from(`${ARI.user}:${ARI.password}`).toString('base64')}` }, signal: AbortSignal.timeout(5000) });
  return (await res.json()) as Array<{ id: string; name: string; state: string }>;
}

// ---- the phone's SIP log (SIPp -trace_msg) ------------------------------------------------------------
interface SipMessage {
  at: number;
  received: boolean;
  firstLine: string;
  callId: string;
  toTag: boolean;
  requestUser: string | null;
}
function sipMessages(artefactsDir: string): SipMessage[] {
  const text = readFileSync(path.join(artefactsDir, 'messages.log'), 'utf8');
  const out: SipMessage[] = [];
  for (const part of text.split(/^-{20,} (?=\d{4}-\d{2}-\d{2} )/m)) {
    const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}\.\d+)\n(UDP message (received|sent)[^\n]*)\n\n([\s\S]*)$/.exec(part);
    if (!m) continue;
    const msg = m[5]!;
    const firstLine = msg.split(/\r?\n/)[0]!.trim();
    const callId = /^(?:Call-ID|i):\s*(.+)$/im.exec(msg)?.[1]?.trim() ?? '';
    const to = /^(?:To|t):\s*(.+)$/im.exec(msg)?.[1] ?? '';
    out.push({
      at: Date.parse(`${m[1]}T${m[2]!.slice(0, 12)}`) /* SIPp logs local time */,
      received: m[4] === 'received',
      firstLine,
      callId,
      toTag: /;\s*tag=/i.test(to),
      requestUser: /^[A-Z]+ sip:([^@;>\s]+)@/.exec(firstLine)?.[1] ?? null,
    });
  }
  return out;
}
interface PhoneCall {
  callId: string;
  number: string;
  start: number;
  end: number;
  cancelled: boolean;
  answered: boolean;
  byeReceived: boolean;
}
/** every call the phone took (one per initial INVITE received), from its first INVITE to its last message */
function phoneCalls(artefactsDir: string): PhoneCall[] {
  const msgs = sipMessages(artefactsDir);
  const calls = new Map<string, PhoneCall>();
  for (const m of msgs) {
    if (m.received && m.firstLine.startsWith('INVITE ') && !m.toTag && !calls.has(m.callId)) {
      calls.set(m.callId, { callId: m.callId, number: m.requestUser ?? '', start: m.at, end: m.at, cancelled: false, answered: false, byeReceived: false });
    }
    const c = calls.get(m.callId);
    if (!c) continue;
    c.end = Math.max(c.end, m.at);
    if (m.received && m.firstLine.startsWith('CANCEL ')) c.cancelled = true;
    if (m.received && m.firstLine.startsWith('BYE ')) c.byeReceived = true;
    if (!m.received && m.firstLine.startsWith('SIP/2.0 200') && !c.cancelled && !c.answered) c.answered = true;
  }
  return [...calls.values()].sort((a, b) => a.start - b.start);
}
/** the most calls the phone had at the same moment */
function maxConcurrent(calls: PhoneCall[]): number {
  const edges = calls.flatMap((c) => [{ at: c.start, d: 1 }, { at: c.end, d: -1 }]).sort((a, b) => a.at - b.at || a.d - b.d);
  let now = 0;
  let max = 0;
  for (const e of edges) max = Math.max(max, (now += e.d));
  return max;
}

/** the invariants every scenario ends with */
async function invariants(t: Test, number: string, callbackId: string): Promise<void> {
  const rows = await waitFor(async () => {
    const r = await callsOf(number);
    return r.length > 0 && r.every((x) => x.ended_at) ? r : undefined;
  }, 30_000, `closed records for ${number}`).catch(() => callsOf(number));
  t.equal(rows.filter((r) => !r.ended_at).length, 0, `no call record for the citizen's number stays open (${rows.length} records)`);
  const left = await waitFor(async () => {
    const ch = await ariChannels();
    const br = (await ariBridges()).filter((b) => b.channels.length > 0 || b.id.startsWith('call-'));
    return ch.length === 0 && br.length === 0 ? true : undefined;
  }, 20_000, 'Asterisk empty').catch(async () => ({ channels: await ariChannels(), bridges: await ariBridges() }));
  t.equal(left, true, `nothing left behind in Asterisk${left === true ? '' : `: ${JSON.stringify(left)}`}`);
  t.notOk(/unhandled rejection/i.test(await settledLog(logFile, logStart)), 'no unhandled rejection in the service log');
  const attempts = await attemptsOf(callbackId);
  const open = attempts.filter((a) => !a.ended_at || !a.outcome);
  t.same(
    open.map((a) => ({ attempt: a.attempt, outcome: a.outcome, answered_at: a.answered_at, ended_at: a.ended_at })),
    [],
    `every attempt row of the callback is in an end state (${attempts.map((a) => `${a.attempt}:${a.outcome ?? 'open'}`).join(', ')})`,
  );
}

t.test('A. kill -9 while the citizen\'s phone rings: the ringing channel is cleaned up, the attempt ends on record, the next one is a new attempt; never two calls at once', async (t) => {
  // rings 15 s (the kill and the restart fit in it), then answers and presses 1 three seconds later
  const phone = await citizenPhone('citizen-kill-ringing', { ring_ms: 15_000, key_after_ms: 3000 });
  const number = `1397${tag}01`;
  const ticketId = await closeTicket(number);
  const cb0 = await waitFor(() => callbackOf(ticketId), 5000, 'the callback row');
  const first = await waitFor(async () => (await callsOf(number))[0], 15_000, 'the first attempt\'s call record');
  const ringing = await waitFor(async () => (await ariChannelsFull()).find((c) => c.id === first.channel_id && c.state === 'Ringing'), 15_000, 'the citizen\'s phone ringing');
  t.ok(ringing, `the citizen's phone rings (${ringing.id})`);
  const claimed = await callbackOf(ticketId);
  t.match(claimed, { status: 'dialing', attempts: 1 }, 'attempt 1 claimed');

  const killedAt = Date.now();
  await svc.kill9();
  await sleep(500);
  t.ok((await ariChannels()).some((c) => c.id === first.channel_id), 'with no process at all the phone still rings');
  svc = await spawnService(NAME, env);
  const restartedMs = Date.now() - killedAt;
  await waitFor(async () => ((await ariChannels()).some((c) => c.id === first.channel_id) ? undefined : true), 15_000, 'the ringing channel hung up');
  t.pass(`the restarted process hung up the ringing channel (${Date.now() - killedAt} ms after the kill, ready after ${restartedMs} ms)`);
  const firstRecord = await waitFor(async () => {
    const r = await db.selectFrom('calls').selectAll().where('id', '=', first.id).executeTakeFirst();
    return r?.ended_at ? r : undefined;
  }, 10_000, 'the first attempt\'s call record closed');
  t.match(firstRecord, { direction: 'outbound', answered_at: null }, `the first attempt's call record is closed (${firstRecord.disposition}/${firstRecord.end_reason})`);

  // the restarted process hung the ringing channel up and closed its call as lost: the sweep takes the attempt
  // back at once (it does not wait for the dead process's lease, ring + 300 s), and only then dials again
  // the lease as the dead process left it (read before the kill: the sweep clears it once it takes the attempt back)
  const leaseAtKill = claimed?.lease_until;
  const a1 = await waitFor(async () => {
    const a = (await attemptsOf(cb0.id))[0];
    return a?.ended_at && a.outcome ? { ...a, ended_at: a.ended_at } : undefined;
  }, 15_000, 'attempt 1 taken back by the sweep');
  t.ok(leaseAtKill && a1.ended_at < leaseAtKill, `taken back before the dead process's lease would have run out (${a1.ended_at.toISOString()} < ${leaseAtKill?.toISOString()})`);
  const second = (await callsOf(number))[1];
  if (second) t.ok(second.arrived_at >= a1.ended_at, 'the next attempt began only after the first one ended');
  t.match(a1, { attempt: 1, outcome: 'interrupted', answered_at: null }, 'the attempt the dead process made is on record, interrupted');

  const done = await waitFor(async () => {
    const c = await callbackOf(ticketId);
    return c?.status === 'done' && c.survey_score !== null ? c : c?.status === 'failed' ? c : undefined;
  }, 60_000, 'the callback done (the citizen answered the next attempt and pressed 1)');
  t.match(done, { status: 'done', last_outcome: 'answered', survey_score: 1 }, 'the callback is done: answered, score 1');
  await sleep(2 * RETRY_SECONDS * 1000 + 2 * SWEEP_SECONDS * 1000); // a few more sweeps and retry periods: nothing more
  const after = await callbackOf(ticketId);
  t.match(after, { status: 'done', attempts: done.attempts }, 'one end state, kept');
  const attempts = await attemptsOf(cb0.id);
  t.same(attempts.map((a) => a.attempt), attempts.map((_, i) => i + 1), `attempts 1..n, each a new number (${attempts.length})`);
  t.equal(new Set(attempts.map((a) => a.idempotency_key)).size, attempts.length, 'each attempt its own key');
  t.equal(new Set(attempts.map((a) => a.call_id)).size, attempts.length, 'each attempt its own call');
  t.equal(attempts.at(-1)?.outcome, 'answered', 'the last attempt was answered');
  t.equal(after!.attempts, attempts.length, 'the callback counts the attempts on record');

  const far: SippResult = await phone.stop(2000);
  const calls = phoneCalls(far.artefactsDir).filter((c) => c.number === number);
  t.equal(calls.length, attempts.length, `the phone received one INVITE per attempt on record (${calls.length} INVITEs, ${attempts.length} attempts)`);
  t.equal(far.attempted, calls.length, "SIPp's count of calls agrees with its SIP log");
  t.equal(maxConcurrent(calls), 1, 'the phone never had two calls at the same time');
  t.ok(calls[0]?.cancelled && !calls[0].answered, 'the first call was cancelled while it rang (never answered)');
  t.ok(calls.at(-1)?.answered, 'the last call was answered');
  t.equal((await callsOf(number)).length, attempts.length, 'one call record per attempt');
  await invariants(t, number, cb0.id);
});

t.test('B. kill -9 after the citizen answered (summary / survey): done, never called again, the channel hung up by the restarted process, the record closed', async (t) => {
  // answers after 1 s and presses nothing: the summary, then the survey question waiting for a key
  const phone = await citizenPhone('citizen-kill-answered', { ring_ms: 1000, key_after_ms: 120_000 });
  const number = `1397${tag}02`;
  const ticketId = await closeTicket(number);
  const cb = await waitFor(async () => {
    const c = await callbackOf(ticketId);
    return c?.status === 'done' ? c : undefined;
  }, 20_000, 'the callback done at the answer');
  t.match(cb, { status: 'done', attempts: 1, last_outcome: 'answered' }, 'done as soon as the citizen answered');
  const call = (await callsOf(number))[0]!;
  t.ok(call.answered_at, 'the call record shows the answer');
  await sleep(1500); // the closure summary is playing
  t.ok((await ariChannels()).some((c) => c.id === call.channel_id), 'the citizen is on the line (summary / survey) at the kill');
  const killedAt = Date.now();
  await svc.kill9();
  const restartLogFrom = serviceLog().length;
  svc = await spawnService(NAME, env);
  await waitFor(async () => ((await ariChannels()).some((c) => c.id === call.channel_id) ? undefined : true), 15_000, "the citizen's channel hung up");
  t.pass(`the citizen's channel is gone ${Date.now() - killedAt} ms after the kill`);
  // the line is written just after the hangup (and reaches the file through a pipe): waited for
  const reconciled = await waitFor(() => serviceLog().slice(restartLogFrom).split('\n').some((l) => l.includes(call.id) && l.includes('closing a call its process left behind')), 5000, 'the reconciliation log line').catch(() => false);
  t.ok(reconciled, 'hung up by the restarted process (reconciliation: "closing a call its process left behind")');
  const record = await waitFor(async () => {
    const r = await db.selectFrom('calls').selectAll().where('id', '=', call.id).executeTakeFirst();
    return r?.ended_at ? r : undefined;
  }, 10_000, 'the call record closed');
  t.match(record, { disposition: 'answered' }, `the call record is closed (${record.disposition}/${record.end_reason})`);

  // watched for two retry periods and two sweeps, and more: the citizen is not called again
  const watchMs = 2 * RETRY_SECONDS * 1000 + 2 * SWEEP_SECONDS * 1000 + 4000;
  const until = Date.now() + watchMs;
  let extra = 0;
  while (Date.now() < until) {
    extra = Math.max(extra, (await callsOf(number)).length - 1);
    if ((await ariChannels()).some((c) => c.id.endsWith('-citizen'))) extra = Math.max(extra, 1);
    await sleep(250);
  }
  t.equal(extra, 0, `no further call to the citizen in ${watchMs} ms after the restart`);
  const after = await callbackOf(ticketId);
  t.match(after, { status: 'done', attempts: 1 }, 'still done, one attempt');

  const far = await phone.stop(2000);
  const calls = phoneCalls(far.artefactsDir).filter((c) => c.number === number);
  t.equal(calls.length, 1, 'the phone received exactly one INVITE');
  t.equal(far.attempted, 1, "SIPp's count agrees");
  t.ok(calls[0]?.answered && calls[0].byeReceived, 'answered, then hung up by the platform (BYE received)');
  t.ok(calls[0] && calls[0].end >= killedAt - 5000, 'the BYE came after the kill');
  const attempts = await attemptsOf(cb.id);
  t.equal(attempts.length, 1, 'one attempt on record');
  t.ok(attempts[0]?.answered_at, 'the attempt shows the answer');
  await invariants(t, number, cb.id);
});
