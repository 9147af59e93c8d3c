/**
 * Active-standby between service processes (README "Several processes"): one leader holds the ARI
 * application and does every call; the others wait, ready to take over.
 *
 * - The lease is one Redis key (`ha:leader`, value = the process id, TTL `ttlMs`), renewed every ttl/3.
 * - A standby takes the lease only after it has seen it missing for a whole TTL: the leader re-creates
 *   its key within ttl/3 when Redis comes back empty (a Redis restart does not move the calls), while a
 *   dead leader's lease is taken ~2 TTL after its last renewal.
 * - Redis unreachable: the leader keeps leading (nobody else can take the lease either).
 * - Asterisk is the final judge: one WebSocket per application name, a newcomer replaces the old one
 *   (ApplicationReplaced), so two processes can never both receive a call's events; the replaced one steps
 *   down (service.ts) whatever the lease says.
 * - Graceful hand-over: the leader leaving (SIGTERM) deletes its lease and publishes `handover`; a standby
 *   takes it at once. The successor waits (bounded) for the predecessor's `released` before it reconciles,
 *   so the records it reads are the predecessor's last word.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Keys } from '../redis/keys.js';

export type Role = 'leader' | 'standby';

export interface LeadershipOptions {
  redis: Redis;
  /** pub/sub needs a connection of its own */
  subscriber: Redis;
  keys: Keys;
  processId: string;
  ttlMs?: number;
  log: Logger;
}

export interface Leadership {
  readonly role: Role;
  readonly processId: string;
  /** starts campaigning; resolves once the first round is done (the role is known) */
  start(): Promise<void>;
  /** called on every change of role */
  onChange(handler: (role: Role) => void): void;
  /** a live standby exists (for the leader: may it hand over?) */
  standbyAvailable(): Promise<boolean>;
  /** the leader leaves: lease deleted, standbys told to take over now */
  handOver(): Promise<void>;
  /** the leader is done with the calls (its records are flushed): the successor may reconcile */
  released(): Promise<void>;
  /** for a new leader: wait (bounded) until the process it replaced said released */
  predecessorReleased(timeoutMs: number): Promise<void>;
  /** stop campaigning (no hand-over) */
  stop(): Promise<void>;
}

// renew if ours, create if missing (a Redis that restarted empty): 1 = we lead, 0 = someone else does
const RENEW = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`;
const DELETE_IF_MINE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export function createLeadership(opts: LeadershipOptions): Leadership {
  const { redis, subscriber, keys, processId } = opts;
  const ttlMs = opts.ttlMs ?? 3000;
  const log = opts.log.child({ module: 'leadership', processId });
  const leaseKey = keys.haLease();
  const standbys = keys.haStandbys();
  const channel = keys.haChannel();
  let role: Role = 'standby';
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let leaving = false;
  let missingSince: number | null = null;
  let predecessor: string | null = null;
  const releasedBy = new Set<string>();
  const releaseWaiters = new Set<() => void>();
  const handlers = new Set<(r: Role) => void>();

  const setRole = (next: Role) => {
    if (role === next) return;
    role = next;
    log.info({ role }, next === 'leader' ? 'this process leads: it takes the calls' : 'this process stands by');
    for (const h of handlers) {
      try {
        h(next);
      } catch (err) {
        log.error({ err }, 'leadership handler failed');
      }
    }
  };

  async function round(): Promise<void> {
    if (stopped || leaving) return;
    try {
      if (role === 'leader') {
        const ok = await redis.eval(RENEW, 1, leaseKey, processId, String(ttlMs));
        // lost the lease (someone took it while we stalled): Asterisk's ApplicationReplaced will follow if it connects
        if (ok !== 1) log.warn('the lease is held by another process');
        return;
      }
      await redis.zadd(standbys, Date.now(), processId);
      const holder = await redis.get(leaseKey);
      if (holder) {
        missingSince = null;
        return;
      }
      missingSince ??= Date.now();
      // a leader renews every ttl/3: missing for a whole TTL means it is gone (or handed over: see 'handover')
      if (Date.now() - missingSince < ttlMs) return;
      await take();
    } catch (err) {
      // Redis away: a leader keeps leading, a standby keeps waiting; nobody can take the lease meanwhile
      log.debug({ err: (err as Error).message }, 'leadership round failed (Redis)');
    }
  }

  /** `from`: the leader that handed over (it will say released); none when the lease simply expired */
  async function take(from?: string): Promise<void> {
    const ok = await redis.set(leaseKey, processId, 'PX', ttlMs, 'NX');
    if (ok !== 'OK') return;
    predecessor = from && from !== processId ? from : null;
    missingSince = null;
    await redis.zrem(standbys, processId).catch(() => undefined);
    setRole('leader');
  }

  subscriber.on('message', (ch: string, message: string) => {
    if (ch !== channel) return;
    const [kind, from] = message.split(' ');
    if (kind === 'handover' && from !== processId && role === 'standby' && !stopped && !leaving) {
      take(from).catch((err) => log.warn({ err: (err as Error).message }, 'could not take the hand-over'));
    } else if (kind === 'released' && from) {
      releasedBy.add(from);
      for (const w of releaseWaiters) w();
    }
  });

  return {
    get role() {
      return role;
    },
    processId,
    async start() {
      await subscriber.subscribe(channel);
      // a first round at once: a lone process (or the first of a deployment) leads without waiting a TTL
      const holder = await redis.get(leaseKey).catch(() => 'unknown');
      if (!holder) await take().catch(() => undefined);
      if (role === 'standby') await round();
      timer = setInterval(() => void round(), Math.max(200, Math.floor(ttlMs / 3)));
      timer.unref();
    },
    onChange(handler) {
      handlers.add(handler);
    },
    async standbyAvailable() {
      const now = Date.now();
      await redis.zremrangebyscore(standbys, '-inf', now - 10 * ttlMs).catch(() => undefined);
      const live = await redis.zrangebyscore(standbys, now - ttlMs, '+inf').catch(() => [] as string[]);
      return live.some((id) => id !== processId);
    },
    async handOver() {
      leaving = true;
      if (timer) clearInterval(timer);
      await redis.eval(DELETE_IF_MINE, 1, leaseKey, processId).catch(() => undefined);
      await redis.publish(channel, `handover ${processId}`).catch(() => undefined);
    },
    async released() {
      await redis.publish(channel, `released ${processId}`).catch(() => undefined);
    },
    async predecessorReleased(timeoutMs) {
      const from = predecessor;
      if (!from || releasedBy.has(from)) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          if (!releasedBy.has(from)) return;
          clearTimeout(t);
          releaseWaiters.delete(done);
          resolve();
        };
        const t = setTimeout(() => {
          releaseWaiters.delete(done);
          resolve();
        }, timeoutMs);
        releaseWaiters.add(done);
      });
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await redis.zrem(standbys, processId).catch(() => undefined);
      if (role === 'leader') await redis.eval(DELETE_IF_MINE, 1, leaseKey, processId).catch(() => undefined);
      await subscriber.unsubscribe(channel).catch(() => undefined);
    },
  };
}
