/**
 * The jobs backbone (DESIGN §2 `jobs/`): BullMQ queues and workers, node-cron schedules.
 *
 * - Every named job has its own BullMQ queue `<prefix>:<name>` and, in processes that run workers, its own
 *   Worker with the registered concurrency. A job is retried with its backoff; throw `UnrecoverableError`
 *   (re-exported here) for a payload that can never succeed.
 * - `schedule()` runs node-cron in EVERY process, and each tick only enqueues, with a jobId made of the job's
 *   name and the scheduled fire time (`kpi-rollup-15m-20261129T091500Z`). Two processes enqueue the same id,
 *   BullMQ keeps one (finished jobs are kept for `keepSeconds`, so a late tick still deduplicates), and the
 *   fire runs exactly once in the fleet. BullMQ refuses ':' in custom ids, hence the compact time format.
 * - Handlers must be idempotent: a job whose process dies is run again (BullMQ's stalled-job check).
 * - Payloads carry ids, never citizens' phone numbers (enqueue refuses them: payload-guard.ts).
 *
 * Typed payloads: a module declares its jobs by augmenting JobPayloads, e.g.
 *   declare module '../jobs/scheduler.js' { interface JobPayloads { 'kpi-rollup-15m': { from: string } } }
 * and then register/enqueue/schedule check the data's type; undeclared names take a plain JSON object.
 */
