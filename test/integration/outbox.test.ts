/**
 * The record outbox (src/db/outbox.ts, src/db/record-ops.ts) on the real PostgreSQL, made "down" or "slow" for the
 * service only: its pool goes through a TCP proxy (test/helpers/tcp-proxy.ts) that resets every connection (down)
 * or silently drops every byte (blackhole); the shared server itself is never stopped. A schema of its own.
 *  (a) down for a while: 220 writes of 20 calls accepted at once, replayed after, every row once and in order;
 *  (b) blackholed: a write diverts after the timeout; the write that was in flight and did commit is not doubled;
 *      the pool is usable again afterwards (no connection left stuck on a lost answer);
 *  (c) a "crash" mid-replay (instance abandoned, tombstones lost): a new instance finishes it, each write once;
 *  (d) the file survives a stop with PostgreSQL down; a corrupt line, an unknown op and an entry PostgreSQL refuses
 *      are set aside in .rejected, never stop the rest; the 'transaction' gate applies once;
 *  every record op's SQL, tried twice with the same entry id: one effect; the service's outbox is the one writers
 *  made without one use.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileMigrationProvider, Migrator, sql } from 'kysely';
import { pino, type LevelWithSilent } from 'pino';
import t from 'tap';
import { CallRecordWriter } from '../../src/calls/call-record.js';
import { createDb, ensureDatabase, withQueryDeadline, type Db } from '../../src/db/db.js';
import { Outbox, markerTransaction, outboxMetrics, uuidv7, type OutboxOptions } from '../../src/db/outbox.js';
import { OpRegistry } from '../../src/db/outbox.js';
import { applyRecordBatch, installedRecordOutbox, recordOps, recordOutbox, startRecordOutbox, type RecordOp, type RecordOpArgs } from '../../src/db/record-ops.js';
import { Registry } from '../../src/metrics/metrics.js';
import { startVoicemail } from '../../src/voicemail/voicemails.repo.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const base = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/hotline_test';
const log = pino({ level: (process.env.TEST_LOG_LEVEL as LevelWithSilent | undefined) ?? 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

await ensureDatabase(base);
const schema = `test_outbox_${randomBytes(4).toString('hex')}`;
const admin = createDb(base);
await sql`create schema ${sql.id(schema)}`.execute(admin);
const inSchema = (u: string, port?: number) => {
  const url = new URL(u);
  url.searchParams.set('options', `-c search_path=${schema}`);
  if (port) {
    url.hostname = '127.0.0.1';
    url.port = String(port);
  }
  return url.toString();
};
/** straight to PostgreSQL: the test's own view (and the lock holder in (b)) */
const direct = createDb(inSchema(base));
{
  const { error } = await new Migrator({
    db: direct,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: path.join(import.meta.dirname, '../../migrations') }),
    migrationTableSchema: schema,
  }).migrateToLatest();
  if (error) throw error;
}
const target = new URL(base);
const proxy = await startTcpProxy({ host: target.hostname || '127.0.0.1', port: Number(target.port || 5432) });
const proxiedUrl = inSchema(base, proxy.port);
/** the service's pool: through the proxy */
const db = createDb(proxiedUrl);
const others: Db[] = [];
t.teardown(async () => {
  await db.destroy().catch(() => undefined);
  for (const d of others) await d.destroy().catch(() => undefined);
  await proxy.close();
  await direct.destroy();
  await sql`drop schema ${sql.id(schema)} cascade`.execute(admin);
  await admin.destroy();
});

const outboxOpts = (dir: string, extra: Partial<OutboxOptions<Db>> = {}): OutboxOptions<Db> => ({
  db,
  ops: recordOps,
  dir,
  log,
  database: proxiedUrl,
  directTimeoutMs: 1500,
  replayTimeoutMs: 1000,
  retryMinMs: 200,
  retryMaxMs: 500,
  ...extra,
});
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'outbox-int-'));
const jsonl = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.jsonl'));

const newCall = (id: string, caller: string) => ({
  id,
  direction: 'inbound' as const,
  caller,
  dialed: '12345',
  line: '12345',
  language: 'zh',
  channel_id: `chan-${id.slice(0, 8)}`,
  arrived_at: new Date(),
});
const eventsOf = async (callId: string) =>
  (await direct.selectFrom('call_events').select(['type', 'data']).where('call_id', '=', callId).orderBy('id').execute()).map((e) => e.type);
