/**
 * The record outbox: record writes (call records, their events, callbacks, voicemails, survey credits, the agent
 * state log, a recording's index row) never wait on, and are never lost to, a PostgreSQL that is down or slow.
 *
 * A write is DATA, not a closure: `{id, stream, seq, op, args, at}`, where `op` names a function registered in an
 * OpRegistry (`(db, args, entry) => Promise`) and `args` is JSON (Dates travel as `{"$date": iso}`). A stream (a
 * call id, `agent-state:<agentId>`) is applied in order:
 * - normally each write goes straight to PostgreSQL, limited to `directTimeoutMs` (2 s; withQueryDeadline resets a
 *   connection whose query is unanswered at the deadline, so the attempt cannot land later);
 * - when that fails or times out, the write and every later write of its stream go to the local outbox file
 *   (JSON lines, appended and fsync'd in batches, one file per process under `dir`, i.e. OUTBOX_DIR); and while
 *   PostgreSQL is believed away (from that failure to the next replay that succeeds) every new write of every
 *   stream goes to the file at once (no call waits 2 s on it);
 * - the flusher replays the file's entries in stream order (polling with backoff, `retryMinMs`..`retryMaxMs`) as
 *   soon as PostgreSQL answers, marks each done (a tombstone line, not fsync'd: the marker is the truth) and
 *   removes the file once it is drained; a stream writes straight to PostgreSQL again once its entries are in;
 * - at start-up, and every `scanMs`, files a dead process left in the same directory (for the same database) are
 *   taken over (atomic rename) and replayed: a crash loses no write that had been accepted.
 * `write()` resolves once the entry is applied or durably in the file; it never rejects.
 *
 * Exactly once: an entry may be tried more than once (a timed-out attempt may have committed; a replay may be cut
 * by a crash and repeated), so every operation is idempotent AT THE DATABASE, by one of three gates:
 * - 'self': the op's single statement inserts the entry's id into `outbox_applied` in a CTE and does its work
 *   only if that insert did (the marker and the write commit together; a second try finds the marker and does
 *   nothing; two concurrent tries serialise on the marker's primary key). No extra round trip.
 * - 'transaction': the framework opens a transaction, inserts the marker, and runs the op only if it was new
 *   (for an op of several statements; 3 extra round trips).
 * - 'natural': the op is idempotent by itself (an insert ON CONFLICT DO NOTHING on its own key, a set-union).
 * See docs/decisions.md ("Record writes go through a durable outbox").
 *
 * Entries that cannot be applied ever (an op name nobody registered, a corrupt line, arguments the database
 * refuses three times over) are logged and kept aside in a `.rejected` file beside; they never stop the rest.
 */
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { promises as fs, mkdirSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { Gauge } from '../metrics/metrics.js';
import { withQueryDeadline, type Db } from './db.js';

export interface OutboxEntry {
  /** UUIDv7: unique, time-ordered (the `outbox_applied` key) */
  id: string;
  stream: string;
  /** the writing instance's counter: increasing along each stream (and across streams) */
  seq: number;
  op: string;
  /** JSON; Dates as {"$date": iso} */
  args: unknown;
  /** ISO time the write was made */
  at: string;
}

export type Gate = 'self' | 'transaction' | 'natural';
export interface OpContext {
  /** the entry's id: the marker a 'self' op inserts into outbox_applied */
  id: string;
  /** when the write was made (not when it reaches PostgreSQL) */
  at: Date;
}
export interface OpDef<D> {
  name: string;
  gate: Gate;
  run(db: D, args: any, ctx: OpContext): Promise<unknown>;
}

/** one entry of a batch: its op, its decoded arguments, its marker */
export interface BatchItem<D> {
  def: OpDef<D>;
  args: unknown;
  ctx: OpContext;
}
/**
 * Apply several 'self'/'natural' entries in ONE round trip, all or nothing (it throws, and nothing is applied, when
 * any of them fails). Each entry keeps its own gate inside the batch: a 'self' op's marker commits with its write.
 */
export type BatchApplier<D> = (db: D, items: Array<BatchItem<D>>) => Promise<void>;

/** an op refuses its arguments: the entry is set aside (.rejected), never retried */
export class BadOpArgs extends Error {
  override name = 'BadOpArgs';
}

/** operations by name: what an outbox entry's `op` may say */
export class OpRegistry<D = Db> {
  private readonly ops = new Map<string, OpDef<D>>();
  /** how these ops are applied together in one round trip (none: each alone) */
  batch: BatchApplier<D> | null = null;
  batchWith(apply: BatchApplier<D>): this {
    this.batch = apply;
    return this;
  }
  register<A>(name: string, gate: Gate, run: (db: D, args: A, ctx: OpContext) => Promise<unknown>): this {
    if (this.ops.has(name)) throw new Error(`outbox operation ${name} registered twice`);
    this.ops.set(name, { name, gate, run });
    return this;
  }
  get(name: string): OpDef<D> | undefined {
    return this.ops.get(name);
  }
  names(): string[] {
    return [...this.ops.keys()];
  }
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** random bytes for uuidv7, drawn 4 KB at a time: one getrandom() per 256 ids instead of one per id (every record write makes one) */
const RANDOM_POOL = Buffer.alloc(4096);
let randomAt = RANDOM_POOL.length;

/** 16 bytes as a UUID's text, after its version and variant bits are set */
function uuidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** a UUIDv7: 48 bits of epoch milliseconds, then random bits (RFC 9562) */
export function uuidv7(now = Date.now()): string {
  if (randomAt + 16 > RANDOM_POOL.length) {
    randomFillSync(RANDOM_POOL);
    randomAt = 0;
  }
  const b = Buffer.from(RANDOM_POOL.subarray(randomAt, randomAt + 16));
  randomAt += 16;
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return uuidText(b);
}

/** the smallest UUIDv7 of a millisecond: every marker older than `ms` sorts below it */
export function uuidv7Floor(ms: number): string {
  const b = Buffer.alloc(16);
  b.writeUIntBE(ms, 0, 6);
  b[6] = 0x70;
  b[8] = 0x80;
  return uuidText(b);
}

/** args to JSON-safe data: Dates tagged, undefined dropped; anything JSON cannot carry is refused */
export function encodeArgs(v: unknown, depth = 0): unknown {
  if (depth > 32) throw new BadOpArgs('arguments nested too deep');
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new BadOpArgs(`a number JSON cannot carry: ${v}`);
    return v;
  }
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new BadOpArgs('an invalid Date');
    return { $date: v.toISOString() };
  }
  if (Array.isArray(v)) return v.map((x) => (x === undefined ? null : encodeArgs(x, depth + 1)));
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      // an instance (an Error in an event's data...): what JSON.stringify makes of it, as the record always got
      let plain: unknown;
      try {
        plain = JSON.parse(JSON.stringify(v) ?? 'null');
      } catch (err) {
        throw new BadOpArgs(`a ${proto?.constructor?.name ?? 'class'} instance JSON cannot carry: ${message(err)}`);
      }
      return encodeArgs(plain, depth + 1);
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = encodeArgs(x, depth + 1);
    return out;
  }
  throw new BadOpArgs(`a ${typeof v} is not data`);
}

