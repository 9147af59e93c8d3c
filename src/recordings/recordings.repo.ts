import { sql } from 'kysely';
import type { Db } from '../db/db.js';
import type { Disposition, RecordingCallType, RecordingRow } from '../db/database.js';
import { decodeCursor, encodeCursor } from '../http/cursor.js';
import { badRequest } from '../shared/errors.js';
import { normalizePhone } from '../shared/phone.js';

/** a recording with what its call row says (null when the call row is not written yet) */
export interface RecordingView extends RecordingRow {
  caller: string | null;
  dialed: string | null;
  line: string | null;
  queue: string | null;
  agents: string[] | null;
  disposition: Disposition | null;
  category: string | null;
}

export interface NewRecording {
  callId: string;
  name: string;
  callType: RecordingCallType;
  startedAt: Date;
}

/** the new row; one recording per call: a second start of the same call inserts nothing (recordings.call_id is unique) */
const insertNew = (db: Db, r: NewRecording) =>
  db
    .insertInto('recordings')
    .values({ call_id: r.callId, name: r.name, call_type: r.callType, started_at: r.startedAt })
    .onConflict((oc) => oc.column('call_id').doNothing());

/** index a recording that has just started; a second start of the same call returns the first row */
export async function insertRecording(db: Db, r: NewRecording): Promise<{ row: RecordingRow; inserted: boolean }> {
  const inserted = await insertNew(db, r).returningAll().executeTakeFirst();
  if (inserted) return { row: inserted, inserted: true };
  const existing = await db.selectFrom('recordings').selectAll().where('call_id', '=', r.callId).executeTakeFirstOrThrow();
  return { row: existing, inserted: false };
}

/** the same insert in one statement, idempotent by itself (the record outbox's 'recording.start') */
export async function insertRecordingOnce(db: Db, r: NewRecording): Promise<void> {
  await insertNew(db, r).execute();
}

/** a recording still `recording` that should have ended, with the end time the sweep gives it */
export interface UnfinishedRecording {
  id: string;
  name: string;
  /** the call's end, else the recording's own (RecordingFinished came but the file could not be read), else null */
  endedAt: Date | null;
}

/**
 * Rows still `recording` whose recording must be over (src/recordings/sweep.ts): their call ended before
 * `endedBefore`, or RecordingFinished already set their end before it (the file could not be read then), or
 * they started before `startedBefore` (a call record that was never closed). Newest end first; `skip` are
 * names not to be tried now. Only rows still `recording` are read (a partial index keeps them few).
 */
export async function unfinishedRecordings(db: Db, o: { endedBefore: Date; startedBefore: Date; skip: readonly string[]; limit: number }): Promise<UnfinishedRecording[]> {
  let q = db
    .selectFrom('recordings as r')
    .leftJoin('calls as c', 'c.id', 'r.call_id')
    .select(['r.id', 'r.name', sql<Date | null>`coalesce(c.ended_at, r.ended_at)`.as('endedAt')])
    .where('r.status', '=', 'recording')
    .where((eb) => eb.or([eb('c.ended_at', '<', o.endedBefore), eb('r.ended_at', '<', o.endedBefore), eb('r.started_at', '<', o.startedBefore)]));
  if (o.skip.length > 0) q = q.where(sql<boolean>`r.name <> all(${[...o.skip]}::text[])`);
  return q.orderBy(sql`coalesce(c.ended_at, r.ended_at, r.started_at)`, 'desc').orderBy('r.id').limit(o.limit).execute();
}

export async function recordingByName(db: Db, name: string): Promise<RecordingRow | undefined> {
  return db.selectFrom('recordings').selectAll().where('name', '=', name).executeTakeFirst();
}

/**
 * The end of a recording, written once: only a row still `recording` changes, so a late or repeated call can
 * never replace the hash taken first (a file changed afterwards must keep failing its check).
 */
