/**
 * A call recording's index row never blocks or prevents the recording, and no row stays `recording` for ever:
 * - CallRecorder + RecordingsService on the real PostgreSQL, made unreachable or slow for the service's pool
 *   only (a TCP proxy, test/helpers/tcp-proxy.ts), and the fake Asterisk: the recording starts anyway, the row
 *   goes through the record outbox ('recording.start') and appears once PostgreSQL answers, exactly once;
 * - the recordings sweep (src/recordings/sweep.ts) finishes rows left `recording` after their call ended: saved
 *   when Asterisk has a non-empty file, failed when it has none, tried again later when Asterisk does not answer;
 *   rows of calls still going on and rows already settled are left alone.
 * A schema of its own (testInfra); the sweep sees every row of it, so each test starts from empty tables.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import t from 'tap';
import { FakeAri, silentWav } from '../../src/ari/fake.js';
import { AriUnavailable, type RecordRequest } from '../../src/ari/port.js';
import { AuditLog } from '../../src/audit/audit.js';
import { CallRecordWriter } from '../../src/calls/call-record.js';
import { CallRecorder } from '../../src/calls/call-recorder.js';
import { insertCall } from '../../src/calls/calls.repo.js';
import { createDb } from '../../src/db/db.js';
import type { RecordingStatus } from '../../src/db/database.js';
import { Outbox } from '../../src/db/outbox.js';
import { recordOps } from '../../src/db/record-ops.js';
import { RecordingsService } from '../../src/recordings/recordings.service.js';
import { createRecordingsSweep, type RecordingsSweepDeps } from '../../src/recordings/sweep.js';
import { asteriskIds } from '../../src/redis/keys.js';
import { testInfra } from '../helpers/app.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
function noiseWav(seconds: number): Buffer {
  const wav = silentWav(seconds);
  randomBytes(wav.length - 44).copy(wav, 44);
  return wav;
}
async function until<T>(fn: () => T | undefined | Promise<T | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await sleep(10);
  }
}

const infra = await testInfra(t, 'recsweep');
/** the test's own view, straight to PostgreSQL */
const { db, log } = infra;
const schema = (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]!.s;
const base = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/hotline_test');
const proxy = await startTcpProxy({ host: base.hostname || '127.0.0.1', port: Number(base.port || 5432) });
const proxiedUrl = new URL(base);
proxiedUrl.hostname = '127.0.0.1';
proxiedUrl.port = String(proxy.port);
proxiedUrl.searchParams.set('options', `-c search_path=${schema}`);
/** the service's pool: through the proxy */
const pool = createDb(proxiedUrl.toString());
const outbox = await Outbox.open({ db: pool, ops: recordOps, dir: mkdtempSync(path.join(os.tmpdir(), 'recsweep-')), log, database: proxiedUrl.toString(), directTimeoutMs: 500, replayTimeoutMs: 1000, retryMinMs: 100, retryMaxMs: 300 });
t.teardown(async () => {
  await outbox.close(1000);
  await pool.destroy().catch(() => undefined);
  await proxy.close();
});

const ari = new FakeAri();
const service = new RecordingsService({ db: pool, ari: ari.recordings, audit: new AuditLog(pool), log, retentionDays: 180, finishRetryMs: [5], outbox });
/** a lock always free: each test ticks as often as it likes (the lock has a test of its own) */
const noLock = { set: async () => 'OK' } as unknown as Pick<Redis, 'set'>;
const sweepWith = (o: Partial<RecordingsSweepDeps> = {}) =>
  createRecordingsSweep({ db: pool, finish: (name, r, opts) => service.finished(name, r, opts), redis: noLock, lockKey: infra.keys.recordingsSweepLock(), log, ...o });

const clean = async () => {
  await db.deleteFrom('recordings').execute();
  await db.deleteFrom('calls').execute();
  ari.storedRecordings.clear();
  ari.requests.length = 0;
  ari.recordingFileFailure = null;
};
const rowsOf = (callId: string) => db.selectFrom('recordings').selectAll().where('call_id', '=', callId).execute();
const fileReads = () => ari.ops('recording.file').map((a) => a[0] as string);

