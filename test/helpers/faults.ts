/**
 * The invariants every fault-suite scenario ends with (test/faults/*): each SIPp call has exactly one call
 * record and it is closed, every answered call has its recording indexed and non-empty, nothing is left
 * behind in Asterisk, and the service logged no unhandled rejection.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Test } from 'tap';
import type { Db } from '../../src/db/db.js';
import { LOG_FLUSH_MS } from '../../src/shared/logger.js';
import { ariBridges, ariChannels, waitFor } from './stack.js';

/** where the service's log file stood when the test file began: only what came after is checked */
export function logMark(logFile: string): number {
  try {
    return readFileSync(logFile, 'utf8').length;
  } catch {
    return 0;
  }
}

/** the service's log since `from`, once what it logged last has reached the file (it writes in batches of up to LOG_FLUSH_MS) */
export async function settledLog(logFile: string, from: number): Promise<string> {
  await sleep(LOG_FLUSH_MS + 100);
  return readFileSync(logFile, 'utf8').slice(from);
}

/** `recordingsLeftOut`: why this scenario does not check the recordings index (a known limit, said in the output) */
export async function faultInvariants(t: Test, o: { db: Db; caller: string; calls: number; logFile: string; logStart: number; recordingsLeftOut?: string }): Promise<void> {
  const { db, caller, calls } = o;
  const rows = await waitFor(async () => {
    const r = await db.selectFrom('calls').select(['id', 'ended_at', 'answered_at', 'end_reason', 'disposition', 'wait_seconds']).where('caller', '=', caller).execute();
    return r.length === calls && r.every((x) => x.ended_at) ? r : undefined;
  }, 30_000, `${calls} closed records for ${caller}`).catch(async () => db.selectFrom('calls').select(['id', 'ended_at', 'answered_at', 'end_reason', 'disposition', 'wait_seconds']).where('caller', '=', caller).execute());
  t.equal(rows.length, calls, `exactly one call record per SIPp call (${calls})`);
  t.equal(rows.filter((r) => !r.ended_at).length, 0, 'no record stays open');
  // what the KPIs count: a closed record without them would drop out of the answer rate or the average wait
  t.same(rows.filter((r) => r.ended_at && (r.disposition === null || r.wait_seconds === null)).map((r) => r.id), [], 'every closed record has its disposition and wait');
  // an agent answered (not the dialplan fallback, which records nothing): one saved, non-empty recording
  const recorded = rows.filter((r) => r.answered_at && r.end_reason !== 'fallback').map((r) => r.id);
  if (o.recordingsLeftOut) t.comment(`recordings index not checked: ${o.recordingsLeftOut}`);
  else if (recorded.length) {
    const recs = await waitFor(async () => {
      const r = await db.selectFrom('recordings').select(['call_id', 'status', 'size_bytes']).where('call_id', 'in', recorded).execute();
      return r.length >= recorded.length && r.every((x) => x.status !== 'recording') ? r : undefined;
    }, 40_000, 'recordings indexed') // what RecordingFinished missed, the recordings sweep settles (10 s after the call, every 15 s).catch(async () => db.selectFrom('recordings').select(['call_id', 'status', 'size_bytes']).where('call_id', 'in', recorded).execute());
    const good = new Set(recs.filter((r) => r.status === 'saved' && Number(r.size_bytes) > 0).map((r) => r.call_id));
    t.equal(recorded.filter((id) => good.has(id)).length, recorded.length, `every answered call's recording is indexed, saved and non-empty (${good.size}/${recorded.length})`);
  }
  const left = await waitFor(async () => {
    const ch = (await ariChannels()).filter((c) => !c.name.startsWith('Snoop'));
    const br = (await ariBridges()).filter((b) => b.channels.length > 0 || b.id.startsWith('call-'));
    return ch.length === 0 && br.length === 0 ? true : undefined;
  }, 20_000, 'Asterisk empty').catch(() => false);
  t.ok(left, 'nothing left behind in Asterisk');
  t.notOk(/unhandled rejection/.test(await settledLog(o.logFile, o.logStart)), 'no unhandled rejection in the service log');
}
