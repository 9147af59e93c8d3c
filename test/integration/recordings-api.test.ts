/**
 * Call recordings (API.md "Records and files"): the index the call session fills (started / finished), the
 * list and its filters, what an agent may see, the audio with Range, tamper evidence, retention and the audit
 * trail; the call category route. PostgreSQL and Redis are real; Asterisk's stored recordings are an in-memory
 * fake that streams real WAV bytes in small chunks.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import t from 'tap';
import { silentWav } from '../../src/ari/fake.js';
import { AriGone, AriUnavailable, type Recordings } from '../../src/ari/port.js';
import { AuditLog } from '../../src/audit/audit.js';
import { insertCall } from '../../src/calls/calls.repo.js';
import type { RecordingCallType } from '../../src/db/database.js';
import { RecordingsService, purgeExpiredRecordings } from '../../src/recordings/recordings.service.js';
import { createRecordingRetention } from '../../src/recordings/retention.js';
import { buildTestApp, testInfra } from '../helpers/app.js';

/** Asterisk's stored recordings: real bytes, streamed in 777-byte chunks, counting what was pulled */
class FakeRecordings implements Recordings {
  readonly files = new Map<string, Buffer>();
  readonly ops: Array<[string, string]> = [];
  failure: Error | null = null;
  /** chunks handed out by the last file() stream */
  pulled = 0;
  /** called on every file(): lets a test change the file between the check and the send */
  onOpen: ((name: string, n: number) => void) | null = null;
  private opens = 0;
  async stop(): Promise<void> {}
  async file(name: string) {
    this.ops.push(['file', name]);
    this.onOpen?.(name, ++this.opens);
    if (this.failure) throw this.failure;
    const bytes = this.files.get(name);
    if (!bytes) throw new AriGone(`recording file ${name}: Recording not found`);
    this.pulled = 0;
    const self = this;
    function* chunks() {
      for (let i = 0; i < bytes!.length; i += 777) {
        self.pulled++;
        yield bytes!.subarray(i, i + 777);
      }
    }
    return { stream: Readable.from(chunks(), { objectMode: false, highWaterMark: 1024 }), contentType: 'audio/wav', size: bytes.length };
  }
  async delete(name: string): Promise<void> {
    this.ops.push(['delete', name]);
    if (this.failure) throw this.failure;
    if (!this.files.delete(name)) throw new AriGone('delete recording: Recording not found');
  }
}

/** a WAV file of `seconds` of noise (8 kHz, 16-bit mono): distinct bytes, so ranges and hashes mean something */
function noiseWav(seconds: number): Buffer {
  const wav = silentWav(seconds);
  randomBytes(wav.length - 44).copy(wav, 44);
  return wav;
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const infra = await testInfra(t, 'recordings');
const { db, log } = infra;
const rec = new FakeRecordings();
const audit = new AuditLog(db);
const service = new RecordingsService({ db, ari: rec, audit, log, retentionDays: 30, finishRetryMs: [5, 10], purgeBatchSize: 2 });
const { app, api, tokens } = await buildTestApp(t, infra, { recordings: rec, recordingsService: service, audit });
// the test app's agent is agent 7001

const T0 = new Date('2026-03-01T02:03:04.000Z'); // 10:03:04 in Hainan
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000);

interface Seeded {
  callId: string;
  id: string;
  name: string;
  bytes: Buffer;
}

/** a call row (unless `noCall`) and its recording, started; finished with these bytes unless `finish` is false */
async function seed(o: {
  startedAt: Date;
  caller?: string;
  line?: string | null;
  queue?: string | null;
  agents?: string[];
  disposition?: 'answered' | 'abandoned' | 'callback_requested';
  category?: string | null;
  callType?: RecordingCallType;
  seconds?: number;
  finish?: boolean;
  noCall?: boolean;
}): Promise<Seeded> {
  const callId = randomUUID();
  const callType = o.callType ?? 'inbound';
  if (!o.noCall) {
    await insertCall(db, {
      id: callId,
      direction: callType === 'inbound' ? 'inbound' : 'outbound',
      caller: o.caller ?? '13800138000',
      dialed: o.line ?? '12345',
      line: o.line === undefined ? '12345' : o.line,
      queue: o.queue === undefined ? 'general' : o.queue,
      agents: o.agents ?? ['7001'],
      channel_id: `ch-${callId}`,
      arrived_at: new Date(o.startedAt.getTime() - 30_000),
      answered_at: o.startedAt,
      disposition: o.disposition ?? 'answered',
      category: o.category ?? null,
    });
  }
  const name = `rec-test-${callId}`;
  const started = await service.started({ callId, name, callType, startedAt: o.startedAt });
  const bytes = noiseWav(o.seconds ?? 3);
  if (o.finish !== false) {
    rec.files.set(name, bytes);
    await service.finished(name, { endedAt: new Date(o.startedAt.getTime() + 60_000), durationSeconds: o.seconds ?? 3 });
  }
  return { callId, id: started.id, name, bytes };
}

