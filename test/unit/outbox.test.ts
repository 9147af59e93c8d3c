/**
 * The record outbox (src/db/outbox.ts) on a fake database: an in-memory op registry whose ops append to arrays,
 * 'self'-gated through an in-memory marker set as the SQL ops are through outbox_applied. Order per stream, a failed
 * or slow direct write diverting the rest of its stream to the file, replay when the database is back, replay by a
 * new instance on the same directory after a "crash", torn and corrupt lines set aside without stopping anything.
 */
import { mkdtempSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { BadOpArgs, OpRegistry, Outbox, decodeArgs, encodeArgs, isTransient, outboxMetrics, uuidv7, type OutboxOptions } from '../../src/db/outbox.js';
import { Registry } from '../../src/metrics/metrics.js';

/** a database that can be down (refuses at once), silent (never answers) or refuse one kind of write */
class FakeDb {
  mode: 'up' | 'down' | 'silent' = 'up';
  /** applied writes per stream, in order */
  rows = new Map<string, string[]>();
  markers = new Set<string>();
  attempts = 0;
  /** every write takes this long (a slow replay a test can interrupt) */
  slowMs = 0;
  async exec(stream: string, value: string, marker: string | null, delayMs = 0): Promise<void> {
    this.attempts++;
    if (this.mode === 'down') throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    if (this.mode === 'silent') return new Promise(() => undefined);
    if (delayMs + this.slowMs) await new Promise((r) => setTimeout(r, delayMs + this.slowMs));
    if (marker !== null) {
      if (this.markers.has(marker)) return;
      this.markers.add(marker);
    }
    const list = this.rows.get(stream) ?? [];
    list.push(value);
    this.rows.set(stream, list);
  }
  of(stream: string): string[] {
    return this.rows.get(stream) ?? [];
  }
}

const ops = new OpRegistry<FakeDb>()
  .register<{ s: string; v: string; delay?: number }>('put', 'self', (db, a, ctx) => db.exec(a.s, a.v, ctx.id, a.delay))
  .register<{ s: string; v: string }>('put.natural', 'natural', (db, a) => db.exec(a.s, a.v, null))
  .register<{ at: Date }>('dated', 'self', async (db, a, ctx) => {
    if (!(a.at instanceof Date)) throw new BadOpArgs('at is not a Date');
    await db.exec('dated', a.at.toISOString(), ctx.id);
  })
  .register<{ v: string }>('refused', 'self', async () => {
    throw Object.assign(new Error('new row violates check constraint'), { code: '23514' });
  });

function logCapture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines, has: (msg: string) => lines.some((l) => String(l.msg).includes(msg)) };
}

function opts(db: FakeDb, dir: string, log = logCapture().log): OutboxOptions<FakeDb> {
  return { db, ops, dir, log, database: 'unit', directTimeoutMs: 100, replayTimeoutMs: 100, retryMinMs: 30, retryMaxMs: 60, heartbeatMs: 1000, scanMs: 60_000 };
}

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'outbox-unit-'));
const jsonl = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.jsonl'));
const rejectedLines = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.rejected'))
    .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as { reason: string; entry: unknown });

/** the drained file is unlinked right after the pass that emptied it (not awaited by drained()): up to 1 s for it */
async function fileRemoved(dir: string): Promise<void> {
  for (let i = 0; i < 50 && jsonl(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
}

t.test('args travel as JSON with their Dates; classes of errors', async (t) => {
  const at = new Date('2026-12-01T08:00:00.123Z');
  const enc = encodeArgs({ at, list: [at, 1, 'x', null], skip: undefined, nested: { ok: true } });
  t.same(JSON.parse(JSON.stringify(enc)), { at: { $date: at.toISOString() }, list: [{ $date: at.toISOString() }, 1, 'x', null], nested: { ok: true } });
  const dec = decodeArgs(JSON.parse(JSON.stringify(enc))) as { at: Date; list: unknown[] };
  t.ok(dec.at instanceof Date && dec.at.getTime() === at.getTime(), 'a Date comes back a Date');
  t.throws(() => encodeArgs({ n: 10n }), BadOpArgs);
  t.throws(() => encodeArgs({ n: Number.NaN }), BadOpArgs);
  t.same(encodeArgs({ err: new Error('x') }), { err: {} }, 'an instance: what JSON.stringify makes of it');
  t.ok(isTransient(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })));
  t.ok(isTransient(new Error('Connection terminated unexpectedly')));
  t.ok(isTransient(Object.assign(new Error('admin shutdown'), { code: '57P01' })));
  t.notOk(isTransient(Object.assign(new Error('fk'), { code: '23503' })));
  t.notOk(isTransient(new BadOpArgs('x')));
  const a = uuidv7(1_000_000);
  const b = uuidv7(1_000_001);
  t.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.ok(a < b, 'UUIDv7 sorts by time');
});