/** a call (unless `call` is 'none') and its recording row as the test wants it; `file` stored in the fake Asterisk */
async function seed(o: { call: { endedAt: Date | null } | 'none'; status?: RecordingStatus; rowEndedAt?: Date; startedAt?: Date; file?: Buffer }) {
  const callId = randomUUID();
  const name = asteriskIds.callRecording(callId);
  const startedAt = o.startedAt ?? new Date(Date.now() - 5 * 60_000);
  if (o.call !== 'none') {
    await insertCall(db, { id: callId, direction: 'inbound', caller: '13800138000', dialed: '12345', line: '12345', channel_id: `ch-${callId}`, arrived_at: new Date(startedAt.getTime() - 30_000), answered_at: startedAt, ended_at: o.call.endedAt, disposition: 'answered' });
  }
  const sha256 = o.status === 'saved' ? sha(Buffer.from('the first file')) : null;
  await db
    .insertInto('recordings')
    .values({ call_id: callId, name, call_type: 'inbound', started_at: startedAt, status: o.status ?? 'recording', ended_at: o.rowEndedAt ?? (o.status && o.status !== 'recording' ? new Date() : null), sha256, size_bytes: sha256 ? 14 : null })
    .execute();
  if (o.file) ari.storedRecordings.set(name, o.file);
  return { callId, name, file: o.file };
}
const row = async (callId: string) => (await rowsOf(callId))[0]!;

/** an answered call's recorder on the fake Asterisk (the snoop enters Stasis as soon as it is asked for) */
function recorderFor(callId: string, indexTimeoutMs: number) {
  const caller = ari.callerArrives('13900000000', '12345');
  const recorder = new CallRecorder({ ari, sink: service, log, track: () => undefined, event: () => undefined, indexTimeoutMs }, callId, 'inbound');
  const t0 = Date.now();
  recorder.start(caller.id);
  void until(() => (ari.ops('snoop').some((a) => (a[1] as { snoopId: string }).snoopId === recorder.snoopId) ? true : undefined)).then(() => recorder.onSnoopStarted(recorder.snoopId));
  const recorded = () => until(() => (ari.ops('record').find((a) => a[0] === recorder.snoopId) as [string, RecordRequest] | undefined)).then(([, req]) => ({ req, afterMs: Date.now() - t0 }));
  return { recorder, caller, recorded };
}

t.test('PostgreSQL down when the recording starts: Asterisk records anyway; the row comes through the outbox once PostgreSQL is back, once; the sweep saves it', async (t) => {
  await clean();
  proxy.down(true);
  t.teardown(() => proxy.down(false));
  const callId = randomUUID();
  // the call's own record goes through the outbox too (same stream: the recording's row lands after it)
  const record = new CallRecordWriter(pool, callId, log, outbox);
  record.write('call.insert', { id: callId, direction: 'inbound', caller: '13900000000', dialed: '12345', line: '12345', channel_id: `ch-${callId}`, arrived_at: new Date(), answered_at: new Date(), disposition: 'answered' });
  const { recorder, recorded } = recorderFor(callId, 1500);
  const { req, afterMs } = await recorded();
  t.equal(req.name, recorder.name, 'channels.record issued for the call recording');
  t.ok(afterMs < 1500, `without waiting for the index limit: PostgreSQL refused at once (${afterMs} ms)`);
  await outbox.settled(callId);
  t.equal(outbox.depth(), 2, 'the call row and the recording row wait in the outbox');
  t.equal((await rowsOf(callId)).length, 0, 'not in PostgreSQL yet');
  // the caller talks, then hangs up: Asterisk stores the file and says RecordingFinished, which cannot be indexed now
  const bytes = noiseWav(4);
  ari.finishRecording(recorder.name, 4, bytes);
  await t.rejects(service.finished(recorder.name, { endedAt: new Date(), durationSeconds: 4 }), 'RecordingFinished finds no PostgreSQL');
  record.update({ ended_at: new Date(), end_reason: 'caller' });
  await record.flushed();
  proxy.down(false);
  t.ok(await outbox.drained(10_000), 'the outbox drains once PostgreSQL answers');
  const rows = await rowsOf(callId);
  t.equal(rows.length, 1, 'exactly one row');
  t.match(rows[0], { name: recorder.name, call_type: 'inbound', status: 'recording' });
  // the sweep, a little later: the call ended more than the grace ago
  const result = await sweepWith().tick(new Date(Date.now() + 20_000));
  t.same(result, { saved: 1, failed: 0, retried: 0 });
  const done = await row(callId);
  t.equal(done.status, 'saved');
  t.equal(done.sha256, sha(bytes));
  t.equal(Number(done.size_bytes), bytes.length);
  const call = await db.selectFrom('calls').select('ended_at').where('id', '=', callId).executeTakeFirstOrThrow();
  t.same(done.ended_at, call.ended_at, 'ended when its call did');
  t.equal(done.duration_seconds, null, 'the sweep does not know the duration');
});

