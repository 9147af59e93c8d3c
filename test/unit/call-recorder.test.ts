/**
 * CallRecorder (src/calls/call-recorder.ts) on the fake Asterisk, with index sinks that fail, hang or work: the
 * recording starts whatever PostgreSQL does; a row PostgreSQL did not take goes through startedLater (the record
 * outbox); a recording Asterisk may have started after all is not marked failed.
 */
import { pino } from 'pino';
import t from 'tap';
import { FakeAri } from '../../src/ari/fake.js';
import { AriConflict, AriGone, AriUnavailable, type RecordRequest } from '../../src/ari/port.js';
import { CallRecorder, type CallRecordingSink, type StartedRecording } from '../../src/calls/call-recorder.js';
import { AdoptedCall } from '../../src/calls/adopted-call.js';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Sink implements CallRecordingSink {
  straight: StartedRecording[] = [];
  queued: StartedRecording[] = [];
  failedNames: string[] = [];
  constructor(private readonly mode: 'ok' | 'down' | 'hang') {}
  started(r: StartedRecording): Promise<unknown> {
    this.straight.push(r);
    if (this.mode === 'down') return Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }));
    if (this.mode === 'hang') return new Promise(() => undefined);
    return Promise.resolve(r);
  }
  async startedLater(r: StartedRecording): Promise<unknown> {
    this.queued.push(r);
    return undefined;
  }
  async finished(): Promise<unknown> {
    return undefined;
  }
  async failed(name: string): Promise<unknown> {
    this.failedNames.push(name);
    return undefined;
  }
}

/** a caller connected to an agent, and its recorder started; the snoop enters Stasis as Asterisk would say */
function recording(sink: Sink, ari = new FakeAri()) {
  const caller = ari.callerArrives('13800138000', '12345');
  const callId = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
  const events: Array<[string, Record<string, unknown>]> = [];
  const recorder = new CallRecorder({ ari, sink, log, track: () => undefined, event: (type, data) => events.push([type, data]), indexTimeoutMs: 100 }, callId, 'inbound');
  const t0 = Date.now();
  recorder.start(caller.id);
  setImmediate(() => recorder.onSnoopStarted(recorder.snoopId));
  return { ari, recorder, events, callId, t0 };
}

async function until<T>(fn: () => T | undefined, ms = 2000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await sleep(5);
  }
}

const recordOf = (ari: FakeAri) => () => ari.ops('record')[0] as [string, RecordRequest] | undefined;

t.test('PostgreSQL refuses the index row: it goes through the outbox and the recording starts all the same', async (t) => {
  const sink = new Sink('down');
  const { ari, recorder, events, callId } = recording(sink);
  const [channel, req] = await until(recordOf(ari));
  t.equal(channel, recorder.snoopId, 'the snoop is recorded');
  t.equal(req.name, recorder.name);
  t.equal(sink.straight.length, 1, 'tried straight first');
  t.equal(sink.queued.length, 1, 'then through the outbox');
  t.match(sink.queued[0], { callId, name: recorder.name, callType: 'inbound' });
  t.same(sink.queued[0]!.startedAt, sink.straight[0]!.startedAt, 'the same row');
  await until(() => (events.length ? true : undefined));
  t.same(events, [['recording.started', { name: recorder.name, index: 'outbox' }]]);
  t.same(sink.failedNames, []);
});

t.test('PostgreSQL does not answer: the recording starts once the index wait is over, the row through the outbox', async (t) => {
  const sink = new Sink('hang');
  const { ari, t0 } = recording(sink);
  await until(recordOf(ari));
  const waited = Date.now() - t0;
  t.ok(waited >= 90 && waited < 1000, `recorded after the 100 ms index limit (${waited} ms)`);
  t.equal(sink.queued.length, 1);
});

t.test('PostgreSQL answers: the row is written straight, nothing through the outbox', async (t) => {
  const sink = new Sink('ok');
  const { ari, events, recorder } = recording(sink);
  await until(recordOf(ari));
  t.equal(sink.straight.length, 1);
  t.equal(sink.queued.length, 0);
  await until(() => (events.length ? true : undefined));
  t.same(events, [['recording.started', { name: recorder.name }]]);
});

t.test('Asterisk does not answer the record request: the row is left to RecordingFinished or the sweep, not failed', async (t) => {
  const ari = new FakeAri();
  ari.channels.record = async () => {
    throw new AriUnavailable('record: no answer from Asterisk within 5000 ms');
  };
  const sink = new Sink('ok');
  const { events } = recording(sink, ari);
  await until(() => (events.length ? true : undefined));
  t.equal(events[0]![0], 'recording.failed');
  await sleep(20);
  t.same(sink.failedNames, [], 'not marked failed: the recording may be running');
});

t.test('Asterisk refuses the record request: the row is failed at once', async (t) => {
  const ari = new FakeAri();
  const sink = new Sink('ok');
  // a recording of that name is already going on: Asterisk answers 409
  const { recorder, events } = recording(sink, ari);
  ari.liveRecordings.set(recorder.name, { channelId: 'other', req: {} as RecordRequest, startedAt: Date.now() });
  await until(() => (events.length ? true : undefined));
  t.equal(events[0]![0], 'recording.failed');
  await until(() => (sink.failedNames.length ? true : undefined));
  t.same(sink.failedNames, [recorder.name]);
});