const markers = async () => Number((await sql<{ n: string }>`select count(*) as n from outbox_applied`.execute(direct)).rows[0]!.n);

t.test('(a) PostgreSQL down for a while: 220 writes of 20 calls accepted at once, nothing lost, each row once and in order', async (t) => {
  const dir = tmp();
  const outbox = await Outbox.open(outboxOpts(dir));
  t.teardown(() => outbox.close());
  proxy.down(true);
  const calls = Array.from({ length: 20 }, () => randomUUID());
  const writers = calls.map((id) => new CallRecordWriter(db, id, log, outbox));
  const started = Date.now();
  writers.forEach((w, i) => w.write('call.insert', newCall(calls[i]!, `1380000${String(i).padStart(4, '0')}`)));
  // interleaved across the calls, as live calls write
  for (let k = 1; k <= 8; k++) {
    writers.forEach((w) => w.event(`step-${k}`, { k }));
    if (k === 4) writers.forEach((w) => w.update({ ivr_path: ['menu'] }));
  }
  writers.forEach((w) => w.update({ ivr_path: ['menu', 'general'], ended_at: new Date(), disposition: 'answered' }));
  await Promise.all(writers.map((w) => w.flushed()));
  const took = Date.now() - started;
  t.ok(took < 3000, `all 220 writes durable in the outbox in ${took} ms`);
  t.equal(outbox.depth(), 220, 'every write waits in the outbox');
  t.ok(outbox.diverting());
  await sleep(2500); // down a while: the flusher polls and fails meanwhile
  t.equal(outbox.depth(), 220, 'nothing lost while down');
  t.equal(Number((await direct.selectFrom('calls').select((eb) => eb.fn.countAll().as('n')).where('id', 'in', calls).executeTakeFirstOrThrow()).n), 0, 'nothing reached PostgreSQL');
  proxy.down(false);
  t.ok(await outbox.drained(20_000), 'drained after recovery');
  t.notOk(outbox.diverting());
  const rows = await direct.selectFrom('calls').selectAll().where('id', 'in', calls).execute();
  t.equal(rows.length, 20, 'every call once');
  for (const id of calls) {
    t.same(await eventsOf(id), [1, 2, 3, 4, 5, 6, 7, 8].map((k) => `step-${k}`), 'eight events, once each, in order');
  }
  t.ok(rows.every((r) => r.disposition === 'answered' && r.ended_at !== null && r.ivr_path.join('/') === 'menu/general'), 'the updates applied in order (the last one wins)');
  t.same(jsonl(dir), [], 'the drained file is gone');
  // healthy again: straight in
  const w = new CallRecordWriter(db, calls[0]!, log, outbox);
  w.event('after');
  await w.flushed();
  t.equal(outbox.depth(), 0);
  t.equal((await eventsOf(calls[0]!)).at(-1), 'after');
});

