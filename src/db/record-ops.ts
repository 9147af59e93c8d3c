/**
 * The record writes that go through the outbox (src/db/outbox.ts), by name, and the record outbox of the process.
 *
 * Each op is idempotent at the database (see outbox.ts): 'self' ops are ONE statement that inserts the entry's id
 * into outbox_applied in a CTE and writes only when that insert did; 'natural' ops are idempotent by themselves.
 * Either way a write on the normal path is one round trip, as before the outbox.
 *
 * An op's name is stored in outbox files: never rename or remove one (a file written before the change would have
 * its entries set aside as unknown); add a new name instead.
 */
import { constants as fsConstants, promises as fs, mkdtempSync, rmdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
  type CompiledQuery,
  type DatabaseConnection,
  type Driver,
  type QueryResult,
} from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { CallUpdate, Database, NewCall, VoicemailStatus } from './database.js';
import type { Db } from './db.js';
import { BadOpArgs, OpRegistry, Outbox, uuidv7Floor, type BatchItem, type OutboxOptions } from './outbox.js';
import { addCallAgent } from '../calls/calls.repo.js';
import type { CallbackReason } from '../callbacks/callbacks.repo.js';
import { insertRecordingOnce, type NewRecording } from '../recordings/recordings.repo.js';

export interface RecordOpArgs {
  'call.insert': NewCall;
  'call.update': { id: string; patch: CallUpdate };
  'call.event': { callId: string; at: Date; type: string; data: Record<string, unknown> };
  'call.addAgent': { callId: string; agentId: string };
  'voicemail.finish': { id: string; status: Exclude<VoicemailStatus, 'recording'>; durationSeconds: number | null };
  'callback.request': { number: string; callId: string | null; queue: string | null; reason: CallbackReason };
  /** a dialled callback's outcome: done/failed (done_at = at), or pending again (due at retryAt when given) */
  'callback.finish': { id: string; status: 'done' | 'pending' | 'failed'; retryAt: Date | null };
  'survey.credit': { callId: string; agents: string[]; line: string; score: number; scale: number; satisfied: boolean; at: Date };
  'agentState.log': { agentId: string; at: Date; from: string; to: string; reason: string | null; callId: string | null; actor: string | null };
  /** a call recording's index row, when PostgreSQL did not take it straight (src/calls/call-recorder.ts) */
  'recording.start': NewRecording;
}
export type RecordOp = keyof RecordOpArgs;

interface OutboxAppliedTable {
  id: string;
  applied_at: Date;
}
type MarkedDb = Kysely<Database & { outbox_applied: OutboxAppliedTable }>;

/** WITH m AS (the marker, if new): a 'self' op's statement writes only `where exists (select from m)` / `from m` */
const marked = (db: Db, id: string) =>
  (db as unknown as MarkedDb).with('m', (q) => q.insertInto('outbox_applied').values({ id, applied_at: new Date() }).onConflict((oc) => oc.column('id').doNothing()).returning('id'));

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** agent_state_log.call_id is a uuid: a callback's stand-in id (`callback-<uuid>`) is not a call, logged as none */
const callUuid = (id: string | null) => (id !== null && UUID.test(id) ? id : null);

const CALLBACK_NUMBER = /^\+?\d{3,15}$/; // as callbacks.repo requestCallback: anonymous or withheld numbers cannot be called back

