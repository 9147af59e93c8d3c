/**
 * npm run bench [-- --quick]: variant A (Asterisk's own dialplan: Background/WaitExten menu + Queue())
 * against variant B (this service through ARI) on the same local Asterisk, with the same SIPp callers
 * and the same SIPp agent phones. Method and caveats: docs/benchmarks.md.
 *
 * Order: quick A B; full A B A B. Before each run Asterisk is restarted and must have zero channels;
 * after each run the channels must drain to zero. Each run: warm-up, P2 plateaus of concurrent calls, the P1
 * call-rate ramp (stops after a step with > 1 % failed calls or retransmissions > 0.5 % of its calls), P1's hold
 * step (90 % of the highest passing rate, sustained: the cps figure), and (full only) the P3 soak at 70 % of the
 * P2 ceiling. B's steps also count PostgreSQL transactions and Redis commands per call (openProbe).
 * Results: bench/results/<timestamp>/summary.{md,json} and raw/ (every SIPp artefacts directory: stat.csv,
 * messages.log, errors.log, command.txt, ...).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { phoneObjects } from '../src/agents/agents.provisioning.js';
import { runSipp, startSipp, type SippResult } from '../test/sipp/sipp.js';
import { createReadyAgent, writeQueuesFile } from '../test/helpers/acd.js';
import { agentAnswered, agentInvites, callerCalls, percentile, round, type CallerCall } from './siplog.js';
import { summariseProfiles } from './cpuprofile.js';
import { perfAvailable, recordPerf, keepPerfMap, summarisePerf, type PerfRecording, type PerfSummary } from './perf.js';
import { liveHeapKb } from './inspector.js';
import { installVariantA, removeVariantA, A_NUMBER } from './variant-a.js';

const run = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.argv.includes('--quick');
/** the value after `--name` on the command line (undefined when the option is not given) */
const optionValue = (name: string): string | undefined => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
/** --profile: the service runs with node --cpu-prof (slower: its figures are then not comparable) and the summary says where its CPU went */
const profile = process.argv.includes('--profile');
/**
 * --perf: B's service recorded by Linux perf from P2 on (its own CPU only, kernel and V8's helper threads
 * included; bench/perf.ts) and the summary says where its CPU went by kind. perf costs a little CPU itself.
 */
const perfOpt = process.argv.includes('--perf');
/** BENCH_NODE_FLAGS: extra node flags for B's service (diagnostics, e.g. "--trace-opt --trace-deopt": the output lands in its service.log) */
const nodeFlags = process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean) : [];
/**
 * --from-source: B's service runs from src/ through tsx (as `npm run dev`). Default: built into dist/ by the bench
 * (`tsc -p tsconfig.json`, as `npm run up` does) and run as production runs it, `node --enable-source-maps dist/src/main.js`.
 */
const fromSource = process.argv.includes('--from-source');
/**
 * --service-cpu N: B's service on CPU N instead of Asterisk's (diagnostic, with --profile: the V8 profile samples
 * wall time, so on a shared CPU it counts the moments Asterisk preempts the service inside a socket write as the
 * service's; on CPU 0 (with SIPp) it shows the service's own work). Its figures are then not comparable.
 */
const serviceCpuArg = optionValue('--service-cpu') ?? '1';
if (!/^\d+$/.test(serviceCpuArg)) throw new Error(`--service-cpu must be a CPU number, got "${serviceCpuArg}"`);
/**
 * --ari-filter: an experiment from outside the service. After it connects, the bench sets ARI's
 * per-application event filter (PUT /applications/hotline/eventFilter) to the six event types the
 * adapter listens to (src/ari/client.ts EVENT_TYPES), so Asterisk stops sending the rest.
 */
const ariFilter = process.argv.includes('--ari-filter');
/**
 * --ari-client thin|ari-client: the ARI adapter B's service runs on (ARI_CLIENT in its environment; default: the
 * environment's ARI_CLIENT, else the service's default). `thin` sets the event filter itself.
 */
const ariClientArg = optionValue('--ari-client') ?? process.env.ARI_CLIENT;
/** --ari-rest http|websocket: where B's thin client sends REST requests (ARI_REST in its environment) */
const ariRestArg = optionValue('--ari-rest') ?? process.env.ARI_REST;
if (ariClientArg !== undefined && ariClientArg !== 'thin' && ariClientArg !== 'ari-client') throw new Error(`--ari-client must be thin or ari-client, got "${ariClientArg}"`);
if (ariRestArg !== undefined && ariRestArg !== 'http' && ariRestArg !== 'websocket') throw new Error(`--ari-rest must be http or websocket, got "${ariRestArg}"`);
const FILTER_TYPES = ['StasisStart', 'StasisEnd', 'ChannelDestroyed', 'ChannelDtmfReceived', 'PlaybackFinished', 'ApplicationReplaced'];

const CACHE = process.env.HOTLINE_CACHE ?? '/var/cache/hotline';
const ARI_URL = 'http://127.0.0.1:8088';
const ARI_AUTH = `Basic ${Buffer.from(`${process.env.ARI_USER ?? 'hotline'}:${process.env.ARI_PASSWORD ?? 'hotline-dev'}`).toString('base64')}`;
const SVC_PORT = Number(process.env.BENCH_SERVICE_PORT ?? 3199);
/** B's inspector (loopback only): the live heap after a full GC (serviceHeapKb) */
const INSPECT_PORT = Number(process.env.BENCH_INSPECT_PORT ?? 9329);
const SVC_URL = `http://127.0.0.1:${SVC_PORT}`;
const AGENT_PORT = 5290;
const REDIS_PREFIX = 'hotline-bench';
const DB_NAME = 'hotline_bench';
/** the service's database (B's DATABASE_URL); the bench reads pg_stat_database through the same settings */
const DATABASE_URL = `postgres://postgres@127.0.0.1:5432/${DB_NAME}`;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const B_NUMBER = '12345';
const WELCOME_MS = 1000;
const TALK_MS = 3000; // P1: caller hangs up 3 s after its digit: ~4 s calls, ~2.4 s of them with the agent
const RING_MS = 1000; // agent phones answer after 1 s (the issue)

interface Profile {
  /** P1 call rates (cps), each for stepSeconds, until a step fails (stepFailure) */
  ramp: number[];
  stepSeconds: number;
  /** P1's sustained step after the ramp: 90 % of the highest passing rate, for this long */
  holdStepSeconds: number;
  /**
   * pause before the first ramp step and before the hold step, so PostgreSQL's statistics of the previous phase are
   * in (a backend flushes its counters at most once a second and the last ones up to 10 s after it goes idle,
   * PostgreSQL 15) and a failed step's overload is over. 0 in quick (its 5-minute budget): there the first step's
   * pgXactsPerCall can carry up to ~1 s of the P2 plateau's end (a few %)
   */
  settleSeconds: number;
  plateaus: number[];
  /** P2: how long each plateau is held */
  holdSeconds: number;
  soakSeconds: number;
  agents: number;
  order: Array<'A' | 'B'>;
}
// agents: one short call keeps an agent ~3.5 s (1 s ringing + ~2.4 s talk): 50 cps needs ~175 of them; all of them
// are answered by the one SIPp UAS on AGENT_PORT (-l 5000)
const PROFILE: Profile = quick
  ? { ramp: [2, 4, 8, 12], stepSeconds: 15, holdStepSeconds: 10, settleSeconds: 0, plateaus: [40], holdSeconds: 15, soakSeconds: 0, agents: 60, order: ['A', 'B'] }
  : {
      // A costs ~17 ms of Asterisk CPU per call on its one core: the ramp goes far enough for A to saturate too
      ramp: [2, 4, 8, 12, 16, 20, 25, 30, 40, 50],
      stepSeconds: 30,
      holdStepSeconds: 60,
      settleSeconds: 11,
      plateaus: [50, 100, 150],
      holdSeconds: 30,
      soakSeconds: 300,
      agents: 230,
      order: ['A', 'B', 'A', 'B'],
    };
/** P1 stop criteria (the issue): a step fails with more than 1 % of its calls not successful ... */
const MAX_FAILED_PCT = 1;
/**
 * ... or retransmissions above 0.5 % of its CALLS (SIPp's Retransmissions(C) / calls * 100). The denominator is
 * the step's calls, not its SIP messages (~10 per call): stricter than "0.5 % of messages retransmitted"
 */
const MAX_RETRANS_PCT = 0.5;
/** P1's hold step runs at this share of the highest passing ramp rate; P3 soaks at SOAK_SHARE of the P2 ceiling */
const HOLD_SHARE = 0.9;
const SOAK_SHARE = 0.7;
const SOAK_MAX_CPS = 5;

const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
const OUT = path.join(REPO, 'bench', 'results', stamp);
const RAW = path.join(OUT, 'raw');
let runCounter = 10; // caller numbers are 139 + two digits of this + SIPp's call number: unique per SIPp run

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (msg: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

// ---------------------------------------------------------------- processes, CPU, memory

const CLK_TCK = 100;
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK; // utime + stime (fields 14, 15)
}
async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}
async function asteriskPid(): Promise<number> {
  const pid = Number((await readFile(path.join(CACHE, 'asterisk.pid'), 'utf8')).trim());
  if (!pid || !existsSync(`/proc/${pid}`)) throw new Error('Asterisk pid not found (scripts/asterisk.sh status)');
  return pid;
}
let taskset: string | null = null;
async function pin(pid: number, cpu: number): Promise<void> {
  if (taskset) await run(taskset, ['-a', '-pc', String(cpu), String(pid)]);
}

async function asteriskSh(...args: string[]): Promise<string> {
  const { stdout } = await run('bash', [path.join(REPO, 'scripts/asterisk.sh'), ...args], { maxBuffer: 10 * 1024 * 1024 });
  return stdout;
}