// six recordings a minute apart
const r0 = await seed({ startedAt: at(0), agents: ['7001'], category: 'consultation', seconds: 4 });
const r1 = await seed({ startedAt: at(1), queue: 'en', agents: ['7002'], category: 'complaint' });
const r2 = await seed({ startedAt: at(2), caller: '089866001234', line: '12333', queue: '12333', agents: ['7001', '7002'], callType: 'callback', disposition: 'callback_requested' });
const r3 = await seed({ startedAt: at(3), caller: '13900000000', line: null, queue: null, agents: ['7003'], category: 'consultation', callType: 'click' });
const r4 = await seed({ startedAt: at(4), line: '12333', agents: ['7002'], finish: false }); // still recording
const r5 = await seed({ startedAt: at(5), noCall: true }); // the call's row is not written yet
const all = [r0, r1, r2, r3, r4, r5];
const ids = (items: Array<{ id: string }>) => items.map((i) => i.id);

const audio = (id: string, token: string, headers: Record<string, string> = {}, query = '') =>
  app.inject({ method: 'GET', url: `/api/v1/recordings/${id}/audio${query}`, headers: { authorization: `Bearer ${token}`, ...headers } });
const auditOf = async (id: string) => (await audit.list({ target: id, limit: 100 })).items.reverse();

t.test('given a finished recording, then it is saved with the size and SHA-256 of the stored file', async (t) => {
  const row = await db.selectFrom('recordings').selectAll().where('id', '=', r0.id).executeTakeFirstOrThrow();
  t.equal(row.status, 'saved');
  t.equal(Number(row.size_bytes), r0.bytes.length);
  t.equal(row.sha256, sha(r0.bytes));
  t.equal(Number(row.duration_seconds), 4);
  t.equal(row.call_type, 'inbound');
  t.ok(row.ended_at);
});

t.test('started() is idempotent on the call; finished() never replaces the first hash', async (t) => {
  const again = await service.started({ callId: r0.callId, name: `other-${r0.name}`, callType: 'outbound', startedAt: at(9) });
  t.equal(again.id, r0.id);
  t.equal(again.name, r0.name);
  t.equal(again.callType, 'inbound');
  const changed = Buffer.from(r0.bytes);
  changed[100] = changed[100]! ^ 0xff;
  rec.files.set(r0.name, changed);
  const done = await service.finished(r0.name, { endedAt: new Date(), durationSeconds: 99 });
  t.equal(done.sha256, sha(r0.bytes), 'the hash taken first stands');
  t.equal(done.durationSeconds, 4);
  rec.files.set(r0.name, r0.bytes);
  await t.rejects(service.finished('no-such-recording', { endedAt: new Date(), durationSeconds: 1 }), { code: 'not-found' });
});

t.test('a recording this process indexed ends in one statement; one it did not index reads its row first', async (t) => {
  const kinds: string[] = [];
  const counted = db.withPlugin({ transformQuery: (a) => (kinds.push(a.node.kind), a.node), transformResult: async (a) => a.result });
  const mine = new RecordingsService({ db: counted, ari: rec, audit, log, retentionDays: 30, finishRetryMs: [5, 10] });
  const callId = randomUUID();
  const name = `rec-test-${callId}`;
  const bytes = noiseWav(2);
  await mine.started({ callId, name, callType: 'inbound', startedAt: at(-80) });
  rec.files.set(name, bytes);
  kinds.length = 0;
  const done = await mine.finished(name, { endedAt: at(-79), durationSeconds: 2 });
  t.same(kinds, ['UpdateQueryNode'], 'the guarded update alone');
  t.match(done, { status: 'saved', sha256: sha(bytes), sizeBytes: bytes.length, durationSeconds: 2 });
  kinds.length = 0;
  const again = await mine.finished(name, { endedAt: new Date(), durationSeconds: 9 });
  t.same(kinds, ['SelectQueryNode'], 'a second end reads the row, and stops there');
  t.same(again, done, 'what the first end wrote stands');

  // indexed by another process (here: the test's service): its row is read, then updated
  const other = await seed({ startedAt: at(-78), finish: false });
  rec.files.set(other.name, other.bytes);
  kinds.length = 0;
  t.match(await mine.finished(other.name, { endedAt: at(-77), durationSeconds: 3 }), { status: 'saved', sha256: sha(other.bytes) });
  t.same(kinds, ['SelectQueryNode', 'UpdateQueryNode']);

  // indexed here and failed in Asterisk: the guarded update alone as well
  const failing = randomUUID();
  await mine.started({ callId: failing, name: `rec-test-${failing}`, callType: 'inbound', startedAt: at(-76) });
  kinds.length = 0;
  t.match(await mine.failed(`rec-test-${failing}`, { endedAt: at(-75), cause: 'disk full' }), { status: 'failed', sha256: null });
  t.same(kinds, ['UpdateQueryNode']);
  await db.deleteFrom('recordings').where('call_id', 'in', [callId, other.callId, failing]).execute();
});

