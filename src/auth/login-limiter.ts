/**
 * Failed sign-ins are limited per user name and per client address (guessing passwords, or one address trying
 * many user names). Each is a counter in Redis that expires with its window, which begins at the first failure:
 * once a counter reaches its maximum, sign-ins for that user name (or from that address) are refused with 429
 * until the window has passed, whether the password is right or not. A successful sign-in clears the user
 * name's counter, never the address's (one good account must not reset the count of an address trying others).
 * Redis holds only these counters: if it is wiped, the windows start again.
 */
import type { Redis } from 'ioredis';
import type { Keys } from '../redis/keys.js';

export interface LoginLimits {
  /** failures of one user name within the window before it is locked */
  maxFailuresPerUser: number;
  /** failures from one client address within the window before it is locked */
  maxFailuresPerAddress: number;
  windowSeconds: number;
}

export interface LoginLimiter {
  /** seconds until a sign-in of this user name from this address may be tried again, or null when it may now */
  lockedFor(username: string, address: string): Promise<number | null>;
  /** count one failure against the user name and the address */
  failed(username: string, address: string): Promise<void>;
  /** a successful sign-in: the user name's failures are forgotten */
  succeeded(username: string): Promise<void>;
}

export function createLoginLimiter(deps: { redis: Redis; keys: Keys } & LoginLimits): LoginLimiter {
  const { redis, keys } = deps;
  const windowMs = deps.windowSeconds * 1000;
  return {
    async lockedFor(username, address) {
      const userKey = keys.loginFailuresUser(username);
      const addressKey = keys.loginFailuresAddress(address);
      const r = (await redis.multi().get(userKey).pttl(userKey).get(addressKey).pttl(addressKey).exec()) ?? [];
      const value = (i: number) => r[i]?.[1] as string | number | null | undefined;
      let waitMs = 0;
      const check = (count: unknown, ttl: unknown, max: number) => {
        if (Number(count ?? 0) < max) return;
        // a counter without a TTL cannot happen (set with EX); if it did, lock for one window
        const ms = typeof ttl === 'number' && ttl > 0 ? ttl : windowMs;
        waitMs = Math.max(waitMs, ms);
      };
      check(value(0), value(1), deps.maxFailuresPerUser);
      check(value(2), value(3), deps.maxFailuresPerAddress);
      return waitMs > 0 ? Math.ceil(waitMs / 1000) : null;
    },

    async failed(username, address) {
      const tx = redis.multi();
      for (const key of [keys.loginFailuresUser(username), keys.loginFailuresAddress(address)]) {
        // the window starts at the first failure: SET NX gives the counter its TTL once, INCR counts
        tx.set(key, '0', 'PX', windowMs, 'NX').incr(key);
      }
      await tx.exec();
    },

    async succeeded(username) {
      await redis.del(keys.loginFailuresUser(username));
    },
  };
}