t.test('(b) blackholed: writes divert after the timeout; the write in flight that committed is not doubled; the pool recovers', async (t) => {
  const dir = tmp();
  const outbox = await Outbox.open(outboxOpts(dir));
  t.teardown(() => outbox.close());
  const callId = randomUUID();
  const w = new CallRecordWriter(db, callId, log, outbox);
  w.write('call.insert', newCall(callId, '13900000001'));
  w.event('arrived');
  await w.flushed();
  t.equal(outbox.depth(), 0, 'healthy: written straight');
  // hold the call's row: the next event's foreign-key check waits on it (the write is "in flight" on the server)
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => (locked = r));
  const lock = direct.transaction().execute(async (trx) => {
    await sql`select 1 from calls where id = ${callId} for update`.execute(trx);
    locked();
    await held;
  });
  await isLocked;
  const sent = Date.now();
  w.event('in-flight');
  await sleep(300);
  proxy.blackhole(true); // the link goes silent: the answer to that write will be lost
  await sleep(100);
  release(); // the write commits on the server...
  await lock;
  for (let i = 0; i < 50 && !(await eventsOf(callId)).includes('in-flight'); i++) await sleep(20);
  t.same(await eventsOf(callId), ['arrived', 'in-flight'], '...and is in PostgreSQL, though its answer never arrives');
  await w.flushed();
  const diverted = Date.now() - sent;
  t.ok(diverted >= 1400 && diverted < 4000, `the write went to the outbox after the 1.5 s timeout (${diverted} ms)`);
  t.ok(outbox.diverting());
  const quick = Date.now();
  w.event('after-1');
  w.event('after-2');
  w.update({ ended_at: new Date(), disposition: 'answered' });
  await w.flushed();
  t.ok(Date.now() - quick < 1000, 'later writes no longer wait on the silent link');
  t.equal(outbox.depth(), 4, 'the in-flight write and the three after it wait');
  await sleep(1500); // still silent: replays time out
  proxy.blackhole(false);
  t.ok(await outbox.drained(20_000), 'drained once the link answers');
  t.same(await eventsOf(callId), ['arrived', 'in-flight', 'after-1', 'after-2'], 'the committed write once, the rest after it, in order');
  const row = await direct.selectFrom('calls').select(['disposition']).where('id', '=', callId).executeTakeFirstOrThrow();
  t.equal(row.disposition, 'answered');
  // no pool connection stayed stuck on an answer that never came: ten queries at once, each answered quickly
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 12 }, () => withQueryDeadline(db, 3000, (d) => sql`select 1`.execute(d))));
  t.ok(Date.now() - t0 < 3000, 'the whole pool answers again');
});

t.test('the pool limits every query (client and server side)', async (t) => {
  const short = createDb(proxiedUrl, { queryTimeoutMs: 300 });
  others.push(short);
  const t0 = Date.now();
  await t.rejects(sql`select pg_sleep(2)`.execute(short), 'a statement longer than the limit fails');
  t.ok(Date.now() - t0 < 1500, 'at about the limit');
  proxy.blackhole(true);
  const t1 = Date.now();
  await t.rejects(withQueryDeadline(db, 400, (d) => sql`select 1`.execute(d)), /PostgreSQL|timeout|deadline/i);
  t.ok(Date.now() - t1 < 1500, 'a silent link fails at the deadline');
  proxy.blackhole(false);
  const r = await withQueryDeadline(db, 3000, (d) => sql<{ one: number }>`select 1 as one`.execute(d));
  t.equal(r.rows[0]!.one, 1, 'and the next query works');
});

t.test('a deadline travels in the Db it hands over, not in the process', async (t) => {
  // no AsyncLocalStorage: the Db given to fn carries the deadline; the service's own Db keeps the pool's limit
  let late: Promise<unknown> | undefined;
  await t.rejects(
    withQueryDeadline(db, 200, (d) => (late = sleep(400).then(() => sql`select 1`.execute(d)))),
    /within 200 ms/,
    'fn is abandoned at the deadline',
  );
  await t.rejects(late!, /deadline passed before the query was sent/, 'a query fn starts after the deadline is never sent');
  let bound: Db | undefined;
  const n = await withQueryDeadline(db, 300, async (d) => {
    bound = d;
    return (await sql<{ n: number }>`select 41 + 1 as n`.execute(d)).rows[0]!.n;
  });
  t.equal(n, 42, 'before the deadline the bound Db answers');
  t.not(bound, db, 'fn got a Db of its own');
  await sleep(350);
  await t.rejects(sql`select 1`.execute(bound!), /deadline passed before the query was sent/, 'which stays bound to that deadline after fn');
  await bound!.destroy(); // must not end the shared pool
  t.equal((await sql<{ one: number }>`select 1 as one`.execute(db)).rows[0]!.one, 1, 'the service Db is unaffected');
});

