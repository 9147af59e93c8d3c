import { sql } from 'kysely';
import type { Db } from '../db/db.js';

export type CallbackReason = 'abandoned' | 'max_wait' | 'in_queue' | 'ticket_closed';

/**
 * Register a callback to a citizen; a number that already has one pending keeps that one
 * (never two outstanding callbacks to the same number). Returns the new callback's id, or null.
 */
export async function requestCallback(
  db: Db,
  r: { number: string; callId: string | null; queue: string | null; reason: CallbackReason; dueAt?: Date },
): Promise<string | null> {
  if (!/^\+?\d{3,15}$/.test(r.number)) return null; // anonymous or withheld numbers cannot be called back
  const res = await sql<{ id: string }>`
    insert into callbacks (number, call_id, queue, reason, due_at)
    values (${r.number}, ${r.callId}, ${r.queue}, ${r.reason}, ${r.dueAt ?? new Date()})
    on conflict (number) where status in ('pending','dialing') do nothing
    returning id`.execute(db);
  return res.rows[0]?.id ?? null;
}

/** take a pending callback for dialling; false when another process already took it (or it is gone) */
export async function startDialling(db: Db, id: string): Promise<{ number: string; queue: string | null; attempts: number } | null> {
  const row = await db
    .updateTable('callbacks')
    .set((eb) => ({ status: 'dialing', attempts: eb('attempts', '+', 1) }))
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .returning(['number', 'queue', 'attempts'])
    .executeTakeFirst();
  return row ?? null;
}

export async function finishCallback(db: Db, id: string, status: 'done' | 'pending' | 'failed', retryAt?: Date): Promise<void> {
  await db
    .updateTable('callbacks')
    .set({ status, ...(status === 'done' || status === 'failed' ? { done_at: new Date() } : {}), ...(retryAt ? { due_at: retryAt } : {}) })
    .where('id', '=', id)
    .execute();
}
