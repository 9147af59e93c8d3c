/**
 * The daily retention run of recordings, in every process: a timer fires once a day (and once shortly after
 * start), and the process that takes the fleet-wide Redis lock (SET NX EX) runs the purge. The lock is kept
 * until it expires, a little under a day, so the fleet purges about once a day however many processes run
 * and however often they restart. A purge is idempotent, so a run that overlaps a scheduler's job is harmless.
 *
 * Interim: when the jobs scheduler (src/jobs/, BullMQ + node-cron) calls purgeExpiredRecordings daily, this
 * timer can go.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

export interface RecordingRetentionDeps {
  /** the purge itself: RecordingsService.purgeExpired */
  purge: (now: Date) => Promise<number>;
  redis: Pick<Redis, 'set'>;
  /** the lock's key: keys.recordingsRetentionLock() */
  lockKey: string;
  log: Logger;
  /** between runs; a day by default */
  intervalMs?: number;
  /** the first run after start; a minute by default (start-up is not slowed by it) */
  firstRunMs?: number;
}

export interface RecordingRetention {
  start(): void;
  /** no new run starts; resolves once a run in progress has finished */
  stop(): Promise<void>;
  /** one tick now (tests): true when this process took the lock and ran the purge */
  tick(now?: Date): Promise<boolean>;
}

export function createRecordingRetention(deps: RecordingRetentionDeps): RecordingRetention {
  const log = deps.log.child({ module: 'recordings-retention' });
  const intervalMs = deps.intervalMs ?? 86_400_000;
  // a little less than the interval: the next day's tick of any process finds it free
  const lockSeconds = Math.max(1, Math.floor((intervalMs * 0.95) / 1000));
  let first: NodeJS.Timeout | null = null;
  let every: NodeJS.Timeout | null = null;
  let running: Promise<boolean> | null = null;
  let stopped = false;

  const tick = (now = new Date()): Promise<boolean> =>
    (running ??= (async () => {
      try {
        const token = `${process.pid}-${randomBytes(4).toString('hex')}`;
        const got = await deps.redis.set(deps.lockKey, token, 'EX', lockSeconds, 'NX');
        if (got !== 'OK') return false;
        const purged = await deps.purge(now);
        log.info({ purged }, 'recordings retention run done');
        return true;
      } catch (err) {
        log.error({ err: (err as Error).message }, 'recordings retention run failed; the next run retries');
        return false;
      } finally {
        running = null;
      }
    })());

  return {
    start() {
      if (first || every || stopped) return;
      first = setTimeout(() => void tick(), deps.firstRunMs ?? 60_000);
      every = setInterval(() => void tick(), intervalMs);
      first.unref();
      every.unref();
    },
    async stop() {
      stopped = true;
      if (first) clearTimeout(first);
      if (every) clearInterval(every);
      first = every = null;
      await running;
    },
    tick,
  };
}