t.test('each stream is applied in the order written, streams independent of each other', async (t) => {
  const db = new FakeDb();
  const dir = tmp();
  const o = await Outbox.open(opts(db, dir));
  t.teardown(() => o.close());
  const expected = new Map<string, string[]>();
  const writes: Promise<void>[] = [];
  for (let i = 0; i < 60; i++) {
    const s = `call-${i % 3}`;
    const v = `v${i}`;
    expected.set(s, [...(expected.get(s) ?? []), v]);
    // random delays: a later write of a stream never overtakes an earlier one
    writes.push(o.write(s, 'put', { s, v, delay: Math.floor(Math.random() * 5) }));
  }
  await Promise.all(writes);
  for (const [s, vs] of expected) t.same(db.of(s), vs, `${s} in order`);
  t.equal(o.depth(), 0);
  t.same(jsonl(dir), [], 'no file while the database takes every write');
});

t.test('a failed direct write diverts it and the rest of its stream to the file; replayed in order when the database is back', async (t) => {
  const db = new FakeDb();
  const dir = tmp();
  const cap = logCapture();
  const o = await Outbox.open(opts(db, dir, cap.log));
  t.teardown(() => o.close());
  await o.write('a', 'put', { s: 'a', v: 'a1' }); // straight in
  db.mode = 'down';
  const started = Date.now();
  await o.write('a', 'put', { s: 'a', v: 'a2' });
  await o.write('a', 'put', { s: 'a', v: 'a3' });
  await o.write('b', 'put.natural', { s: 'b', v: 'b1' });
  t.ok(Date.now() - started < 500, 'accepted at once (the file, fsync)');
  t.equal(o.depth(), 3, 'three entries wait');
  t.ok(o.diverting(), 'the database is believed away');
  const registry = new Registry();
  for (const f of outboxMetrics(() => o)) registry.register(f);
  t.match(registry.render(), /^hotline_outbox_depth 3$/m, '/metrics shows the depth');
  t.match(registry.render(), /^hotline_outbox_oldest_seconds \d/m);
  t.ok(cap.has('record writes go to the outbox'), 'said once');
  const files = jsonl(dir);
  t.equal(files.length, 1, 'one file for the process');
  const lines = readFileSync(path.join(dir, files[0]!), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { stream: string; seq: number; op: string; args: { v: string } });
  t.same(lines.map((l) => l.args.v), ['a2', 'a3', 'b1'], 'entries as data, in order');
  t.same(lines.map((l) => l.stream), ['a', 'a', 'b']);
  t.ok(lines[0]!.seq < lines[1]!.seq, 'seq increases along the stream');
  await new Promise((r) => setTimeout(r, 100)); // the flusher polls meanwhile: still down
  t.same(db.of('a'), ['a1']);
  db.mode = 'up';
  t.ok(await o.drained(2000), 'drained once the database answers');
  t.same(db.of('a'), ['a1', 'a2', 'a3']);
  t.same(db.of('b'), ['b1']);
  t.notOk(o.diverting());
  await fileRemoved(dir);
  t.same(jsonl(dir), [], 'the drained file is removed');
  await o.write('a', 'put', { s: 'a', v: 'a4' });
  t.same(db.of('a'), ['a1', 'a2', 'a3', 'a4'], 'straight to the database again');
});

t.test('a database that does not answer: the write is abandoned after the timeout and goes to the file', async (t) => {
  const db = new FakeDb();
  const dir = tmp();
  const o = await Outbox.open(opts(db, dir));
  t.teardown(() => o.close());
  db.mode = 'silent';
  const started = Date.now();
  await o.write('s', 'put', { s: 's', v: 'x1' });
  const took = Date.now() - started;
  t.ok(took >= 90 && took < 1000, `diverted after the 100 ms timeout (${took} ms)`);
  const w2 = Date.now();
  await o.write('s', 'put', { s: 's', v: 'x2' });
  await o.write('other', 'put', { s: 'other', v: 'y1' });
  t.ok(Date.now() - w2 < 100, 'later writes (any stream) do not wait for the database again');
  t.equal(o.depth(), 3);
  db.mode = 'up';
  t.ok(await o.drained(2000));
  t.same(db.of('s'), ['x1', 'x2']);
  t.same(db.of('other'), ['y1']);
});

t.test('replay after a restart: a new instance on the same directory takes the file over', async (t) => {
  const db = new FakeDb();
  const dir = tmp();
  const first = await Outbox.open(opts(db, dir));
  db.mode = 'down';
  for (let i = 1; i <= 5; i++) await first.write('call', 'put', { s: 'call', v: `c${i}` });
  await first.write('d', 'dated', { at: new Date('2026-12-01T00:00:00Z') });
  first.crash(); // kill -9: nothing flushed, the file stays
  t.equal(jsonl(dir).length, 1);
  db.mode = 'up';
  const cap = logCapture();
  const second = await Outbox.open(opts(db, dir, cap.log));
  t.teardown(() => second.close());
  t.ok(cap.has('taken over'), 'the take-over is logged');
  t.ok(await second.drained(2000));
  t.same(db.of('call'), ['c1', 'c2', 'c3', 'c4', 'c5'], 'in order, once');
  t.same(db.of('dated'), ['2026-12-01T00:00:00.000Z'], 'a Date still a Date after the file');
  await fileRemoved(dir);
  t.same(jsonl(dir), [], 'the taken-over file is removed once drained');
});

