/**
 * What one round trip to each store costs the service's process in CPU, warm, with the service's own clients
 * (`npm run bench` measures whole calls; this splits that cost by store, to say what a call's round trips add up to).
 *
 *   node --import tsx bench/round-trips.ts [--n 2000] [--in-flight 20] [--only outbox]
 *
 * Each operation runs `--n` times after a warm-up of the same count:
 * - one at a time (each answer wakes the event loop alone, as at a low call rate);
 * - `--in-flight` at once (answers share turns of the loop and writes share system calls, as under load).
 * CPU is this process's (`process.cpuUsage()`: user + system, every thread): the store's own work is not in it.
 * Pin it as the bench pins the service (`taskset -c 1`) and run nothing else meanwhile.
 *
 * Needs what `npm run bench` provisions: Redis, PostgreSQL with the database `hotline_bench` migrated (the bench
 * leaves it; this writes a few thousand call rows and events into it, which the next bench drops), and, for the ARI
 * operation only, Asterisk's ARI (it creates and destroys bridges of its own, under the ARI application
 * `hotline-round-trips`).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pino from 'pino';
import { ThinAriClient } from '../src/ari/thin-client.js';
import { createDb, withQueryDeadline } from '../src/db/db.js';
import { Outbox } from '../src/db/outbox.js';
import { recordOps } from '../src/db/record-ops.js';
import { createRedis, connectRedis } from '../src/redis/client.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a whole number ≥ 1`);
  return v;
};
const N = arg('n', 2000);
const IN_FLIGHT = arg('in-flight', 20);
/** --only TEXT: only the operations whose name contains TEXT (case-insensitive), e.g. to profile one */
const only = process.argv.includes('--only') ? (process.argv[process.argv.indexOf('--only') + 1] ?? '').toLowerCase() : '';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/hotline_bench';
const log = pino({ level: 'warn' });

interface Op {
  name: string;
  /** round trips one run of `fn` makes (to divide by) */
  trips: number;
  fn: (i: number) => Promise<unknown>;
}

/** µs of this process's CPU and of wall time per run of `fn`, `n` runs with `width` in flight */
async function measure(op: Op, n: number, width: number): Promise<{ cpuUs: number; wallUs: number }> {
  let next = 0;
  const worker = async () => {
    while (next < n) await op.fn(next++);
  };
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: width }, worker));
  const wall = Number(process.hrtime.bigint() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { cpuUs: (c.user + c.system) / n, wallUs: wall / n };
}