t.test('finished(): no file or an empty one is failed; Asterisk unreachable keeps it recording until it answers', async (t) => {
  const none = await seed({ startedAt: at(-100), finish: false });
  const gone = await service.finished(none.name, { endedAt: at(-99), durationSeconds: 2 });
  t.equal(gone.status, 'failed');
  t.equal(gone.sha256, null);
  t.equal(rec.ops.filter(([op, n]) => op === 'file' && n === none.name).length, 3, 'read again twice (Asterisk may still be closing it)');

  const empty = await seed({ startedAt: at(-98), finish: false });
  rec.files.set(empty.name, silentWav(0));
  const e = await service.finished(empty.name, { endedAt: at(-97), durationSeconds: 0 });
  t.equal(e.status, 'failed');
  t.equal(e.sizeBytes, 44, 'a header and no audio');

  const late = await seed({ startedAt: at(-96), finish: false });
  // the file shows up while finished() is reading again
  const before = rec.onOpen;
  rec.onOpen = (name) => {
    if (name === late.name && rec.ops.filter(([op, n]) => op === 'file' && n === name).length === 2) rec.files.set(name, late.bytes);
  };
  const l = await service.finished(late.name, { endedAt: at(-95), durationSeconds: 3 });
  rec.onOpen = before;
  t.equal(l.status, 'saved');
  t.equal(l.sha256, sha(late.bytes));

  const down = await seed({ startedAt: at(-94), finish: false });
  rec.files.set(down.name, down.bytes);
  rec.failure = new AriUnavailable('recording file: no answer from Asterisk within 5000 ms');
  const d = await service.finished(down.name, { endedAt: at(-93), durationSeconds: 3 });
  rec.failure = null;
  t.equal(d.status, 'recording', 'not failed: the file may well be there');
  t.same(d.endedAt, at(-93));
  const d2 = await service.finished(down.name, { endedAt: at(-93), durationSeconds: 3 });
  t.equal(d2.status, 'saved');
  t.equal(d2.sha256, sha(down.bytes));

  const broken = await seed({ startedAt: at(-92), finish: false });
  t.equal((await service.failed(broken.name, { endedAt: at(-91), cause: 'disk full' })).status, 'failed');
  // these are not part of the list tests below
  await db.deleteFrom('recordings').where('id', 'in', [none.id, empty.id, late.id, down.id, broken.id]).execute();
});

t.test('list: newest first with the call fields; every filter and the date range', async (t) => {
  const r = await api('GET', '/api/v1/recordings', tokens.supervisor);
  t.equal(r.status, 200);
  t.same(ids(r.body.items), ids([...all].reverse()));
  t.equal(r.body.nextCursor, null);
  t.same(r.body.items[5], {
    id: r0.id,
    callId: r0.callId,
    caller: '13800138000',
    dialed: '12345',
    line: '12345',
    queue: 'general',
    agents: ['7001'],
    callType: 'inbound',
    category: 'consultation',
    disposition: 'answered',
    startedAt: T0.toISOString(),
    endedAt: at(1).toISOString(),
    durationSeconds: 4,
    sizeBytes: r0.bytes.length,
    sha256: sha(r0.bytes),
    status: 'saved',
    audioUrl: `/api/v1/recordings/${r0.id}/audio`,
  });
  t.match(r.body.items[1], { id: r4.id, status: 'recording', sizeBytes: null, sha256: null, durationSeconds: null });
  t.match(r.body.items[0], { id: r5.id, caller: null, line: null, agents: [], disposition: null, status: 'saved' }, 'no call row yet: still listed');

  const list = async (q: string, token = tokens.auditor) => {
    const res = await api('GET', `/api/v1/recordings?${q}`, token);
    t.equal(res.status, 200, q);
    return ids(res.body.items);
  };
  t.same(await list(`caller=${encodeURIComponent('+86 138-0013-8000')}`), ids([r4, r1, r0]), 'caller, normalised');
  t.same(await list('caller=66001234'), [r2.id], 'a Hainan fixed line without its area code');
  t.same(await list('line=12333'), ids([r4, r2]));
  t.same(await list('queue=en'), [r1.id]);
  t.same(await list('agent=7002'), ids([r4, r2, r1]));
  t.same(await list('disposition=callback_requested'), [r2.id]);
  t.same(await list('direction=callback'), [r2.id]);
  t.same(await list('direction=click'), [r3.id]);
  t.same(await list('direction=inbound'), ids([r5, r4, r1, r0]));
  t.same(await list('direction=outbound'), []);
  t.same(await list('category=consultation'), ids([r3, r0]));
  t.same(await list(`from=${at(1).toISOString()}&to=${at(3).toISOString()}`), ids([r2, r1]), 'from inclusive, to exclusive');
  t.same(await list(`from=${at(2).toISOString()}&agent=7001&direction=callback`), [r2.id], 'filters combine');
});