export function decodeArgs(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decodeArgs);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === '$date' && typeof o.$date === 'string') {
      const d = new Date(o.$date);
      if (Number.isNaN(d.getTime())) throw new BadOpArgs(`an invalid date: ${o.$date}`);
      return d;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) out[k] = decodeArgs(x);
    return out;
  }
  return v;
}

const PERMANENT_SQL_CLASSES = new Set(['22', '23', '42']); // data exception, constraint violation, syntax/undefined
/**
 * Worth trying again later (PostgreSQL away, slow, restarting, out of connections) or not (the database refuses
 * the write itself). Anything without a SQLSTATE (refused/reset/timed-out connections) is transient.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof BadOpArgs || err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError) return false;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return !PERMANENT_SQL_CLASSES.has(code.slice(0, 2));
  return true;
}

/**
 * One outbox file: appends are queued and written in batches (group commit: one write and one fdatasync for
 * whatever arrived meanwhile). `pending` counts its entries not yet applied; at 0 the file can go.
 */
class OutboxFile {
  pending = 0;
  dead = false;
  private abandoned = false;
  private fh: FileHandle | null = null;
  private queue: Array<{ text: string; durable: boolean; resolve: () => void; reject: (err: unknown) => void }> = [];
  private running = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    readonly path: string,
    private readonly created: () => Promise<void>,
  ) {}

  append(text: string, durable: boolean): Promise<void> {
    if (this.abandoned) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.queue.push({ text, durable, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    void (async () => {
      try {
        while (this.queue.length > 0 && !this.abandoned) {
          const batch = this.queue.splice(0);
          try {
            if (!this.fh) {
              this.fh = await fs.open(this.path, 'a');
              await this.created();
            }
            await this.fh.write(batch.map((b) => b.text).join(''));
            if (batch.some((b) => b.durable)) await this.fh.datasync();
            for (const b of batch) b.resolve();
          } catch (err) {
            for (const b of batch) b.reject(err);
          }
        }
      } finally {
        this.running = false;
        for (const b of this.queue.splice(0)) b.resolve(); // abandoned: dropped, as a killed process would
        for (const w of this.idleWaiters.splice(0)) w();
      }
    })();
  }

  /** every append so far has been written */
  private idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async touch(): Promise<void> {
    if (this.dead || this.abandoned) return;
    const now = new Date();
    await fs.utimes(this.path, now, now).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.idle();
    const fh = this.fh;
    this.fh = null;
    await fh?.close().catch(() => undefined);
  }

  async remove(): Promise<void> {
    this.dead = true;
    await this.close();
    await fs.unlink(this.path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /** a crash: whatever is queued is dropped, the handle closed without syncing */
  abandon(): void {
    this.abandoned = true;
    this.dead = true;
    const fh = this.fh;
    this.fh = null;
    void fh?.close().catch(() => undefined);
  }
}

interface Pending {
  entry: OutboxEntry;
  file: OutboxFile;
  /** permanent failures so far (rejected at MAX_PERMANENT_FAILURES) */
  failures: number;
}

interface StreamState {
  name: string;
  tail: Promise<void>;
  /** entries in the outbox, in order; the head is the next to replay */
  pending: Pending[];
  /** diverted since the stream last wrote straight to PostgreSQL (one warning per episode) */
  warned: boolean;
  /** the stream's next group, not started yet (its writes wait behind the one in flight): later writes join it */
  open: Group | null;
}

/** consecutive writes of one stream, placed together (one round trip on the direct path) */
interface Group {
  items: Array<{ entry: OutboxEntry; log: Logger }>;
  started: boolean;
}

/** at most this many entries in one batch statement */
const MAX_BATCH = 200;

const MAX_PERMANENT_FAILURES = 3;

export interface OutboxOptions<D> {
  db: D;
  ops: OpRegistry<D>;
  /** OUTBOX_DIR: created when missing */
  dir: string;
  log: Logger;
  /** what the entries are written to (e.g. DATABASE_URL; its password is never used): only files of the same database are taken over */
  database?: string;
  /** a write straight to PostgreSQL is abandoned (and goes to the file) after this long (2 s) */
  directTimeoutMs?: number;
  /** one replayed entry may take this long (5 s) */
  replayTimeoutMs?: number;
  /** the flusher's polling while PostgreSQL is away: from retryMinMs, doubling, up to retryMaxMs (1 s, 5 s) */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** how many streams are replayed at once (each in order) */
  replayConcurrency?: number;
  /**
   * group commit: record writes made within this many ms go to PostgreSQL in one round trip (0: those of the same
   * turn of the event loop). A write reaches PostgreSQL up to this much later; nothing waits on it.
   */
  batchMs?: number;
  /** this process's files are touched this often; another process's file untouched for staleMs is an orphan */
  heartbeatMs?: number;
  staleMs?: number;
  /** how often the directory is scanned for orphans (files of dead processes) */
  scanMs?: number;
  /** run `fn` with the queries it makes on the db it is given bound to `ms` (default withQueryDeadline: Kysely on the guarded pool) */
  deadline?: <T>(db: D, ms: number, fn: (db: D) => Promise<T>) => Promise<T>;
  /** the 'transaction' gate: run `fn` in a transaction that first inserts the marker `id`, only if it was new */
  transact?: (db: D, id: string, fn: (trx: D) => Promise<unknown>) => Promise<void>;
}

/** the 'transaction' gate on Kysely: marker and op commit together; a marker already there skips the op */
export async function markerTransaction(db: Db, id: string, fn: (trx: Db) => Promise<unknown>): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const r = await sql<{ id: string }>`insert into outbox_applied (id) values (${id}) on conflict do nothing returning id`.execute(trx);
    if (r.rows.length > 0) await fn(trx);
  });
}

