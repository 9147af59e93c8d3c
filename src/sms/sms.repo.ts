import { sql } from 'kysely';
import { decodeCursor, encodeCursor } from '../http/cursor.js';
import type { Db } from '../db/db.js';
import type { SmsDirection, SmsRow, SmsStatus } from '../db/database.js';
import { badRequest } from '../shared/errors.js';
import { normalizePhone } from '../shared/phone.js';
import type { DeliveryReceipt } from './gateway.js';

/** one message per number, all `queued`, in one statement; returned in the order of `numbers` */
export async function createOutgoing(
  db: Db,
  m: { numbers: string[]; text: string; template: string | null; sentBy: string; callId: string | null; batchId: string },
): Promise<Array<Pick<SmsRow, 'id' | 'number' | 'text'>>> {
  const rows = await db
    .insertInto('sms_messages')
    .values(m.numbers.map((number) => ({ direction: 'out' as const, number, text: m.text, template: m.template, status: 'queued' as const, sent_by: m.sentBy, call_id: m.callId, batch_id: m.batchId })))
    .returning(['id', 'number', 'text'])
    .execute();
  const byNumber = new Map(rows.map((r) => [r.number, r]));
  return m.numbers.map((n) => byNumber.get(n)!);
}

/** the SMSC took it: its id is what the receipt will name */
export async function markSent(db: Db, id: string, messageId: string, at: Date): Promise<void> {
  await db.updateTable('sms_messages').set({ status: 'sent', message_id: messageId, sent_at: at }).where('id', '=', id).where('status', '=', 'queued').execute();
}

export async function markFailed(db: Db, id: string, error: string): Promise<void> {
  await db.updateTable('sms_messages').set({ status: 'failed', error }).where('id', '=', id).where('status', '=', 'queued').execute();
}

/**
 * The final outcome from the SMSC's receipt. `no-row`: no sent message has that id (yet: the receipt can
 * overtake our own write of the id); `done`: applied, or the row already had its outcome (a repeated receipt).
 */
export async function applyReceipt(db: Db, r: DeliveryReceipt & { status: Exclude<DeliveryReceipt['status'], 'unknown'> }): Promise<'done' | 'no-row'> {
  const row = await db.selectFrom('sms_messages').select(['id', 'status']).where('message_id', '=', r.messageId).where('direction', '=', 'out').executeTakeFirst();
  if (!row) return 'no-row';
  await db
    .updateTable('sms_messages')
    .set({ status: r.status, delivered_at: r.status === 'delivered' ? r.at : null, error: r.error ?? null })
    .where('id', '=', row.id)
    .where('status', '=', 'sent')
    .execute();
  return 'done';
}

/** a citizen's message; its number normalised when it is a phone number */
export async function storeInbound(db: Db, m: { from: string; text: string; at: Date }): Promise<string> {
  const row = await db
    .insertInto('sms_messages')
    .values({ direction: 'in', number: normalizePhone(m.from) ?? m.from.trim(), text: m.text, status: 'received', created_at: m.at, sent_at: m.at })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** messages left `queued` by a process that stopped before handing them over: failed, with why */
export async function failAbandoned(db: Db, olderThanMs: number): Promise<number> {
  const r = await db
    .updateTable('sms_messages')
    .set({ status: 'failed', error: 'not sent: the service stopped before handing it to the SMSC' })
    .where('status', '=', 'queued')
    .where('created_at', '<', sql<Date>`now() - make_interval(secs => ${olderThanMs / 1000})`)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export interface SmsFilter {
  /** any spelling of the number: normalised here */
  number?: string;
  direction?: SmsDirection;
  status?: SmsStatus;
  batchId?: string;
  limit: number;
  /** from a previous page's nextCursor */
  cursor?: string;
}

/** newest first; a keyset cursor (created_at, id) in the calls list's format */
export async function listSms(db: Db, f: SmsFilter): Promise<{ items: SmsRow[]; nextCursor: string | null }> {
  let q = db.selectFrom('sms_messages').selectAll();
  if (f.number !== undefined) q = q.where('number', '=', numberOrThrow(f.number));
  if (f.direction) q = q.where('direction', '=', f.direction);
  if (f.status) q = q.where('status', '=', f.status);
  if (f.batchId) q = q.where('batch_id', '=', f.batchId);
  if (f.cursor) {
    const { at, id } = decodeCursor(f.cursor);
    q = q.where((eb) => eb.or([eb('created_at', '<', at), eb.and([eb('created_at', '=', at), eb('id', '<', id)])]));
  }
  // one row more than asked tells whether there is a next page (no empty last page)
  const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(f.limit + 1).execute();
  const items = rows.slice(0, f.limit);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > f.limit && last ? encodeCursor(last.created_at, last.id) : null };
}

/**
 * an agent's own correspondents: the (normalised) number was the caller or the dialled number of a call the
 * agent took part in, or the agent's user sent it a message. What an agent may list the messages of.
 */
export async function isAgentsCorrespondent(db: Db, number: string, who: { userId: string; agentId: string | null }): Promise<boolean> {
  const viaSms = await db.selectFrom('sms_messages').select('id').where('number', '=', number).where('sent_by', '=', who.userId).limit(1).executeTakeFirst();
  if (viaSms) return true;
  if (!who.agentId) return false;
  const viaCall = await db
    .selectFrom('calls')
    .select('id')
    .where((eb) => eb.or([eb('caller', '=', number), eb('dialed', '=', number)]))
    // @>: the agents GIN index (calls_agents_idx), or the caller index, serves it
    .where(sql<boolean>`agents @> array[${who.agentId}]::text[]`)
    .limit(1)
    .executeTakeFirst();
  return viaCall !== undefined;
}

export interface SmsHistoryItem {
  id: string;
  direction: SmsDirection;
  text: string;
  status: SmsStatus;
  at: Date;
}

/** the query of a (normalised) number's last messages, both ways, newest first: smsHistoryOf, and the screen pop's one-statement read (calls.repo.ts) */
export const smsHistoryQuery = (db: Db, number: string, limit: number) =>
  db
    .selectFrom('sms_messages')
    .select(['id', 'direction', 'text', 'status', 'created_at as at'])
    .where('number', '=', number)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit);

/** a caller's last messages, both ways, newest first; a number that is not one has none */
export async function smsHistoryOf(db: Db, number: string, limit: number): Promise<SmsHistoryItem[]> {
  const n = normalizePhone(number);
  if (n === null) return [];
  return smsHistoryQuery(db, n, limit).execute();
}

function numberOrThrow(input: string): string {
  const n = normalizePhone(input);
  if (n === null) throw badRequest('invalid-number', `number "${input}" is not a phone number`);
  return n;
}