t.test('(c) a crash mid-replay, replayed again by a new instance: still exactly once', async (t) => {
  const dir = tmp();
  // every replayed write a little slow, so the "crash" lands in the middle of the replay
  const slow = <T>(d: Db, ms: number, fn: (d: Db) => Promise<T>) => sleep(15).then(() => withQueryDeadline(d, ms, fn));
  const first = await Outbox.open(outboxOpts(dir, { deadline: slow, replayConcurrency: 2 }));
  proxy.down(true);
  const calls = Array.from({ length: 10 }, () => randomUUID());
  const writers = calls.map((id) => new CallRecordWriter(db, id, log, first));
  writers.forEach((w, i) => w.write('call.insert', newCall(calls[i]!, `1370000${String(i).padStart(4, '0')}`)));
  for (let k = 1; k <= 9; k++) writers.forEach((w) => w.event(`e${k}`));
  await Promise.all(writers.map((w) => w.flushed()));
  t.equal(first.depth(), 100);
  const before = await markers();
  proxy.down(false);
  const countEvents = async () => Number((await direct.selectFrom('call_events').select((eb) => eb.fn.countAll().as('n')).where('call_id', 'in', calls).executeTakeFirstOrThrow()).n);
  while ((await countEvents()) < 25) await sleep(10);
  first.crash(); // kill -9 in the middle of the replay (a statement may still be on its way)
  const applied = await countEvents();
  t.ok(applied < 90, `cut mid-replay (${applied} of 90 events in)`);
  const file = path.join(dir, jsonl(dir)[0]!);
  // tombstones are not fsync'd: lose every one of them, so every entry is replayed again
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('{"done"'));
  await fs.writeFile(file, `${lines.join('\n')}\n`);
  t.equal(lines.length, 100, 'all 100 entries still in the file');
  const second = await Outbox.open(outboxOpts(dir));
  t.teardown(() => second.close());
  t.equal(second.depth(), 100, 'the new instance took the file over');
  t.ok(await second.drained(20_000));
  for (const id of calls) t.same(await eventsOf(id), [1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => `e${k}`), 'each event once, in order');
  t.equal(await markers(), before + 90, 'one marker per event: the second replay added none twice');
  t.equal((await direct.selectFrom('calls').select('id').where('id', 'in', calls).execute()).length, 10);
});

t.test('(d) the file survives a stop while down; corrupt, unknown and refused entries are set aside, never stop the rest', async (t) => {
  const dir = tmp();
  const first = await Outbox.open(outboxOpts(dir));
  proxy.down(true);
  const callId = randomUUID();
  const w = new CallRecordWriter(db, callId, log, first);
  w.write('call.insert', newCall(callId, '13600000001'));
  for (let k = 1; k <= 4; k++) w.event(`d${k}`);
  await w.flushed();
  await first.close(500); // a clean stop with PostgreSQL still down: the entries stay on disk
  const files = jsonl(dir);
  t.equal(files.length, 1, 'the outbox file survives the stop');
  const file = path.join(dir, files[0]!);
  t.equal(readFileSync(file, 'utf8').trim().split('\n').length, 5);
  const entry = (op: string, args: unknown) => JSON.stringify({ id: uuidv7(), stream: callId, seq: 1000, op, args, at: new Date().toISOString() });
  await fs.appendFile(
    file,
    [
      '{"id":"this line is not json',
      entry('call.teleport', { callId }), // an op nobody registered (a newer version wrote it?)
      entry('call.event', { callId: 'not-a-uuid', at: { $date: new Date().toISOString() }, type: 'bad', data: {} }), // PostgreSQL refuses it
      entry('call.event', { callId, at: { $date: new Date().toISOString() }, type: 'd5', data: {} }), // behind the refused one
    ].join('\n') + '\n',
  );
  proxy.down(false);
  const second = await Outbox.open(outboxOpts(dir));
  t.teardown(() => second.close());
  t.ok(await second.drained(20_000), 'drained: nothing blocked');
  t.same(await eventsOf(callId), ['d1', 'd2', 'd3', 'd4', 'd5'], 'the good entries, in order, the one after the refused one too');
  const rejected = readdirSync(dir)
    .filter((f) => f.endsWith('.rejected'))
    .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').trim().split('\n'))
    .map((l) => JSON.parse(l) as { reason: string });
  t.equal(rejected.length, 3, 'three set aside');
  t.ok(rejected.some((r) => r.reason.includes('not JSON')));
  t.ok(rejected.some((r) => r.reason.includes('unknown operation "call.teleport"')));
  t.ok(rejected.some((r) => /uuid/i.test(r.reason)), 'the refused entry, with PostgreSQL\'s reason');
  t.same(jsonl(dir), []);
});