async function ari(method: string, p: string, body?: unknown): Promise<any> {
  const res = await fetch(`${ARI_URL}/ari${p}`, {
    method,
    headers: { authorization: ARI_AUTH, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`ARI ${method} ${p}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
const channelCount = async () => ((await ari('GET', '/channels')) as unknown[]).length;

async function waitNoChannels(ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const n = await channelCount();
    if (n === 0 || Date.now() > deadline) return n;
    await sleep(250);
  }
}

// ---------------------------------------------------------------- the service (variant B)

interface Svc {
  child: ChildProcess;
  startedAt: number;
  pid: number;
  token: string;
  stop(): Promise<void>;
}

/** how B's service is started: production's entry (dist/, built at the bench's start) unless --from-source */
function serviceEntry(): string[] {
  return fromSource ? ['--import', 'tsx', path.join(REPO, 'src/main.ts')] : ['--enable-source-maps', path.join(REPO, 'dist/src/main.js')];
}

async function startService(queuesFile: string, logFile: string, profileDir: string): Promise<Svc> {
  const env = {
    ...process.env,
    NODE_ENV: 'test',
    PORT: String(SVC_PORT),
    HOST: '127.0.0.1',
    DATABASE_URL,
    REDIS_PREFIX,
    QUEUES_FILE: queuesFile,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    REPEAT_CALLER_DAYS: '0',
    ...(ariClientArg ? { ARI_CLIENT: ariClientArg } : {}),
    ...(ariRestArg ? { ARI_REST: ariRestArg } : {}),
  };
  // --inspect on loopback: the bench reads the live heap after a full GC through it (serviceHeapKb)
  const node = [process.execPath, ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), ...(perfOpt ? ['--perf-basic-prof'] : []), ...nodeFlags, `--inspect=127.0.0.1:${INSPECT_PORT}`, ...serviceEntry()];
  const [cmd, ...args] = taskset ? [taskset, '-c', serviceCpuArg, ...node] : node;
  const startedAt = Date.now();
  const child = spawn(cmd!, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(logFile);
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`the service exited during start-up (log: ${logFile})`);
    const ok = await fetch(`${SVC_URL}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`the service is not ready after 60 s (log: ${logFile})`);
    await sleep(250);
  }
  const login = await fetch(`${SVC_URL}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: 'admin' }),
  }).then((r) => r.json() as Promise<{ token: string }>);
  return {
    child,
    startedAt,
    pid: child.pid!,
    token: login.token,
    stop: async () => {
      if (exited) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, sleep(15_000)]);
      if (!exited) child.kill('SIGKILL');
    },
  };
}

/**
 * The service's live V8 heap in KB: heap used after a full GC, through its inspector (bench/inspector.ts). Should
 * the inspector not answer, the trough of 5 samples of /metrics' heap used, 1 s apart (the GC sawtooth's low
 * points; noisy: a trough may follow a minor GC only), and the log says so.
 */
async function serviceHeapKb(): Promise<number> {
  try {
    return Math.round(await liveHeapKb(INSPECT_PORT));
  } catch (err) {
    say(`live heap not read through the inspector (${(err as Error).message}); using the trough of 5 samples`);
    const xs: number[] = [];
    for (let i = 0; i < 5; i++, await sleep(1000)) xs.push(((await metricsOf()).nodejs_heap_used_bytes ?? 0) / 1024);
    return Math.round(Math.min(...xs));
  }
}

async function metricsOf(): Promise<Record<string, number>> {
  const text = await fetch(`${SVC_URL}/metrics`).then((r) => r.text());
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

const ariRequests = (m: Record<string, number>) =>
  Object.entries(m).reduce((t, [k, v]) => (k.startsWith('hotline_ari_request_duration_seconds_count') ? t + v : t), 0);

/** ARI requests per call by operation (the metric's op label), busiest first */
function ariRequestsByOp(m0: Record<string, number>, m1: Record<string, number>, n: number): Record<string, number> {
  const out: Array<[string, number]> = [];
  for (const [k, v] of Object.entries(m1)) {
    const op = /^hotline_ari_request_duration_seconds_count\{op="([^"]*)"\}$/.exec(k)?.[1];
    if (op === undefined) continue;
    const per = round((v - (m0[k] ?? 0)) / n, 2) ?? 0;
    if (per > 0) out.push([op, per]);
  }
  return Object.fromEntries(out.sort((a, b) => b[1] - a[1]));
}

async function cleanRedis(): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${REDIS_PREFIX}:*`, 'COUNT', 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  redis.disconnect();
}

/**
 * B's round trips to its stores, read before and after each P1 step and divided by the step's calls (the same n as
 * cpuMsPerCall). A uses neither store: its figures are null.
 * - PostgreSQL: xact_commit + xact_rollback of the bench database in pg_stat_database (through DATABASE_URL, the
 *   service's own settings). A backend flushes these counters at most once a second and its last ones up to 10 s
 *   after it goes idle (PostgreSQL 15's cumulative statistics), so a step's last second can be counted in the next
 *   step (the sum over the steps is exact; PROFILE.settleSeconds). Includes the service's periodic work during the
 *   step (sweeps, job schedulers), spread over the step's calls like its idle CPU, and the bench's own reading
 *   (1 transaction per reading).
 * - Redis: total_commands_processed of INFO stats. Redis serves nothing but the bench and the service during the
 *   run, but the bench itself issues a few commands (1 INFO per reading; cleanRedis before the service starts) and
 *   the service's periodic commands (agent sweeper, BullMQ workers) count too: noise, spread over the step's calls.
 */
interface RoundTripCounts {
  pgXacts: number | null;
  redisCommands: number | null;
}
interface Probe {
  read(): Promise<RoundTripCounts>;
  close(): Promise<void>;
}
async function openProbe(): Promise<Probe> {
  const db = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 5000 });
  db.on('error', (err) => say(`WARNING: round-trip probe, PostgreSQL: ${err.message}`));
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 2 });
  redis.on('error', () => undefined); // a failed reading is null; ioredis reconnects by itself
  const dbOk = await db.connect().then(
    () => true,
    (err: Error) => (say(`WARNING: no PostgreSQL for the round-trip counts (pgXactsPerCall will be null): ${err.message}`), false),
  );
  const redisOk = await redis.connect().then(
    () => true,
    (err: Error) => (say(`WARNING: no Redis for the round-trip counts (redisCommandsPerCall will be null): ${err.message}`), false),
  );
  return {
    read: async () => ({
      pgXacts: dbOk
        ? await db
            .query<{ n: string | null }>('select xact_commit + xact_rollback as n from pg_stat_database where datname = $1', [DB_NAME])
            .then((r) => (r.rows[0]?.n == null ? null : Number(r.rows[0].n)), () => null)
        : null,
      redisCommands: redisOk
        ? await redis.info('stats').then((text) => {
            const m = /^total_commands_processed:(\d+)/m.exec(text);
            return m ? Number(m[1]) : null;
          }, () => null)
        : null,
    }),
    close: async () => {
      redis.disconnect();
      if (dbOk) await db.end().catch(() => undefined);
    },
  };
}
const perCall = (before: number | null | undefined, after: number | null | undefined, n: number, digits = 1) =>
  before === null || before === undefined || after === null || after === undefined ? null : round((after - before) / n, digits);

/** the idle window: long enough for every periodic task of the service (live view 2 s, fallback 5 s, sweeper 10 s) */
const IDLE_SECONDS = 10;
async function idleRates(ctx: Ctx): Promise<NonNullable<RunResult['idle']>> {
  const before = { ast: await cpuMs(ctx.astPid), svc: ctx.svc ? await cpuMs(ctx.svc.pid) : null, trips: await ctx.probe?.read() };
  const t0 = Date.now();
  await sleep(IDLE_SECONDS * 1000);
  const after = { ast: await cpuMs(ctx.astPid), svc: ctx.svc ? await cpuMs(ctx.svc.pid) : null, trips: await ctx.probe?.read() };
  const s = (Date.now() - t0) / 1000;
  // per second: perCall's delta over the window's seconds instead of a step's calls
  return {
    asteriskCpuMsPerS: perCall(before.ast, after.ast, s) ?? 0,
    serviceCpuMsPerS: perCall(before.svc, after.svc, s),
    pgXactsPerS: perCall(before.trips?.pgXacts, after.trips?.pgXacts, s),
    redisCommandsPerS: perCall(before.trips?.redisCommands, after.trips?.redisCommands, s),
  };
}
const idleLine = (i: RunResult['idle']) =>
  i
    ? `CPU ms/s Asterisk ${i.asteriskCpuMsPerS} service ${i.serviceCpuMsPerS ?? 'n/a'}, PostgreSQL xacts/s ${i.pgXactsPerS ?? 'n/a'}, Redis commands/s ${i.redisCommandsPerS ?? 'n/a'}`
    : 'n/a';

// ---------------------------------------------------------------- one variant run