export async function finishRecording(
  db: Db,
  id: string,
  r: { status: 'saved' | 'failed' | 'recording'; endedAt: Date; durationSeconds: number | null; sizeBytes: number | null; sha256: string | null },
): Promise<RecordingRow | undefined> {
  return db
    .updateTable('recordings')
    .set({ status: r.status, ended_at: r.endedAt, duration_seconds: r.durationSeconds, size_bytes: r.sizeBytes, sha256: r.sha256 })
    .where('id', '=', id)
    .where('status', '=', 'recording')
    .returningAll()
    .executeTakeFirst();
}

/** recordings not purged yet that started before `cutoff`, oldest first, after a keyset position */
export async function expiredRecordings(db: Db, cutoff: Date, after: { startedAt: Date; id: string } | null, limit: number): Promise<RecordingRow[]> {
  let q = db.selectFrom('recordings').selectAll().where('status', '<>', 'purged').where('started_at', '<', cutoff);
  if (after) q = q.where((eb) => eb.or([eb('started_at', '>', after.startedAt), eb.and([eb('started_at', '=', after.startedAt), eb('id', '>', after.id)])]));
  return q.orderBy('started_at').orderBy('id').limit(limit).execute();
}

/** undefined when another process purged it first */
export async function markPurged(db: Db, id: string, at: Date): Promise<RecordingRow | undefined> {
  return db.updateTable('recordings').set({ status: 'purged', purged_at: at }).where('id', '=', id).where('status', '<>', 'purged').returningAll().executeTakeFirst();
}

function view(db: Db) {
  return db
    .selectFrom('recordings as r')
    .leftJoin('calls as c', 'c.id', 'r.call_id')
    .selectAll('r')
    .select(['c.caller', 'c.dialed', 'c.line', 'c.queue', 'c.agents', 'c.disposition', 'c.category']);
}

export async function getRecording(db: Db, id: string): Promise<RecordingView | undefined> {
  return view(db).where('r.id', '=', id).executeTakeFirst();
}

export interface RecordingFilter {
  /** started_at, inclusive */
  from?: Date;
  /** started_at, exclusive */
  to?: Date;
  /** any spelling of the number: normalised here */
  caller?: string;
  line?: string;
  queue?: string;
  /** recordings of calls this agent took part in */
  agent?: string;
  /** a second agent condition (an agent asking about another agent sees their calls together only) */
  onlyAgent?: string;
  disposition?: Disposition;
  /** the recording's call type (inbound, outbound, callback, click) */
  direction?: RecordingCallType;
  category?: string;
  limit: number;
  /** from a previous page's nextCursor */
  cursor?: string;
}

/** newest first; a keyset cursor (started_at, id) in the calls list's format */
export async function listRecordings(db: Db, f: RecordingFilter): Promise<{ items: RecordingView[]; nextCursor: string | null }> {
  let q = view(db);
  if (f.from) q = q.where('r.started_at', '>=', f.from);
  if (f.to) q = q.where('r.started_at', '<', f.to);
  if (f.caller !== undefined) {
    const caller = normalizePhone(f.caller);
    if (caller === null) throw badRequest('invalid-number', `caller "${f.caller}" is not a phone number`);
    q = q.where('c.caller', '=', caller);
  }
  if (f.line) q = q.where('c.line', '=', f.line);
  if (f.queue) q = q.where('c.queue', '=', f.queue);
  for (const agent of [f.agent, f.onlyAgent]) if (agent !== undefined) q = q.where(sql<boolean>`${agent} = any(c.agents)`);
  if (f.disposition) q = q.where('c.disposition', '=', f.disposition);
  if (f.direction) q = q.where('r.call_type', '=', f.direction);
  if (f.category) q = q.where('c.category', '=', f.category);
  if (f.cursor) {
    const { at, id } = decodeCursor(f.cursor);
    q = q.where((eb) => eb.or([eb('r.started_at', '<', at), eb.and([eb('r.started_at', '=', at), eb('r.id', '<', id)])]));
  }
  // one row more than asked tells whether there is a next page (no empty last page)
  const rows = await q.orderBy('r.started_at', 'desc').orderBy('r.id', 'desc').limit(f.limit + 1).execute();
  const items = rows.slice(0, f.limit);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > f.limit && last ? encodeCursor(last.started_at, last.id) : null };
}