t.test('PostgreSQL slow: the recording starts after the index limit; the direct insert that lands late and the outbox make one row', async (t) => {
  await clean();
  const callId = randomUUID();
  // another transaction holds the call's slot in recordings (uncommitted): the service's inserts wait on it
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => (locked = r));
  const holder = db
    .transaction()
    .execute(async (trx) => {
      await trx.insertInto('recordings').values({ call_id: callId, name: `held-${callId}`, call_type: 'inbound', started_at: new Date() }).execute();
      locked();
      await held;
      throw new Error('rolled back');
    })
    .catch(() => undefined);
  await isLocked;
  const { recorder, recorded } = recorderFor(callId, 300);
  const { afterMs } = await recorded();
  t.ok(afterMs >= 280 && afterMs < 1000, `channels.record issued once the 300 ms index limit passed (${afterMs} ms)`);
  await outbox.settled(callId);
  t.equal(outbox.depth(), 1, 'the row waits in the outbox (its direct try timed out too)');
  release(); // the waiting inserts go on: the late direct one lands
  await holder;
  t.ok(await outbox.drained(10_000));
  await sleep(200);
  const rows = await rowsOf(callId);
  t.equal(rows.length, 1, 'exactly one row');
  t.equal(rows[0]!.name, recorder.name);
  t.equal(rows[0]!.status, 'recording');
});

t.test('the sweep: a stale row is saved with a non-empty file, failed without one; calls still going on and settled rows are left alone', async (t) => {
  await clean();
  const now = new Date();
  const ago = (s: number) => new Date(now.getTime() - s * 1000);
  const withFile = await seed({ call: { endedAt: ago(60) }, file: noiseWav(3) });
  const noFile = await seed({ call: { endedAt: ago(60) } });
  const emptyFile = await seed({ call: { endedAt: ago(60) }, file: silentWav(0) });
  const talking = await seed({ call: { endedAt: null }, file: noiseWav(1) });
  const justEnded = await seed({ call: { endedAt: ago(3) }, file: noiseWav(1) });
  const noCallYet = await seed({ call: 'none', file: noiseWav(1) });
  // RecordingFinished came and set the end, but the file could not be read then; its call row is not in yet
  const unreadable = await seed({ call: 'none', rowEndedAt: ago(40), file: noiseWav(2) });
  const settled = await Promise.all((['saved', 'failed', 'purged'] as const).map((status) => seed({ call: { endedAt: ago(60) }, status, file: noiseWav(1) })));
  const before = await Promise.all(settled.map((s) => row(s.callId)));

  const result = await sweepWith().tick(now);
  t.same(result, { saved: 2, failed: 2, retried: 0 });
  const w = await row(withFile.callId);
  t.equal(w.status, 'saved');
  t.equal(w.sha256, sha(withFile.file!));
  t.equal(Number(w.size_bytes), withFile.file!.length);
  t.same(w.ended_at, ago(60));
  const n = await row(noFile.callId);
  t.equal(n.status, 'failed', 'no file in Asterisk: failed');
  t.equal(n.sha256, null);
  t.equal((await row(emptyFile.callId)).status, 'failed', 'a header-only file: failed');
  const u = await row(unreadable.callId);
  t.equal(u.status, 'saved', 'the row Asterisk had said finished');
  t.same(u.ended_at, ago(40), 'with its own end');
  for (const r of [talking, justEnded, noCallYet]) t.equal((await row(r.callId)).status, 'recording', 'a call going on (or ended within the grace) is left alone');
  t.same(await Promise.all(settled.map((s) => row(s.callId))), before, 'saved, failed and purged rows unchanged');
  t.same(fileReads().sort(), [withFile.name, noFile.name, emptyFile.name, unreadable.name].sort(), 'Asterisk asked for the due rows only, each once');

  // the call going on ends; a sweep past the grace finishes it and the one that had just ended
  await db.updateTable('calls').set({ ended_at: ago(1) }).where('id', '=', talking.callId).execute();
  t.same(await sweepWith().tick(now), { saved: 0, failed: 0, retried: 0 }, 'ended 1 s ago: within the grace');
  t.same(await sweepWith().tick(new Date(now.getTime() + 15_000)), { saved: 2, failed: 0, retried: 0 }, '15 s later: both past the grace');
  t.equal((await row(talking.callId)).status, 'saved');
  t.equal((await row(justEnded.callId)).status, 'saved');
  t.equal((await row(noCallYet.callId)).status, 'recording', 'no call row, no end: still left alone');
});