interface StepResult {
  rate: number;
  calls: number;
  succeeded: number;
  failed: number;
  /** calls not both completed by the caller's SIPp and answered by an agent (answeredByAgent) */
  failedPct: number;
  /** the caller's SIPp: scripts that ran to the end (a caller hangs up on schedule, answered or not) */
  sippSucceeded: number;
  /** calls an agent phone answered (its log: a 200 to an INVITE from the caller's number) */
  answeredByAgent: number;
  retransmissions: number;
  /** retransmissions / calls * 100 (the stop criterion's figure: per call, not per SIP message) */
  retransmissionsPct: number;
  setupMs: { p50: number | null; p99: number | null };
  dtmfToAgentMs: { p50: number | null; p99: number | null; joined: number };
  cpuMsPerCall: { asterisk: number | null; service: number | null };
  wsBytesPerCall: number | null;
  /** B: ARI requests per call by operation (from /metrics), busiest first */
  ariRequestsByOp?: Record<string, number> | null;
  wsMessagesPerCall: number | null;
  ariRequestsPerCall: number | null;
  eventLoopDelayP99Ms: number | null;
  /** B: PostgreSQL transactions per call (pg_stat_database xact_commit + xact_rollback; see openProbe); A: null */
  pgXactsPerCall: number | null;
  /** B: Redis commands per call (INFO stats total_commands_processed; see openProbe); A: null */
  redisCommandsPerCall: number | null;
  artefacts: string;
}
/** why the P1 ramp stopped */
type RampStop = 'failed' | 'retransmissions' | 'top step reached';
interface SoakResult {
  /** the P2 ceiling: the highest plateau with no failed call (else the lowest plateau) */
  ceilingConcurrent: number;
  /** round(SOAK_SHARE * ceilingConcurrent) */
  targetConcurrent: number;
  rate: number;
  /** the callers' talk_ms: rate * (WELCOME_MS + talkMs) ≈ targetConcurrent */
  talkMs: number;
  seconds: number;
  calls: number;
  failed: number;
  failedPct: number;
  retransmissions: number;
  /** ARI channel count sampled every 5 s during the soak (connected calls: 2 channels in A, 3 in B with its snoop) */
  channels: { max: number; median: number | null };
  /** B: the service's live V8 heap (after a full GC) before and after the soak */
  heapKbStart: number | null;
  heapKbEnd: number | null;
  heapGrowthKb: number | null;
  rssKbStart: { asterisk: number; service: number | null };
  rssKbEnd: { asterisk: number; service: number | null };
}
interface PlateauResult {
  concurrent: number;
  channelsSeen: number;
  rssKb: { asterisk: number; service: number | null };
  heapKb: number | null;
  failed: number;
}
interface RunResult {
  variant: 'A' | 'B';
  index: number;
  idleRssKb: { asterisk: number; service: number | null };
  idleHeapKb: number | null;
  /**
   * With the agents signed in and no call, per second over IDLE_SECONDS: the CPU of Asterisk and of the service
   * (its periodic work: live view, dialer, sweeps, schedulers), and the service's PostgreSQL transactions and
   * Redis commands. Spread over a step's calls it is the part of the per-call figures that is not per call.
   */
  idle: { asteriskCpuMsPerS: number; serviceCpuMsPerS: number | null; pgXactsPerS: number | null; redisCommandsPerS: number | null } | null;
  plateaus: PlateauResult[];
  ramp: StepResult[];
  rampStop: RampStop;
  /** P1's hold step: HOLD_SHARE of the highest passing ramp rate for holdStepSeconds (null if the run broke before) */
  hold: StepResult | null;
  soak?: SoakResult;
  /** ms from the start of the digit (ACK + welcome pause) to the moment the service saw it (B, step 1), used to place the digit */
  dtmfOffsetMs: number | null;
  /** B: ms from the service's spawn to the start of the measured profiles (the CPU profile summary skips start-up) */
  profileSkipMs: number | null;
  /** B with --perf: where the service's CPU went from P2 on (bench/perf.ts) */
  perf?: PerfSummary;
  leftoverChannels: number;
  /** raw joins kept for the DTMF figure: per step, [callerAck + welcome, agent INVITE] */
  joins: Array<Array<{ number: string; digitAt: number; agentAt: number }>>;
  /** the same for the hold step */
  holdJoins: Array<{ number: string; digitAt: number; agentAt: number }>;
}

interface Ctx {
  variant: 'A' | 'B';
  index: number;
  astPid: number;
  svc: Svc | null;
  agentLog: string;
  /** where the next read of the agent phone's log starts, and every calling number it answered so far */
  agentRead: { next: number; answered: Set<string> };
  /** B: PostgreSQL and Redis counters (openProbe); A: null */
  probe: Probe | null;
}

/**
 * How many of the calls of a SIPp run (numbers starting with `prefix`) an agent answered: read from the agent phone's
 * log after the run. A caller's own SIPp counts a call as successful when its script ran to the end, and the script
 * hangs up on schedule whether an agent answered or not: a call nobody answered is a failed call here.
 */
async function answeredOf(ctx: Ctx, prefix: string): Promise<number> {
  const r = await agentAnswered(ctx.agentLog, ctx.agentRead.next);
  ctx.agentRead.next = r.next;
  for (const n of r.numbers) ctx.agentRead.answered.add(n);
  let k = 0;
  for (const n of ctx.agentRead.answered) if (n.startsWith(prefix)) k++;
  return k;
}

/** a P1 step fails (and the ramp stops) on more than 1 % failed calls or retransmissions above 0.5 % of its calls */
function stepFailure(s: StepResult): Exclude<RampStop, 'top step reached'> | null {
  if (s.failedPct > MAX_FAILED_PCT) return 'failed';
  if (s.retransmissionsPct > MAX_RETRANS_PCT) return 'retransmissions';
  return null;
}
const passes = (s: StepResult) => stepFailure(s) === null;
/** the highest ramp rate that passed both criteria; 0 when none did */
const topPassedRate = (r: RunResult) => Math.max(0, ...r.ramp.filter(passes).map((s) => s.rate));

const serviceCpu = async (ctx: Ctx) => (ctx.svc ? cpuMs(ctx.svc.pid) : 0);

async function callers(ctx: Ctx, label: string, calls: number, rate: number, talkMs: number): Promise<{ res: SippResult; prefix: string }> {
  // two digits: 139 + 100 + call number could repeat 139 + 10 + 0 + call number
  if (runCounter > 99) throw new Error('more than 90 SIPp caller runs: the calling numbers would no longer be unique');
  const prefix = `139${runCounter++}`;
  const res = await runSipp({
    scenario: 'caller-dtmf',
    remote: '127.0.0.1:5060',
    service: ctx.variant === 'A' ? A_NUMBER : B_NUMBER,
    callerNumber: `${prefix}[call_number]`,
    calls,
    rate,
    limit: calls,
    vars: { digit: '1', welcome_ms: String(WELCOME_MS), talk_ms: String(talkMs) },
    timeoutSeconds: Math.ceil(calls / rate + talkMs / 1000 + 60),
    label: `${ctx.variant}${ctx.index}-${label}`,
  });
  await cp(res.artefactsDir, path.join(RAW, `${ctx.variant}${ctx.index}`, label), { recursive: true });
  return { res, prefix };
}