/** the Outbox instances alive in this process (their files are never taken over, even though the pid matches) */
const liveBoots = new Set<string>();

const HOST = os.hostname().replace(/[^A-Za-z0-9.-]/g, '_') || 'host';
const FILE_RE = /^([a-z0-9]+)~([A-Za-z0-9._-]+)~(\d+)~([a-z0-9]+)~(\d+)\.jsonl$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** the tag of a database in file names: a hash of its URL without the password */
export function databaseTag(database: string | undefined): string {
  if (!database) return 'local';
  let id = database;
  try {
    const u = new URL(database);
    u.password = '';
    u.username = '';
    id = u.toString();
  } catch {
    // not a URL: the string itself
  }
  return createHash('sha256').update(id).digest('hex').slice(0, 12);
}

export class Outbox<D = Db> {
  readonly dir: string;
  private readonly db: D;
  private readonly ops: OpRegistry<D>;
  private readonly log: Logger;
  private readonly tag: string;
  private readonly boot = randomBytes(4).toString('hex');
  private readonly directTimeoutMs: number;
  private readonly batchMs: number;
  private readonly replayTimeoutMs: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly concurrency: number;
  private readonly heartbeatMs: number;
  private readonly staleMs: number;
  private readonly scanMs: number;
  private readonly deadline: <T>(db: D, ms: number, fn: (db: D) => Promise<T>) => Promise<T>;
  private readonly transact: (db: D, id: string, fn: (trx: D) => Promise<unknown>) => Promise<void>;