t.test('the transaction gate: marker and op in one transaction, a second try does nothing', async (t) => {
  const callId = randomUUID();
  await direct.insertInto('calls').values(newCall(callId, '13500000001')).execute();
  const id = uuidv7();
  let runs = 0;
  const op = async (trx: Db) => {
    runs++;
    await trx.insertInto('call_events').values({ call_id: callId, at: new Date(), type: 'tx-1', data: '{}' }).execute();
    await trx.insertInto('call_events').values({ call_id: callId, at: new Date(), type: 'tx-2', data: '{}' }).execute();
  };
  await markerTransaction(db, id, op);
  await markerTransaction(db, id, op);
  t.equal(runs, 1, 'the op ran once');
  t.same(await eventsOf(callId), ['tx-1', 'tx-2']);
  // a failing op leaves no marker: the next try applies it
  const id2 = uuidv7();
  await t.rejects(markerTransaction(db, id2, async (trx) => {
    await trx.insertInto('call_events').values({ call_id: callId, at: new Date(), type: 'tx-3', data: '{}' }).execute();
    throw new Error('boom');
  }));
  await markerTransaction(db, id2, async (trx) => {
    await trx.insertInto('call_events').values({ call_id: callId, at: new Date(), type: 'tx-3', data: '{}' }).execute();
  });
  t.same(await eventsOf(callId), ['tx-1', 'tx-2', 'tx-3']);
});

t.test('every record op: its SQL applies, and a second try of the same entry changes nothing', async (t) => {
  const callId = randomUUID();
  const number = `1330000${String(Date.now() % 10000).padStart(4, '0')}`;
  const agentId = `7${String(Date.now()).slice(-5)}`;
  const voicemailId = await startVoicemail(direct, { callId: null, caller: number, line: '12345', language: 'zh', reason: 'ivr', recordingName: `vm-${callId}`, startedAt: new Date() });
  const at = new Date();
  const steps: Array<{ [K in RecordOp]: [K, RecordOpArgs[K]] }[RecordOp]> = [
    ['call.insert', newCall(callId, number)],
    ['call.update', { id: callId, patch: { queue: 'general', queued_at: at } }],
    ['call.event', { callId, at, type: 'queued', data: { queue: 'general' } }],
    ['call.addAgent', { callId, agentId }],
    ['voicemail.finish', { id: voicemailId, status: 'saved', durationSeconds: 7 }],
    ['callback.request', { number, callId, queue: 'general', reason: 'abandoned' }],
    ['survey.credit', { callId, agents: [agentId, `${agentId}9`], line: '12345', score: 1, scale: 3, satisfied: true, at }],
    ['agentState.log', { agentId, at, from: 'ready', to: 'reserved', reason: null, callId, actor: null }],
    ['agentState.log', { agentId, at, from: 'reserved', to: 'on_call', reason: null, callId: `callback-${randomUUID()}`, actor: 'test' }],
    ['recording.start', { callId, name: `call-${callId}`, callType: 'inbound', startedAt: at }],
  ];
  for (const [op, args] of steps) {
    const def = recordOps.get(op)!;
    const ctx = { id: uuidv7(), at };
    await def.run(db, args, ctx);
    await def.run(db, args, ctx); // the same entry again (a replay after a timeout that did commit)
  }
  const cb = await direct.selectFrom('callbacks').selectAll().where('call_id', '=', callId).execute();
  t.equal(cb.length, 1, 'one callback');
  const finish = { id: cb[0]!.id, status: 'pending' as const, retryAt: new Date(Date.now() + 600_000) };
  const fctx = { id: uuidv7(), at };
  await recordOps.get('callback.finish')!.run(db, finish, fctx);
  await direct.updateTable('callbacks').set({ status: 'dialing' }).where('id', '=', cb[0]!.id).execute(); // another process claims it
  await recordOps.get('callback.finish')!.run(db, finish, fctx); // a late repeat must not set it back to pending
  const call = await direct.selectFrom('calls').selectAll().where('id', '=', callId).executeTakeFirstOrThrow();
  t.equal(call.queue, 'general');
  t.same(call.agents, [agentId], 'the agent once');
  t.same(await eventsOf(callId), ['queued'], 'the event once');
  const vm = await direct.selectFrom('voicemails').select(['status', 'duration_seconds']).where('id', '=', voicemailId).executeTakeFirstOrThrow();
  t.same({ ...vm, duration_seconds: Number(vm.duration_seconds) }, { status: 'saved', duration_seconds: 7 });
  t.equal((await direct.selectFrom('callbacks').select('status').where('id', '=', cb[0]!.id).executeTakeFirstOrThrow()).status, 'dialing', 'the late repeat of callback.finish did nothing');
  const survey = await direct.selectFrom('survey_results').selectAll().where('call_id', '=', callId).orderBy('agent_id').execute();
  t.same(survey.map((r) => [r.agent_id, r.score, r.satisfied]), [[agentId, 1, true], [`${agentId}9`, 1, true]]);
  const states = await direct.selectFrom('agent_state_log').select(['to_state', 'call_id', 'actor']).where('agent_id', '=', agentId).orderBy('id').execute();
  t.same(states, [{ to_state: 'reserved', call_id: callId, actor: null }, { to_state: 'on_call', call_id: null, actor: 'test' }], 'each state once; a stand-in id is no call id');
  const recordingStart = recordOps.get('recording.start')!;
  t.equal(recordingStart.gate, 'natural', 'recording.start is idempotent by itself');
  // a later entry of the same call (another name: a second start) is not a second recording either
  await recordingStart.run(db, { callId, name: `other-${callId}`, callType: 'outbound', startedAt: new Date() }, { id: uuidv7(), at });
  const recs = await direct.selectFrom('recordings').select(['name', 'call_type', 'status', 'started_at']).where('call_id', '=', callId).execute();
  t.same(recs, [{ name: `call-${callId}`, call_type: 'inbound', status: 'recording', started_at: at }], 'one recording row, the first');
  // an anonymous number cannot be called back: nothing, and no error
  await recordOps.get('callback.request')!.run(db, { number: 'anonymous', callId, queue: null, reason: 'abandoned' }, { id: uuidv7(), at });
});