async function runVariant(variant: 'A' | 'B', index: number): Promise<RunResult> {
  say(`---- variant ${variant} run ${index}: restarting Asterisk`);
  await asteriskSh('restart');
  const astPid = await asteriskPid();
  await pin(astPid, 1);
  const before = await channelCount();
  if (before !== 0) throw new Error(`Asterisk has ${before} channels right after its restart`);

  const agents = Array.from({ length: PROFILE.agents }, (_, i) => ({ id: String(3001 + i), port: AGENT_PORT, skills: [{ skill: 'general', level: 5 }] }));
  let svc: Svc | null = null;
  const runDir = path.join(RAW, `${variant}${index}`);
  await mkdir(runDir, { recursive: true });
  if (variant === 'A') {
    await installVariantA(agents.map((a) => a.id), (...a) => asteriskSh(...a));
    // the same PJSIP objects the service pushes for a desk phone (src/agents/agents.provisioning.ts)
    for (const a of agents) {
      const o = phoneObjects({ employee_no: a.id, phone_kind: 'uri', phone_uri: `sip:agent${a.id}@127.0.0.1:${AGENT_PORT}`, sip_password: null });
      for (const obj of [o.aor, o.endpoint]) {
        await ari('PUT', `/asterisk/config/dynamic/res_pjsip/${obj.type}/${obj.id}`, { fields: Object.entries(obj.fields).map(([attribute, value]) => ({ attribute, value })) });
      }
    }
  } else {
    await cleanRedis();
    // the shipped IVR flows name every shipped queue: writeQueuesFile adds the others as plain queues
    const queuesFile = writeQueuesFile(
      [
        '# bench: one skill queue like variant A (no announcements, no wrap-up, ring 15 s)',
        'defaults: { ringSeconds: 15, wrapUpSeconds: 0, serviceLevelSeconds: 20, announceEverySeconds: 0, moh: default, maxWait: { seconds: 900, action: callback } }',
        'queues:',
        '  general: { skill: general }',
        '  en: { skill: en }',
        '',
      ].join('\n'),
    );
    await cp(queuesFile, path.join(runDir, 'queues.yaml'));
    svc = await startService(queuesFile, path.join(runDir, 'service.log'), path.join(runDir, 'cpuprofile'));
    for (const a of agents) await createReadyAgent(SVC_URL, svc.token, a);
    if (ariFilter) {
      await ari('PUT', `/applications/${process.env.ARI_APP ?? 'hotline'}/eventFilter`, { allowed: FILTER_TYPES.map((type) => ({ type })) });
      say(`ARI event filter set: ${FILTER_TYPES.join(', ')}`);
    }
  }

  const phone = await startSipp({ scenario: 'agent-answer', localPort: AGENT_PORT, calls: 1_000_000, limit: 5000, vars: { ring_ms: String(RING_MS) }, timeoutSeconds: 3600, label: `${variant}${index}-agents` });
  const ctx: Ctx = { variant, index, astPid, svc, agentLog: path.join(phone.artefactsDir, 'messages.log'), agentRead: { next: 0, answered: new Set() }, probe: null };
  const result: RunResult = {
    variant,
    index,
    idleRssKb: { asterisk: 0, service: null },
    idleHeapKb: null,
    idle: null,
    plateaus: [],
    ramp: [],
    rampStop: 'top step reached',
    hold: null,
    dtmfOffsetMs: null,
    profileSkipMs: null,
    leftoverChannels: 0,
    joins: [],
    holdJoins: [],
  };
  let perfRec: PerfRecording | null = null;
  try {
    if (svc) ctx.probe = await openProbe();
    // warm-up: a few calls so lazily loaded code and prompt files do not count as per-call memory
    say('warm-up: 5 calls');
    await callers(ctx, 'warmup', 5, 5, TALK_MS);
    await waitNoChannels(10_000);
    await sleep(1000);
    result.idleRssKb = { asterisk: await rssKb(astPid), service: svc ? await rssKb(svc.pid) : null };
    if (svc) result.idleHeapKb = await serviceHeapKb();
    result.idle = await idleRates(ctx);
    say(`idle ${IDLE_SECONDS} s (${PROFILE.agents} agents signed in, no call): ${idleLine(result.idle)}`);

    if (svc) result.profileSkipMs = Date.now() - svc.startedAt;
    if (svc && perfOpt) perfRec = recordPerf(svc.pid, path.join(runDir, 'perf.data'));
    // P2 first (ascending plateaus), so the ramp's high-water mark does not hide the memory per call
    for (const n of PROFILE.plateaus) result.plateaus.push(await plateau(ctx, n));
    // P1: call-rate ramp until a step has > 1 % failed calls or retransmissions above 0.5 % of its calls
    await settle('P1 ramp');
    for (const [i, rate] of PROFILE.ramp.entries()) {
      const step = await rampStep(ctx, rate, PROFILE.stepSeconds, `p1-${rate}cps`, i === 0 ? result : null);
      result.ramp.push(step);
      say(`P1 ${rate} cps: ${stepLine(step)}`);
      const failure = stepFailure(step);
      if (failure) {
        result.rampStop = failure;
        say(`P1 ramp stopped at ${rate} cps: ${failure === 'failed' ? `${step.failedPct} % of calls failed (> ${MAX_FAILED_PCT} %)` : `retransmissions ${step.retransmissionsPct} % of calls (> ${MAX_RETRANS_PCT} %)`}`);
        break;
      }
    }
    if (result.rampStop === 'top step reached') say(`P1 ramp: top step (${PROFILE.ramp.at(-1)} cps) reached without failing`);
    // P1 hold: 90 % of the highest passing rate, sustained (the cps figure when it passes)
    const top = topPassedRate(result);
    const holdRate = Math.max(1, Math.round(HOLD_SHARE * top));
    await settle('P1 hold step');
    say(`P1 hold step: ${holdRate} cps for ${PROFILE.holdStepSeconds} s (${top ? `${HOLD_SHARE * 100} % of ${top} cps, the highest passing ramp step` : 'no ramp step passed: the minimum'})`);
    result.hold = await rampStep(ctx, holdRate, PROFILE.holdStepSeconds, `p1-hold-${holdRate}cps`, null);
    say(`P1 hold ${holdRate} cps: ${stepLine(result.hold)} -> ${passes(result.hold) ? 'held' : 'hold failed'}`);
    if (PROFILE.soakSeconds > 0) result.soak = await soak(ctx, result);
  } finally {
    await ctx.probe?.close();
    await phone.stop(2000).catch(() => undefined);
    await cp(phone.artefactsDir, path.join(runDir, 'agents'), { recursive: true }).catch(() => undefined);
    result.leftoverChannels = await waitNoChannels(15_000);
    if (result.leftoverChannels) say(`WARNING: ${result.leftoverChannels} channels left in Asterisk after the run`);
    if (perfRec && svc) {
      await perfRec.stop();
      result.perf = await summarisePerf(path.join(runDir, 'perf.data'), svc.pid);
      await keepPerfMap(svc.pid, runDir);
      say(`perf: ${result.perf.samples} samples of the service's CPU`);
    }
    if (svc) await svc.stop();
    if (variant === 'A') await removeVariantA((...a) => asteriskSh(...a));
  }
  // the joins need the agent phone's whole log, complete only once it stopped
  const invites = await agentInvites(path.join(runDir, 'agents', 'messages.log'));
  for (const step of result.ramp) {
    const calls = await callerCalls(path.join(step.artefacts, 'messages.log'));
    step.setupMs = setupOf(calls);
    const joins = joinDtmf(calls, invites);
    result.joins.push(joins);
    step.dtmfToAgentMs = { p50: null, p99: null, joined: joins.length }; // placed after calibration (summarise)
  }
  if (result.hold) {
    const calls = await callerCalls(path.join(result.hold.artefacts, 'messages.log'));
    result.hold.setupMs = setupOf(calls);
    result.holdJoins = joinDtmf(calls, invites);
    result.hold.dtmfToAgentMs = { p50: null, p99: null, joined: result.holdJoins.length }; // placed after calibration (summarise)
  }
  return result;
}

async function settle(what: string): Promise<void> {
  if (PROFILE.settleSeconds <= 0) return;
  say(`${PROFILE.settleSeconds} s pause before the ${what} (PostgreSQL statistics flushed, the previous phase's load gone)`);
  await sleep(PROFILE.settleSeconds * 1000);
}

const stepLine = (s: StepResult) =>
  `${s.succeeded}/${s.calls} ok (answered by an agent ${s.answeredByAgent}, caller scripts completed ${s.sippSucceeded}; ${s.failedPct} % failed), ${s.retransmissions} retransmissions (${s.retransmissionsPct} % of calls), ` +
  `CPU ms/call Asterisk ${s.cpuMsPerCall.asterisk} service ${s.cpuMsPerCall.service ?? 'n/a'}, ` +
  `PostgreSQL xacts/call ${s.pgXactsPerCall ?? 'n/a'}, Redis commands/call ${s.redisCommandsPerCall ?? 'n/a'}`;

function setupOf(calls: CallerCall[]) {
  const v = calls.filter((c) => c.answeredAt !== undefined).map((c) => c.answeredAt! - c.inviteAt);
  return { p50: round(percentile(v, 50), 2), p99: round(percentile(v, 99), 2) };
}

function joinDtmf(calls: CallerCall[], invites: Map<string, number>) {
  const out: Array<{ number: string; digitAt: number; agentAt: number }> = [];
  for (const c of calls) {
    const agentAt = invites.get(c.number);
    if (c.ackAt === undefined || agentAt === undefined) continue;
    out.push({ number: c.number, digitAt: c.ackAt + WELCOME_MS, agentAt });
  }
  return out;
}

/** one P1 step: `rate` cps of short calls (TALK_MS) for `seconds`; also the hold step */
async function rampStep(ctx: Ctx, rate: number, seconds: number, label: string, calibrate: RunResult | null): Promise<StepResult> {
  const calls = rate * seconds;
  const since = new Date();
  const astBefore = await cpuMs(ctx.astPid);
  const svcBefore = await serviceCpu(ctx);
  const rt0 = ctx.probe ? await ctx.probe.read() : null;
  const m0 = ctx.svc ? await metricsOf() : null;
  let loopP99 = 0;
  let sampling = Boolean(ctx.svc);
  const sampler = (async () => {
    while (sampling) {
      await sleep(5000);
      if (!sampling) break;
      const m = await metricsOf().catch(() => null);
      if (m) loopP99 = Math.max(loopP99, (m['hotline_event_loop_delay_seconds{quantile="0.99"}'] ?? 0) * 1000);
    }
  })();
  const { res, prefix } = await callers(ctx, label, calls, rate, TALK_MS);
  await waitNoChannels(10_000);
  sampling = false;
  await sampler;
  if (ctx.svc) {
    // the last 10 s window of the event-loop monitor holds the end of the step
    const m = await metricsOf();
    loopP99 = Math.max(loopP99, (m['hotline_event_loop_delay_seconds{quantile="0.99"}'] ?? 0) * 1000);
  }
  const astCpu = (await cpuMs(ctx.astPid)) - astBefore;
  const svcCpu = (await serviceCpu(ctx)) - svcBefore;
  const rt1 = ctx.probe ? await ctx.probe.read() : null;
  const m1 = ctx.svc ? await metricsOf() : null;
  const n = Math.max(1, res.succeeded + res.failed);
  const retransmissions = Number(res.stats['Retransmissions(C)'] ?? 0);
  const answered = await answeredOf(ctx, prefix);
  if (calibrate && ctx.svc) calibrate.dtmfOffsetMs = await dtmfOffset(ctx, since, prefix, path.join(res.artefactsDir, 'messages.log'));
  return {
    rate,
    calls,
    succeeded: Math.min(res.succeeded, answered),
    failed: calls - Math.min(res.succeeded, answered),
    failedPct: round((100 * (calls - Math.min(res.succeeded, answered))) / calls, 2)!,
    sippSucceeded: res.succeeded,
    answeredByAgent: answered,
    retransmissions,
    retransmissionsPct: round((100 * retransmissions) / calls, 2)!,
    setupMs: { p50: null, p99: null },
    dtmfToAgentMs: { p50: null, p99: null, joined: 0 },
    cpuMsPerCall: { asterisk: round(astCpu / n, 2), service: ctx.svc ? round(svcCpu / n, 2) : null },
    wsBytesPerCall: m0 && m1 ? round((m1.hotline_ari_ws_bytes_received_total! - m0.hotline_ari_ws_bytes_received_total!) / n, 0) : null,
    wsMessagesPerCall: m0 && m1 ? round((m1.hotline_ari_ws_messages_received_total! - m0.hotline_ari_ws_messages_received_total!) / n, 1) : null,
    ariRequestsPerCall: m0 && m1 ? round((ariRequests(m1) - ariRequests(m0)) / n, 1) : null,
    ariRequestsByOp: m0 && m1 ? ariRequestsByOp(m0, m1, n) : null,
    eventLoopDelayP99Ms: ctx.svc ? round(loopP99, 2) : null,
    pgXactsPerCall: perCall(rt0?.pgXacts, rt1?.pgXacts, n),
    redisCommandsPerCall: perCall(rt0?.redisCommands, rt1?.redisCommands, n),
    artefacts: path.join(RAW, `${ctx.variant}${ctx.index}`, label),
  };
}

