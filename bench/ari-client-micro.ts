/**
 * Micro-benchmark of the two ARI adapters on the real Asterisk (issue 8, item 6): the same call-like cycles
 * through AriClient (ari-client) and ThinAriClient, with and without ARI's event filter, in A B A B order,
 * each run in a fresh Node process. Run it under the shared-Asterisk lock:
 *
 *   flock /tmp/hotline-stack.lock node --import tsx bench/ari-client-micro.ts [--cycles 300] [--concurrency 20] [--rounds 2] [--warmup 60] [--media sound:beep] [--only 'thin,thin + filter']
 *
 * One cycle: originate Local/wait@hotline-util into the app -> StasisStart -> answer -> play a prompt (--media) ->
 * PlaybackFinished -> create a mixing bridge -> add the channel -> hang up -> ChannelDestroyed -> destroy the bridge.
 * Measured per run (after --warmup cycles, default 60): the Node process's CPU (process.cpuUsage, user + system) per
 * cycle, Asterisk's CPU per cycle (/proc/<pid>/stat), event-socket messages (events only) and bytes per cycle, and p50/p99
 * of every REST operation and of originate -> StasisStart.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { ariMetrics } from '../src/metrics/metrics.js';
import type { AriEvent, AriPort } from '../src/ari/port.js';

const APP = 'hotline-thin-bench';
const ARI = { url: process.env.ARI_URL ?? 'http://127.0.0.1:8088', user: process.env.ARI_USER ?? 'hotline', password: process.env.ARI_PASSWORD ?? 'hotline-dev' };
const AUTH = `Basic ${Buffer.from(`${ARI.user}:${ARI.password}`).toString('base64')}`;
const CACHE = process.env.HOTLINE_CACHE ?? '/var/cache/hotline';
const FILTER = ['StasisStart', 'StasisEnd', 'ChannelDestroyed', 'ChannelDtmfReceived', 'PlaybackFinished', 'RecordingFinished', 'RecordingFailed', 'ApplicationReplaced'];

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
/** --media: the prompt of each cycle (default Asterisk's 0.3 s beep, so that cycles, not idle time, dominate the CPU) */
const MEDIA = process.argv.includes('--media') ? process.argv[process.argv.indexOf('--media') + 1]! : 'sound:beep';

interface Variant {
  name: string;
  kind: 'ari-client' | 'thin';
  filter: boolean;
  /** thin only: REST over the event socket (Asterisk 22's RESTRequest messages) instead of HTTP */
  restOverWs?: boolean;
}
const VARIANTS: Variant[] = [
  { name: 'ari-client', kind: 'ari-client', filter: false },
  { name: 'thin', kind: 'thin', filter: false },
  { name: 'ari-client + filter', kind: 'ari-client', filter: true },
  { name: 'thin + filter', kind: 'thin', filter: true },
  { name: 'thin + filter + REST over WS', kind: 'thin', filter: true, restOverWs: true },
];