import { Queue, UnrecoverableError, Worker, type Job, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { redact } from '../config/env.js';
import { assertNoPhoneNumbers } from './payload-guard.js';

export { UnrecoverableError };

/** job name -> payload type; modules add their jobs by declaration merging (see above) */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface JobPayloads {}

export type JobData = Record<string, unknown>;
export type PayloadOf<N extends string> = N extends keyof JobPayloads ? JobPayloads[N] : JobData;

export interface JobContext {
  /** BullMQ job id (deterministic for scheduled fires) */
  id: string;
  name: string;
  /** 1 on the first run, 2 on the first retry, ... */
  attempt: number;
  /** the scheduled fire time, for jobs enqueued by schedule(); null otherwise */
  firedAt: Date | null;
  /** a child logger carrying job and jobId */
  log: Logger;
  /** aborted when close() gives up waiting: a long handler should stop at the next safe point */
  signal: AbortSignal;
}

export type JobHandler<T> = (data: T, ctx: JobContext) => unknown | Promise<unknown>;

export interface RegisterOptions {
  /** jobs of this name run at once in one process (default 1) */
  concurrency?: number;
  /** runs in all, the first included (default 3) */
  attempts?: number;
  /** wait between runs: `fixed` or `exponential` (delay, 2·delay, 4·delay, ...) in ms (default exponential 1000) */
  backoff?: { type: 'fixed' | 'exponential'; delay: number };
}

export interface EnqueueOptions {
  /** a deterministic id deduplicates (while the earlier job is kept); no ':' and not only digits */
  jobId?: string;
  /** run no earlier than this many ms from now */
  delay?: number;
}

export interface JobSchedulerOptions {
  /** redis://... (BullMQ opens its own connections: workers need blocking ones) */
  redisUrl: string;
  /** BullMQ's key prefix, from the Redis keys: `keys.jobs()` */
  prefix: string;
  log: Logger;
  /** false in a process that only produces jobs (default true) */
  runWorkers?: boolean;
  /** finished jobs are kept this long so that a repeated id is still recognised (default 1 day) */
  keepSeconds?: number;
  /** failed jobs are kept this long for inspection (default 7 days) */
  keepFailedSeconds?: number;
  /** close() waits this long for running jobs before it stops them (default 10 s) */
  closeTimeoutMs?: number;
  /** scheduled fires missed by a stalled event loop are still enqueued when younger than this (default 10 min) */
  missedFireWindowMs?: number;
}

interface Envelope {
  /** the payload */
  p: unknown;
  /** the scheduled fire time (ISO) */
  f: string | null;
}

interface Registration {
  handler: JobHandler<any>;
  options: Required<RegisterOptions>;
  queue: Queue;
  worker: Worker | null;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** 2026-11-29T09:15:00.000Z -> 20261129T091500Z (no ':' for BullMQ; milliseconds kept only when not zero) */
export function fireId(name: string, at: Date): string {
  const iso = at.toISOString().replace(/[-:]/g, '');
  return `${name}-${iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso.replace('.', '')}`;
}

export class JobScheduler {
  private readonly log: Logger;
  private readonly jobs = new Map<string, Registration>();
  private readonly tasks: ScheduledTask[] = [];
  private started = false;
  private closing: Promise<void> | null = null;
  private readonly runWorkers: boolean;

  constructor(private readonly opts: JobSchedulerOptions) {
    this.log = opts.log.child({ module: 'jobs' });
    this.runWorkers = opts.runWorkers ?? true;
  }

  /** declare a job: its handler and retry policy; its worker starts with start() (at once when already started) */
  register<N extends string>(name: N, handler: JobHandler<PayloadOf<N>>, options: RegisterOptions = {}): void {
    if (!NAME.test(name)) throw new Error(`job name "${name}" must be lower-case letters, digits and '-'`);
    if (this.jobs.has(name)) throw new Error(`job "${name}" is registered twice`);
    if (this.closing) throw new Error('the job scheduler is closed');
    const o: Required<RegisterOptions> = {
      concurrency: options.concurrency ?? 1,
      attempts: options.attempts ?? 3,
      backoff: options.backoff ?? { type: 'exponential', delay: 1000 },
    };
    if (!Number.isInteger(o.concurrency) || o.concurrency < 1) throw new Error(`job "${name}": concurrency must be a whole number >= 1`);
    if (!Number.isInteger(o.attempts) || o.attempts < 1) throw new Error(`job "${name}": attempts must be a whole number >= 1`);
    const queue = new Queue(name, {
      connection: { url: this.opts.redisUrl },
      prefix: this.opts.prefix,
      defaultJobOptions: {
        attempts: o.attempts,
        backoff: o.backoff,
        removeOnComplete: { age: this.opts.keepSeconds ?? 86_400 },
        removeOnFail: { age: this.opts.keepFailedSeconds ?? 7 * 86_400 },
      },
    });
    queue.on('error', (err) => this.log.warn({ job: name, err: redact(err.message) }, 'job queue: Redis error'));
    const reg: Registration = { handler, options: o, queue, worker: null };
    this.jobs.set(name, reg);
    if (this.started) this.startWorker(name, reg);
  }

  /**
   * Run `name` on a cron expression (5 fields, or 6 with seconds) in `tz`. Every process ticks; each fire is
   * enqueued once for the whole fleet (jobId = name + fire time) with `dataFn(fireTime)` as its payload.
   */
  schedule<N extends string>(name: N, cronExpr: string, tz = 'Asia/Shanghai', dataFn?: (fireTime: Date) => PayloadOf<N>): void {
    if (!this.jobs.has(name)) throw new Error(`schedule "${name}": register the job first`);
    if (!cron.validate(cronExpr)) throw new Error(`schedule "${name}": invalid cron expression "${cronExpr}"`);
    const fire = (at: Date) => {
      this.log.debug({ job: name, firedAt: at.toISOString() }, 'scheduled fire');
      const data = dataFn ? dataFn(at) : ({} as PayloadOf<N>);
      this.add(name, data, { jobId: fireId(name, at) }, at).catch((err: Error) =>
        this.log.warn({ job: name, firedAt: at.toISOString(), err: redact(err.message) }, 'scheduled job: enqueue failed (another process may have enqueued it)'),
      );
    };
    const task = cron.createTask(cronExpr, (ctx) => fire(ctx.date), {
      timezone: tz,
      name: `job:${name}`,
      unref: true,
      suppressMissedWarning: true,
      logger: {
        info: (m) => this.log.debug({ job: name }, m),
        warn: (m) => this.log.warn({ job: name }, m),
        error: (m) => this.log.error({ job: name, err: m instanceof Error ? m.message : m }, 'cron error'),
        debug: (m) => this.log.debug({ job: name }, String(m)),
      },
    });
    // an event-loop stall skips fires; the ids deduplicate, so enqueue the recent ones anyway
    task.on('execution:missed', (ctx) => {
      if (Date.now() - ctx.date.getTime() <= (this.opts.missedFireWindowMs ?? 600_000)) fire(ctx.date);
    });
    this.tasks.push(task);
    if (this.started) void task.start();
  }

  /** add a job; with a jobId, a job of that id already kept is not added again. Returns the job's id. */
  async enqueue<N extends string>(name: N, data: PayloadOf<N>, options: EnqueueOptions = {}): Promise<string> {
    return this.add(name, data, options, null);
  }

  /** start the workers and the cron schedules */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const [name, reg] of this.jobs) this.startWorker(name, reg);
    for (const task of this.tasks) await task.start();
    this.log.info({ jobs: [...this.jobs.keys()], schedules: this.tasks.length, workers: this.runWorkers }, 'jobs started');
  }

  /** stop the schedules, let running jobs finish (up to timeoutMs, then stop them), close queues and workers */
  close(timeoutMs = this.opts.closeTimeoutMs ?? 10_000): Promise<void> {
    return (this.closing ??= (async () => {
      for (const task of this.tasks) await task.destroy();
      const workers = [...this.jobs.values()].flatMap((r) => (r.worker ? [r.worker] : []));
      let timer: NodeJS.Timeout | undefined;
      const finished = Promise.all(workers.map((w) => w.close().catch(() => undefined))).then(() => true);
      const wait = (ms: number) => new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
      const graceful = await Promise.race([finished, wait(timeoutMs)]);
      clearTimeout(timer);
      if (!graceful) {
        // the handlers see ctx.signal aborted; a job that does not stop is left to BullMQ's stalled-job check,
        // which runs it again in another process (handlers are idempotent)
        this.log.warn({ timeoutMs }, 'jobs: running jobs did not finish in time; cancelling them');
        for (const w of workers) w.cancelAllJobs('the service is stopping');
        await Promise.race([finished, wait(1000)]);
        clearTimeout(timer);
      }
      await Promise.all([...this.jobs.values()].map((r) => r.queue.close().catch(() => undefined)));
    })());
  }

  private async add(name: string, data: unknown, options: EnqueueOptions, firedAt: Date | null): Promise<string> {
    if (this.closing) throw new Error('the job scheduler is closed');
    const reg = this.jobs.get(name);
    if (!reg) throw new Error(`job "${name}" is not registered`);
    assertNoPhoneNumbers(data);
    const opts: JobsOptions = {};
    if (options.jobId !== undefined) {
      if (options.jobId.includes(':') || /^\d+$/.test(options.jobId) || options.jobId === '') {
        throw new Error(`job "${name}": jobId "${options.jobId}" must not contain ':' nor be only digits`);
      }
      opts.jobId = options.jobId;
    }
    if (options.delay !== undefined) opts.delay = Math.max(0, Math.round(options.delay));
    const envelope: Envelope = { p: data, f: firedAt ? firedAt.toISOString() : null };
    const job = await reg.queue.add(name, envelope, opts);
    return job.id ?? opts.jobId ?? '';
  }

  private startWorker(name: string, reg: Registration): void {
    if (!this.runWorkers || reg.worker) return;
    const worker = new Worker(
      name,
      async (job: Job, _token?: string, signal?: AbortSignal) => {
        const env = job.data as Envelope;
        const log = this.log.child({ job: name, jobId: job.id });
        const ctx: JobContext = { id: job.id ?? '', name, attempt: job.attemptsMade + 1, firedAt: env.f ? new Date(env.f) : null, log, signal: signal ?? new AbortController().signal };
        return reg.handler(env.p, ctx);
      },
      { connection: { url: this.opts.redisUrl }, prefix: this.opts.prefix, concurrency: reg.options.concurrency },
    );
    worker.on('error', (err) => this.log.warn({ job: name, err: redact(err.message) }, 'job worker: error'));
    worker.on('failed', (job, err) => {
      if (!job) return;
      const final = job.attemptsMade >= (job.opts.attempts ?? 1) || err instanceof UnrecoverableError;
      this.log[final ? 'error' : 'warn']({ job: name, jobId: job.id, attempt: job.attemptsMade, err: err.message }, final ? 'job failed for good' : 'job failed; it will be retried');
    });
    reg.worker = worker;
  }
}