  private readonly streams = new Map<string, StreamState>();
  private readonly files = new Set<OutboxFile>();
  private main: OutboxFile | null = null;
  private fileCount = 0;
  private rejectedFile: OutboxFile | null = null;
  /** entries accepted into the outbox and not yet applied or rejected */
  private waiting = 0;
  /**
   * PostgreSQL is believed away (a write or a replay failed for want of it; cleared by the next one that succeeds):
   * meanwhile no write is tried straight on it, every write goes to the file (no call's writes wait 2 s each).
   */
  private degraded = false;
  /** the outbox held entries since it was last empty (for the "drained" line) */
  private backlog = false;
  private backoffMs: number;
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  private crashed = false;
  private rejectedTotal = 0;
  private seq = 0;
  private appliedFromOutbox = 0;

  constructor(opts: OutboxOptions<D>) {
    this.dir = opts.dir;
    this.db = opts.db;
    this.ops = opts.ops;
    this.log = opts.log.child({ module: 'outbox' });
    this.tag = databaseTag(opts.database);
    this.directTimeoutMs = opts.directTimeoutMs ?? 2000;
    this.batchMs = opts.batchMs ?? 0;
    this.replayTimeoutMs = opts.replayTimeoutMs ?? 5000;
    this.retryMinMs = opts.retryMinMs ?? 1000;
    this.retryMaxMs = opts.retryMaxMs ?? 5000;
    this.concurrency = opts.replayConcurrency ?? 4;
    this.heartbeatMs = opts.heartbeatMs ?? 10_000;
    this.staleMs = opts.staleMs ?? 60_000;
    this.scanMs = opts.scanMs ?? 30_000;
    this.deadline = opts.deadline ?? (withQueryDeadline as unknown as NonNullable<OutboxOptions<D>['deadline']>);
    this.transact = opts.transact ?? (markerTransaction as unknown as NonNullable<OutboxOptions<D>['transact']>);
    this.backoffMs = this.retryMinMs;
    mkdirSync(this.dir, { recursive: true });
    liveBoots.add(this.boot);
  }

  /** create the outbox, take over what dead processes left in `dir` (replayed at once) and start the flusher */
  static async open<D>(opts: OutboxOptions<D>): Promise<Outbox<D>> {
    const o = new Outbox(opts);
    const adopted = await o.adoptOrphans();
    if (adopted > 0) o.log.warn({ entries: adopted, dir: o.dir }, 'outbox left by a previous process taken over; replaying');
    o.startTimers();
    return o;
  }

  /** heartbeat, orphan scan (open() calls it; an outbox made with `new` and no orphans to take may call it alone) */
  startTimers(): void {
    if (this.timers.length > 0 || this.closed) return;
    const hb = setInterval(() => {
      for (const f of this.files) void f.touch();
    }, this.heartbeatMs);
    const scan = setInterval(() => {
      void this.adoptOrphans().then((n) => {
        if (n > 0) this.log.warn({ entries: n }, 'outbox of a dead process taken over; replaying');
      });
    }, this.scanMs);
    for (const t of [hb, scan]) t.unref();
    this.timers.push(hb, scan);
    if (this.waiting > 0) this.scheduleFlush(0);
  }

  /** entries waiting for PostgreSQL */
  depth(): number {
    return this.waiting;
  }

  /** age of the oldest waiting entry (s), 0 when none */
  oldestSeconds(): number {
    let oldest = Infinity;
    for (const s of this.streams.values()) {
      const head = s.pending[0];
      if (head) oldest = Math.min(oldest, Date.parse(head.entry.at));
    }
    return Number.isFinite(oldest) ? Math.max(0, (Date.now() - oldest) / 1000) : 0;
  }

  /** entries set aside in .rejected by this instance */
  rejected(): number {
    return this.rejectedTotal;
  }

  /** true while PostgreSQL is believed away (every write goes to the file) */
  diverting(): boolean {
    return this.degraded;
  }

