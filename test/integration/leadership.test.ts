/**
 * Active-standby leadership on real Redis (src/ha/leadership.ts): one leader at a time, a standby takes over
 * a dead leader's lease (not before), at once on a hand-over, and not when Redis merely lost the key.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { createLeadership, type Leadership, type Role } from '../../src/ha/leadership.js';
import { createKeys } from '../../src/redis/keys.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TTL = 900;

async function member(t: Test, prefix: string, name: string) {
  const redis = new Redis(REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
  const subscriber = new Redis(REDIS_URL, { lazyConnect: true });
  redis.on('error', () => undefined);
  subscriber.on('error', () => undefined);
  await redis.connect();
  await subscriber.connect();
  const l = createLeadership({ redis, subscriber, keys: createKeys(prefix), processId: name, ttlMs: TTL, log });
  const roles: Role[] = [];
  l.onChange((r) => roles.push(r));
  let crashed = false;
  t.teardown(async () => {
    if (!crashed) await l.stop();
    redis.disconnect();
    subscriber.disconnect();
  });
  return {
    l,
    roles,
    /** the process dies: no more renewals, its lease expires by itself */
    crash() {
      crashed = true;
      redis.disconnect();
      subscriber.disconnect();
    },
  };
}

async function until(what: string, check: () => boolean, ms: number): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timeout: ${what}`);
    await sleep(20);
  }
  return Date.now() - start;
}

const admin = new Redis(REDIS_URL);
t.teardown(() => admin.disconnect());

t.test('the first process leads, the second stands by and is seen as a standby', async (t) => {
  const prefix = `test-ha-${randomUUID().slice(0, 8)}`;
  const a = await member(t, prefix, 'a');
  await a.l.start();
  const b = await member(t, prefix, 'b');
  await b.l.start();
  t.equal(a.l.role, 'leader');
  t.equal(b.l.role, 'standby');
  t.equal(await admin.get(`${prefix}:ha:leader`), 'a', 'the lease names the leader');
  await sleep(TTL / 2);
  t.ok(await a.l.standbyAvailable(), 'the leader sees a live standby');
  t.notOk(await b.l.standbyAvailable(), 'the standby sees no other standby');
  await sleep(TTL * 2);
  t.equal(b.l.role, 'standby', 'a renewing leader is never replaced');
  t.same(b.roles, []);
});

t.test('a leader that dies is replaced after its lease ran out and a whole TTL more, not before', async (t) => {
  const prefix = `test-ha-${randomUUID().slice(0, 8)}`;
  const a = await member(t, prefix, 'a');
  await a.l.start();
  const b = await member(t, prefix, 'b');
  await b.l.start();
  const c = await member(t, prefix, 'c');
  await c.l.start();
  await sleep(TTL / 3);
  a.crash();
  const tookMs = await until('a standby leads', () => b.l.role === 'leader' || c.l.role === 'leader', TTL * 5);
  t.ok(tookMs >= TTL, `not before the lease expired and a TTL passed (${tookMs} ms)`);
  t.ok(tookMs <= TTL * 3.5, `within about two TTLs (${tookMs} ms)`);
  await sleep(TTL);
  t.equal([b.l.role, c.l.role].filter((r) => r === 'leader').length, 1, 'exactly one of the two standbys leads');
  await b.l.predecessorReleased(5000);
  t.pass('after a crash there is no predecessor to wait for');
});

t.test('a hand-over is taken at once, and the successor waits for released', async (t) => {
  const prefix = `test-ha-${randomUUID().slice(0, 8)}`;
  const a = await member(t, prefix, 'a');
  await a.l.start();
  const b = await member(t, prefix, 'b');
  await b.l.start();
  await sleep(TTL / 2);
  t.ok(await a.l.standbyAvailable());
  await a.l.handOver();
  const tookMs = await until('b leads', () => b.l.role === 'leader', 2000);
  t.ok(tookMs < TTL, `taken over at once (${tookMs} ms), not after a lease expiry`);
  let released = false;
  const waiting = b.l.predecessorReleased(5000).then(() => (released = true));
  await sleep(200);
  t.notOk(released, 'the successor waits for the predecessor');
  await a.l.released();
  await until('released heard', () => released, 2000);
  await waiting;
  t.equal(await admin.get(`${prefix}:ha:leader`), 'b');
});

t.test('Redis losing the lease key (restart, flush): the leader writes it again, the standby does not take over', async (t) => {
  const prefix = `test-ha-${randomUUID().slice(0, 8)}`;
  const a = await member(t, prefix, 'a');
  await a.l.start();
  const b = await member(t, prefix, 'b');
  await b.l.start();
  for (let i = 0; i < 5; i++) {
    await admin.del(`${prefix}:ha:leader`);
    await sleep(TTL / 2);
  }
  await sleep(TTL * 2);
  t.equal(a.l.role, 'leader');
  t.equal(b.l.role, 'standby');
  t.equal(await admin.get(`${prefix}:ha:leader`), 'a', 'the leader put its lease back');
});