t.test('paging: keyset cursor, newest first, no empty last page', async (t) => {
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const r = await api('GET', `/api/v1/recordings?limit=4${cursor ? `&cursor=${cursor}` : ''}`, tokens.admin);
    t.equal(r.status, 200);
    seen.push(...ids(r.body.items));
    cursor = r.body.nextCursor;
    pages++;
  } while (cursor && pages < 10);
  t.equal(pages, 2, '4 + 2');
  t.same(seen, ids([...all].reverse()));
});

t.test('bad queries are 400 with the error shape', async (t) => {
  for (const [q, code] of [
    ['colour=red', 'invalid-request'],
    ['limit=0', 'invalid-request'],
    ['limit=201', 'invalid-request'],
    ['direction=sideways', 'invalid-request'],
    ['disposition=lost', 'invalid-request'],
    ['from=yesterday', 'invalid-request'],
    [`from=${at(3).toISOString()}&to=${at(1).toISOString()}`, 'invalid-range'],
    ['cursor=bm9wZQ', 'invalid-cursor'],
    ['caller=abc', 'invalid-number'],
  ] as const) {
    const r = await api('GET', `/api/v1/recordings?${q}`, tokens.supervisor);
    t.equal(r.status, 400, q);
    t.equal(r.body.error.code, code, q);
  }
  t.equal((await api('GET', '/api/v1/recordings/not-a-uuid', tokens.supervisor)).status, 400);
  t.equal((await api('GET', `/api/v1/recordings/${r0.id}/audio?speed=2`, tokens.supervisor)).status, 400);
  const missing = await api('GET', `/api/v1/recordings/${randomUUID()}`, tokens.supervisor);
  t.equal(missing.status, 404);
  t.equal(missing.body.error.code, 'not-found');
  t.equal((await api('GET', `/api/v1/recordings/${randomUUID()}/audio`, tokens.supervisor)).status, 404);
});

t.test('an agent sees only recordings of its own calls: list filtered, 403 (audited) on another agent\'s item and audio', async (t) => {
  const r = await api('GET', '/api/v1/recordings', tokens.agent);
  t.equal(r.status, 200);
  t.same(ids(r.body.items), ids([r2, r0]), 'calls agent 7001 took part in');
  t.same(ids((await api('GET', '/api/v1/recordings?agent=7002', tokens.agent)).body.items), [r2.id], 'asking for another agent narrows, never widens');
  t.equal((await api('GET', `/api/v1/recordings/${r2.id}`, tokens.agent)).status, 200, 'a transferred call: both agents');
  t.equal((await audio(r0.id, tokens.agent)).statusCode, 200);

  for (const [path, what] of [
    [`/api/v1/recordings/${r1.id}`, 'item'],
    [`/api/v1/recordings/${r1.id}/audio`, 'audio'],
    [`/api/v1/recordings/${r5.id}`, 'item'],
  ] as const) {
    const before = rec.ops.length;
    const d = await api('GET', path, tokens.agent);
    t.equal(d.status, 403, path);
    t.equal(d.body.error.code, 'forbidden', path);
    t.equal(rec.ops.length, before, 'Asterisk is not asked');
    const last = (await auditOf(path.split('/')[4]!)).at(-1);
    t.match(last, { action: 'recording.denied', actorRole: 'agent', details: { what, agentId: '7001' } }, path);
  }
  for (const p of ['/api/v1/recordings', `/api/v1/recordings/${r0.id}`, `/api/v1/recordings/${r0.id}/audio`]) t.equal((await api('GET', p, null)).status, 401, p);
  for (const role of ['supervisor', 'admin', 'auditor'] as const) t.equal((await api('GET', `/api/v1/recordings/${r1.id}`, tokens[role])).status, 200, role);
});

