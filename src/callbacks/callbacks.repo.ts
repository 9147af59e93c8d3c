import { sql } from 'kysely';
import type { Db } from '../db/db.js';

export type CallbackReason = 'abandoned' | 'max_wait' | 'in_queue' | 'ticket_closed';

/**
 * Register a callback to a citizen; a number that already has one pending keeps that one
 * (never two outstanding callbacks to the same number). Returns whether a new one was created.
 */
export async function requestCallback(
  db: Db,
  r: { number: string; callId: string | null; queue: string | null; reason: CallbackReason; dueAt?: Date },
): Promise<boolean> {
  if (!/^\+?\d{3,15}$/.test(r.number)) return false; // anonymous or withheld numbers cannot be called back
  const res = await sql`
    insert into callbacks (number, call_id, queue, reason, due_at)
    values (${r.number}, ${r.callId}, ${r.queue}, ${r.reason}, ${r.dueAt ?? new Date()})
    on conflict (number) where status in ('pending','dialing') do nothing`.execute(db);
  return Number(res.numAffectedRows ?? 0) > 0;
}
