/**
 * The jobs backbone on a real Redis: two schedulers on one key prefix stand for two processes of the service.
 * Each scheduled fire runs exactly once across them, failing handlers are retried with their backoff, and
 * close() lets the running job finish.
 */
import { pino } from 'pino';
import t from 'tap';
import { fireId, JobScheduler, UnrecoverableError } from '../../src/jobs/scheduler.js';
import { assertNoPhoneNumbers } from '../../src/jobs/payload-guard.js';
import { testInfra } from '../helpers/app.js';

const infra = await testInfra(t, 'jobs');
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** what each "process" logged at debug level (its scheduled fires) */
const logged: Array<{ process: string; msg: string; firedAt?: string }> = [];

/** a "process": its own scheduler (own BullMQ connections) on the shared prefix */
function process_(name: string, opts: { closeTimeoutMs?: number } = {}): JobScheduler {
  const log = pino({ level: 'debug' }, { write: (line: string) => void logged.push({ process: name, ...JSON.parse(line) }) });
  const s = new JobScheduler({ redisUrl, prefix: infra.keys.jobs(), log, ...opts });
  t.teardown(() => s.close(500));
  return s;
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

t.test('fire ids are deterministic, compact and free of ":"', async (t) => {
  t.equal(fireId('kpi-rollup-15m', new Date('2026-11-29T09:15:00Z')), 'kpi-rollup-15m-20261129T091500Z');
  t.equal(fireId('x', new Date('2026-11-29T09:15:00.250Z')), 'x-20261129T091500250Z');
});

t.test('given two processes with a per-second schedule, then each fire time runs exactly once', async (t) => {
  const runs: Array<{ proc: string; firedAt: string; id: string; tick: number }> = [];
  const a = process_('a');
  const b = process_('b');
  for (const [proc, s] of [['a', a], ['b', b]] as const) {
    s.register(
      'tick',
      async (data, ctx) => {
        runs.push({ proc, firedAt: ctx.firedAt!.toISOString(), id: ctx.id, tick: data.tick as number });
      },
      { concurrency: 2 },
    );
    s.schedule('tick', '* * * * * *', 'Asia/Shanghai', (at) => ({ tick: at.getTime() }));
  }
  await Promise.all([a.start(), b.start()]);
  await sleep(4200);
  await Promise.all([a.close(), b.close()]);
  const fires = runs.map((r) => r.firedAt);
  t.ok(fires.length >= 3, `${fires.length} fires in ~4 s`);
  t.equal(new Set(fires).size, fires.length, `no fire ran twice: ${fires.join(', ')}`);
  for (const r of runs) {
    t.equal(r.id, fireId('tick', new Date(r.firedAt)), 'the id names the fire time');
    t.equal(r.tick, Date.parse(r.firedAt), 'dataFn got the fire time');
    t.equal(new Date(r.firedAt).getMilliseconds(), 0, 'fire times are whole seconds');
  }
  // both processes ticked for every fire that ran (whichever enqueued first, the other's add was a no-op);
  // the last one is left out: close() may have stopped one process's cron between the two ticks
  for (const f of fires.slice(0, -1)) {
    const tickers = new Set(logged.filter((l) => l.msg === 'scheduled fire' && l.firedAt === f).map((l) => l.process));
    t.same([...tickers].sort(), ['a', 'b'], `both processes fired ${f}`);
  }
});

t.test('given the same jobId twice, then the job runs once', async (t) => {
  const seen: string[] = [];
  const s = process_('dedupe');
  s.register('dedupe', (data) => void seen.push(data.ref as string));
  await s.start();
  const id1 = await s.enqueue('dedupe', { ref: 'r1' }, { jobId: 'dedupe-r1' });
  const id2 = await s.enqueue('dedupe', { ref: 'r1-again' }, { jobId: 'dedupe-r1' });
  t.equal(id1, 'dedupe-r1');
  t.equal(id2, 'dedupe-r1');
  await until(() => seen.length >= 1, 5000, 'the job');
  await sleep(300);
  t.same(seen, ['r1']);
  await t.rejects(s.enqueue('dedupe', { ref: 'x' }, { jobId: 'a:b' }), /must not contain ':'/);
  await t.rejects(s.enqueue('nope', {}), /not registered/);
});

t.test('given a failing handler, then it is retried with its backoff until it succeeds', async (t) => {
  const attempts: Array<{ at: number; attempt: number }> = [];
  const s = process_('retry');
  s.register(
    'flaky',
    async (_data, ctx) => {
      attempts.push({ at: Date.now(), attempt: ctx.attempt });
      if (ctx.attempt < 3) throw new Error(`boom ${ctx.attempt}`);
    },
    { attempts: 4, backoff: { type: 'exponential', delay: 300 } },
  );
  await s.start();
  await s.enqueue('flaky', { ref: 'f1' });
  await until(() => attempts.length >= 3, 8000, 'three attempts');
  await sleep(800);
  t.same(
    attempts.map((a) => a.attempt),
    [1, 2, 3],
    'two failures, then success; no fourth run',
  );
  const gap1 = attempts[1]!.at - attempts[0]!.at;
  const gap2 = attempts[2]!.at - attempts[1]!.at;
  t.ok(gap1 >= 280, `first retry after the backoff delay (${gap1} ms)`);
  t.ok(gap2 >= 560, `second retry after twice the delay (${gap2} ms)`);

  // an unrecoverable failure is not retried
  let runsBad = 0;
  s.register('bad-input', () => {
    runsBad++;
    throw new UnrecoverableError('no such report');
  }, { attempts: 5, backoff: { type: 'fixed', delay: 50 } });
  await s.enqueue('bad-input', { ref: 'b' });
  await until(() => runsBad >= 1, 5000, 'the bad job');
  await sleep(400);
  t.equal(runsBad, 1, 'UnrecoverableError stops the retries');
});

t.test('given a running job, when close() is called, then it waits for the job to finish', async (t) => {
  let started = false;
  let finished = false;
  const s = process_('close');
  s.register('slow', async () => {
    started = true;
    await sleep(800);
    finished = true;
  });
  await s.start();
  await s.enqueue('slow', { ref: 's' });
  await until(() => started, 5000, 'the slow job to start');
  const t0 = Date.now();
  await s.close(5000);
  t.ok(finished, 'the job finished before close() resolved');
  t.ok(Date.now() - t0 >= 500, 'close() waited');
  await t.rejects(s.enqueue('slow', {}), /closed/, 'nothing is added after close');
});

t.test('given a job longer than the close timeout, then close() gives up waiting at the timeout', async (t) => {
  let started = false;
  let aborted = false;
  const s = process_('close-timeout');
  s.register('stuck', async (_data, ctx) => {
    started = true;
    ctx.signal.addEventListener('abort', () => void (aborted = true));
    await sleep(3000);
  });
  await s.start();
  await s.enqueue('stuck', { ref: 'x' });
  await until(() => started, 5000, 'the stuck job to start');
  const t0 = Date.now();
  await s.close(300);
  const took = Date.now() - t0;
  t.ok(took < 2000, `close() returned after ${took} ms`);
  t.ok(aborted, 'the handler was told to stop');
});

t.test('a delayed job waits for its delay', async (t) => {
  let ranAt = 0;
  const s = process_('delay');
  s.register('later', () => void (ranAt = Date.now()));
  await s.start();
  const t0 = Date.now();
  await s.enqueue('later', {}, { delay: 600 });
  await until(() => ranAt > 0, 5000, 'the delayed job');
  t.ok(ranAt - t0 >= 550, `ran after ${ranAt - t0} ms`);
});

t.test('payloads never carry phone numbers', async (t) => {
  const s = process_('guard');
  s.register('guarded', () => undefined);
  await t.rejects(s.enqueue('guarded', { ticketId: 'T-1', number: '13800138000' }), { name: 'PhoneInPayload' });
  await t.rejects(s.enqueue('guarded', { list: ['+86 138 0013 8000'] }), { name: 'PhoneInPayload' });
  t.throws(() => assertNoPhoneNumbers({ x: { caller: '089866001234' } }), /data\.x\.caller/);
  t.throws(() => assertNoPhoneNumbers({ y: '0898-6600-1234' }), { name: 'PhoneInPayload' });
  t.doesNotThrow(() => assertNoPhoneNumbers({ callId: '0b6c7c1e-0b7e-4a57-9d3a-2b7f1f4f6a10', from: '2026-11-29T00:00:00Z', agentId: '7001', count: 12 }));
  // registration is checked
  t.throws(() => s.register('guarded', () => undefined), /twice/);
  t.throws(() => s.register('Bad:Name', () => undefined), /lower-case/);
  t.throws(() => s.schedule('unknown', '* * * * *'), /register the job first/);
  t.throws(() => s.schedule('guarded', 'not a cron'), /invalid cron/);
});