t.test('audio: the whole file, byte for byte, as audio/wav with Accept-Ranges, an ETag and no caching', async (t) => {
  const r = await audio(r1.id, tokens.auditor);
  t.equal(r.statusCode, 200);
  t.equal(r.headers['content-type'], 'audio/wav');
  t.equal(r.headers['accept-ranges'], 'bytes');
  t.equal(Number(r.headers['content-length']), r1.bytes.length);
  t.equal(r.headers.etag, `"${sha(r1.bytes)}"`);
  t.equal(r.headers['cache-control'], 'private, no-store');
  t.equal(r.headers['content-disposition'], undefined, 'played in the browser unless asked to download');
  t.ok(r.rawPayload.equals(r1.bytes), 'byte for byte');
  t.equal((await app.inject({ method: 'HEAD', url: `/api/v1/recordings/${r1.id}/audio`, headers: { authorization: `Bearer ${tokens.auditor}` } })).statusCode, 404, 'no HEAD');
});

t.test('audio: ?download=1 names the file (line, caller, Beijing time) and is byte for byte', async (t) => {
  const r = await audio(r0.id, tokens.supervisor, {}, '?download=1');
  t.equal(r.statusCode, 200);
  t.equal(r.headers['content-disposition'], 'attachment; filename="recording-12345-13800138000-20260301-100304.wav"');
  t.ok(r.rawPayload.equals(r0.bytes));
  const noLine = await audio(r3.id, tokens.supervisor, {}, '?download=true');
  t.equal(noLine.headers['content-disposition'], 'attachment; filename="recording-unknown-13900000000-20260301-100604.wav"');
});

t.test('audio: Range requests (first bytes, middle, suffix, open-ended, beyond the end, 416, several ranges)', async (t) => {
  const b = r1.bytes;
  const size = b.length;
  const cases: Array<[string, number, number]> = [
    ['bytes=0-99', 0, 99],
    ['bytes=1000-2999', 1000, 2999],
    ['bytes=776-778', 776, 778], // across a chunk boundary of the stream from Asterisk
    ['bytes=-500', size - 500, size - 1],
    ['bytes=40000-', 40000, size - 1],
    ['bytes=45000-999999', 45000, size - 1],
    [`bytes=-${size + 10}`, 0, size - 1],
  ];
  for (const [range, start, end] of cases) {
    const r = await audio(r1.id, tokens.supervisor, { range });
    t.equal(r.statusCode, 206, range);
    t.equal(r.headers['content-range'], `bytes ${start}-${end}/${size}`, range);
    t.equal(Number(r.headers['content-length']), end - start + 1, range);
    t.equal(r.headers['accept-ranges'], 'bytes', range);
    t.ok(r.rawPayload.equals(b.subarray(start, end + 1)), `${range}: the exact bytes`);
  }
  // the first bytes do not fetch the whole file from Asterisk
  await audio(r1.id, tokens.supervisor, { range: 'bytes=0-99' });
  t.ok(rec.pulled < Math.ceil(size / 777) / 2, `cut early (${rec.pulled} of ${Math.ceil(size / 777)} chunks)`);

  for (const range of [`bytes=${size}-`, `bytes=${size + 5}-${size + 10}`, 'bytes=-0']) {
    const r = await audio(r1.id, tokens.supervisor, { range });
    t.equal(r.statusCode, 416, range);
    t.equal(r.headers['content-range'], `bytes */${size}`, range);
    t.equal(r.headers['accept-ranges'], 'bytes', range);
    t.equal(r.json().error.code, 'range-not-satisfiable');
  }
  for (const range of ['bytes=0-1,5-6', 'bytes=0-99, 200-299', 'items=0-5', 'bytes=9-3', 'bytes=abc']) {
    const r = await audio(r1.id, tokens.supervisor, { range });
    t.equal(r.statusCode, 200, `${range}: the whole file`);
    t.equal(r.headers['content-range'], undefined);
    t.ok(r.rawPayload.equals(b), range);
  }
  const stale = await audio(r1.id, tokens.supervisor, { range: 'bytes=0-9', 'if-range': '"another-version"' });
  t.equal(stale.statusCode, 200, 'If-Range naming another version: the whole file');
  const same = await audio(r1.id, tokens.supervisor, { range: 'bytes=0-9', 'if-range': `"${sha(b)}"` });
  t.equal(same.statusCode, 206);
});