interface RunResult {
  variant: string;
  cycles: number;
  seconds: number;
  nodeCpuUsPerCycle: number;
  /** the same, less the process's idle CPU (measured for 5 s after the cycles, connected, nothing to do) */
  nodeCpuUsPerCycleNet: number;
  idleCpuUsPerSecond: number;
  asteriskCpuUsPerCycle: number;
  wsMessagesPerCycle: number;
  wsBytesPerCycle: number;
  ops: Record<string, { p50: number; p99: number; n: number }>;
  failed: number;
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const r2 = (x: number) => Math.round(x * 100) / 100;

async function asteriskCpuUs(): Promise<number> {
  try {
    const pid = Number((await readFile(`${CACHE}/asterisk.pid`, 'utf8')).trim());
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100;
  } catch {
    return NaN;
  }
}

async function rawAri(method: string, p: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${ARI.url}/ari${p}`, { method, headers: { authorization: AUTH, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// ---------------------------------------------------------------- one run (child process)

async function child(v: Variant, cycles: number, concurrency: number, warmup: number): Promise<RunResult> {
  const opts = { ...ARI, app: APP, requestTimeoutMs: 10_000, startupTimeoutMs: 10_000, log: pino({ level: 'warn' }) };
  let ari: AriPort & { start(): Promise<void> };
  if (v.kind === 'thin') {
    const { ThinAriClient } = await import('../src/ari/thin-client.js');
    ari = new ThinAriClient({ ...opts, eventFilter: v.filter, rest: v.restOverWs ? 'websocket' : 'http' });
  } else {
    const { AriClient } = await import('../src/ari/client.js');
    ari = new AriClient(opts);
  }
  await ari.start();
  // ari-client: the filter set from outside, as `npm run bench -- --ari-filter` does; without: cleared (all events)
  if (v.kind === 'ari-client') await rawAri('PUT', `/applications/${APP}/eventFilter`, v.filter ? { allowed: FILTER.map((type) => ({ type })) } : {});
  const app = (await rawAri('GET', `/applications/${APP}`)) as { events_allowed: unknown[] };
  const wsMessagesPerRequest = v.restOverWs ? 1 : 0; // REST over WS: every answer is a message on the event socket too
  if ((app.events_allowed.length > 0) !== v.filter) throw new Error(`event filter of ${APP} is not as the variant wants: ${JSON.stringify(app)}`);

  // events to waiters, by channel or playback id
  const waiters = new Map<string, (e: AriEvent) => void>();
  ari.onEvent((e) => {
    const key = e.type === 'PlaybackFinished' ? `${e.type}:${e.playbackId}` : 'channel' in e ? `${e.type}:${e.channel.id}` : '';
    waiters.get(key)?.(e);
  });
  const wait = (key: string, ms = 15_000) =>
    new Promise<AriEvent>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(key);
        reject(new Error(`timed out: ${key}`));
      }, ms);
      waiters.set(key, (e) => {
        clearTimeout(timer);
        waiters.delete(key);
        resolve(e);
      });
    });

  const lat: Record<string, number[]> = {};
  let measuring = false;
  const timed = async <T>(op: string, p: () => Promise<T>): Promise<T> => {
    const t0 = process.hrtime.bigint();
    const r = await p();
    if (measuring) (lat[op] ??= []).push(Number(process.hrtime.bigint() - t0) / 1e6);
    return r;
  };

  const cycle = async () => {
    const id = `bench-${randomUUID()}`;
    const bridge = `${id}-b`;
    const started = wait(`StasisStart:${id}`);
    const t0 = process.hrtime.bigint();
    await timed('originate', () => ari.channels.originate({ endpoint: 'Local/wait@hotline-util', channelId: id, appArgs: ['bench'], timeoutSeconds: 10 }));
    await started;
    if (measuring) (lat['originate -> StasisStart'] ??= []).push(Number(process.hrtime.bigint() - t0) / 1e6);
    await timed('answer', () => ari.channels.answer(id));
    const pb = `${id}-pb`;
    const finished = wait(`PlaybackFinished:${pb}`);
    await timed('play', () => ari.channels.play(id, [MEDIA], pb));
    await finished;
    await timed('create bridge', () => ari.bridges.create(bridge, 'mixing'));
    await timed('add to bridge', () => ari.bridges.addChannel(bridge, [id]));
    const destroyed = wait(`ChannelDestroyed:${id}`);
    await timed('hangup', () => ari.channels.hangup(id));
    await destroyed;
    await timed('destroy bridge', () => ari.bridges.destroy(bridge));
  };

  let failed = 0;
  const runCycles = async (n: number) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, n) }, async () => {
        while (next < n) {
          next++;
          await cycle().catch((err: Error) => {
            failed++;
            console.error(`cycle failed: ${err.message}`);
          });
        }
      }),
    );
  };

  await runCycles(warmup); // warm-up: JIT (V8's compiler threads count in process.cpuUsage), sockets, Asterisk's prompt cache
  await new Promise((r) => setTimeout(r, 500));
  const msgs0 = ariMetrics.wsMessages.get();
  const bytes0 = ariMetrics.wsBytes.get();
  const ast0 = await asteriskCpuUs();
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  measuring = true;
  failed = 0;
  await runCycles(cycles);
  measuring = false;
  const cpu = process.cpuUsage(cpu0);
  const seconds = (Date.now() - t0) / 1000;
  const ast1 = await asteriskCpuUs();
  const idle0 = process.cpuUsage();
  const idleT0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, 5000));
  const idle = process.cpuUsage(idle0);
  const idlePerSecond = (idle.user + idle.system) / (Number(process.hrtime.bigint() - idleT0) / 1e9);
  const result: RunResult = {
    variant: v.name,
    cycles,
    seconds: r2(seconds),
    nodeCpuUsPerCycle: Math.round((cpu.user + cpu.system) / cycles),
    nodeCpuUsPerCycleNet: Math.round((cpu.user + cpu.system - idlePerSecond * seconds) / cycles),
    idleCpuUsPerSecond: Math.round(idlePerSecond),
    asteriskCpuUsPerCycle: Math.round((ast1 - ast0) / cycles),
    wsMessagesPerCycle: r2((ariMetrics.wsMessages.get() - msgs0) / cycles - wsMessagesPerRequest * 7),
    wsBytesPerCycle: Math.round((ariMetrics.wsBytes.get() - bytes0) / cycles),
    ops: Object.fromEntries(Object.entries(lat).map(([op, xs]) => [op, { p50: r2(pct(xs, 50)), p99: r2(pct(xs, 99)), n: xs.length }])),
    failed,
  };
  await ari.close();
  return result;
}

// ---------------------------------------------------------------- orchestration (parent)

async function main(): Promise<void> {
  const childIdx = process.argv.indexOf('--child');
  const cycles = arg('cycles', 300);
  const concurrency = arg('concurrency', 20);
  if (childIdx > 0) {
    const v = VARIANTS.find((x) => x.name === process.argv[childIdx + 1]);
    // (bytes include the RESTResponse messages when REST goes over the socket)
    if (!v) throw new Error(`unknown variant ${process.argv[childIdx + 1]}`);
    const r = await child(v, cycles, concurrency, arg('warmup', 60));
    process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
    process.exit(0);
  }
  const rounds = arg('rounds', 2);
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1]!.split(',') : null;
  const variants = only ? VARIANTS.filter((v) => only.includes(v.name)) : VARIANTS;
  const results: RunResult[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const v of variants) {
      const left = ((await rawAri('GET', '/channels')) as Array<{ id: string }>).filter((c) => c.id.startsWith('bench-'));
      if (left.length) throw new Error(`channels left by an earlier run: ${left.length}`);
      const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--child', v.name, '--cycles', String(cycles), '--concurrency', String(concurrency), '--warmup', String(arg('warmup', 60)), '--media', MEDIA], {
        maxBuffer: 16 * 1024 * 1024,
      });
      if (stderr.trim()) console.error(stderr.trim().split('\n').slice(-5).join('\n'));
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (!line) throw new Error(`no result from ${v.name}: ${stdout}`);
      const r = JSON.parse(line.slice(7)) as RunResult;
      results.push(r);
      console.log(`[round ${round}] ${r.variant.padEnd(20)} node ${r.nodeCpuUsPerCycle} µs/cycle (${r.nodeCpuUsPerCycleNet} net of idle ${r.idleCpuUsPerSecond} µs/s), asterisk ${r.asteriskCpuUsPerCycle} µs/cycle, ws ${r.wsMessagesPerCycle} msgs / ${r.wsBytesPerCycle} B per cycle, ${r.seconds} s, failed ${r.failed}`);
    }
  }
  // summary: per variant, the mean of the runs' CPU figures and the median of their op p50/p99
  const ops = [...new Set(results.flatMap((r) => Object.keys(r.ops)))];
  console.log(`\n${cycles} cycles x ${rounds} rounds per variant, concurrency ${concurrency}, prompt ${MEDIA}; CPU: mean of the rounds; latency (ms): p50 / p99, each the mean over rounds\n`);
  console.log(`| figure | ${variants.map((v) => v.name).join(' | ')} |`);
  console.log(`|---|${variants.map(() => '---').join('|')}|`);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const row = (name: string, f: (r: RunResult) => number, digits = 0) =>
    console.log(`| ${name} | ${variants.map((v) => { const rs = results.filter((r) => r.variant === v.name).map(f); return `${mean(rs).toFixed(digits)} (${rs.map((x) => x.toFixed(digits)).join(', ')})`; }).join(' | ')} |`);
  row('Node CPU µs / cycle', (r) => r.nodeCpuUsPerCycle);
  row('… net of idle', (r) => r.nodeCpuUsPerCycleNet);
  row('idle Node CPU µs / s', (r) => r.idleCpuUsPerSecond);
  row('Asterisk CPU µs / cycle', (r) => r.asteriskCpuUsPerCycle);
  row('WS messages / cycle', (r) => r.wsMessagesPerCycle, 1);
  row('WS bytes / cycle', (r) => r.wsBytesPerCycle);
  for (const op of ops) {
    console.log(
      `| ${op} | ${variants.map((v) => {
        const rs = results.filter((r) => r.variant === v.name && r.ops[op]);
        return `${mean(rs.map((r) => r.ops[op]!.p50)).toFixed(2)} / ${mean(rs.map((r) => r.ops[op]!.p99)).toFixed(2)}`;
      }).join(' | ')} |`,
    );
  }
  console.log(`| failed cycles | ${variants.map((v) => results.filter((r) => r.variant === v.name).reduce((a, r) => a + r.failed, 0)).join(' | ')} |`);
}

await main();