t.test('the sweep: Asterisk not handing the file over leaves the row recording, stops the tick, and the row is tried again later, however old', async (t) => {
  await clean();
  const now = new Date();
  const hoursAgo = (h: number) => new Date(now.getTime() - h * 3600_000);
  const older = await seed({ call: { endedAt: hoursAgo(3) }, startedAt: hoursAgo(3.1), file: noiseWav(2) });
  const newer = await seed({ call: { endedAt: hoursAgo(2) }, startedAt: hoursAgo(2.1), file: noiseWav(2) });
  const sweep = sweepWith({ retryMinMs: 60_000 });
  ari.recordingFileFailure = new AriUnavailable('recording file: no answer from Asterisk within 5000 ms');
  t.same(await sweep.tick(now), { saved: 0, failed: 0, retried: 1 });
  t.same(fileReads(), [newer.name], 'one read, then the tick stops (Asterisk is away for the rest too)');
  t.equal((await row(newer.callId)).status, 'recording', 'not failed: the file may well be there');
  t.equal((await row(older.callId)).status, 'recording');
  ari.recordingFileFailure = null;
  t.same(await sweep.tick(now), { saved: 1, failed: 0, retried: 0 }, 'Asterisk back: the row that failed waits for its retry, the other goes');
  t.equal((await row(older.callId)).status, 'saved');
  t.equal((await row(newer.callId)).status, 'recording');
  t.same(await sweep.tick(new Date(now.getTime() + 61_000)), { saved: 1, failed: 0, retried: 0 }, 'after the back-off: tried again, two hours after its call');
  t.equal((await row(newer.callId)).status, 'saved');
  t.equal((await row(newer.callId)).sha256, sha(newer.file!));
});

t.test('the sweep: a batch per tick', async (t) => {
  await clean();
  const now = new Date();
  const due = await Promise.all(Array.from({ length: 5 }, (_, i) => seed({ call: { endedAt: new Date(now.getTime() - (60 + i) * 1000) }, file: noiseWav(1) })));
  const sweep = sweepWith({ batchSize: 3 });
  t.same(await sweep.tick(now), { saved: 3, failed: 0, retried: 0 });
  t.same(await sweep.tick(now), { saved: 2, failed: 0, retried: 0 });
  t.same(await sweep.tick(now), { saved: 0, failed: 0, retried: 0 });
  for (const d of due) t.equal((await row(d.callId)).status, 'saved');
});

t.test('the sweep: one tick in the fleet at a time (Redis lock); Redis or PostgreSQL away never throws out of it', async (t) => {
  await clean();
  const now = new Date();
  const lockKey = `${infra.keys.recordingsSweepLock()}-${randomBytes(3).toString('hex')}`;
  const a = sweepWith({ redis: infra.redis, lockKey });
  const b = sweepWith({ redis: infra.redis, lockKey });
  const first = await seed({ call: { endedAt: new Date(now.getTime() - 60_000) }, file: noiseWav(1) });
  t.same(await a.tick(now), { saved: 1, failed: 0, retried: 0 }, 'the first takes the lock and sweeps');
  const second = await seed({ call: { endedAt: new Date(now.getTime() - 60_000) }, file: noiseWav(1) });
  t.equal(await b.tick(now), null, 'another process within the interval: nothing');
  t.equal((await row(second.callId)).status, 'recording');
  t.ok((await infra.redis.ttl(lockKey)) > 0, 'the lock expires by itself');
  await infra.redis.del(lockKey);

  const redisAway = { set: async () => Promise.reject(new Error('Stream isn\'t writeable and enableOfflineQueue options is false')) } as unknown as Pick<Redis, 'set'>;
  t.same(await sweepWith({ redis: redisAway }).tick(now), { saved: 1, failed: 0, retried: 0 }, 'Redis away: the leader sweeps alone');
  t.equal((await row(first.callId)).status, 'saved');

  await seed({ call: { endedAt: new Date(now.getTime() - 60_000) }, file: noiseWav(1) });
  proxy.down(true);
  t.equal(await sweepWith().tick(now), null, 'PostgreSQL away: the tick gives up quietly');
  proxy.down(false);
  t.same(await sweepWith().tick(now), { saved: 1, failed: 0, retried: 0 }, 'and the next one does the work');
});

t.test('the sweep on its timer, and stop()', async (t) => {
  await clean();
  const r = await seed({ call: { endedAt: new Date(Date.now() - 60_000) }, file: noiseWav(1) });
  const sweep = sweepWith({ intervalMs: 50 });
  sweep.start();
  await until(async () => ((await row(r.callId)).status === 'saved' ? true : undefined), 5000);
  await sweep.stop();
  const later = await seed({ call: { endedAt: new Date(Date.now() - 60_000) }, file: noiseWav(1) });
  await sleep(200);
  t.equal((await row(later.callId)).status, 'recording', 'stopped: no tick any more');
  t.equal(await sweep.tick(), null, 'nor by hand');
});