t.test('the call ends while the record request is in flight: end() settles after its timeline line', async (t) => {
  const ari = new FakeAri();
  let release: (() => void) | undefined;
  const record = ari.channels.record.bind(ari.channels);
  ari.channels.record = async (id, req) => {
    await new Promise<void>((r) => (release = r));
    return record(id, req);
  };
  const sink = new Sink('ok');
  const { recorder, events } = recording(sink, ari);
  await until(() => (release ? true : undefined));
  let settled = false;
  const ended = recorder.end().then(() => (settled = true));
  await sleep(20);
  t.notOk(settled, 'end() waits for the start in flight');
  release!();
  await ended;
  t.same(events.map((e) => e[0]), ['recording.started'], 'the recording\'s line is written before end() settles');
  recorder.start('another');
  t.equal(ari.ops('snoop').length, 1, 'nothing starts once the call is ending');
});

t.test('the call ends and its hang-ups cut the start short: the end, not a failure on the timeline', async (t) => {
  for (const status of [404, 409] as const) {
    const ari = new FakeAri();
    let release: (() => void) | undefined;
    ari.channels.record = async () => {
      await new Promise<void>((r) => (release = r));
      throw status === 404 ? new AriGone('channel not found') : new AriConflict('channel not in Stasis application');
    };
    const sink = new Sink('ok');
    const { recorder, events } = recording(sink, ari);
    await until(() => (release ? true : undefined));
    const ended = recorder.end();
    release!();
    await ended;
    t.same(events, [], `${status}: nothing on the timeline`);
    await until(() => (sink.failedNames.length ? true : undefined));
    t.same(sink.failedNames, [recorder.name], `${status}: the index row is failed (no recording was made)`);
  }
});

t.test('the call ends before the snoop entered Stasis: end() settles at once, nothing is recorded', async (t) => {
  const ari = new FakeAri();
  const caller = ari.callerArrives('13800138000', '12345');
  const events: string[] = [];
  const recorder = new CallRecorder({ ari, sink: new Sink('ok'), log, track: () => undefined, event: (type) => events.push(type), indexTimeoutMs: 100 }, '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d', 'inbound');
  recorder.start(caller.id);
  await until(() => (ari.ops('snoop').length ? true : undefined));
  const t0 = Date.now();
  await recorder.end();
  t.ok(Date.now() - t0 < 1000, 'did not wait out the 5 s snoop wait');
  t.same(ari.ops('record'), []);
  t.same(events, []);
});

// ---- an adopted call (src/calls/adopted-call.ts): records the rest of the call when no recording snoop is left ----

function adopted(ari: FakeAri, sink: Sink, others: string[]) {
  const caller = ari.callerArrives('13800138000', '12345');
  const callId = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a6c';
  const agentLeg = `${callId}-agent-1`;
  const tracked = new Map<string, unknown>();
  const noop = async () => undefined;
  const call = new AdoptedCall(
    {
      ari,
      db: {} as never,
      engine: { listAgents: async () => [] },
      agentStates: { tryTransition: async () => null },
      queues: { get: () => undefined },
      callRecordings: sink,
      log,
      track: (id, owner) => tracked.set(id, owner),
      untrack: (id) => tracked.delete(id),
      ended: () => undefined,
    },
    { id: callId, bridges: [`call-${callId}`], members: [caller.id, agentLeg], others, answeredAt: new Date(Date.now() - 5000), arrivedAt: new Date(Date.now() - 9000), queue: null, citizenChannelId: caller.id, direction: 'inbound' },
  );
  // the record writer needs a database: these tests look at Asterisk only
  (call as unknown as { record: { event: () => void; update: () => void; flushed: () => Promise<void> } }).record = { event: () => undefined, update: () => undefined, flushed: noop as () => Promise<void> };
  return { call, caller, callId, tracked };
}

t.test('an adopted call whose old process never got its recording going: the adopter records the rest of it', async (t) => {
  const ari = new FakeAri();
  const sink = new Sink('ok');
  const { call, caller, callId, tracked } = adopted(ari, sink, []);
  call.start();
  const snoopId = `${callId}-rec`;
  await until(() => (ari.ops('snoop').length ? true : undefined));
  t.equal((ari.ops('snoop')[0] as [string])[0], caller.id, 'a snoop on the citizen\'s channel');
  t.equal(tracked.get(snoopId), call, 'the snoop\'s events come to the adopted call');
  call.onSnoopStarted(snoopId);
  const [channel, req] = await until(recordOf(ari));
  t.equal(channel, snoopId, 'the snoop is recorded');
  t.equal(req.name, `call-${callId}`, 'under the call\'s recording name (one recording per call)');
  t.equal(sink.straight.length, 1, 'indexed (a row the old process wrote stays the one row)');
});

t.test('an adopted call whose recording snoop is still there: its recording goes on, nothing new is started', async (t) => {
  const ari = new FakeAri();
  const sink = new Sink('ok');
  const { call } = adopted(ari, sink, ['0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a6c-rec']);
  call.start();
  await sleep(50);
  t.same(ari.ops('snoop'), [], 'no second snoop');
  t.same(ari.ops('record'), [], 'no second recording');
});