/** B only: where the digit really is. The service's ivr.digit event time minus (caller's ACK + welcome pause), median over the step. */
async function dtmfOffset(ctx: Ctx, since: Date, prefix: string, log: string): Promise<number | null> {
  const calls = await callerCalls(log);
  const byNumber = new Map(calls.map((c) => [c.number, c]));
  const res = await fetch(`${SVC_URL}/api/v1/calls?from=${since.toISOString()}&limit=200`, { headers: { authorization: `Bearer ${ctx.svc!.token}` } });
  const body = (await res.json()) as { items: Array<{ caller: string; events: Array<{ type: string; at: string }> }> };
  const offsets: number[] = [];
  for (const item of body.items ?? []) {
    if (!item.caller.startsWith(prefix)) continue;
    const c = byNumber.get(item.caller);
    const digit = item.events?.find((e) => e.type === 'ivr.digit');
    if (!c?.ackAt || !digit) continue;
    offsets.push(new Date(digit.at).getTime() - (c.ackAt + WELCOME_MS));
  }
  return round(percentile(offsets, 50), 1);
}

async function plateau(ctx: Ctx, n: number): Promise<PlateauResult> {
  const rate = Math.min(10, Math.max(2, Math.round(n / 5)));
  const rampMs = (n / rate) * 1000;
  const talkMs = rampMs + 3000 + PROFILE.holdSeconds * 1000;
  say(`P2 plateau ${n} concurrent calls (${rate} cps, held ${PROFILE.holdSeconds} s)`);
  const running = callers(ctx, `p2-${n}`, n, rate, talkMs);
  await sleep(rampMs + WELCOME_MS + 2000 + RING_MS + 2000);
  const samples: Array<{ ast: number; svc: number | null; ch: number }> = [];
  const end = Date.now() + PROFILE.holdSeconds * 1000 - 4000;
  while (Date.now() < end) {
    samples.push({ ast: await rssKb(ctx.astPid), svc: ctx.svc ? await rssKb(ctx.svc.pid) : null, ch: await channelCount() });
    await sleep(2000);
  }
  // the live heap with every call of the plateau still connected (a full GC: a pause of some ms, no call is set up now)
  const heapKb = ctx.svc ? await serviceHeapKb() : null;
  const { res, prefix } = await running;
  await waitNoChannels(10_000);
  const answered = await answeredOf(ctx, prefix);
  const med = (xs: number[]) => percentile(xs, 50) ?? 0;
  return {
    concurrent: n,
    channelsSeen: Math.max(0, ...samples.map((s) => s.ch)),
    rssKb: { asterisk: med(samples.map((s) => s.ast)), service: ctx.svc ? med(samples.map((s) => s.svc!)) : null },
    heapKb,
    failed: n - Math.min(res.succeeded, answered), // not completed, or never answered by an agent
  };
}

/**
 * P3: a soak at SOAK_SHARE (70 %) of the P2 ceiling. The ceiling is the highest plateau with no failed call (else
 * the lowest plateau); the target concurrency round(0.7 * ceiling) is reached with a modest call rate
 * (min(5, 0.7 * the highest passing ramp rate), at least 1 cps) and calls long enough that
 * rate * (WELCOME_MS + talkMs) ≈ target (as plateau() does long calls; never shorter than P1's TALK_MS).
 */
async function soak(ctx: Ctx, r: RunResult): Promise<SoakResult> {
  const clean = r.plateaus.filter((p) => p.failed === 0).map((p) => p.concurrent);
  const ceilingConcurrent = clean.length ? Math.max(...clean) : Math.min(...PROFILE.plateaus);
  const targetConcurrent = Math.max(1, Math.round(SOAK_SHARE * ceilingConcurrent));
  const rate = Math.max(1, Math.min(SOAK_MAX_CPS, Math.round(SOAK_SHARE * topPassedRate(r))));
  const talkMs = Math.max(TALK_MS, Math.round((targetConcurrent / rate) * 1000 - WELCOME_MS));
  const calls = rate * PROFILE.soakSeconds;
  say(
    `P3 soak: ${targetConcurrent} concurrent calls (${SOAK_SHARE * 100} % of the P2 ceiling ${ceilingConcurrent}${clean.length ? '' : ', no plateau passed: the lowest'}): ` +
      `${rate} cps for ${PROFILE.soakSeconds} s, talk ${talkMs} ms (~${round((WELCOME_MS + talkMs) / 1000, 1)} s calls)`,
  );
  const snap = async () => ({ asterisk: await rssKb(ctx.astPid), service: ctx.svc ? await rssKb(ctx.svc.pid) : null });
  const heap = async () => (ctx.svc ? serviceHeapKb() : null);
  const rssKbStart = await snap();
  const heapKbStart = await heap();
  const channels: number[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await sleep(5000);
      if (!sampling) break;
      const n = await channelCount().catch(() => null);
      if (n !== null) channels.push(n);
    }
  })();
  const { res, prefix } = await callers(ctx, 'p3-soak', calls, rate, talkMs);
  sampling = false;
  await sampler;
  await waitNoChannels(10_000);
  const answered = await answeredOf(ctx, prefix);
  const heapKbEnd = await heap();
  const retransmissions = Number(res.stats['Retransmissions(C)'] ?? 0);
  return {
    ceilingConcurrent,
    targetConcurrent,
    rate,
    talkMs,
    seconds: PROFILE.soakSeconds,
    calls,
    failed: calls - Math.min(res.succeeded, answered), // not completed, or never answered by an agent
    failedPct: round((100 * (calls - Math.min(res.succeeded, answered))) / calls, 2)!,
    retransmissions,
    channels: { max: Math.max(0, ...channels), median: percentile(channels, 50) },
    heapKbStart,
    heapKbEnd,
    heapGrowthKb: heapKbStart !== null && heapKbEnd !== null ? round(heapKbEnd - heapKbStart, 0) : null,
    rssKbStart,
    rssKbEnd: await snap(),
  };
}

// ---------------------------------------------------------------- summary

const median = (xs: Array<number | null>): number | null => {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};

/** least-squares slope of y over x */
function slope(points: Array<[number, number]>): number | null {
  if (points.length < 2) return null;
  const mx = points.reduce((s, p) => s + p[0], 0) / points.length;
  const my = points.reduce((s, p) => s + p[1], 0) / points.length;
  const num = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0);
  const den = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  return den ? num / den : null;
}

function figuresOf(r: RunResult, offset: number) {
  // passing ramp steps: <= 1 % failed and retransmissions <= 0.5 % of calls (stepFailure); the hold step is not pooled
  const ok = r.ramp.filter(passes);
  const okIdx = r.ramp.map((s, i) => (passes(s) ? i : -1)).filter((i) => i >= 0);
  // per step DTMF figures with the calibrated digit position (the hold step's too)
  const placeDtmf = (s: StepResult, joins: RunResult['holdJoins']) => {
    const d = joins.map((j) => j.agentAt - j.digitAt - offset);
    s.dtmfToAgentMs = { p50: round(percentile(d, 50), 1), p99: round(percentile(d, 99), 1), joined: d.length };
  };
  r.ramp.forEach((s, i) => placeDtmf(s, r.joins[i] ?? []));
  if (r.hold) placeDtmf(r.hold, r.holdJoins);
  // cps: the hold step's rate when it held (<= 1 % failed); else (hold failed) only what is below it: the highest
  // passing ramp rate under the failed hold rate (never more than what was shown to hold)
  const held = r.hold !== null && passes(r.hold);
  const belowHold = Math.max(0, ...r.ramp.filter((s) => passes(s) && s.rate < (r.hold?.rate ?? Infinity)).map((s) => s.rate));
  const allDtmf = okIdx.flatMap((i) => (r.joins[i] ?? []).map((j) => j.agentAt - j.digitAt - offset));
  // setup percentiles are pooled over the passing steps' calls afterwards (pooledSetup)
  // call-weighted mean over the passing steps that have the figure (a failed reading is null, not 0)
  const wsum = (f: (s: StepResult) => number | null) => {
    const parts = ok.map((s) => [f(s), s.succeeded + s.failed] as const).filter(([v]) => v !== null);
    const calls = parts.reduce((n, [, w]) => n + w, 0) || 1;
    return parts.length ? parts.reduce((t, [v, w]) => t + v! * w, 0) / calls : null;
  };
  const pts = (pick: (p: PlateauResult) => number | null, idle: number | null): Array<[number, number]> =>
    idle === null ? [] : [[0, idle] as [number, number], ...r.plateaus.map((p) => [p.concurrent, pick(p) ?? 0] as [number, number])];
  const kbAst = slope(pts((p) => p.rssKb.asterisk, r.idleRssKb.asterisk));
  const kbSvc = r.variant === 'B' ? slope(pts((p) => p.rssKb.service, r.idleRssKb.service)) : null;
  const kbHeap = r.variant === 'B' ? slope(pts((p) => p.heapKb, r.idleHeapKb)) : null;
  return {
    cps: held ? r.hold!.rate : belowHold,
    /** cps is a sustained (held) rate; false: the hold step failed and cps is the highest passing ramp step below its rate */
    cpsHeld: held,
    /** the ramp stopped on a failing step (false: the top step passed, cps is a floor) */
    cpsSaturated: r.rampStop !== 'top step reached',
    rampStop: r.rampStop as string,
    hold: {
      rate: r.hold?.rate ?? null,
      failedPct: r.hold?.failedPct ?? null,
      retransmissionsPct: r.hold?.retransmissionsPct ?? null,
      pgXactsPerCall: r.hold?.pgXactsPerCall ?? null,
      redisCommandsPerCall: r.hold?.redisCommandsPerCall ?? null,
    },
    setupMs: { p50: null as number | null, p99: null as number | null },
    dtmfToAgentMs: { p50: round(percentile(allDtmf, 50), 1), p99: round(percentile(allDtmf, 99), 1) },
    cpuMsPerCall: { asterisk: round(wsum((s) => s.cpuMsPerCall.asterisk), 2), service: r.variant === 'B' ? round(wsum((s) => s.cpuMsPerCall.service), 2) : null },
    // B: Asterisk's RSS slope + the service's V8 heap slope (the service's RSS moves with GC and is too noisy at this scale)
    kbPerConcurrentCall: round((kbAst ?? 0) + (r.variant === 'B' ? kbHeap ?? 0 : 0), 1),
    kbPerConcurrentCallBy: { asterisk: round(kbAst, 1), service: round(kbSvc, 1), serviceHeap: round(kbHeap, 1) },
    wsBytesPerCall: r.variant === 'B' ? round(wsum((s) => s.wsBytesPerCall), 0) : null,
    wsMessagesPerCall: r.variant === 'B' ? round(wsum((s) => s.wsMessagesPerCall), 1) : null,
    ariRequestsPerCall: r.variant === 'B' ? round(wsum((s) => s.ariRequestsPerCall), 1) : null,
    eventLoopDelayP99Ms: r.variant === 'B' ? round(Math.max(...ok.map((s) => s.eventLoopDelayP99Ms ?? 0)), 2) : null,
    // weighted over the passing ramp steps like wsBytesPerCall (the hold step's own values: hold.*)
    pgXactsPerCall: r.variant === 'B' ? round(wsum((s) => s.pgXactsPerCall), 1) : null,
    redisCommandsPerCall: r.variant === 'B' ? round(wsum((s) => s.redisCommandsPerCall), 1) : null,
    ...(r.soak ? { soak: r.soak } : {}),
  };
}