async function main(): Promise<void> {
  const redis = createRedis(REDIS_URL);
  await connectRedis(redis, REDIS_URL);
  const db = createDb(DATABASE_URL);
  await sql`select 1`.execute(db);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'round-trips-outbox-'));
  // as the service's record outbox (OUTBOX_BATCH_MS default 10 would make one-at-a-time writes wait 10 ms each:
  // the window is there to share a round trip between calls; here each write is timed alone, so 0)
  const outbox = await Outbox.open({ db, ops: recordOps, dir, log, database: DATABASE_URL, batchMs: 0 });
  const ari = new ThinAriClient({
    url: process.env.ARI_URL ?? 'http://127.0.0.1:8088',
    user: process.env.ARI_USER ?? 'hotline',
    password: process.env.ARI_PASSWORD ?? 'hotline-dev',
    app: 'hotline-round-trips',
    requestTimeoutMs: 5000,
    startupTimeoutMs: 10_000,
    log,
  });

  const key = (i: number) => `round-trips:call:${i % 500}`;
  // a call row for the outbox's updates and events (the foreign key of call_events)
  const callIds = Array.from({ length: 50 }, () => randomUUID());
  for (const id of callIds) {
    await outbox.write(id, 'call.insert', { id, direction: 'inbound', caller: '13800000000', dialed: '12345', line: '12345', language: 'zh', channel_id: `rt-${id}`, arrived_at: new Date() });
  }
  const ops: Op[] = [
    { name: 'Redis GET', trips: 1, fn: (i) => redis.get(`round-trips:string:${i % 500}`) },
    // a call step's live state (src/calls/call.session.ts live()): two commands in one write
    { name: 'Redis HSET + EXPIRE (a call step\'s live state)', trips: 1, fn: (i) => Promise.all([redis.hset(key(i), { state: 'queued', queue: 'general' }), redis.expire(key(i), 3600)]) },
    { name: 'PostgreSQL select 1 (Kysely, pool)', trips: 1, fn: () => sql`select 1`.execute(db) },
    // the record outbox's writes run under a deadline (src/db/db.ts withQueryDeadline)
    { name: 'PostgreSQL select 1 under withQueryDeadline', trips: 1, fn: () => withQueryDeadline(db, 2000, (d) => sql`select 1`.execute(d)) },
    { name: 'PostgreSQL select by key (Kysely builder)', trips: 1, fn: (i) => db.selectFrom('calls').select(['id', 'caller', 'arrived_at']).where('id', '=', callIds[i % callIds.length]!).execute() },
    // a call step's record writes (an update and two timeline events), through the record outbox: one batch
    {
      name: 'record outbox: 1 update + 2 events of a call (one batch)',
      trips: 1,
      fn: (i) => {
        const id = callIds[i % callIds.length]!;
        const at = new Date();
        return Promise.all([
          outbox.write(id, 'call.update', { id, patch: { queue: 'general', queued_at: at } }),
          outbox.write(id, 'call.event', { callId: id, at, type: 'queued', data: { queue: 'general' } }),
          outbox.write(id, 'call.event', { callId: id, at, type: 'agent.offered', data: { agentId: 'a1' } }),
        ]);
      },
    },
    // the same three statements as one text sent straight (no outbox, no Kysely): what PostgreSQL and pg cost alone
    {
      name: 'PostgreSQL: the same 3 statements as one text (no outbox)',
      trips: 1,
      fn: (i) => {
        const id = callIds[i % callIds.length]!;
        const at = new Date().toISOString();
        const marker = () => `with m as (insert into outbox_applied (id) values ('${randomUUID()}') on conflict do nothing returning id)`;
        return sql
          .raw(
            `${marker()} update calls set queue = 'general', queued_at = '${at}' where id = '${id}' and exists (select from m);\n` +
              `${marker()} insert into call_events (call_id, at, type, data) select '${id}'::uuid, '${at}'::timestamptz, 'queued', '{"queue":"general"}'::jsonb from m;\n` +
              `${marker()} insert into call_events (call_id, at, type, data) select '${id}'::uuid, '${at}'::timestamptz, 'agent.offered', '{"agentId":"a1"}'::jsonb from m`,
          )
          .execute(db);
      },
    },
    // an ARI request (thin client, node:http keep-alive pool): a bridge made and destroyed is two
    {
      name: 'ARI REST (create + destroy a bridge)',
      trips: 2,
      fn: async () => {
        const id = `rt-${randomUUID()}`;
        await ari.bridges.create(id, 'mixing');
        await ari.bridges.destroy(id);
      },
    },
  ];

  const rows: string[] = [];
  const chosen = ops.filter((o) => o.name.toLowerCase().includes(only));
  if (chosen.length === 0) throw new Error(`--only "${only}" names no operation; they are: ${ops.map((o) => o.name).join('; ')}`);
  // Asterisk only when an ARI operation is chosen (the Redis and PostgreSQL ones need none)
  const usesAri = chosen.some((o) => o.name.startsWith('ARI'));
  if (usesAri) await ari.start();
  for (const op of chosen) {
    await measure(op, N, 1); // warm-up: the JIT has seen it, the pools are open
    await measure(op, N, IN_FLIGHT);
    const one = await measure(op, N, 1);
    const many = await measure(op, N, IN_FLIGHT);
    const per = (x: number) => (x / op.trips).toFixed(0);
    rows.push(`| ${op.name} | ${per(one.cpuUs)} | ${per(one.wallUs)} | ${per(many.cpuUs)} | ${per(many.wallUs)} |`);
    console.error(rows.at(-1));
  }
  console.log(`\nRound trips, warm, ${N} each (µs per round trip; CPU of this process only; ${IN_FLIGHT} in flight in the right-hand columns)\n`);
  console.log('| operation | CPU one at a time | wall one at a time | CPU in flight | wall in flight |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(r);

  // its own keys only (nothing of the service's prefix)
  for (let i = 0; i < 500; i++) await redis.del(key(i));
  await outbox.close(5000);
  rmSync(dir, { recursive: true, force: true });
  if (usesAri) await ari.close();
  await db.destroy();
  redis.disconnect();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