export const recordOps = new OpRegistry<Db>()
  // the primary key is the idempotency key
  .register<RecordOpArgs['call.insert']>('call.insert', 'natural', async (db, call) => {
    await db.insertInto('calls').values(call).onConflict((oc) => oc.column('id').doNothing()).execute();
  })
  .register<RecordOpArgs['call.update']>('call.update', 'self', async (db, { id, patch }, { id: marker }) => {
    if (Object.keys(patch).length === 0) return;
    await marked(db, marker)
      .updateTable('calls')
      .set(patch)
      .where('id', '=', id)
      .where((eb) => eb.exists(eb.selectFrom('m').select('m.id')))
      .execute();
  })
  .register<RecordOpArgs['call.event']>('call.event', 'self', async (db, e, { id: marker }) => {
    await sql`
      with m as (insert into outbox_applied (id) values (${marker}) on conflict do nothing returning id)
      insert into call_events (call_id, at, type, data)
      select ${e.callId}::uuid, ${e.at}::timestamptz, ${e.type}, ${JSON.stringify(e.data ?? {})}::jsonb from m`.execute(db);
  })
  // a set-union: adding an agent already there changes nothing
  .register<RecordOpArgs['call.addAgent']>('call.addAgent', 'natural', async (db, { callId, agentId }) => {
    await addCallAgent(db, callId, agentId);
  })
  .register<RecordOpArgs['voicemail.finish']>('voicemail.finish', 'self', async (db, v, { id: marker }) => {
    await marked(db, marker)
      .updateTable('voicemails')
      .set({ status: v.status, duration_seconds: v.durationSeconds })
      .where('id', '=', v.id)
      .where((eb) => eb.exists(eb.selectFrom('m').select('m.id')))
      .execute();
  })
  // not idempotent by itself (a second request after the first was dialled would be a second callback): marked
  .register<RecordOpArgs['callback.request']>('callback.request', 'self', async (db, r, { id: marker, at }) => {
    if (!CALLBACK_NUMBER.test(r.number)) return;
    await sql`
      with m as (insert into outbox_applied (id) values (${marker}) on conflict do nothing returning id)
      insert into callbacks (number, call_id, queue, reason, due_at)
      select ${r.number}, ${r.callId}::uuid, ${r.queue}, ${r.reason}, ${at}::timestamptz from m
      on conflict (number) where status in ('pending','dialing') do nothing`.execute(db);
  })
  // marked: repeated late it would undo another process's claim of the callback
  .register<RecordOpArgs['callback.finish']>('callback.finish', 'self', async (db, f, { id: marker, at }) => {
    await marked(db, marker)
      .updateTable('callbacks')
      .set({ status: f.status, ...(f.status === 'done' || f.status === 'failed' ? { done_at: at } : {}), ...(f.retryAt ? { due_at: f.retryAt } : {}) })
      .where('id', '=', f.id)
      .where((eb) => eb.exists(eb.selectFrom('m').select('m.id')))
      .execute();
  })
  .register<RecordOpArgs['survey.credit']>('survey.credit', 'self', async (db, c, { id: marker }) => {
    if (!Array.isArray(c.agents) || c.agents.length === 0) return;
    await sql`
      with m as (insert into outbox_applied (id) values (${marker}) on conflict do nothing returning id)
      insert into survey_results (call_id, agent_id, line, score, scale, satisfied, at)
      select ${c.callId}::uuid, a.agent_id, ${c.line}, ${c.score}::smallint, ${c.scale}::smallint, ${c.satisfied}::boolean, ${c.at}::timestamptz
      from m cross join unnest(${c.agents}::text[]) as a(agent_id)
      on conflict (call_id, agent_id) do update set score = excluded.score, satisfied = excluded.satisfied, at = excluded.at`.execute(db);
  })
  .register<RecordOpArgs['agentState.log']>('agentState.log', 'self', async (db, r, { id: marker }) => {
    if (typeof r.agentId !== 'string' || typeof r.to !== 'string') throw new BadOpArgs('agent state log entry without agent or state');
    await sql`
      with m as (insert into outbox_applied (id) values (${marker}) on conflict do nothing returning id)
      insert into agent_state_log (agent_id, at, from_state, to_state, reason, call_id, actor)
      select ${r.agentId}, ${r.at}::timestamptz, ${r.from}, ${r.to}, ${r.reason}, ${callUuid(r.callId)}::uuid, ${r.actor} from m`.execute(db);
  })
  // one recording per call: on conflict (call_id) do nothing, as RecordingsService.started (a direct insert that
  // did land after all, or a second try, changes nothing)
  .register<RecordOpArgs['recording.start']>('recording.start', 'natural', async (db, r) => {
    if (typeof r.callId !== 'string' || typeof r.name !== 'string' || !(r.startedAt instanceof Date)) throw new BadOpArgs('recording index entry without call, name or start');
    await insertRecordingOnce(db, r);
  })
  .batchWith(applyRecordBatch);