t.test('audit: recording.play from byte 0 only, recording.download on every download request', async (t) => {
  const fresh = await seed({ startedAt: at(-50), agents: ['7001'] });
  await audio(fresh.id, tokens.auditor);
  await audio(fresh.id, tokens.auditor, { range: 'bytes=0-1023' });
  await audio(fresh.id, tokens.auditor, { range: 'bytes=1024-2047' }); // the player seeking: not audited again
  await audio(fresh.id, tokens.auditor, { range: 'bytes=-100' });
  await audio(fresh.id, tokens.supervisor, {}, '?download=1');
  await audio(fresh.id, tokens.supervisor, { range: 'bytes=5000-' }, '?download=1'); // a resumed download
  await audio(fresh.id, tokens.agent);
  await audio(fresh.id, tokens.agent, { range: `bytes=${fresh.bytes.length}-` }); // 416: nothing sent
  const rows = await auditOf(fresh.id);
  t.same(
    rows.map((r) => [r.action, r.actorRole, r.details.range]),
    [
      ['recording.play', 'auditor', null],
      ['recording.play', 'auditor', 'bytes=0-1023'],
      ['recording.download', 'supervisor', null],
      ['recording.download', 'supervisor', 'bytes=5000-'],
      ['recording.play', 'agent', null],
    ],
  );
  t.ok(rows.every((r) => r.target === fresh.id && r.address));
  t.same(await audit.verify().then((v) => v.ok), true, 'the trail still verifies');
  await db.deleteFrom('recordings').where('id', '=', fresh.id).execute();
});

t.test('audio by status: still recording 409, failed 404, file missing in Asterisk 404 (audited), Asterisk down 503', async (t) => {
  const live = await audio(r4.id, tokens.supervisor);
  t.equal(live.statusCode, 409);
  t.equal(live.json().error.code, 'recording-in-progress');

  const failed = await seed({ startedAt: at(-40), finish: false });
  await service.failed(failed.name, { endedAt: at(-39) });
  const f = await audio(failed.id, tokens.supervisor);
  t.equal(f.statusCode, 404);
  t.equal(f.json().error.code, 'recording-failed');

  const lost = await seed({ startedAt: at(-38) });
  rec.files.delete(lost.name);
  const l = await audio(lost.id, tokens.supervisor);
  t.equal(l.statusCode, 404);
  t.equal(l.json().error.code, 'recording-missing');
  t.match((await auditOf(lost.id)).at(-1), { action: 'recording.missing' });

  rec.failure = new AriUnavailable('recording file: no answer from Asterisk within 5000 ms');
  const down = await audio(r0.id, tokens.supervisor);
  rec.failure = null;
  t.equal(down.statusCode, 503);
  t.equal(down.json().error.code, 'ari-unavailable');
  t.notMatch(down.body, /at .*\.ts/, 'no stack trace');
  await db.deleteFrom('recordings').where('id', 'in', [failed.id, lost.id]).execute();
});

t.test('tamper evidence: a file changed after it ended is 409 recording-tampered, logged and audited; nothing is sent', async (t) => {
  const victim = await seed({ startedAt: at(-30), agents: ['7001'] });
  const changed = Buffer.from(victim.bytes);
  changed[5000] = changed[5000]! ^ 0x01; // one bit
  rec.files.set(victim.name, changed);
  for (const [headers, query] of [[{}, ''], [{ range: 'bytes=4000-6000' }, ''], [{}, '?download=1']] as const) {
    const r = await audio(victim.id, tokens.auditor, headers, query);
    t.equal(r.statusCode, 409);
    t.equal(r.json().error.code, 'recording-tampered');
    t.equal(r.headers['content-type'], 'application/json; charset=utf-8', 'an error, no audio');
  }
  const rows = await auditOf(victim.id);
  t.same(
    rows.map((r) => r.action),
    ['recording.tampered', 'recording.tampered', 'recording.tampered'],
    'tampered each time; no play or download was recorded',
  );
  t.match(rows[0]!.details, { expectedSha256: sha(victim.bytes), actualSha256: sha(changed), expectedSize: victim.bytes.length, actualSize: changed.length });
  // a shorter file (truncated) is caught too
  rec.files.set(victim.name, victim.bytes.subarray(0, victim.bytes.length - 10));
  t.equal((await audio(victim.id, tokens.auditor)).statusCode, 409);
  // restored: served again
  rec.files.set(victim.name, victim.bytes);
  t.equal((await audio(victim.id, tokens.auditor)).statusCode, 200);
});

