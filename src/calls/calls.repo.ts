import { sql } from 'kysely';
import { jsonArrayFrom } from 'kysely/helpers/postgres';
import type { Db } from '../db/db.js';
import { normalizePhone } from '../shared/phone.js';
import { smsHistoryQuery, type SmsHistoryItem } from '../sms/sms.repo.js';
import type { CallEventRow, CallRow, CallUpdate, Disposition, NewCall } from '../db/database.js';

export async function insertCall(db: Db, call: NewCall): Promise<void> {
  await db.insertInto('calls').values(call).execute();
}

export async function updateCall(db: Db, id: string, patch: CallUpdate): Promise<void> {
  await db.updateTable('calls').set(patch).where('id', '=', id).execute();
}

export async function appendCallEvent(db: Db, callId: string, at: Date, type: string, data: Record<string, unknown> = {}): Promise<void> {
  await db.insertInto('call_events').values({ call_id: callId, at, type, data: JSON.stringify(data) }).execute();
}

export async function addCallAgent(db: Db, id: string, agentId: string): Promise<void> {
  await db
    .updateTable('calls')
    .set({ agents: sql<string[]>`case when ${agentId} = any(agents) then agents else array_append(agents, ${agentId}) end` })
    .where('id', '=', id)
    .execute();
}

export interface CallFilter {
  from?: Date;
  to?: Date;
  caller?: string;
  line?: string;
  queue?: string;
  agent?: string;
  disposition?: Disposition;
  /** keyset cursor: rows strictly older than this (arrived_at, id) */
  before?: { arrivedAt: Date; id: string };
  limit: number;
}

export async function listCalls(db: Db, f: CallFilter): Promise<CallRow[]> {
  let q = db.selectFrom('calls').selectAll();
  if (f.from) q = q.where('arrived_at', '>=', f.from);
  if (f.to) q = q.where('arrived_at', '<', f.to);
  if (f.caller) q = q.where('caller', '=', f.caller);
  if (f.line) q = q.where('line', '=', f.line);
  if (f.queue) q = q.where('queue', '=', f.queue);
  if (f.agent) q = q.where(sql<boolean>`${f.agent} = any(agents)`);
  if (f.disposition) q = q.where('disposition', '=', f.disposition);
  if (f.before) {
    const { arrivedAt, id } = f.before;
    q = q.where((eb) => eb.or([eb('arrived_at', '<', arrivedAt), eb.and([eb('arrived_at', '=', arrivedAt), eb('id', '<', id)])]));
  }
  return q.orderBy('arrived_at', 'desc').orderBy('id', 'desc').limit(f.limit).execute();
}

export async function getCall(db: Db, id: string): Promise<CallRow | undefined> {
  return db.selectFrom('calls').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function eventsOfCalls(db: Db, ids: string[]): Promise<CallEventRow[]> {
  if (ids.length === 0) return [];
  return db.selectFrom('call_events').selectAll().where('call_id', 'in', ids).orderBy('call_id').orderBy('id').execute();
}

export interface HistoryItem {
  callId: string;
  arrivedAt: string;
  line: string | null;
  queue: string | null;
  agents: string[];
  disposition: string | null;
  surveyScore: number | null;
  url: string;
}

/** the query of a caller's earlier calls, newest first (the screen pop's history) */
const callerHistoryQuery = (db: Db, caller: string, exceptCallId: string, limit: number) =>
  db
    .selectFrom('calls')
    .select(['id', 'arrived_at', 'line', 'queue', 'agents', 'disposition', 'survey_score'])
    .where('caller', '=', caller)
    .where('id', '!=', exceptCallId)
    .orderBy('arrived_at', 'desc')
    .limit(limit);

/**
 * What the queue needs to know of a caller, in one statement (one round trip, not three), read as it enters the
 * queue: the screen pop's history (its earlier calls and its last SMS, both newest first) and, for repeat-caller
 * routing, the agent who answered its last answered call within `repeatDays` (none when that is 0). The rows
 * come back as JSON, so their timestamps are read back into dates here.
 */
export async function callerContext(
  db: Db,
  caller: string,
  o: { exceptCallId: string; limit: number; repeatDays: number },
): Promise<{ calls: HistoryItem[]; sms: SmsHistoryItem[]; lastAgent: string | null }> {
  const number = normalizePhone(caller);
  const row = await db
    .selectNoFrom((eb) => [
      jsonArrayFrom(callerHistoryQuery(db, caller, o.exceptCallId, o.limit)).as('calls'),
      // a caller that is not a phone number has no messages (an empty select, so the statement stays one)
      jsonArrayFrom(smsHistoryQuery(db, number ?? '', number === null ? 0 : o.limit)).as('sms'),
      eb
        .selectFrom('calls')
        .select(sql<string | null>`agents[cardinality(agents)]`.as('agent'))
        .where('caller', '=', caller)
        .where('disposition', '=', 'answered')
        .where('arrived_at', '>=', new Date(Date.now() - Math.max(0, o.repeatDays) * 86400_000))
        .where(sql<boolean>`${o.repeatDays > 0}`)
        .orderBy('arrived_at', 'desc')
        .limit(1)
        .as('lastAgent'),
    ])
    .executeTakeFirstOrThrow();
  return {
    calls: row.calls.map((r) => ({
      callId: r.id,
      arrivedAt: new Date(r.arrived_at).toISOString(),
      line: r.line,
      queue: r.queue,
      agents: r.agents,
      disposition: r.disposition,
      surveyScore: r.survey_score,
      url: `/api/v1/calls/${r.id}`,
    })),
    sms: row.sms.map((m) => ({ ...m, at: new Date(m.at) })),
    lastAgent: row.lastAgent ?? null,
  };
}