t.test('a replay cut by a crash and repeated applies each entry once (the marker), tombstones lost or not', async (t) => {
  const db = new FakeDb();
  const dir = tmp();
  const first = await Outbox.open(opts(db, dir));
  db.mode = 'down';
  for (let i = 1; i <= 20; i++) await first.write(`s${i % 4}`, 'put', { s: `s${i % 4}`, v: `e${i}` });
  db.mode = 'up';
  db.slowMs = 10;
  // let a part of the replay happen, then "kill" the process
  while (db.markers.size < 6) await new Promise((r) => setTimeout(r, 1));
  first.crash();
  db.slowMs = 0;
  t.ok(db.markers.size < 20, `cut mid-replay (${db.markers.size} of 20 applied)`);
  const file = path.join(dir, jsonl(dir)[0]!);
  // the tombstones are not fsync'd: lose them all (the worst case) so every entry is tried again
  const kept = readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('{"done"'));
  await fs.writeFile(file, `${kept.join('\n')}\n`);
  const second = await Outbox.open(opts(db, dir));
  t.teardown(() => second.close());
  t.ok(await second.drained(2000));
  const all = [...db.rows.values()].flat();
  t.equal(all.length, 20, 'twenty writes applied');
  t.equal(new Set(all).size, 20, 'none twice');
  for (let k = 0; k < 4; k++) {
    const vs = db.of(`s${k}`).map((v) => Number(v.slice(1)));
    t.same(vs, [...vs].sort((a, b) => a - b), `stream s${k} in order`);
  }
});

t.test('a torn last line is ignored with a warning; corrupt lines and unknown ops are set aside; nothing stops', async (t) => {
  const db = new FakeDb();
  const dir = tmp();
  const first = await Outbox.open(opts(db, dir));
  db.mode = 'down';
  await first.write('x', 'put', { s: 'x', v: 'x1' });
  await first.write('x', 'put', { s: 'x', v: 'x2' });
  first.crash();
  const file = path.join(dir, jsonl(dir)[0]!);
  const [l1, l2] = readFileSync(file, 'utf8').trim().split('\n');
  const unknown = JSON.stringify({ id: uuidv7(), stream: 'x', seq: 9, op: 'no.such.op', args: {}, at: new Date().toISOString() });
  // a corrupt line between good ones, an entry of an op nobody registered, and a last line cut by the crash
  await fs.writeFile(file, `${l1}\n{"id": "broken\n${unknown}\n${l2}\n{"id":"0190","stream":"x","se`);
  db.mode = 'up';
  const cap = logCapture();
  const second = await Outbox.open(opts(db, dir, cap.log));
  t.teardown(() => second.close());
  t.ok(await second.drained(2000));
  t.same(db.of('x'), ['x1', 'x2'], 'the good entries, in order');
  t.ok(cap.lines.some((l) => l.level === 40 && String(l.msg).includes('torn line')), 'the torn line is a warning');
  const rejected = rejectedLines(dir);
  t.same(rejected.map((r) => r.reason).sort(), ['corrupt line (not JSON)', 'torn last line', 'unknown operation "no.such.op"'], 'each set aside with its reason');
  t.equal(second.rejected(), 3);
});

t.test('an entry the database refuses is retried, then set aside; the rest of its stream goes on', async (t) => {
  const db = new FakeDb();
  const dir = tmp();
  const o = await Outbox.open(opts(db, dir));
  t.teardown(() => o.close());
  await o.write('r', 'put', { s: 'r', v: 'r1' });
  await o.write('r', 'refused', { v: 'bad' }); // fails straight away: diverted (not "the database is away")
  await o.write('r', 'put', { s: 'r', v: 'r2' });
  t.notOk(o.diverting(), 'a refused write does not make the database "away"');
  await o.write('elsewhere', 'put', { s: 'elsewhere', v: 'e1' });
  t.same(db.of('elsewhere'), ['e1'], 'other streams still write straight');
  t.ok(await o.drained(3000));
  t.same(db.of('r'), ['r1', 'r2'], 'the refused entry did not block its stream');
  t.same(rejectedLines(dir).map((r) => r.reason), ['new row violates check constraint']);
  // an op name nobody registered is refused at once
  await o.write('r', 'nope', {});
  t.equal(o.rejected(), 2);
});

t.test('two live instances on one directory do not take each other\'s files', async (t) => {
  const db = new FakeDb();
  const dir = tmp();
  const a = await Outbox.open(opts(db, dir));
  db.mode = 'down';
  await a.write('k', 'put', { s: 'k', v: 'k1' });
  const b = await Outbox.open(opts(db, dir));
  t.equal(b.depth(), 0, 'a live file is not an orphan');
  t.equal(a.depth(), 1);
  db.mode = 'up';
  t.ok(await a.drained(2000));
  t.same(db.of('k'), ['k1']);
  await a.close();
  await b.close();
});
