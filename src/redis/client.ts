import { Redis } from 'ioredis';
import { redact } from '../config/env.js';

/**
 * The command connection: fails fast while Redis is down (no offline queue), so a request or a call
 * never waits on a dead Redis. BullMQ workers get their own connections when the jobs issue adds them.
 */
export function createRedis(url: string): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 3000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    // the commands of one event-loop turn (a call step's live state, its live event, an agent's state) leave in one
    // write: fewer socket writes per call (the benchmark's largest share of the service's CPU is socket I/O)
    enableAutoPipelining: true,
  });
  // errors are reported by /readyz and by the failing command; an unhandled 'error' would crash the process
  redis.on('error', () => undefined);
  return redis;
}

export async function connectRedis(redis: Redis, url: string): Promise<void> {
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`cannot reach Redis at REDIS_URL ${redact(url)}: ${(err as Error).message}`);
  }
}