t.test('tamper evidence: a file changed between the check and the send never reaches the client whole', async (t) => {
  const victim = await seed({ startedAt: at(-20) });
  const changed = Buffer.from(victim.bytes);
  changed[victim.bytes.length - 1] = changed[victim.bytes.length - 1]! ^ 0x01;
  const opensBefore = rec.ops.filter(([op, n]) => op === 'file' && n === victim.name).length;
  rec.onOpen = (name) => {
    // the check is the first read of this request, the send the second
    if (name === victim.name && rec.ops.filter(([op, n]) => op === 'file' && n === name).length === opensBefore + 2) rec.files.set(name, changed);
  };
  t.teardown(() => void (rec.onOpen = null));
  let body: Buffer | null = null;
  try {
    const r = await audio(victim.id, tokens.auditor);
    body = r.rawPayload;
  } catch {
    body = null; // the transfer broke
  }
  t.ok(body === null || !body.equals(changed), 'the changed file is not delivered whole');
  t.ok(body === null || body.length < changed.length, 'the transfer is cut short');
  await new Promise((r) => setTimeout(r, 50));
  t.match((await auditOf(victim.id)).at(-1), { action: 'recording.tampered', details: { during: 'send' } });
});

t.test('category: an agent sets its own calls, a supervisor any (audited when not its own); others refused', async (t) => {
  const put = (callId: string, token: string | null, body: unknown) => api('PUT', `/api/v1/calls/${callId}/category`, token, body);
  const own = await put(r2.callId, tokens.agent, { category: '  housing  ' });
  t.equal(own.status, 200);
  t.same(own.body, { id: r2.callId, category: 'housing' });
  t.same(ids((await api('GET', '/api/v1/recordings?category=housing', tokens.supervisor)).body.items), [r2.id], 'recordings are found by it');
  t.same(await auditOf(r2.callId), [], 'an agent on its own call is not audited');

  const other = await put(r1.callId, tokens.agent, { category: 'housing' });
  t.equal(other.status, 403);
  t.equal(other.body.error.code, 'forbidden');

  const sup = await put(r1.callId, tokens.supervisor, { category: 'transport' });
  t.equal(sup.status, 200);
  t.match((await auditOf(r1.callId)).at(-1), { action: 'call.category', actorRole: 'supervisor', details: { from: 'complaint', to: 'transport' } });
  t.equal((await put(r1.callId, tokens.admin, { category: 'transport' })).status, 200);
  t.equal((await auditOf(r1.callId)).length, 1, 'setting the same value again changes nothing');

  t.equal((await put(r1.callId, tokens.auditor, { category: 'x' })).status, 403, 'an auditor reads only');
  t.equal((await put(r1.callId, null, { category: 'x' })).status, 401);
  const none = await put(randomUUID(), tokens.supervisor, { category: 'x' });
  t.equal(none.status, 404);
  t.equal(none.body.error.code, 'no-such-call');
  for (const body of [{}, { category: '' }, { category: '   ' }, { category: 'x'.repeat(65) }, { category: 'a\nb' }, { category: 'x', extra: 1 }, { category: ['a', 'b'] }]) {
    const r = await put(r1.callId, tokens.supervisor, body);
    t.equal(r.status, 400, JSON.stringify(body));
    t.type(r.body.error.code, 'string');
  }
  const row = await db.selectFrom('calls').select('category').where('id', '=', r1.callId).executeTakeFirstOrThrow();
  t.equal(row.category, 'transport');
});