/**
 * A Kysely that runs nothing: every query an op would run is compiled and kept (`sink`), answered with no rows.
 * The record ops only write, so they run on it as they would on the database.
 */
function capturingDb(sink: CompiledQuery[]): Db {
  const connection: DatabaseConnection = {
    executeQuery: <R>(q: CompiledQuery): Promise<QueryResult<R>> => {
      sink.push(q);
      return Promise.resolve({ rows: [] });
    },
    streamQuery: () => {
      throw new Error('a record op cannot stream');
    },
  };
  const driver: Driver = {
    init: async () => undefined,
    acquireConnection: async () => connection,
    beginTransaction: async () => undefined,
    commitTransaction: async () => undefined,
    rollbackTransaction: async () => undefined,
    releaseConnection: async () => undefined,
    destroy: async () => undefined,
  };
  return new Kysely<Database>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => driver,
      createIntrospector: (db) => new PostgresIntrospector(db),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  });
}

/** an array as PostgreSQL's array input text (what pg sends for an array parameter) */
function arrayText(v: unknown[]): string {
  return `{${v
    .map((x) => {
      if (x === null || x === undefined) return 'NULL';
      if (Array.isArray(x)) return arrayText(x);
      const t = x instanceof Date ? x.toISOString() : typeof x === 'object' && !Buffer.isBuffer(x) ? JSON.stringify(x) : Buffer.isBuffer(x) ? `\\x${x.toString('hex')}` : String(x);
      return `"${t.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
    })
    .join(',')}}`;
}

/**
 * A parameter as an SQL literal of unknown type, the way PostgreSQL takes an untyped parameter: a quoted string
 * (its type comes from where it stands), NULL for null. Dates as ISO (UTC), arrays as array text, objects as JSON.
 */
export function sqlLiteral(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'string') {
    if (v.includes('\0')) throw new BadOpArgs('a string with a NUL character');
    return pg.escapeLiteral(v);
  }
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new BadOpArgs(`a number PostgreSQL cannot take: ${v}`);
    return `'${String(v)}'`;
  }
  if (typeof v === 'boolean' || typeof v === 'bigint') return `'${String(v)}'`;
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new BadOpArgs('an invalid Date');
    return `'${v.toISOString()}'`;
  }
  if (Buffer.isBuffer(v)) return `'\\x${v.toString('hex')}'`;
  if (Array.isArray(v)) return pg.escapeLiteral(arrayText(v));
  return pg.escapeLiteral(JSON.stringify(v));
}

const PLACEHOLDER = /\$(\d+)/g;

/** a compiled query with its parameters written in as literals (null when its text is not safe to rewrite) */
export function inlineQuery(q: CompiledQuery): string | null {
  // sure only when every $ in the text is a placeholder: none in a quoted string, no dollar quoting
  if (/\$(?!\d)/.test(q.sql) || (q.sql.match(/'(?:[^']|'')*'|"(?:[^"]|"")*"/g) ?? []).some((x) => x.includes('$'))) return null;
  const params = q.parameters;
  let bad = false;
  const text = q.sql.replace(PLACEHOLDER, (_, n: string) => {
    const i = Number(n) - 1;
    if (i < 0 || i >= params.length) {
      bad = true;
      return '';
    }
    return sqlLiteral(params[i]);
  });
  return bad ? null : text;
}

/**
 * The record ops' batch applier: every entry's statements, parameters written in, sent as ONE simple query.
 * PostgreSQL runs a multi-statement simple query as one transaction: all of the entries apply, with their
 * markers, or none does (and the outbox tries each alone). One round trip instead of one per entry.
 */
export async function applyRecordBatch(db: Db, items: Array<BatchItem<Db>>): Promise<void> {
  const sink: CompiledQuery[] = [];
  const cap = capturingDb(sink);
  for (const it of items) await it.def.run(cap, it.args, it.ctx);
  if (sink.length === 0) return;
  if (sink.length === 1) {
    await db.executeQuery(sink[0]!);
    return;
  }
  const texts = sink.map(inlineQuery);
  if (texts.some((x) => x === null)) {
    // not rewritable (never for the ops above): one statement at a time, in one transaction
    await db.transaction().execute(async (trx) => {
      for (const q of sink) await trx.executeQuery(q);
    });
    return;
  }
  await sql.raw(texts.join(';\n')).execute(db);
}

/** outbox_applied rows older than this are pruned: an entry replayed later than that could apply twice (logged) */
export const MARKER_RETENTION_DAYS = 7;

/** delete markers older than the retention, in batches (ids are UUIDv7: the primary key orders them by time) */
export async function pruneMarkers(db: Db, retentionDays = MARKER_RETENTION_DAYS): Promise<number> {
  const floor = uuidv7Floor(Date.now() - retentionDays * 86400_000);
  let total = 0;
  for (;;) {
    const r = await sql`delete from outbox_applied where id in (select id from outbox_applied where id < ${floor}::uuid limit 5000)`.execute(db);
    const n = Number(r.numAffectedRows ?? 0);
    total += n;
    if (n < 5000) return total;
  }
}

export type RecordOutbox = Outbox<Db>;

/** the process's record outbox: set by the service (setRecordOutbox); writers made without one use it */
let installed: RecordOutbox | null = null;
/** for a Db with no outbox installed (tests): a private outbox in a fresh temporary directory, per Db */
const fallbacks = new WeakMap<Db, RecordOutbox>();
const installedDb = new WeakMap<RecordOutbox, Db>();

export function setRecordOutbox(outbox: RecordOutbox | null, db?: Db): void {
  installed = outbox;
  if (outbox && db) installedDb.set(outbox, db);
}

/** the outbox for record writes on `db`: the installed one (when it writes to this Db), else this Db's private fallback */
export function recordOutbox(db: Db, log?: Logger): RecordOutbox {
  if (installed && (installedDb.get(installed) ?? db) === db) return installed;
  let o = fallbacks.get(db);
  if (!o) {
    // nothing installed (a test, a tool): durable within this process, never taken over by another (the directory is its own)
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hotline-outbox-'));
    o = new Outbox<Db>({ db, ops: recordOps, dir, log: log ?? silentLog });
    o.startTimers();
    fallbacks.set(db, o);
    process.once('exit', () => {
      try {
        rmdirSync(dir); // only when empty: what is left is kept for a look
      } catch {
        // not empty
      }
    });
  }
  return o;
}

/** the installed outbox (for /metrics), or null */
export function installedRecordOutbox(): RecordOutbox | null {
  return installed;
}

const noop = () => undefined;
const silentLog = { child: () => silentLog, trace: noop, debug: noop, info: noop, warn: noop, error: noop, fatal: noop } as unknown as Logger;

/**
 * The service's record outbox: opened on OUTBOX_DIR (what a crashed process left there for this database is taken
 * over and replayed at once), installed for every record writer, old markers pruned hourly. close() at stop.
 */
export async function startRecordOutbox(opts: { db: Db; dir: string; databaseUrl: string; log: Logger; directTimeoutMs?: number } & Partial<OutboxOptions<Db>>): Promise<RecordOutbox> {
  const { db, dir, databaseUrl, log, ...rest } = opts;
  let outbox: RecordOutbox;
  try {
    outbox = await Outbox.open<Db>({ ...rest, db, dir, log, ops: recordOps, database: databaseUrl });
    await fs.access(dir, fsConstants.W_OK);
  } catch (err) {
    throw new Error(`OUTBOX_DIR ${dir} cannot be used for the record outbox: ${(err as Error).message}`);
  }
  setRecordOutbox(outbox, db);
  const prune = setInterval(() => {
    void pruneMarkers(db).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'outbox markers not pruned'));
  }, 3600_000);
  prune.unref();
  const close = outbox.close.bind(outbox);
  outbox.close = async (ms?: number) => {
    clearInterval(prune);
    await close(ms);
    if (installed === outbox) installed = null;
  };
  return outbox;
}