async function pooledSetup(r: RunResult) {
  const v: number[] = [];
  for (const s of r.ramp.filter(passes)) {
    for (const c of await callerCalls(path.join(s.artefacts, 'messages.log'))) if (c.answeredAt !== undefined) v.push(c.answeredAt - c.inviteAt);
  }
  return { p50: round(percentile(v, 50), 2), p99: round(percentile(v, 99), 2) };
}

type Figures = ReturnType<typeof figuresOf>;

function combine(fs: Figures[]): Figures {
  if (fs.length === 1) return fs[0]!;
  const m = (pick: (f: Figures) => number | null) => round(median(fs.map(pick)), 2);
  return {
    ...fs[0]!,
    cps: m((f) => f.cps)!,
    cpsHeld: fs.every((f) => f.cpsHeld),
    cpsSaturated: fs.some((f) => f.cpsSaturated),
    rampStop: [...new Set(fs.map((f) => f.rampStop))].join(' / '),
    hold: {
      rate: m((f) => f.hold.rate),
      failedPct: m((f) => f.hold.failedPct),
      retransmissionsPct: m((f) => f.hold.retransmissionsPct),
      pgXactsPerCall: m((f) => f.hold.pgXactsPerCall),
      redisCommandsPerCall: m((f) => f.hold.redisCommandsPerCall),
    },
    setupMs: { p50: m((f) => f.setupMs.p50), p99: m((f) => f.setupMs.p99) },
    dtmfToAgentMs: { p50: m((f) => f.dtmfToAgentMs.p50), p99: m((f) => f.dtmfToAgentMs.p99) },
    cpuMsPerCall: { asterisk: m((f) => f.cpuMsPerCall.asterisk), service: m((f) => f.cpuMsPerCall.service) },
    kbPerConcurrentCall: m((f) => f.kbPerConcurrentCall),
    kbPerConcurrentCallBy: { asterisk: m((f) => f.kbPerConcurrentCallBy.asterisk), service: m((f) => f.kbPerConcurrentCallBy.service), serviceHeap: m((f) => f.kbPerConcurrentCallBy.serviceHeap) },
    wsBytesPerCall: m((f) => f.wsBytesPerCall),
    wsMessagesPerCall: m((f) => f.wsMessagesPerCall),
    ariRequestsPerCall: m((f) => f.ariRequestsPerCall),
    eventLoopDelayP99Ms: m((f) => f.eventLoopDelayP99Ms),
    pgXactsPerCall: m((f) => f.pgXactsPerCall),
    redisCommandsPerCall: m((f) => f.redisCommandsPerCall),
  };
}

const ratio = (b: number | null | undefined, a: number | null | undefined) => (a && b !== null && b !== undefined ? round(b / a, 3) : null);

async function machine(pinned: boolean) {
  const ver = async (cmd: string, args: string[]) => (await run(cmd, args).then((r) => r.stdout + r.stderr, () => '')).split('\n').find((l) => l.trim()) ?? '';
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '',
    memGB: round(os.totalmem() / 2 ** 30, 1),
    kernel: os.release(),
    node: process.version,
    asterisk: (await asteriskSh('cli', 'core show version').catch(() => '')).trim(),
    sipp: (await ver('sipp', ['-v'])).replace(/\x1b\[[0-9;]*m/g, '').trim(),
    pinning: pinned ? 'taskset: SIPp (callers and agent phones) on CPU 0; Asterisk (all threads) and the service on CPU 1' : 'none (taskset missing or fewer than 2 CPUs)',
    profile: `${quick ? 'quick' : 'full'}${profile ? ' --profile (service under the V8 profiler: its CPU and latency figures are inflated)' : ''}${perfOpt ? ' --perf (service recorded by Linux perf: its CPU figures include a little of perf)' : ''}${ariFilter ? ' --ari-filter (B with the ARI event filter set by the bench)' : ''}${ariClientArg ? ` --ari-client ${ariClientArg} (B's ARI adapter, ARI_CLIENT)` : ''}${ariRestArg ? ` --ari-rest ${ariRestArg} (B's REST transport, ARI_REST)` : ''}${fromSource ? ' --from-source (B runs from src/ through tsx, not from the build)' : ''}${serviceCpuArg !== '1' ? ` --service-cpu ${serviceCpuArg} (B's service away from Asterisk's CPU: not comparable)` : ''}`,
  };
}