/** the record ops, with their batches counted (entries per batch) */
function countingOps(batches: number[]): OpRegistry<Db> {
  const ops = new OpRegistry<Db>();
  for (const name of recordOps.names()) {
    const d = recordOps.get(name)!;
    ops.register(name, d.gate, d.run);
  }
  return ops.batchWith(async (d, items) => {
    batches.push(items.length);
    await applyRecordBatch(d, items);
  });
}

/** values that the parameters carried as they were: quotes, backslashes, $n, braces, commas, NUL-free unicode, JSON */
const TRICKY = ["it's", 'say "hi"', 'back\\slash \\x00', '$1 $2 $$ $tag$', 'x,y', '{z}', '中文 😀', 'a\nb', '', 'NULL'];

t.test('batched: every record op in one round trip, the same batch again changes nothing, values arrive as parameters would carry them', async (t) => {
  const callId = randomUUID();
  const number = `1320000${String(Date.now() % 10000).padStart(4, '0')}`;
  const agentId = `6${String(Date.now()).slice(-5)}`;
  const voicemailId = await startVoicemail(direct, { callId: null, caller: number, line: '12345', language: 'zh', reason: 'ivr', recordingName: `vm-${callId}`, startedAt: new Date() });
  const at = new Date(Date.UTC(2026, 11, 7, 1, 2, 3, 456));
  const data = { tricky: TRICKY, nested: { a: [1, 'x', null, 2.5], b: true, q: TRICKY.join('|') }, n: -0.125 };
  const items = (
    [
      ['call.insert', newCall(callId, number)],
      ['call.update', { id: callId, patch: { queue: TRICKY[0]!, queued_at: at, ivr_path: TRICKY, wait_seconds: 12.25, survey_satisfied: false } }],
      ['call.event', { callId, at, type: TRICKY[3]!, data }],
      ['call.addAgent', { callId, agentId }],
      ['voicemail.finish', { id: voicemailId, status: 'saved', durationSeconds: 7 }],
      ['callback.request', { number, callId, queue: 'general', reason: 'abandoned' }],
      ['survey.credit', { callId, agents: [agentId, `${agentId}9`], line: '12345', score: 2, scale: 3, satisfied: false, at }],
      ['agentState.log', { agentId, at, from: 'ready', to: 'reserved', reason: TRICKY[1]!, callId, actor: null }],
      ['recording.start', { callId, name: `call-${callId}`, callType: 'inbound', startedAt: at }],
    ] as Array<[RecordOp, unknown]>
  ).map(([op, args]) => ({ def: recordOps.get(op)!, args, ctx: { id: uuidv7(), at } }));
  await applyRecordBatch(db, items);
  await applyRecordBatch(db, items); // the same entries again (a replay after a timeout that did commit)
  const call = await direct.selectFrom('calls').selectAll().where('id', '=', callId).executeTakeFirstOrThrow();
  t.equal(call.queue, TRICKY[0]);
  t.same(call.ivr_path, TRICKY, 'a text[] with quotes, backslashes, braces, commas, an empty string and "NULL" (not null)');
  t.equal(call.queued_at?.getTime(), at.getTime(), 'the timestamp to the millisecond');
  t.equal(Number(call.wait_seconds), 12.25);
  t.equal(call.survey_satisfied, false);
  t.same(call.agents, [agentId], 'the agent once');
  const events = await direct.selectFrom('call_events').select(['type', 'data', 'at']).where('call_id', '=', callId).execute();
  t.equal(events.length, 1, 'the event once');
  t.equal(events[0]!.type, TRICKY[3]);
  t.same(events[0]!.data, data, 'the JSON as it was');
  t.equal(events[0]!.at.getTime(), at.getTime());
  t.equal((await direct.selectFrom('callbacks').select('id').where('call_id', '=', callId).execute()).length, 1, 'one callback');
  t.equal((await direct.selectFrom('survey_results').select('agent_id').where('call_id', '=', callId).execute()).length, 2);
  const states = await direct.selectFrom('agent_state_log').select(['to_state', 'reason']).where('agent_id', '=', agentId).execute();
  t.same(states, [{ to_state: 'reserved', reason: TRICKY[1] }], 'the state once');
  const vm = await direct.selectFrom('voicemails').select('status').where('id', '=', voicemailId).executeTakeFirstOrThrow();
  t.equal(vm.status, 'saved');
  t.equal((await direct.selectFrom('recordings').select('name').where('call_id', '=', callId).execute()).length, 1);

  // all or nothing: a batch whose last entry PostgreSQL refuses applies none of them
  const other = randomUUID();
  await t.rejects(
    applyRecordBatch(db, [
      { def: recordOps.get('call.insert')!, args: newCall(other, '13200000002'), ctx: { id: uuidv7(), at } },
      { def: recordOps.get('call.event')!, args: { callId: 'not-a-uuid', at, type: 'bad', data: {} }, ctx: { id: uuidv7(), at } },
    ]),
  );
  t.equal((await direct.selectFrom('calls').select('id').where('id', '=', other).execute()).length, 0, 'the good entry of a refused batch did not apply either');
});