  /**
   * A record write: applied to PostgreSQL, or durably queued in the outbox file when PostgreSQL does not take it
   * in time. Writes of one stream are applied in the order they were made. Never rejects.
   */
  write(stream: string, op: string, args: unknown, log?: Logger): Promise<void> {
    const s = this.stream(stream);
    let entry: OutboxEntry;
    try {
      entry = { id: uuidv7(), stream, seq: ++this.seq, op, args: encodeArgs(args), at: new Date().toISOString() };
    } catch (err) {
      return this.reject({ stream, op, args: String(args) }, `arguments are not data: ${message(err)}`);
    }
    const def = this.ops.get(op);
    if (!def) return this.reject(entry, `unknown operation "${op}"`);
    const wlog = log ?? this.log;
    // batching: a write made while the stream's previous one is still in flight joins the stream's waiting group
    const batchable = this.ops.batch !== null && def.gate !== 'transaction';
    if (batchable && s.open && !s.open.started && s.open.items.length < MAX_BATCH) {
      s.open.items.push({ entry, log: wlog });
      return s.tail;
    }
    const group: Group = { items: [{ entry, log: wlog }], started: false };
    const p = s.tail
      .then(() => {
        group.started = true;
        if (s.open === group) s.open = null;
        return this.placeGroup(s, group);
      })
      .catch((err: unknown) => wlog.error({ err: message(err), op, stream }, 'record write failed in the outbox itself'));
    s.open = batchable ? group : null;
    s.tail = p;
    void p.then(() => this.forgetIfIdle(s, p));
    return p;
  }


  /** resolves when every write of `stream` made so far is applied or in the file */
  settled(stream: string): Promise<void> {
    return this.streams.get(stream)?.tail ?? Promise.resolve();
  }

  /** one replay pass now (tests; the flusher calls it on its own) */
  flush(): Promise<void> {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    if (!this.flushing) {
      this.flushing = this.pass().finally(() => {
        this.flushing = null;
        this.afterPass();
      });
    }
    return this.flushing;
  }

