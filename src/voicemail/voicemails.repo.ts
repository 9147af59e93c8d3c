import { decodeCursor, encodeCursor } from '../http/cursor.js';
import type { Db } from '../db/db.js';
import type { VoicemailReason, VoicemailRow, VoicemailStatus } from '../db/database.js';
import { badRequest } from '../shared/errors.js';
import { normalizePhone } from '../shared/phone.js';

/** index a message that is about to be recorded (status `recording`); returns its id */
export async function startVoicemail(
  db: Db,
  v: { callId: string | null; caller: string; line: string; language: string; reason: VoicemailReason; recordingName: string; startedAt: Date },
): Promise<string> {
  const row = await db
    .insertInto('voicemails')
    .values({
      call_id: v.callId,
      caller: v.caller,
      line: v.line,
      language: v.language,
      reason: v.reason,
      recording_name: v.recordingName,
      started_at: v.startedAt,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** the recording ended: saved, empty (nothing said) or failed */
export async function finishVoicemail(db: Db, id: string, r: { status: Exclude<VoicemailStatus, 'recording'>; durationSeconds: number | null }): Promise<void> {
  await db.updateTable('voicemails').set({ status: r.status, duration_seconds: r.durationSeconds }).where('id', '=', id).execute();
}

export async function getVoicemail(db: Db, id: string): Promise<VoicemailRow | undefined> {
  return db.selectFrom('voicemails').selectAll().where('id', '=', id).executeTakeFirst();
}

export interface VoicemailFilter {
  from?: Date;
  to?: Date;
  line?: string;
  /** any spelling of the number: normalised here */
  caller?: string;
  status?: VoicemailStatus;
  limit: number;
  /** from a previous page's nextCursor */
  cursor?: string;
}

/** newest first; a keyset cursor (started_at, id) in the calls list's format */
export async function listVoicemails(db: Db, f: VoicemailFilter): Promise<{ items: VoicemailRow[]; nextCursor: string | null }> {
  let q = db.selectFrom('voicemails').selectAll();
  if (f.from) q = q.where('started_at', '>=', f.from);
  if (f.to) q = q.where('started_at', '<', f.to);
  if (f.line) q = q.where('line', '=', f.line);
  if (f.caller !== undefined) {
    const caller = normalizePhone(f.caller);
    if (caller === null) throw badRequest('invalid-number', `caller "${f.caller}" is not a phone number`);
    q = q.where('caller', '=', caller);
  }
  if (f.status) q = q.where('status', '=', f.status);
  if (f.cursor) {
    const { at: startedAt, id } = decodeCursor(f.cursor);
    q = q.where((eb) => eb.or([eb('started_at', '<', startedAt), eb.and([eb('started_at', '=', startedAt), eb('id', '<', id)])]));
  }
  // one row more than asked tells whether there is a next page (no empty last page)
  const rows = await q.orderBy('started_at', 'desc').orderBy('id', 'desc').limit(f.limit + 1).execute();
  const items = rows.slice(0, f.limit);
  return { items, nextCursor: rows.length > f.limit ? encodeCursor(items[items.length - 1]!.started_at, items[items.length - 1]!.id) : null };
}