t.test('the outbox batches the writes of one moment across calls; an entry PostgreSQL refuses fails alone', async (t) => {
  const batches: number[] = [];
  const dir = tmp();
  const outbox = await Outbox.open(outboxOpts(dir, { ops: countingOps(batches) }));
  t.teardown(() => outbox.close());
  const calls = Array.from({ length: 20 }, () => randomUUID());
  const writers = calls.map((id) => new CallRecordWriter(db, id, log, outbox));
  writers.forEach((w, i) => w.write('call.insert', newCall(calls[i]!, `1310000${String(i).padStart(4, '0')}`)));
  for (let k = 1; k <= 8; k++) {
    writers.forEach((w) => w.event(`step-${k}`, { k }));
    if (k === 4) writers.forEach((w) => w.update({ ivr_path: ['menu'] }));
  }
  writers.forEach((w) => w.update({ ivr_path: ['menu', 'general'], disposition: 'answered' }));
  await Promise.all(writers.map((w) => w.flushed()));
  t.equal(outbox.depth(), 0, 'straight to PostgreSQL');
  t.equal(batches.reduce((a, b) => a + b, 0), 220, 'every write went in a batch');
  t.ok(batches.length <= 4, `220 writes in ${batches.length} round trips (${batches.join(', ')})`);
  for (const id of calls) t.same(await eventsOf(id), [1, 2, 3, 4, 5, 6, 7, 8].map((k) => `step-${k}`), 'eight events, once each, in order');
  const rows = await direct.selectFrom('calls').select(['ivr_path', 'disposition']).where('id', 'in', calls).execute();
  t.ok(rows.length === 20 && rows.every((r) => r.disposition === 'answered' && r.ivr_path.join('/') === 'menu/general'), 'the updates applied in order (the last one wins)');

  // one moment's writes of five calls, one of them refused by PostgreSQL: the other four apply at once, the
  // refused one is retried and set aside, the write behind it in its stream still applies
  const more = Array.from({ length: 5 }, () => randomUUID());
  const ws = more.map((id) => new CallRecordWriter(db, id, log, outbox));
  ws.forEach((w, i) => w.write('call.insert', newCall(more[i]!, `1310001${String(i).padStart(4, '0')}`)));
  await Promise.all(ws.map((w) => w.flushed()));
  batches.length = 0;
  ws.forEach((w, i) => {
    if (i === 2) outbox.write(more[2]!, 'call.event', { callId: 'not-a-uuid', at: new Date(), type: 'bad', data: {} });
    w.event('good');
  });
  await Promise.all(ws.map((w) => w.flushed()));
  t.ok(batches.length >= 2, 'the poisoned batch was tried, then each call\'s group alone');
  for (const [i, id] of more.entries()) {
    if (i !== 2) t.same(await eventsOf(id), ['good'], 'a call beside the refused entry wrote straight');
  }
  t.ok(await outbox.drained(20_000), 'the refused entry left the outbox (set aside)');
  t.same(await eventsOf(more[2]!), ['good'], 'the write behind the refused one, in its stream');
  const rejected = readdirSync(dir).filter((f) => f.endsWith('.rejected'));
  t.equal(rejected.length, 1, 'the refused entry is kept aside');
});