  /** resolves once the outbox is empty (or `ms` has passed: false) */
  async drained(ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    while (this.waiting > 0 || this.degraded) {
      if (Date.now() >= until) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  /**
   * Stop: the writes in progress settle, one last replay is tried (bounded by `ms`), files are closed. What is
   * still waiting stays in the file for the next process on this directory.
   */
  async close(ms = 5000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const until = Date.now() + ms;
    const bounded = (p: Promise<unknown>) => Promise.race([p, new Promise((r) => setTimeout(r, Math.max(0, until - Date.now())).unref())]);
    await bounded(Promise.all([...this.streams.values()].map((s) => s.tail)));
    if (this.waiting > 0) await bounded(this.flush());
    if (this.waiting > 0) this.log.warn({ entries: this.waiting, dir: this.dir }, 'stopping with record writes in the outbox: the next start replays them');
    await Promise.all([...this.files, ...(this.rejectedFile ? [this.rejectedFile] : [])].map((f) => f.close()));
    liveBoots.delete(this.boot);
  }

  /** a simulated kill -9 (tests): nothing more is written or replayed by this instance; its files stay as they are */
  crash(): void {
    this.crashed = true;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    for (const f of this.files) f.abandon();
    this.rejectedFile?.abandon();
    liveBoots.delete(this.boot);
  }

  // ---- the write path -------------------------------------------------------------------------

  private stream(name: string): StreamState {
    let s = this.streams.get(name);
    if (!s) {
      s = { name, tail: Promise.resolve(), pending: [], warned: false, open: null };
      this.streams.set(name, s);
    }
    return s;
  }

  private forgetIfIdle(s: StreamState, last: Promise<void>): void {
    if (s.tail === last && s.pending.length === 0 && this.streams.get(s.name) === s) this.streams.delete(s.name);
  }

  /**
   * A group of one stream's writes: straight to PostgreSQL in one batch (with other streams' groups of the same
   * moment), else each as place() would (PostgreSQL away: all to the file, in order; one refused: each alone).
   */
  private async placeGroup(s: StreamState, group: Group): Promise<void> {
    const { items } = group;
    // a 'transaction' op runs in the transaction its gate opens: never in a batch (a group holds it alone)
    if (this.ops.batch === null || items.some((it) => this.ops.get(it.entry.op)?.gate === 'transaction')) {
      for (const it of items) await this.place(s, it.entry, it.log);
      return;
    }
    if (!this.degraded && s.pending.length === 0 && !this.crashed) {
      try {
        await this.batched(items.map((it) => it.entry));
        s.warned = false;
        return;
      } catch (err) {
        if (!isTransient(err)) {
          // one of them is refused by PostgreSQL: each alone, as ever (the refused one is retried, then set aside)
          for (const it of items) await this.place(s, it.entry, it.log);
          return;
        }
        this.diverted(s, err, true, items[0]!.entry.op, items[0]!.log);
      }
    }
    for (const it of items) await this.enqueue(s, it.entry, it.log);
  }

  private batchQueue: Array<{ entries: OutboxEntry[]; resolve: () => void; reject: (err: unknown) => void }> = [];
  private batchScheduled = false;

  /** entries of this moment (this turn of the event loop, or the batchMs window), applied together in one round trip */
  private batched(entries: OutboxEntry[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.batchQueue.push({ entries, resolve, reject });
      if (this.batchScheduled) return;
      this.batchScheduled = true;
      if (this.batchMs > 0) setTimeout(() => this.runBatches(), this.batchMs);
      else setImmediate(() => this.runBatches());
    });
  }

  private runBatches(): void {
    this.batchScheduled = false;
    const jobs = this.batchQueue.splice(0);
    if (this.crashed) {
      // a dead process writes nothing more (what it accepted is in its file)
      for (const j of jobs) j.reject(new Error('the outbox has stopped'));
      return;
    }
    while (jobs.length > 0) {
      const batch = [jobs.shift()!];
      let n = batch[0]!.entries.length;
      while (jobs.length > 0 && n + jobs[0]!.entries.length <= MAX_BATCH) {
        n += jobs[0]!.entries.length;
        batch.push(jobs.shift()!);
      }
      void this.applyMany(batch.flatMap((j) => j.entries), this.directTimeoutMs).then(
        () => batch.forEach((j) => j.resolve()),
        (err: unknown) => {
          if (batch.length === 1 || isTransient(err)) {
            for (const j of batch) j.reject(err);
            return;
          }
          // one group's entry poisoned the batch: every group again on its own (the refused one fails alone)
          for (const j of batch) void this.applyMany(j.entries, this.directTimeoutMs).then(j.resolve, j.reject);
        },
      );
    }
  }

  /** several entries in one round trip (the registry's batch applier), all or nothing */
  private async applyMany(entries: OutboxEntry[], timeoutMs: number): Promise<void> {
    if (entries.length === 1) return this.apply(entries[0]!, timeoutMs);
    const items = entries.map((entry) => {
      const def = this.ops.get(entry.op);
      if (!def) throw new BadOpArgs(`unknown operation "${entry.op}"`);
      return { def, args: decodeArgs(entry.args), ctx: { id: entry.id, at: new Date(entry.at) } };
    });
    await this.deadline(this.db, timeoutMs, (db) => this.ops.batch!(db, items));
  }

  /** a direct write failed: PostgreSQL is believed away when the failure is transient; one warning per stream's episode */
  private diverted(s: StreamState, err: unknown, transient: boolean, op: string, log: Logger): void {
    if (transient && !this.degraded) {
      this.degraded = true;
      this.log.warn({ err: message(err), op }, 'PostgreSQL did not take a record write: record writes go to the outbox until it answers again');
    }
    if (!s.warned) log.warn({ err: message(err), op, stream: s.name, transient }, 'record write diverted to the outbox');
    s.warned = true;
  }

  private async place(s: StreamState, entry: OutboxEntry, log: Logger): Promise<void> {
    if (!this.degraded && s.pending.length === 0 && !this.crashed) {
      try {
        await this.apply(entry, this.directTimeoutMs);
        s.warned = false;
        return;
      } catch (err) {
        this.diverted(s, err, isTransient(err), entry.op, log);
      }
    }
    await this.enqueue(s, entry, log);
  }

  private async enqueue(s: StreamState, entry: OutboxEntry, log: Logger): Promise<void> {
    if (!this.main || this.main.dead) this.main = this.newFile(this.newFileName());
    const file = this.main;
    file.pending++;
    this.waiting++;
    this.backlog = true;
    try {
      await file.append(`${JSON.stringify(entry)}\n`, true);
    } catch (err) {
      // a full or broken disk: the entry is still replayed from memory while this process lives
      log.error({ err: message(err), op: entry.op, stream: s.name, file: file.path }, 'outbox file write failed: the record write is held in memory only');
    }
    s.pending.push({ entry, file, failures: 0 });
    this.scheduleFlush();
  }

  private async apply(entry: OutboxEntry, timeoutMs: number): Promise<void> {
    const def = this.ops.get(entry.op);
    if (!def) throw new BadOpArgs(`unknown operation "${entry.op}"`);
    const args = decodeArgs(entry.args);
    const ctx: OpContext = { id: entry.id, at: new Date(entry.at) };
    await this.deadline(this.db, timeoutMs, async (db) => {
      if (def.gate === 'transaction') await this.transact(db, entry.id, (trx) => def.run(trx, args, ctx));
      else await def.run(db, args, ctx);
    });
  }

  // ---- the flusher ----------------------------------------------------------------------------

  private scheduleFlush(delay = this.backoffMs): void {
    if (this.flushTimer || this.flushing || this.closed) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      void this.flush();
    }, delay);
    this.flushTimer.unref();
  }

  private lastPass: { away: boolean; progress: number } = { away: false, progress: 0 };

  private afterPass(): void {
    if (this.waiting === 0) {
      this.backoffMs = this.retryMinMs;
      if (this.backlog) {
        this.backlog = false;
        this.log.info({ replayed: this.appliedFromOutbox }, 'outbox drained');
      }
      return;
    }
    // PostgreSQL away: back off; progress made: go on at once (entries arrived meanwhile); else a refused entry waits
    this.scheduleFlush(this.lastPass.away ? this.backoffMs : this.lastPass.progress > 0 ? 20 : this.retryMinMs);
  }

  /** replay every stream's waiting entries in order, a few streams at a time; stop at the first sign PostgreSQL is still away */
  private async pass(): Promise<void> {
    const todo = [...this.streams.values()].filter((s) => s.pending.length > 0)[Symbol.iterator]();
    let away: unknown = null;
    let progress = 0;
    const worker = async () => {
      for (const s of todo) {
        while (s.pending.length > 0 && away === null && !this.crashed) {
          const item = s.pending[0]!;
          try {
            await this.apply(item.entry, this.replayTimeoutMs);
          } catch (err) {
            if (this.crashed) return;
            if (isTransient(err)) {
              away = err;
              break;
            }
            if (!(err instanceof BadOpArgs) && ++item.failures < MAX_PERMANENT_FAILURES) {
              this.log.warn({ err: message(err), op: item.entry.op, stream: s.name, attempt: item.failures }, 'outbox entry refused by PostgreSQL; tried again later');
              break; // this stream waits for the next pass; the others go on
            }
            s.pending.shift();
            await this.reject(item.entry, message(err));
            void item.file.append(`${JSON.stringify({ done: item.entry.id })}\n`, false).catch(() => undefined);
            this.settle(item);
            continue;
          }
          if (this.crashed) return; // applied, but a dead process writes no tombstone
          if (this.degraded) {
            this.degraded = false;
            this.log.info({ waiting: this.waiting }, 'PostgreSQL answers again: replaying the outbox; new writes go straight to it');
          }
          s.pending.shift();
          this.appliedFromOutbox++;
          progress++;
          void item.file.append(`${JSON.stringify({ done: item.entry.id })}\n`, false).catch(() => undefined);
          this.settle(item);
        }
        if (away !== null || this.crashed) return;
      }
    };
    await Promise.all(Array.from({ length: this.concurrency }, worker));
    this.lastPass = { away: away !== null, progress };
    if (away !== null) {
      this.degraded = true;
      this.backoffMs = Math.min(this.retryMaxMs, progress > 0 ? this.retryMinMs : this.backoffMs * 2);
      this.log.debug({ err: message(away), waiting: this.waiting, retryInMs: this.backoffMs }, 'PostgreSQL still away; outbox replay later');
    } else {
      this.backoffMs = this.retryMinMs;
    }
  }

  private settle(item: Pending): void {
    this.waiting--;
    item.file.pending--;
    const f = item.file;
    if (f.pending === 0 && !f.dead) {
      // drained: the file goes (a new one is started if the outbox is needed again)
      f.dead = true;
      if (this.main === f) this.main = null;
      this.files.delete(f);
      f.remove().catch((err: unknown) => this.log.warn({ err: message(err), file: f.path }, 'drained outbox file not removed'));
    }
    const s = this.streams.get(item.entry.stream);
    if (s && s.pending.length === 0) void s.tail.then(() => this.forgetIfIdle(s, s.tail));
  }

  private async reject(entry: unknown, reason: string): Promise<void> {
    this.rejectedTotal++;
    this.log.error({ reason, entry }, 'outbox entry rejected: kept aside in the .rejected file, not applied');
    if (this.crashed) return;
    this.rejectedFile ??= new OutboxFile(path.join(this.dir, `${this.ownPrefix()}.rejected`), async () => undefined);
    await this.rejectedFile
      .append(`${JSON.stringify({ rejectedAt: new Date().toISOString(), reason, entry })}\n`, true)
      .catch((err: unknown) => this.log.error({ err: message(err) }, 'could not write the .rejected file'));
  }

  // ---- files ----------------------------------------------------------------------------------

  private ownPrefix(): string {
    return `${this.tag}~${HOST}~${process.pid}~${this.boot}`;
  }

  private newFileName(): string {
    return path.join(this.dir, `${this.ownPrefix()}~${this.fileCount++}.jsonl`);
  }

  private newFile(p: string): OutboxFile {
    const f = new OutboxFile(p, () => this.syncDir());
    this.files.add(f);
    return f;
  }

  /** a new file's directory entry must survive a crash too */
  private async syncDir(): Promise<void> {
    const d = await fs.open(this.dir, 'r').catch(() => null);
    if (!d) return;
    await d.sync().catch(() => undefined);
    await d.close().catch(() => undefined);
  }

  /** a file in `dir` of this database whose process is gone: same host and its pid dead (or ours, from an earlier life), or untouched for staleMs */
  private async orphaned(name: string): Promise<boolean> {
    const m = FILE_RE.exec(name);
    if (!m || m[1] !== this.tag) return false;
    const [, , host, pidText, boot] = m;
    const pid = Number(pidText);
    if (host === HOST && pid === process.pid && liveBoots.has(boot!)) return false; // ours, or another live instance here
    if (host === HOST && (pid === process.pid || !alive(pid))) return true;
    const st = await fs.stat(path.join(this.dir, name)).catch(() => null);
    return st !== null && Date.now() - st.mtimeMs > this.staleMs;
  }

  /** take over orphaned files: renamed into this instance's name (atomic: one taker), then loaded; returns the entries loaded */
  async adoptOrphans(): Promise<number> {
    if (this.closed) return 0;
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    let loaded = 0;
    for (const name of names.sort()) {
      if (!(await this.orphaned(name))) continue;
      const target = this.newFileName();
      try {
        await fs.rename(path.join(this.dir, name), target);
      } catch {
        continue; // another process took it first
      }
      loaded += await this.load(target, name);
    }
    if (loaded > 0) this.scheduleFlush(0);
    return loaded;
  }

  /** read a taken-over file: its entries not yet done join their streams, in file order; torn or corrupt lines are set aside */
  private async load(file: string, originalName: string): Promise<number> {
    const f = this.newFile(file);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      this.log.error({ err: message(err), file }, 'outbox file unreadable: left where it is');
      this.files.delete(f);
      return 0;
    }
    const lines = text.split('\n');
    const last = lines.pop() ?? '';
    if (last.trim() !== '') {
      // a write cut by the crash (never acknowledged as durable): nothing to replay, kept for the record
      this.log.warn({ file: originalName, bytes: last.length }, 'outbox file ends with a torn line: ignored');
      await this.reject({ file: originalName, line: last }, 'torn last line');
    }
    const entries: OutboxEntry[] = [];
    const seen = new Set<string>();
    const done = new Set<string>();
    for (const [i, line] of lines.entries()) {
      if (line.trim() === '') continue;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        await this.reject({ file: originalName, lineNumber: i + 1, line }, 'corrupt line (not JSON)');
        continue;
      }
      const o = v as Partial<OutboxEntry> & { done?: unknown };
      if (o && typeof o === 'object' && typeof o.done === 'string' && Object.keys(o).length === 1) {
        done.add(o.done);
        continue;
      }
      if (!o || typeof o !== 'object' || typeof o.id !== 'string' || typeof o.stream !== 'string' || typeof o.op !== 'string' || typeof o.at !== 'string' || !('args' in o)) {
        await this.reject({ file: originalName, lineNumber: i + 1, line }, 'corrupt entry (fields missing)');
        continue;
      }
      if (seen.has(o.id)) continue;
      seen.add(o.id);
      entries.push({ id: o.id, stream: o.stream, seq: typeof o.seq === 'number' ? o.seq : 0, op: o.op, args: o.args, at: o.at });
    }
    let n = 0;
    for (const entry of entries) {
      if (done.has(entry.id)) continue;
      if (!this.ops.get(entry.op)) {
        await this.reject(entry, `unknown operation "${entry.op}"`);
        continue;
      }
      const s = this.stream(entry.stream);
      s.pending.push({ entry, file: f, failures: 0 });
      f.pending++;
      this.waiting++;
      n++;
    }
    if (n > 0) this.backlog = true; // their streams' new writes queue behind them (a stream with pending entries never writes straight)
    else {
      f.dead = true;
      this.files.delete(f);
      await f.remove().catch(() => undefined);
    }
    return n;
  }
}

/** /metrics: the outbox's depth, the age of its oldest entry and the entries it rejected (the outbox: `get()` at scrape time) */
export function outboxMetrics(get: () => Pick<Outbox<unknown>, 'depth' | 'oldestSeconds' | 'rejected'> | null) {
  return [
    new Gauge('hotline_outbox_depth', 'record writes waiting in the local outbox for PostgreSQL', () => get()?.depth() ?? 0),
    new Gauge('hotline_outbox_oldest_seconds', 'age of the oldest record write waiting in the outbox', () => get()?.oldestSeconds() ?? 0),
    new Gauge('hotline_outbox_rejected', 'outbox entries set aside in .rejected since start (never applied)', () => get()?.rejected() ?? 0),
  ];
}
