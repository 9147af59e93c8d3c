/**
 * --perf: B's service recorded by Linux `perf` (cpu-clock, so only time on a CPU counts, kernel included), and the
 * samples sorted into where the CPU went: the main thread against V8's helper threads, and compiled JavaScript
 * against builtins, the JIT compiler, the garbage collector and the kernel.
 *
 * Unlike --profile (V8's sampler, which samples wall time: on a shared CPU it books the moments another process
 * runs to the service's socket write), this counts the service's own CPU only. The service runs with
 * --perf-basic-prof, so perf can name its compiled JavaScript (V8 writes /tmp/perf-<pid>.map).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** perf's sampling rate (Hz): ~500 samples a second of CPU, a small cost beside the service's */
const FREQ = 499;

export async function perfAvailable(): Promise<boolean> {
  return run('perf', ['--version']).then(
    () => true,
    () => false,
  );
}

export interface PerfRecording {
  /** stop recording (SIGINT: perf writes its file and exits) */
  stop(): Promise<void>;
}

/** record every thread of `pid` into `file` until stop() */
export function recordPerf(pid: number, file: string): PerfRecording {
  const child: ChildProcess = spawn('perf', ['record', '-F', String(FREQ), '-g', '-p', String(pid), '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    stop: async () => {
      child.kill('SIGINT');
      const code = await Promise.race([exited, new Promise<'late'>((r) => setTimeout(() => r('late'), 20_000))]);
      if (code === 'late') {
        child.kill('SIGKILL');
        throw new Error('perf record did not stop within 20 s');
      }
      if (code !== 0 && code !== null) throw new Error(`perf record failed (${code}): ${err.trim().split('\n').at(-1)}`);
    },
  };
}

/** the categories, first match wins; a sample is [thread kind, category] */
const CATEGORIES: Array<[string, (dso: string, sym: string) => boolean]> = [
  ['kernel (system calls, scheduling, network)', (dso) => dso.startsWith('[kernel')],
  ['compiled JavaScript (and regexps)', (dso) => dso.startsWith('[JIT]')],
  ['JIT compiler (Sparkplug, Maglev, TurboFan; parsing)', (_d, s) => /compiler::|Compile|Maglev|maglev::|baseline::|Parser|Scanner|Zone::|BytecodeGenerator|OptimizedCompilationJob/.test(s)],
  ['garbage collector', (_d, s) => /Marking|Scaveng|Sweep|MarkCompact|Heap::|Evacuat|Worklist|RememberedSet|SlotSet|MemoryChunk|GlobalHandles|IncrementalMarking|MinorMC|ConcurrentMarking|PagedSpace|NewSpace|LargeObjectSpace/.test(s)],
  ['V8 builtins and inline caches (property access, calls, promises)', (_d, s) => /Builtins_|Builtin:/.test(s)],
  ['libc (malloc, memcpy)', (dso) => dso.startsWith('libc')],
  ['other native (V8 runtime, Node, libuv, OpenSSL)', () => true],
];

export interface PerfSummary {
  samples: number;
  /** CPU ms per thread kind and per category (from the sample count and the rate) */
  threads: Array<{ thread: string; ms: number; pct: number }>;
  categories: Array<{ category: string; ms: number; pct: number; mainPct: number }>;
}

/** sum `perf report` of `file` for the service `pid` (its main thread has the process id) */
export async function summarisePerf(file: string, pid: number): Promise<PerfSummary> {
  const { stdout } = await run('perf', ['report', '-i', file, '--no-children', '--sort', 'pid,dso,sym', '--stdio', '-g', 'none', '-n', '-t', '|'], { maxBuffer: 256 * 1024 * 1024 });
  const byThread = new Map<string, number>();
  const byCat = new Map<string, { all: number; main: number }>();
  let samples = 0;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('#') || !line.trim()) continue;
    // "  5.36%|   1234|  26062:node   |[kernel.kallsyms]  |[k] finish_task_switch"
    const cols = line.split('|').map((c) => c.trim());
    if (cols.length < 5) continue;
    const n = Number(cols[1]);
    const tid = Number(cols[2]!.split(':')[0]);
    const dso = cols[3]!;
    const sym = cols.slice(4).join('|').replace(/^\[[.k]\]\s*/, '');
    if (!Number.isFinite(n) || !Number.isFinite(tid)) continue;
    samples += n;
    const main = tid === pid;
    const cat = CATEGORIES.find(([, test]) => test(dso, sym))![0];
    const thread = main ? 'main thread (JavaScript, event loop)' : "helper threads (V8's garbage collector and compiler, libuv's pool)";
    byThread.set(thread, (byThread.get(thread) ?? 0) + n);
    const c = byCat.get(cat) ?? { all: 0, main: 0 };
    c.all += n;
    if (main) c.main += n;
    byCat.set(cat, c);
  }
  const ms = (n: number) => Math.round((n * 1000) / FREQ);
  const pct = (n: number) => (samples ? Math.round((1000 * n) / samples) / 10 : 0);
  return {
    samples,
    threads: [...byThread].sort((a, b) => b[1] - a[1]).map(([thread, n]) => ({ thread, ms: ms(n), pct: pct(n) })),
    categories: [...byCat].sort((a, b) => b[1].all - a[1].all).map(([category, c]) => ({ category, ms: ms(c.all), pct: pct(c.all), mainPct: pct(c.main) })),
  };
}

/**
 * Keep the perf map V8 wrote for `pid` (/tmp/perf-<pid>.map, 1–2 MB) beside the recording, once the report is
 * made: `perf report -i perf.data` names the JavaScript only with the map back at /tmp/perf-<pid>.map.
 */
export async function keepPerfMap(pid: number, dir: string): Promise<void> {
  const map = `/tmp/perf-${pid}.map`;
  await copyFile(map, path.join(dir, `perf-${pid}.map`)).catch(() => undefined);
  await rm(map, { force: true });
}