t.test('group commit: writes of different moments within OUTBOX_BATCH_MS share one round trip', async (t) => {
  const batches: number[] = [];
  const outbox = await Outbox.open(outboxOpts(tmp(), { ops: countingOps(batches), batchMs: 150 }));
  t.teardown(() => outbox.close());
  const calls = Array.from({ length: 5 }, () => randomUUID());
  const writers = calls.map((id) => new CallRecordWriter(db, id, log, outbox));
  // five calls arrive 10 ms apart: five turns of the event loop, one window
  for (const [i, w] of writers.entries()) {
    w.write('call.insert', newCall(calls[i]!, `1300000${String(i).padStart(4, '0')}`));
    w.event('arrived');
    await sleep(10);
  }
  await Promise.all(writers.map((w) => w.flushed()));
  t.same(batches, [10], 'ten writes of five moments in one round trip');
  for (const id of calls) t.same(await eventsOf(id), ['arrived']);
});

t.test('the service\'s outbox: installed for writers made without one; an unusable directory stops start-up with one line', async (t) => {
  const dir = tmp();
  const outbox = await startRecordOutbox({ db, dir, databaseUrl: proxiedUrl, log, directTimeoutMs: 1000, retryMinMs: 200, retryMaxMs: 500 });
  t.teardown(() => outbox.close());
  t.equal(recordOutbox(db), outbox, 'the installed outbox');
  t.not(recordOutbox(direct), outbox, 'another Db gets its own');
  proxy.down(true);
  const callId = randomUUID();
  const w = new CallRecordWriter(db, callId, log);
  w.write('call.insert', newCall(callId, '13200000001'));
  w.event('via-installed');
  await w.flushed();
  t.equal(outbox.depth(), 2, 'the writer used the installed outbox');
  // the line service.ts adds to /metrics
  const registry = new Registry();
  for (const f of outboxMetrics(installedRecordOutbox)) registry.register(f);
  t.match(registry.render(), /^hotline_outbox_depth 2$/m);
  proxy.down(false);
  t.ok(await outbox.drained(20_000));
  t.same(await eventsOf(callId), ['via-installed']);
  const file = path.join(dir, 'not-a-dir');
  await fs.writeFile(file, '');
  await t.rejects(startRecordOutbox({ db, dir: path.join(file, 'outbox'), databaseUrl: proxiedUrl, log }), /OUTBOX_DIR .* cannot be used/);
});
