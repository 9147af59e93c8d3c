/**
 * The recordings sweep (leader only, every RECORDINGS_SWEEP_SECONDS): finishes index rows left `recording` after
 * their recording must have ended. RecordingFinished finishes a row as it comes; it misses when the row was not
 * in PostgreSQL yet (its insert waited in the record outbox), PostgreSQL or Asterisk was away, or the process
 * that started the recording died or handed over before the event came. A row is due once its call ended
 * `graceMs` ago (Asterisk has long closed the file), or RecordingFinished set its end but the file could not be
 * read, or it started 12 h ago (a call record that was never closed). Each gets RecordingsService.finished(),
 * reading the file once: `saved` with its hash, `failed` when there is no file or an empty one; Asterisk not
 * handing the file over leaves it `recording`, tried again later (backing off per row: never dropped, never
 * hammered), and ends the tick (Asterisk is likely away for the rest too).
 *
 * One tick at a time, a batch per tick. A tick takes a fleet-wide Redis lock (SET NX EX, a little under the
 * interval), so a process taking over does not sweep alongside the one leaving; Redis away does not stop it (only
 * a row still `recording` changes, so finishing one twice is harmless). Errors are logged, never thrown.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Db } from '../db/db.js';
import { withTimeout } from '../shared/timeout.js';
import type { Recording } from './recordings.service.js';
import { unfinishedRecordings } from './recordings.repo.js';

export interface RecordingsSweepDeps {
  db: Db;
  /** RecordingsService.finished */
  finish(name: string, r: { endedAt: Date; durationSeconds: number | null }, opts: { retryMs?: readonly number[] }): Promise<Pick<Recording, 'status'>>;
  redis: Pick<Redis, 'set'>;
  /** the lock's key: keys.recordingsSweepLock() */
  lockKey: string;
  log: Logger;
  /** between ticks (RECORDINGS_SWEEP_SECONDS); 15 s */
  intervalMs?: number;
  /** a row is due this long after its call ended; 10 s */
  graceMs?: number;
  /** rows per tick; 50 */
  batchSize?: number;
  /** a row whose file Asterisk did not hand over waits this long before it is tried again, doubling up to retryMaxMs (1 min, 15 min) */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** one row's finish may take this long (a stalled file download must not stall the sweep); 60 s */
  finishTimeoutMs?: number;
}

export interface SweepResult {
  saved: number;
  failed: number;
  /** rows still `recording`: Asterisk did not hand the file over (or the row could not be finished), tried again later */
  retried: number;
}

export interface RecordingsSweep {
  start(): void;
  /** no new tick starts; the tick in progress ends after its current row (waited for a second at most) */
  stop(): Promise<void>;
  /** one tick now (tests; `now` moves the cut-offs and the retry times): null when another process holds the lock or the tick failed */
  tick(now?: Date): Promise<SweepResult | null>;
}

/** no call lasts this long: a row still `recording` after it is finished whatever its call record says */
const STALE_MS = 12 * 3600_000;
const LOCK_TIMEOUT_MS = 2000;

export function createRecordingsSweep(deps: RecordingsSweepDeps): RecordingsSweep {
  const log = deps.log.child({ module: 'recordings-sweep' });
  const intervalMs = deps.intervalMs ?? 15_000;
  const graceMs = deps.graceMs ?? 10_000;
  const batchSize = deps.batchSize ?? 50;
  const retryMinMs = deps.retryMinMs ?? 60_000;
  const retryMaxMs = deps.retryMaxMs ?? 15 * 60_000;
  const finishTimeoutMs = deps.finishTimeoutMs ?? 60_000;
  // a little less than the interval: the next tick of any process finds it free
  const lockSeconds = Math.max(1, Math.floor((intervalMs * 0.8) / 1000));
  /** rows whose file Asterisk did not hand over, by name: when they may be tried again */
  const later = new Map<string, { at: number; delayMs: number }>();
  let every: NodeJS.Timeout | null = null;
  let running: Promise<SweepResult | null> | null = null;
  let stopped = false;

  /** this tick is ours: the lock taken, or Redis away (the leader sweeps alone then) */
  const lock = async (): Promise<boolean> => {
    const token = `${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      const got = await withTimeout(deps.redis.set(deps.lockKey, token, 'EX', lockSeconds, 'NX'), LOCK_TIMEOUT_MS, () => new Error('no answer from Redis'));
      return got === 'OK';
    } catch (err) {
      log.debug({ err: (err as Error).message }, 'recordings sweep lock not taken (Redis away): sweeping anyway');
      return true;
    }
  };

  const backOff = (name: string, now: number): void => {
    const prev = later.get(name);
    const delayMs = prev ? Math.min(retryMaxMs, prev.delayMs * 2) : retryMinMs;
    later.set(name, { at: now + delayMs, delayMs });
  };

  /** names not to be tried at `now`; entries long past their time are forgotten (a row finished elsewhere never comes back) */
  const waiting = (now: number): string[] => {
    for (const [name, b] of later) if (b.at + retryMaxMs < now) later.delete(name);
    return [...later].filter(([, b]) => b.at > now).map(([name]) => name);
  };

  const finishOne = async (row: { name: string; endedAt: Date | null }, now: Date): Promise<Recording['status'] | Error> => {
    try {
      const done = await withTimeout(deps.finish(row.name, { endedAt: row.endedAt ?? now, durationSeconds: null }, { retryMs: [] }), finishTimeoutMs, () => new Error(`not finished within ${finishTimeoutMs} ms`));
      return done.status;
    } catch (err) {
      return err as Error;
    }
  };

  const sweep = async (now: Date): Promise<SweepResult> => {
    const t = now.getTime();
    const rows = await unfinishedRecordings(deps.db, { endedBefore: new Date(t - graceMs), startedBefore: new Date(t - STALE_MS), skip: waiting(t), limit: batchSize });
    const result: SweepResult = { saved: 0, failed: 0, retried: 0 };
    for (const row of rows) {
      if (stopped) break;
      const status = await finishOne(row, now);
      if (status === 'saved' || status === 'failed' || status === 'purged') {
        later.delete(row.name);
        if (status !== 'purged') result[status]++;
        continue;
      }
      // still recording (Asterisk did not hand the file over), or an error (PostgreSQL away...): this row later,
      // and no more this tick: the rest would most likely meet the same
      backOff(row.name, t);
      result.retried++;
      log.warn({ name: row.name, err: status instanceof Error ? status.message : undefined, retryInMs: later.get(row.name)!.delayMs }, 'recording not finished by the sweep: tried again later');
      break;
    }
    if (result.saved + result.failed + result.retried > 0) log.info({ ...result, due: rows.length }, 'recordings sweep: unfinished recordings settled');
    return result;
  };

  const tick = (now = new Date()): Promise<SweepResult | null> =>
    (running ??= (async () => {
      try {
        if (stopped || !(await lock())) return null;
        return await sweep(now);
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'recordings sweep failed; the next tick retries');
        return null;
      } finally {
        running = null;
      }
    })());

  return {
    start() {
      if (every || stopped) return;
      every = setInterval(() => void tick(), intervalMs);
      every.unref();
    },
    async stop() {
      stopped = true;
      if (every) clearInterval(every);
      every = null;
      // the row being read finishes on its own: a stop (a hand-over waits on it) does not wait on a slow download
      if (running) await Promise.race([running, new Promise((r) => setTimeout(r, 1000).unref())]);
    },
    tick,
  };
}