t.test('retention: recordings past RECORDING_RETENTION_DAYS are deleted in Asterisk and marked purged (audited), then 410', async (t) => {
  // five old recordings (one still "recording", one whose file is already gone), two days apart, in batches of two
  const old = [];
  for (let i = 0; i < 5; i++) old.push(await seed({ startedAt: new Date(Date.UTC(2025, 0, 1 + 2 * i)), agents: ['7001'], finish: i !== 3 }));
  rec.files.delete(old[4]!.name);
  const now = new Date(Date.UTC(2025, 1, 7)); // retention 30 days: before 2025-01-08 goes
  const deletesBefore = rec.ops.filter(([op]) => op === 'delete').length;
  t.equal(await service.purgeExpired(now), 4);
  t.same(
    rec.ops.filter(([op]) => op === 'delete').slice(deletesBefore).map(([, n]) => n),
    old.slice(0, 4).map((o) => o.name),
    'oldest first',
  );
  const rows = await db.selectFrom('recordings').select(['id', 'status', 'purged_at']).where('id', 'in', ids(old)).execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const o of old.slice(0, 4)) {
    t.equal(byId.get(o.id)!.status, 'purged');
    t.ok(byId.get(o.id)!.purged_at);
    t.notOk(rec.files.has(o.name), 'the file is gone from Asterisk');
    t.match((await auditOf(o.id)).at(-1), { action: 'recording.purge', actor: 'system', actorRole: 'system', details: { callId: o.callId, name: o.name, retentionDays: 30 } });
  }
  t.equal(byId.get(old[4]!.id)!.status, 'saved', 'younger than 30 days on that date');
  t.equal(await service.purgeExpired(now), 0, 'a second run finds nothing');
  t.equal((await auditOf(old[0]!.id)).filter((r) => r.action === 'recording.purge').length, 1);

  // the file already gone in Asterisk is fine
  t.equal(await purgeExpiredRecordings({ db, ari: rec, audit, log, retentionDays: 30 }, new Date(Date.UTC(2025, 1, 20))), 1);

  const r = await audio(old[0]!.id, tokens.supervisor);
  t.equal(r.statusCode, 410);
  t.equal(r.json().error.code, 'recording-purged');
  const item = await api('GET', `/api/v1/recordings/${old[0]!.id}`, tokens.supervisor);
  t.match(item.body, { status: 'purged' });
  // the rest is untouched
  t.equal((await audio(r0.id, tokens.supervisor)).statusCode, 200);

  // Asterisk unreachable stops the run; nothing is marked
  const more = await seed({ startedAt: new Date(Date.UTC(2025, 2, 1)) });
  rec.failure = new AriUnavailable('delete recording: no answer');
  await t.rejects(service.purgeExpired(new Date(Date.UTC(2025, 5, 1))), { name: 'AriUnavailable' });
  rec.failure = null;
  t.equal((await db.selectFrom('recordings').select('status').where('id', '=', more.id).executeTakeFirstOrThrow()).status, 'saved');
  t.equal(await service.purgeExpired(new Date(Date.UTC(2025, 5, 1))), 1, 'the next run does it');
});

t.test('retention timer: of two processes ticking, one runs the purge (Redis SET NX EX); stop waits for a run', async (t) => {
  const runs: string[] = [];
  const lockKey = infra.keys.recordingsRetentionLock();
  let release: () => void = () => undefined;
  const slow = new Promise<void>((r) => (release = r));
  const make = (who: string) =>
    createRecordingRetention({
      purge: async () => {
        runs.push(who);
        await slow;
        return 0;
      },
      redis: infra.redis,
      lockKey,
      log,
      intervalMs: 3_600_000,
    });
  const a = make('a');
  const b = make('b');
  const ta = a.tick();
  const tb = b.tick();
  t.equal(await tb, false, 'the second process finds the lock taken');
  let stopped = false;
  const stopping = a.stop().then(() => (stopped = true));
  await new Promise((r) => setTimeout(r, 20));
  t.equal(stopped, false, 'stop waits for the run in progress');
  release();
  await stopping;
  t.equal(await ta, true);
  t.same(runs, ['a']);
  const ttl = await infra.redis.ttl(lockKey);
  t.ok(ttl > 3000 && ttl <= 3420, `the lock stays a little under the interval (${ttl} s)`);
  t.equal(await b.tick(), false, 'later the same day: still taken');
  await infra.redis.del(lockKey);
  t.equal(await b.tick(), true, 'the next day (the lock expired)');
  await b.stop();

  const c = createRecordingRetention({ purge: async () => { runs.push('c'); return 0; }, redis: infra.redis, lockKey, log, firstRunMs: 5, intervalMs: 3_600_000 });
  await infra.redis.del(lockKey);
  c.start();
  await new Promise((r) => setTimeout(r, 100));
  await c.stop();
  t.same(runs, ['a', 'b', 'c'], 'start() runs once shortly after start');
  await infra.redis.del(lockKey);
});

t.test('OpenAPI describes the recordings routes and the category route', async (t) => {
  const doc = await api('GET', '/docs/json', null);
  for (const p of ['/api/v1/recordings/', '/api/v1/recordings/{id}', '/api/v1/recordings/{id}/audio', '/api/v1/calls/{id}/category']) t.ok(doc.body.paths[p], p);
  const a = doc.body.paths['/api/v1/recordings/{id}/audio'].get;
  t.ok(a.responses['200'].content['audio/wav']);
  t.ok(a.responses['206'].content['audio/wav']);
  t.ok(a.responses['416']);
  t.same(a.tags, ['recordings']);
});