function table(summary: any, runs: RunResult[]): string {
  const A = summary.A;
  const B = summary.B;
  const f = (v: unknown) => (v === null || v === undefined ? 'n/a' : String(v));
  const row = (name: string, a: unknown, b: unknown, r: unknown) => `| ${name} | ${f(a)} | ${f(b)} | ${f(r)} |`;
  const lines = [
    `# Benchmark ${stamp} (${quick ? 'quick' : 'full'})`,
    '',
    'Variant A: Asterisk dialplan (Answer, Background welcome + WaitExten, Queue() leastrecent over the same agents, MixMonitor from the agent\'s answer, a Read() survey when the agent hangs up first).',
    'Variant B: this service through ARI (answer, welcome menu, Redis ACD, originate, mixing bridge, a snoop on the caller recorded from the agent\'s answer, the line\'s survey when the agent hangs up first).',
    'Both record every answered call; in these calls the caller hangs up, so neither plays its survey.',
    `Options: ${summary.machine.profile}.`,
    `Machine: ${summary.machine.cpus} CPUs (${summary.machine.cpuModel}), ${summary.machine.memGB} GB, ${summary.machine.asterisk}; pinning: ${summary.machine.pinning}.`,
    '',
    '| figure | A (dialplan) | B (service) | B/A |',
    '|---|---|---|---|',
    row(
      `sustained call rate (cps): the hold step (${HOLD_SHARE * 100} % of the highest passing ramp step) with ≤ ${MAX_FAILED_PCT} % failed and retransmissions ≤ ${MAX_RETRANS_PCT} % of calls${A.cpsSaturated || B.cpsSaturated ? '' : ' — top step reached, not saturated'}`,
      `${A.cps}${A.cpsHeld ? '' : ' (hold failed: highest passing ramp step below the hold rate)'}`,
      `${B.cps}${B.cpsHeld ? '' : ' (hold failed: highest passing ramp step below the hold rate)'}`,
      summary.ratio.cps,
    ),
    row('… ramp stopped by', A.rampStop, B.rampStop, ''),
    row(
      '… hold step: cps / failed % / retransmissions % of calls',
      `${f(A.hold.rate)} / ${f(A.hold.failedPct)} / ${f(A.hold.retransmissionsPct)}`,
      `${f(B.hold.rate)} / ${f(B.hold.failedPct)} / ${f(B.hold.retransmissionsPct)}`,
      '',
    ),
    row('INVITE→200 p50 (ms)', A.setupMs.p50, B.setupMs.p50, summary.ratio.setupP50),
    row('INVITE→200 p99 (ms)', A.setupMs.p99, B.setupMs.p99, summary.ratio.setupP99),
    row('DTMF→agent INVITE p50 (ms; B/A column: B − A)', A.dtmfToAgentMs.p50, B.dtmfToAgentMs.p50, `+${summary.ratio.dtmfToAgentP50DeltaMs} ms`),
    row('DTMF→agent INVITE p99 (ms; B/A column: B − A)', A.dtmfToAgentMs.p99, B.dtmfToAgentMs.p99, `+${summary.ratio.dtmfToAgentP99DeltaMs} ms`),
    row('Asterisk CPU per call (ms)', A.cpuMsPerCall.asterisk, B.cpuMsPerCall.asterisk, summary.ratio.asteriskCpuPerCall),
    row('service CPU per call (ms)', A.cpuMsPerCall.service, B.cpuMsPerCall.service, ''),
    row('Asterisk+service CPU per call (ms)', A.cpuMsPerCall.asterisk, round((B.cpuMsPerCall.asterisk ?? 0) + (B.cpuMsPerCall.service ?? 0), 2), summary.ratio.totalCpuPerCall),
    row('KB per concurrent call (Asterisk RSS + service V8 heap)', A.kbPerConcurrentCall, B.kbPerConcurrentCall, summary.ratio.kbPerConcurrentCall),
    row('… Asterisk RSS / service V8 heap / service RSS (KB per call)', `${f(A.kbPerConcurrentCallBy.asterisk)} / n/a / n/a`, `${f(B.kbPerConcurrentCallBy.asterisk)} / ${f(B.kbPerConcurrentCallBy.serviceHeap)} / ${f(B.kbPerConcurrentCallBy.service)}`, ''),
    row('ARI WebSocket bytes per call', A.wsBytesPerCall, B.wsBytesPerCall, ''),
    row('ARI WebSocket messages / REST requests per call', 'n/a', `${f(B.wsMessagesPerCall)} / ${f(B.ariRequestsPerCall)}`, ''),
    row('event-loop delay p99 under load (ms)', A.eventLoopDelayP99Ms, B.eventLoopDelayP99Ms, ''),
    row('PostgreSQL transactions / Redis commands per call', 'n/a (not used)', `${f(B.pgXactsPerCall)} / ${f(B.redisCommandsPerCall)}`, ''),
    row('… in the hold step', 'n/a (not used)', `${f(B.hold.pgXactsPerCall)} / ${f(B.hold.redisCommandsPerCall)}`, ''),
    '',
    `P1 ramp: ${PROFILE.ramp.join(', ')} cps × ${PROFILE.stepSeconds} s of short calls (~${(WELCOME_MS + TALK_MS) / 1000} s), stopping after the first step with more than ${MAX_FAILED_PCT} % of calls failed ` +
      `or retransmissions above ${MAX_RETRANS_PCT} % of its calls (SIPp's Retransmissions(C) ÷ calls: the denominator is calls, not SIP messages, so this is stricter than ${MAX_RETRANS_PCT} % of messages). ` +
      `Then the hold step: ${HOLD_SHARE * 100} % of the highest step that passed both (rounded, at least 1 cps) for ${PROFILE.holdStepSeconds} s. ` +
      `The cps figure is the held rate when the hold step passed both criteria of the ramp (≤ ${MAX_FAILED_PCT} % failed, retransmissions ≤ ${MAX_RETRANS_PCT} % of calls); "hold failed" means it did not, and the figure is the highest passing ramp step below the hold rate instead (not sustained).`,
    'Per-call figures (setup, DTMF→agent, CPU, WebSocket, PostgreSQL, Redis) are pooled or call-weighted over the passing ramp steps; the hold step is listed on its own.',
    'PostgreSQL transactions per call: delta of xact_commit + xact_rollback of the bench database in pg_stat_database ÷ the step\'s calls (a backend flushes these counters up to 10 s late once idle: a step\'s last second can land in the next step). ' +
      'Redis commands per call: delta of INFO stats total_commands_processed ÷ calls. Both include the service\'s periodic work during the step and a few commands of the bench itself (noise); A uses neither.',
    `DTMF→agent: from the digit (caller's ACK + ${WELCOME_MS} ms pause + ${summary.dtmfOffsetMs} ms calibrated digit offset) to the agent phone's INVITE; error ±2 ms, see docs/benchmarks.md.`,
    'Event-loop delay: beyond the 10 ms sampling interval of perf_hooks.monitorEventLoopDelay, worst 10 s window of the ramp.',
    '',
    '## Per run and step',
    '',
    '| run | step | calls | failed % | retrans (% of calls) | setup p50/p99 ms | DTMF→agent p50/p99 ms | CPU ms/call ast / svc | WS B/call | loop p99 ms | PG xacts/call | Redis cmds/call |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const stepRow = (r: RunResult, step: string, s: StepResult) =>
    `| ${r.variant}${r.index} | ${step} | ${s.calls} | ${s.failedPct} | ${s.retransmissions} (${s.retransmissionsPct}) | ${f(s.setupMs.p50)} / ${f(s.setupMs.p99)} | ${f(s.dtmfToAgentMs.p50)} / ${f(s.dtmfToAgentMs.p99)} (${s.dtmfToAgentMs.joined}) | ${f(s.cpuMsPerCall.asterisk)} / ${f(s.cpuMsPerCall.service)} | ${f(s.wsBytesPerCall)} | ${f(s.eventLoopDelayP99Ms)} | ${f(s.pgXactsPerCall)} | ${f(s.redisCommandsPerCall)} |`;
  for (const r of runs) {
    for (const s of r.ramp) lines.push(stepRow(r, `${s.rate} cps${passes(s) ? '' : ` (stop: ${stepFailure(s)})`}`, s));
    if (r.hold) lines.push(stepRow(r, `hold ${r.hold.rate} cps × ${PROFILE.holdStepSeconds} s${passes(r.hold) ? '' : ' (hold failed)'}`, r.hold));
  }
  lines.push('');
  for (const r of runs) {
    const last = r.ramp.at(-1);
    const stop =
      r.rampStop === 'top step reached'
        ? `top step reached (${last?.rate ?? 'n/a'} cps passed: not saturated)`
        : r.rampStop === 'failed'
          ? `failed calls: ${last?.failedPct} % at ${last?.rate} cps (> ${MAX_FAILED_PCT} %)`
          : `retransmissions: ${last?.retransmissionsPct} % of calls at ${last?.rate} cps (> ${MAX_RETRANS_PCT} %)`;
    const hold = r.hold
      ? `hold ${r.hold.rate} cps for ${PROFILE.holdStepSeconds} s: ${r.hold.failedPct} % failed, ${r.hold.retransmissionsPct} % retransmissions → ${passes(r.hold) ? `held, cps ${r.hold.rate}` : `hold failed, cps ${Math.max(0, ...r.ramp.filter((x) => passes(x) && x.rate < r.hold!.rate).map((x) => x.rate))} (highest passing ramp step below the hold rate)`}`
      : 'no hold step';
    lines.push(`- ${r.variant}${r.index}: ramp stopped by ${stop}; ${hold}.`);
  }
  for (const r of runs) {
    const by = r.hold?.ariRequestsByOp;
    if (by && Object.keys(by).length) lines.push('', `${r.variant}${r.index}: ARI requests per call in the hold step, by operation: ${Object.entries(by).map(([op, n]) => `${op} ${n}`).join(', ')}.`);
  }
  lines.push(
    '',
    `Idle (${PROFILE.agents} agents signed in, no call, ${IDLE_SECONDS} s): the periodic work, which the per-call figures above spread over each step's calls.`,
    '',
    '| run | CPU ms/s ast / svc | PG xacts/s | Redis cmds/s |',
    '|---|---|---|---|',
  );
  for (const r of runs) if (r.idle) lines.push(`| ${r.variant}${r.index} | ${r.idle.asteriskCpuMsPerS} / ${f(r.idle.serviceCpuMsPerS)} | ${f(r.idle.pgXactsPerS)} | ${f(r.idle.redisCommandsPerS)} |`);
  lines.push('', '| run | idle RSS KB ast / svc | plateau | channels seen | RSS KB ast / svc | svc heap KB | failed | leftover channels |', '|---|---|---|---|---|---|---|---|');
  for (const r of runs) {
    for (const p of r.plateaus) {
      lines.push(`| ${r.variant}${r.index} | ${r.idleRssKb.asterisk} / ${f(r.idleRssKb.service)} | ${p.concurrent} | ${p.channelsSeen} | ${p.rssKb.asterisk} / ${f(p.rssKb.service)} | ${f(p.heapKb)} | ${p.failed} | ${r.leftoverChannels} |`);
    }
  }
  const soaks = runs.filter((r) => r.soak);
  if (soaks.length) {
    lines.push(
      '',
      `## P3 soak (${SOAK_SHARE * 100} % of the P2 ceiling: the highest plateau with no failed call)`,
      '',
      '| run | ceiling → target concurrent | cps × s | talk ms | calls | failed % | retrans | channels max / median | RSS KB ast start → end | svc RSS KB start → end | svc heap KB start → end | heap growth KB |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const r of soaks) {
      const k = r.soak!;
      lines.push(
        `| ${r.variant}${r.index} | ${k.ceilingConcurrent} → ${k.targetConcurrent} | ${k.rate} × ${k.seconds} | ${k.talkMs} | ${k.calls} | ${k.failedPct} | ${k.retransmissions} | ${k.channels.max} / ${f(k.channels.median)} | ${k.rssKbStart.asterisk} → ${k.rssKbEnd.asterisk} | ${f(k.rssKbStart.service)} → ${f(k.rssKbEnd.service)} | ${f(k.heapKbStart)} → ${f(k.heapKbEnd)} | ${f(k.heapGrowthKb)} |`,
      );
    }
    lines.push(
      '',
      `Calls last ~${WELCOME_MS / 1000} s + talk: rate × that ≈ the target concurrency. Channels: 2 per connected A call, 3 per connected B call (its snoop), 1 while in the menu. ` +
        'Heap: the service\'s live V8 heap (heap used after a full GC, through its inspector), before the soak and after its calls drained.',
    );
  }
  return `${lines.join('\n')}\n`;
}

function perfTable(runs: RunResult[]): string {
  const withPerf = runs.filter((r) => r.perf);
  if (withPerf.length === 0) return '';
  const lines = [
    '',
    "## Where the service CPU went (--perf: Linux perf, cpu-clock at 499 Hz, the service's own CPU from P2 on, every thread, kernel included)",
    '',
    '| run | where | CPU ms | % of the service | % on the main thread |',
    '|---|---|---|---|---|',
  ];
  for (const r of withPerf) {
    for (const t of r.perf!.threads) lines.push(`| B${r.index} | ${t.thread} | ${t.ms} | ${t.pct} | |`);
    for (const c of r.perf!.categories) lines.push(`| B${r.index} | ${c.category} | ${c.ms} | ${c.pct} | ${c.mainPct} |`);
  }
  return `${lines.join('\n')}\n`;
}

async function profileTable(runs: RunResult[]): Promise<string> {
  if (!profile) return '';
  const lines = ['', '## Where the service CPU went (--profile: V8 sampling profile, self time from P2 on, start-up and agent sign-in excluded; native code counted for its JavaScript caller)', '', '| run | place | ms | % of busy |', '|---|---|---|---|'];
  for (const r of runs.filter((x) => x.variant === 'B')) {
    const rows = await summariseProfiles(path.join(RAW, `B${r.index}`, 'cpuprofile'), r.profileSkipMs ?? 0);
    for (const row of rows.slice(0, 20)) lines.push(`| B${r.index} | ${row.place} | ${row.ms} | ${row.pct} |`);
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------- main

function describeProfile(): string {
  return (
    `${quick ? 'quick' : 'full'}: runs ${PROFILE.order.join(' ')}, ${PROFILE.agents} agents; ` +
    `P2 plateaus ${PROFILE.plateaus.join(', ')} concurrent calls held ${PROFILE.holdSeconds} s; ` +
    `P1 ramp ${PROFILE.ramp.join(', ')} cps × ${PROFILE.stepSeconds} s (stop: > ${MAX_FAILED_PCT} % failed or retransmissions > ${MAX_RETRANS_PCT} % of calls), ` +
    `hold step ${HOLD_SHARE * 100} % × ${PROFILE.holdStepSeconds} s; ` +
    (PROFILE.soakSeconds > 0 ? `P3 soak ${PROFILE.soakSeconds} s at ${SOAK_SHARE * 100} % of the P2 ceiling` : 'no P3 soak')
  );
}

/**
 * Wall-clock estimate of the whole bench (s), from the profile: every ramp step counted (the ramp may stop
 * earlier), the soak at SOAK_MAX_CPS with calls of 0.7 * the top plateau / SOAK_MAX_CPS seconds. Set-up costs
 * (Asterisk restart, service start, agents) are rough.
 */
function estimateSeconds(): number {
  const shortCall = (WELCOME_MS + TALK_MS) / 1000 + 0.2; // the last call of a step (placed at ~its end)
  const step = (seconds: number) => seconds + shortCall + 0.3; // + the drain check and the readings
  const plateaus = PROFILE.plateaus.reduce((t, n) => {
    const rampS = n / Math.min(10, Math.max(2, Math.round(n / 5)));
    return t + rampS + WELCOME_MS / 1000 + (rampS + 3 + PROFILE.holdSeconds) + 1; // as plateau(): the last call starts at rampS
  }, 0);
  const soakCallS = (SOAK_SHARE * Math.max(...PROFILE.plateaus)) / SOAK_MAX_CPS;
  const run = (v: 'A' | 'B') =>
    5 + PROFILE.agents * (v === 'B' ? 0.03 : 0.01) + // Asterisk restart, variant set-up, agents
    6 + (v === 'B' ? 5 : 0) + // warm-up (+ idle heap samples)
    plateaus +
    2 * PROFILE.settleSeconds +
    PROFILE.ramp.reduce((t) => t + step(PROFILE.stepSeconds), 0) +
    step(PROFILE.holdStepSeconds) +
    (PROFILE.soakSeconds > 0 ? PROFILE.soakSeconds + soakCallS + 1 + (v === 'B' ? 10 : 0) : 0) +
    5; // agent phone stopped, channels drained, service stopped
  return Math.round(10 + PROFILE.order.reduce((t, v) => t + run(v), 0) + 5); // provisioning, the final restart
}

/**
 * The bench database, empty again: each run starts with its profile's agents only (employee numbers are never
 * reused, so the agents of an earlier, larger run cannot be removed through the API) and no call history of
 * earlier runs. A quick run after a full run measured the full run's 230 agents' periodic work before.
 */
async function freshDatabase(): Promise<void> {
  const db = new pg.Client({ connectionString: DATABASE_URL.replace(/\/[^/]+$/, '/postgres'), connectionTimeoutMillis: 5000 });
  await db.connect();
  try {
    await db.query(`drop database if exists "${DB_NAME}" with (force)`);
    await db.query(`create database "${DB_NAME}"`);
  } finally {
    await db.end();
  }
  say(`database ${DB_NAME} created empty (the service migrates it at start)`);
}

async function main(): Promise<void> {
  const started = Date.now();
  await mkdir(RAW, { recursive: true });
  say(`results in ${path.relative(REPO, OUT)}`);
  say(`profile ${describeProfile()}`);
  const est = estimateSeconds();
  say(`estimated duration: ~${Math.round(est / 60)} min (${est} s; less if a ramp stops early)`);
  if (perfOpt && !(await perfAvailable())) throw new Error('--perf needs Linux perf (Debian package linux-perf); it is not installed');
  say('provisioning (scripts/provision.sh)');
  await run('bash', [path.join(REPO, 'scripts/provision.sh'), DB_NAME], { maxBuffer: 20 * 1024 * 1024 });
  await freshDatabase();
  if (!fromSource && PROFILE.order.includes('B')) {
    // B runs the build production runs (npm run up): compiled now, so it is this checkout's code
    say('building the service into dist/ (tsc -p tsconfig.json, as npm run up)');
    await run(process.execPath, [path.join(REPO, 'node_modules/typescript/bin/tsc'), '-p', path.join(REPO, 'tsconfig.json')], { cwd: REPO, maxBuffer: 20 * 1024 * 1024 });
  }

  taskset = os.cpus().length >= 2 ? await run('sh', ['-c', 'command -v taskset']).then((r) => r.stdout.trim() || null, () => null) : null;
  if (taskset) {
    // every SIPp the wrappers start goes through this script: pinned to CPU 0
    const wrapper = path.join(OUT, 'sipp-cpu0.sh');
    await writeFile(wrapper, `#!/bin/sh\nexec ${taskset} -c 0 ${(await run('sh', ['-c', 'command -v sipp'])).stdout.trim()} "$@"\n`);
    await chmod(wrapper, 0o755);
    process.env.SIPP_BIN = wrapper;
  }
  say(taskset ? 'pinning: SIPp on CPU 0, Asterisk and the service on CPU 1' : 'no pinning (taskset missing or < 2 CPUs)');

  const runs: RunResult[] = [];
  const count = { A: 0, B: 0 };
  for (const v of PROFILE.order) runs.push(await runVariant(v, ++count[v]));

  // the digit's position, calibrated on B (the only variant that timestamps the digit), applied to both
  const offset = median(runs.filter((r) => r.variant === 'B').map((r) => r.dtmfOffsetMs)) ?? 0;
  const per = (v: 'A' | 'B') =>
    Promise.all(
      runs
        .filter((r) => r.variant === v)
        .map(async (r) => {
          const fig = figuresOf(r, offset);
          fig.setupMs = await pooledSetup(r);
          return fig;
        }),
    );
  const A = combine(await per('A'));
  const B = combine(await per('B'));
  const summary = {
    A,
    B,
    ratio: {
      cps: ratio(B.cps, A.cps),
      setupP50: ratio(B.setupMs.p50, A.setupMs.p50),
      setupP99: ratio(B.setupMs.p99, A.setupMs.p99),
      setupP99DeltaMs: B.setupMs.p99 !== null && A.setupMs.p99 !== null ? round(B.setupMs.p99 - A.setupMs.p99, 2) : null,
      // A's DTMF->agent is within the method's error (a few ms, can read below 0): a ratio means nothing there, the difference does
      dtmfToAgentP50: (A.dtmfToAgentMs.p50 ?? 0) > 2 ? ratio(B.dtmfToAgentMs.p50, A.dtmfToAgentMs.p50) : null,
      dtmfToAgentP99: (A.dtmfToAgentMs.p99 ?? 0) > 2 ? ratio(B.dtmfToAgentMs.p99, A.dtmfToAgentMs.p99) : null,
      dtmfToAgentP50DeltaMs: B.dtmfToAgentMs.p50 !== null && A.dtmfToAgentMs.p50 !== null ? round(B.dtmfToAgentMs.p50 - A.dtmfToAgentMs.p50, 1) : null,
      dtmfToAgentP99DeltaMs: B.dtmfToAgentMs.p99 !== null && A.dtmfToAgentMs.p99 !== null ? round(B.dtmfToAgentMs.p99 - A.dtmfToAgentMs.p99, 1) : null,
      asteriskCpuPerCall: ratio(B.cpuMsPerCall.asterisk, A.cpuMsPerCall.asterisk),
      totalCpuPerCall: ratio((B.cpuMsPerCall.asterisk ?? 0) + (B.cpuMsPerCall.service ?? 0), A.cpuMsPerCall.asterisk),
      kbPerConcurrentCall: ratio(B.kbPerConcurrentCall, A.kbPerConcurrentCall),
    },
    machine: await machine(Boolean(taskset)),
    dtmfOffsetMs: offset,
    durationSeconds: Math.round((Date.now() - started) / 1000),
    runs: runs.map(({ joins: _joins, holdJoins: _holdJoins, ...r }) => r),
  };
  await writeFile(path.join(OUT, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  // the V8 profiles are read once, for the file and the console
  const report = table(summary, runs) + perfTable(runs) + (await profileTable(runs));
  await writeFile(path.join(OUT, 'summary.md'), report);
  console.log(report);
  say(`done in ${summary.durationSeconds} s: ${path.relative(REPO, path.join(OUT, 'summary.md'))}`);
  // leave a clean Asterisk (no bench agents' endpoints in the memory wizard, no app_queue), with no channels
  await asteriskSh('restart');
  const left = await channelCount();
  if (left !== 0) throw new Error(`${left} channels left in Asterisk at the end`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`[bench] failed: ${err instanceof Error ? err.stack : String(err)}`);
    process.exit(1);
  },
);
