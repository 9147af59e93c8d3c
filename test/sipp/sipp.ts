/**
 * A small wrapper around SIPp 3.6.1 (Debian/Ubuntu package `sip-tester`) for the tests: run a scenario to
 * completion (runSipp) or keep one running in the background as an agent phone (startSipp), and read the
 * outcome from SIPp's stat CSV.
 *
 * How a run works
 * - The scenario is a path to an XML file or the bare name of a file in test/sipp/scenarios ('caller-dtmf').
 * - Each run gets its own artefacts directory under os.tmpdir() (sipp-<label>-XXXXXX, kept for debugging)
 *   holding: <scenario>.xml (the rendered copy that actually ran), command.txt (to rerun it by hand),
 *   stat.csv, errors.log, messages.log (every SIP message), screen.log (SIPp's last screens),
 *   calldebug.log (aborted calls), stdout.log and stderr.log.
 * - SIPp runs in the foreground as a child process (no shell) with -nostdin, bound to 127.0.0.1 (-i, -mi,
 *   -bind_local), on a free SIP port (-p) and a free even media port >= 40000 (-mp; SIPp binds it and
 *   port+2, and Asterisk's RTP range 10000-19999 is never used), with a global -timeout, -aa (answer
 *   in-dialog INFO/NOTIFY/OPTIONS/UPDATE with 200) and -l = calls so long calls are not throttled.
 *
 * Variables (SippOptions.vars; callerNumber is vars.caller)
 * - Template variables: a scenario declares them in a comment, one per line, `@var name default description`,
 *   and uses them as {{name}} anywhere in the file (pause lengths, timeouts, exec attributes, headers).
 *   The wrapper writes the rendered copy into the artefacts dir and SIPp runs that copy. SIPp 3.6.1 itself
 *   cannot do this: `pause milliseconds` and recv `timeout` are fixed at load time, -set only sets string
 *   globals (a `pause variable=` reads 0 from a string), and -key only reaches message text and
 *   whole-attribute play_pcap_* values. Built in, always available: {{scenario_dir}} (the original
 *   scenario's directory; the rendered copy lives elsewhere, so relative paths in it would break) and
 *   {{pcap_dir}} (SIPP_PCAP_DIR, default /usr/share/sip-tester, where the dtmf_2833_*.pcap live).
 * - A var that is not a template variable goes to SIPp natively: `-key name value` when the scenario uses
 *   the keyword [name], `-set name value` when it declares <Global variables="...name...">.
 * - Anything else is a mistake (a typo) and throws SippScenarioError before SIPp starts, as does a
 *   {{name}} with no value. Values may not contain < > & " ' or line breaks (they go into XML).
 *
 * SIPp 3.6.1 exit codes (SippResult.exitCode): 0 all calls succeeded; 1 at least one call failed (and
 * also: SIPp refused the scenario or its options before it ran, which the wrapper turns into an exception);
 * 97 the global -timeout ended the run with no successful call (or an internal quit command);
 * 99 normal exit without calls processed; 255 (-1) fatal error while running (e.g. no raw socket for
 * play_dtmf/play_pcap_audio without root or CAP_NET_RAW: see SippResult.fatal); 254 (-2) could not bind
 * a socket. Exits on SIGTERM/SIGUSR1 compute the code the normal way (0, 1 or 97) whatever calls were
 * still open (see SippResult.openCalls). Killed by another signal: 128 + signal number.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { constants as fsConstants } from 'node:fs';
import { access, mkdtemp, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SCENARIO_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'scenarios');
export const DEFAULT_PCAP_DIR = '/usr/share/sip-tester';
const LOCAL_IP = '127.0.0.1';
/** Asterisk's RTP port range (rtp.conf); SIPp must never take a port in it. */
const ASTERISK_RTP = { start: 10000, end: 19999 } as const;
const MEDIA_PORT_MIN = 40000;
const MEDIA_PORT_MAX = 60000;
/** Caps on what is kept in memory from stdout/stderr (SIPp repaints its screen every second). */
const MAX_CAPTURE = 256 * 1024;
const MAX_ERROR_ENTRIES = 1000;

export interface SippOptions {
  /** Path to a scenario XML, or the bare name of a file in test/sipp/scenarios (e.g. 'caller-dtmf'). */
  scenario: string;
  /** 'host:port' to send to (UAC); omitted for a UAS. */
  remote?: string;
  /** -s: the user part of the Request-URI ([service]), i.e. the dialled number. */
  service?: string;
  /** -p; default: a free UDP port on 127.0.0.1. */
  localPort?: number;
  /** -mp; default: a free even port >= 40000 (with port+1..+3 free too). */
  mediaPort?: number;
  /** -m, default 1. */
  calls?: number;
  /** -r (calls per second), default 1 (100 when calls is 1: SIPp places the first call 1/rate s after it starts). */
  rate?: number;
  /** -l (max simultaneous calls), default max(calls, 1) so long calls are not throttled. */
  limit?: number;
  /** SIPp's global -timeout (a soft quit in 3.6.1) so a stuck scenario always ends; default 60. The wrapper
   *  SIGTERMs SIPp 2 s after it if calls are still stuck, and SIGKILLs it 10 s after it. */
  timeoutSeconds?: number;
  /** Scenario variables: {{name}} template variables, else -key (for [name]) or -set (for a Global). */
  vars?: Record<string, string>;
  /** The From user of a UAC call: shorthand for vars.caller. */
  callerNumber?: string;
  /** Appended to SIPp's command line as is. */
  extraArgs?: string[];
  /** Used in the artefacts directory name (default: the scenario name). */
  label?: string;
}

export interface SippResult extends StatSummary {
  /** SIPp's exit code (see the module comment); 128 + n when killed by signal n. */
  exitCode: number;
  /** The signal that ended SIPp, if it did not exit by itself. */
  signal: NodeJS.Signals | null;
  /** Wall time of the sipp run. */
  durationMs: number;
  /** SIPp's global timeout was reached (or the wrapper had to kill it). */
  timedOut: boolean;
  /** Where stat.csv, errors.log, messages.log, screen.log, ... live (kept). */
  artefactsDir: string;
  /** The SIPp command line (argv, binary first). */
  command: string[];
  localPort: number;
  mediaPort: number;
  stdout: string;
  stderr: string;
  /** Entries of SIPp's error log (unexpected messages, timeouts, warnings), timestamps stripped. */
  errors: string[];
  /** SIPp's fatal error, if it stopped on one (exit code 255/254). */
  fatal?: string;
}

export class SippError extends Error {
  override name = 'SippError';
}

/** `sipp` (or SIPP_BIN) is not there. */
export class SippNotFoundError extends SippError {
  override name = 'SippNotFoundError';
}

/** SIPp exited before running anything (bad option, port in use, ...). */
export class SippStartError extends SippError {
  override name = 'SippStartError';
  constructor(
    message: string,
    readonly reason: string,
    readonly exitCode: number | null,
    readonly artefactsDir: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

/** SIPp refused the scenario (XML, unknown element/keyword/action, ...) or the vars don't fit it. */
export class SippScenarioError extends SippStartError {
  override name = 'SippScenarioError';
}

export interface SippProcess {
  localPort: number;
  mediaPort: number;
  artefactsDir: string;
  /** Settles when SIPp exits by itself (e.g. after -m calls) or is stopped. */
  result: Promise<SippResult>;
  /**
   * SIGUSR1 (SIPp's soft quit: no new calls, calls in progress run to their end, then final stats);
   * after graceMs (default 5000) SIGTERM (SIPp exits at once with final stats; calls still open are
   * counted in openCalls and not torn down on the wire); SIGKILL 3 s later.
   */
  stop(graceMs?: number): Promise<SippResult>;
}

// ---------------------------------------------------------------------------------------------------------
// Binary, ports, scenario
// ---------------------------------------------------------------------------------------------------------

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The sipp binary: SIPP_BIN (a path or a name on PATH) or `sipp` on PATH. */
export async function findSipp(): Promise<string> {
  const wanted = process.env.SIPP_BIN?.trim() || 'sipp';
  const candidates = wanted.includes('/')
    ? [path.resolve(wanted)]
    : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, wanted));
  for (const file of candidates) if (await isExecutable(file)) return file;
  throw new SippNotFoundError(
    `SIPp not found (${process.env.SIPP_BIN ? `SIPP_BIN=${process.env.SIPP_BIN}` : '`sipp` on PATH'}): ` +
      'install the Debian/Ubuntu package sip-tester (apt-get install sip-tester, SIPp 3.6.1) or point SIPP_BIN at a sipp binary',
  );
}

const handedOut = new Set<number>();

function canBindUdp(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(null);
    });
    socket.bind({ port, address: LOCAL_IP, exclusive: true }, () => {
      const bound = socket.address().port;
      socket.close(() => resolve(bound));
    });
  });
}

const inAsteriskRange = (port: number): boolean => port >= ASTERISK_RTP.start && port <= ASTERISK_RTP.end;

/** A free UDP port on 127.0.0.1 (the kernel's choice), outside Asterisk's RTP range and not handed out before. */
export async function freeUdpPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await canBindUdp(0);
    if (port !== null && !inAsteriskRange(port) && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new SippError('no free UDP port on 127.0.0.1');
}

/** A free even port >= 40000 with port+1..port+3 free too (SIPp binds port and port+2; +1/+3 for RTCP). */
export async function freeMediaPort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = MEDIA_PORT_MIN + 2 * Math.floor((Math.random() * (MEDIA_PORT_MAX - MEDIA_PORT_MIN)) / 2);
    if ([0, 1, 2, 3].some((d) => handedOut.has(port + d))) continue;
    let free = true;
    for (const d of [0, 1, 2, 3]) {
      if ((await canBindUdp(port + d)) === null) {
        free = false;
        break;
      }
    }
    if (free) {
      for (const d of [0, 1, 2, 3]) handedOut.add(port + d);
      return port;
    }
  }
  throw new SippError(`no free media port between ${MEDIA_PORT_MIN} and ${MEDIA_PORT_MAX}`);
}

export function scenarioPath(scenario: string): string {
  return scenario.includes('/') || scenario.endsWith('.xml') ? path.resolve(scenario) : path.join(SCENARIO_DIR, `${scenario}.xml`);
}

export interface ScenarioVariable {
  name: string;
  default: string;
  description: string;
}

/** The `@var name default description` declarations of a scenario. A default of "" is the empty string. */
export function templateVariables(xml: string): ScenarioVariable[] {
  const out: ScenarioVariable[] = [];
  for (const m of xml.matchAll(/^[ \t]*@var[ \t]+([A-Za-z_]\w*)[ \t]+(\S+)[ \t]*(.*)$/gm)) {
    const [, name = '', def = '', description = ''] = m;
    out.push({ name, default: def === '""' ? '' : def, description: description.trim() });
  }
  return out;
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_]\w*)\s*\}\}/g;
const UNSAFE_VALUE = /[<>&"'\r\n\0]/;

export interface RenderedScenario {
  xml: string;
  /** -key / -set arguments for the vars that are not template variables. */
  args: string[];
}

/** Substitutes {{name}} and routes the other vars to -key / -set (see the module comment). */
export function renderScenario(xml: string, file: string, vars: Record<string, string> = {}): RenderedScenario {
  const declared = templateVariables(xml);
  const builtins: Record<string, string> = {
    scenario_dir: path.dirname(file),
    pcap_dir: process.env.SIPP_PCAP_DIR?.trim() || DEFAULT_PCAP_DIR,
  };
  const values: Record<string, string> = { ...builtins };
  for (const v of declared) values[v.name] = v.default;
  const used = new Set([...xml.matchAll(PLACEHOLDER)].map((m) => m[1] ?? ''));
  const globals = new Set(
    [...xml.matchAll(/<Global\s+variables\s*=\s*"([^"]*)"/g)].flatMap((m) => (m[1] ?? '').split(',').map((s) => s.trim())),
  );
  const args: string[] = [];
  const name = path.basename(file);
  for (const [key, value] of Object.entries(vars)) {
    if (UNSAFE_VALUE.test(value)) {
      throw new SippScenarioError(`${name}: the value of ${key} contains < > & " ' or a line break: ${JSON.stringify(value)}`, 'bad value', null, '', '');
    }
    if (declared.some((v) => v.name === key) || used.has(key)) values[key] = value;
    else if (xml.includes(`[${key}]`)) args.push('-key', key, value);
    else if (globals.has(key)) args.push('-set', key, value);
    else {
      const known = [...declared.map((v) => v.name), ...globals].join(', ') || 'none';
      throw new SippScenarioError(`${name} has no variable ${key} (its variables: ${known})`, 'unknown variable', null, '', '');
    }
  }
  const missing = [...used].filter((k) => values[k] === undefined);
  if (missing.length > 0) {
    throw new SippScenarioError(`${name}: no value for ${missing.map((k) => `{{${k}}}`).join(', ')} (declare @var or pass vars)`, 'missing variable', null, '', '');
  }
  return { xml: xml.replace(PLACEHOLDER, (_, k: string) => values[k] ?? ''), args };
}

// ---------------------------------------------------------------------------------------------------------
// Stat CSV and logs
// ---------------------------------------------------------------------------------------------------------

/** SIPp durations are HH:MM:SS:uuuuuu. */
export function sippDurationMs(value: string | undefined): number {
  const m = /^(\d+):(\d+):(\d+):(\d+)$/.exec(value?.trim() ?? '');
  if (!m) return 0;
  const [, h = '0', mi = '0', s = '0', us = '0'] = m;
  return ((Number(h) * 60 + Number(mi)) * 60 + Number(s)) * 1000 + Number(us) / 1000;
}

/** What the stat CSV's last row says. */
export interface StatSummary {
  /** TotalCallCreated (for a UAS: incoming calls, including any out-of-dialog request it received). */
  attempted: number;
  /** SuccessfulCall(C). */
  succeeded: number;
  /** FailedCall(C). */
  failed: number;
  /** CurrentCall: calls still open when SIPp stopped (timed out or stopped mid-call); 0 after a clean run. */
  openCalls: number;
  /** CallLength(C): average length of the calls (successful and failed) in ms. */
  callLengthMs: { avg: number };
  /** ResponseTime<name>(C) for each rtd the scenario defines ('answer', '1', ...), average in ms. */
  responseTimeMs: Record<string, { avg: number }>;
  /** The scenario's own counters (counter="name" on a message), cumulative. */
  counters: Record<string, number>;
  /** The whole last row of the stat CSV, column name -> raw value. */
  stats: Record<string, string>;
}

/** The last complete data row of a SIPp -trace_stat CSV (';'-separated, header row first). */
export function parseStatCsv(csv: string): StatSummary {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = (lines[0] ?? '').split(';');
  let row: string[] | undefined;
  for (let i = lines.length - 1; i > 0 && !row; i--) {
    const cells = (lines[i] ?? '').split(';');
    if (cells.length === header.length) row = cells;
  }
  const stats: Record<string, string> = {};
  const last = row ?? [];
  header.forEach((h, i) => {
    if (h !== '' && i < last.length) stats[h] = last[i] ?? '';
  });
  const num = (key: string): number => Number(stats[key] ?? 0) || 0;
  const responseTimeMs: Record<string, { avg: number }> = {};
  for (const h of header) {
    const m = /^ResponseTime(.+)\(C\)$/.exec(h);
    if (m?.[1] && !m[1].endsWith('StDev')) responseTimeMs[m[1]] = { avg: sippDurationMs(stats[h]) };
  }
  // The scenario's counters sit between CallLengthStDev(C) and the repartition columns.
  const counters: Record<string, number> = {};
  const from = header.indexOf('CallLengthStDev(C)');
  if (from >= 0) {
    for (const h of header.slice(from + 1)) {
      if (h.startsWith('ResponseTimeRepartition') || h.startsWith('CallLengthRepartition')) break;
      const m = /^(.+)\(C\)$/.exec(h);
      if (m?.[1]) counters[m[1]] = num(h);
    }
  }
  return {
    attempted: num('TotalCallCreated'),
    succeeded: num('SuccessfulCall(C)'),
    failed: num('FailedCall(C)'),
    openCalls: num('CurrentCall'),
    callLengthMs: { avg: sippDurationMs(stats['CallLength(C)']) },
    responseTimeMs,
    counters,
    stats,
  };
}

const LOG_STAMP = /\d{4}-\d{2}-\d{2}\t\d{2}:\d{2}:\d{2}\.\d+\t\d+\.\d+: ?/g;

/**
 * Entries of a SIPp log or of its stderr, timestamps stripped. SIPp 3.6.1 starts each entry with a
 * timestamp but does not always end one with a newline, so entries are split at the timestamps.
 */
export function parseSippLog(text: string): string[] {
  return text
    .replace(/^The following events occurred:\n/m, '')
    .split(LOG_STAMP)
    .map((e) => e.trim())
    .filter((e) => e !== '');
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Has process pid bound this UDP port? Read from Linux /proc: the socket inodes on that port in
 * /proc/net/udp{,6} against the process's fds. undefined when /proc can't tell.
 */
async function udpPortBoundBy(pid: number, port: number): Promise<boolean | undefined> {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = new Set<string>();
  let seen = false;
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    const text = await readIfExists(table);
    if (text === undefined) continue;
    seen = true;
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(hex) && cols[9]) inodes.add(`socket:[${cols[9]}]`);
    }
  }
  if (!seen) return undefined;
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  for (const fd of fds) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (inodes.has(target)) return true;
  }
  return false;
}

const SCENARIO_REASON = /scenario|xml|keyword|element|attribute|action|cdata|label|variable|rtd|counter|pcap|regexp|not a (floating point|number)|missing the required|unknown .*(command|type)/i;

// ---------------------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------------------

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function trackChild(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Never leave a sipp behind when the test process ends (a stuck agent would hold its port).
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

class Capture {
  text = '';
  push(chunk: Buffer): void {
    this.text += chunk.toString('utf8');
    if (this.text.length > MAX_CAPTURE) this.text = this.text.slice(-MAX_CAPTURE);
  }
}

interface Launched {
  child: ChildProcess;
  localPort: number;
  mediaPort: number;
  dir: string;
  /** Settles when sipp has exited and its artefacts are read; rejects if it never got to run. */
  done: Promise<SippResult>;
  exited: () => boolean;
  kill: (signal: NodeJS.Signals) => void;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v <= 0) throw new TypeError(`SippOptions.${name} must be a positive number, got ${value}`);
  return v;
}

async function launch(opts: SippOptions): Promise<Launched> {
  const bin = await findSipp();
  const file = scenarioPath(opts.scenario);
  const scenarioName = path.basename(file, '.xml');
  const calls = Math.floor(positive('calls', opts.calls, 1));
  // One call: start it at once (SIPp places its first call 1/rate s after start).
  const rate = positive('rate', opts.rate, calls === 1 ? 100 : 1);
  const limit = Math.floor(positive('limit', opts.limit, Math.max(calls, 1)));
  const timeoutSeconds = Math.ceil(positive('timeoutSeconds', opts.timeoutSeconds, 60));
  const label = (opts.label ?? scenarioName).replace(/[^\w.-]+/g, '_').slice(0, 60);
  const dir = await mkdtemp(path.join(tmpdir(), `sipp-${label}-`));

  const source = await readIfExists(file);
  if (source === undefined) {
    throw new SippScenarioError(`SIPp scenario not found: ${file}`, 'scenario file not found', null, dir, '');
  }
  const vars = { ...opts.vars };
  if (opts.callerNumber !== undefined) vars.caller = opts.callerNumber;
  let rendered: RenderedScenario;
  try {
    rendered = renderScenario(source, file, vars);
  } catch (err) {
    if (err instanceof SippScenarioError) throw new SippScenarioError(err.message, err.reason, null, dir, '');
    throw err;
  }
  const renderedFile = path.join(dir, path.basename(file));
  await writeFile(renderedFile, rendered.xml);

  const localPort = opts.localPort ?? (await freeUdpPort());
  const mediaPort = opts.mediaPort ?? (await freeMediaPort());
  if (inAsteriskRange(mediaPort)) throw new TypeError(`mediaPort ${mediaPort} is in Asterisk's RTP range ${ASTERISK_RTP.start}-${ASTERISK_RTP.end}`);
  const files = {
    stat: path.join(dir, 'stat.csv'),
    errors: path.join(dir, 'errors.log'),
    messages: path.join(dir, 'messages.log'),
    screen: path.join(dir, 'screen.log'),
    calldebug: path.join(dir, 'calldebug.log'),
  };
  const args = [
    ...(opts.remote ? [opts.remote] : []),
    '-sf', renderedFile,
    '-i', LOCAL_IP, '-mi', LOCAL_IP, '-bind_local',
    '-p', String(localPort), '-mp', String(mediaPort),
    '-m', String(calls), '-r', String(rate), '-l', String(limit),
    '-timeout', `${timeoutSeconds}s`,
    '-nostdin', '-aa',
    '-trace_stat', '-stf', files.stat, '-fd', '1',
    '-trace_err', '-error_file', files.errors,
    '-trace_msg', '-message_file', files.messages,
    '-trace_screen', '-screen_file', files.screen,
    '-trace_calldebug', '-calldebug_file', files.calldebug,
    ...(opts.service !== undefined ? ['-s', opts.service] : []),
    ...rendered.args,
    ...(opts.extraArgs ?? []),
  ];
  const command = [bin, ...args];
  await writeFile(path.join(dir, 'command.txt'), `${command.map((a) => (/^[\w./:=,+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')}\n`);

  const started = Date.now();
  const child = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const stdout = new Capture();
  const stderr = new Capture();
  child.stdout?.on('data', (c: Buffer) => stdout.push(c));
  child.stderr?.on('data', (c: Buffer) => stderr.push(c));

  let exited = false;
  let forced = false;
  const kill = (signal: NodeJS.Signals): void => {
    if (!exited) child.kill(signal);
  };
  // SIPp 3.6.1's -timeout is only a soft quit (no new calls; a call stuck waiting for a message keeps SIPp
  // running forever), and once -m calls exist SIGUSR1 can't force it either (SIPp resets its quit level
  // on every loop). So 2 s after the timeout the wrapper sends SIGTERM: SIPp exits at once, writing its
  // final stats (open calls are not torn down on the wire); SIGKILL at timeoutSeconds + 10 s.
  const timers = [
    setTimeout(() => {
      forced = true;
      kill('SIGTERM');
    }, (timeoutSeconds + 2) * 1000),
    setTimeout(() => kill('SIGKILL'), (timeoutSeconds + 10) * 1000),
  ];
  for (const timer of timers) timer.unref();

  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>((resolve) => {
    child.once('error', (err) => {
      exited = true;
      resolve({ code: null, signal: null, spawnError: err });
    });
    child.once('close', (code, signal) => {
      exited = true;
      resolve({ code, signal });
    });
  });

  const done = exit.then(async ({ code, signal, spawnError }): Promise<SippResult> => {
    for (const timer of timers) clearTimeout(timer);
    const durationMs = Date.now() - started;
    await writeFile(path.join(dir, 'stdout.log'), stdout.text).catch(() => undefined);
    await writeFile(path.join(dir, 'stderr.log'), stderr.text).catch(() => undefined);
    if (spawnError) {
      const e = spawnError as NodeJS.ErrnoException;
      if (e.code === 'ENOENT' || e.code === 'EACCES') {
        throw new SippNotFoundError(`SIPp could not be started (${bin}: ${e.code}): install the Debian/Ubuntu package sip-tester or set SIPP_BIN`);
      }
      throw new SippStartError(`SIPp could not be started: ${e.message}`, e.message, null, dir, stderr.text);
    }
    const exitCode = code ?? 128 + (signal ? signalNumber(signal) : 0);
    const csv = await readIfExists(files.stat);
    const summary = parseStatCsv(csv ?? '');
    const reason = [...new Set(parseSippLog(stderr.text).filter((l) => !/^Resolving remote host/.test(l)))].join('\n');
    // SIPp stopped before it ran anything: a fatal error (exit 1 before the scenario is loaded, 255/254
    // after) with no call created. The stat file may exist already (it is opened before the sockets).
    if (signal === null && [1, 254, 255].includes(exitCode) && summary.attempted === 0 && (reason !== '' || csv === undefined)) {
      const message = `SIPp refused to run ${path.basename(file)} (exit ${exitCode}): ${reason || stderr.text.trim() || 'no reason given'} [artefacts: ${dir}]`;
      if (exitCode === 1 && SCENARIO_REASON.test(reason) && !/bind|address already in use|invalid argument/i.test(reason)) {
        throw new SippScenarioError(message, reason, exitCode, dir, stderr.text);
      }
      throw new SippStartError(message, reason, exitCode, dir, stderr.text);
    }
    const errors = parseSippLog((await readIfExists(files.errors)) ?? '').slice(0, MAX_ERROR_ENTRIES);
    const fatal = exitCode === 255 || exitCode === 254 ? reason || errors.at(-1) : undefined;
    return {
      exitCode,
      signal,
      ...summary,
      durationMs,
      timedOut: forced || durationMs >= timeoutSeconds * 1000,
      artefactsDir: dir,
      command,
      localPort,
      mediaPort,
      stdout: stdout.text,
      stderr: stderr.text,
      errors,
      ...(fatal ? { fatal } : {}),
    };
  });

  return { child, localPort, mediaPort, dir, done, exited: () => exited, kill };
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGTERM: 15, SIGABRT: 6 };
  return numbers[signal] ?? 0;
}

/** Runs a scenario to completion. Rejects only when SIPp can't be found or refuses to run (scenario, options). */
export async function runSipp(opts: SippOptions): Promise<SippResult> {
  const launched = await launch(opts);
  return launched.done;
}

/**
 * Starts a scenario in the background (an agent phone) and resolves once SIPp listens on its SIP port
 * (its socket on that port, seen through /proc; where /proc can't tell, once it has been up for 300 ms),
 * or rejects if it exits first (SippScenarioError, SippStartError: e.g. the port is taken).
 */
export async function startSipp(opts: SippOptions): Promise<SippProcess> {
  const l = await launch(opts);
  // Keep an unobserved rejection from crashing the process; callers see it through result/stop().
  l.done.catch(() => undefined);
  const deadline = Date.now() + 10_000;
  const upSince = Date.now();
  for (;;) {
    if (l.exited()) {
      await l.done; // rejects with the start error when it never ran
      break; // it ran and already finished (possible with -m and a fast peer)
    }
    const bound = l.child.pid === undefined ? undefined : await udpPortBoundBy(l.child.pid, l.localPort);
    if (bound === true || (bound === undefined && Date.now() - upSince >= 300)) {
      // Give SIPp a moment past bind() to reach its main loop, and catch an immediate exit.
      await new Promise((r) => setTimeout(r, 50));
      if (l.exited()) await l.done;
      break;
    }
    if (Date.now() > deadline) {
      l.kill('SIGKILL');
      await l.done.catch(() => undefined);
      throw new SippStartError(`SIPp did not bind UDP port ${l.localPort} within 10 s [artefacts: ${l.dir}]`, 'not listening', null, l.dir, '');
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const stop = async (graceMs = 5000): Promise<SippResult> => {
    const exitedWithin = (ms: number): Promise<boolean> =>
      Promise.race([l.done.then(() => true, () => true), new Promise<false>((r) => setTimeout(() => r(false), ms).unref())]);
    if (!l.exited()) {
      l.kill('SIGUSR1'); // soft quit: no new calls, calls in progress run to their end
      if (!(await exitedWithin(graceMs))) {
        l.kill('SIGTERM'); // exit now, with final stats
        if (!(await exitedWithin(3000))) l.kill('SIGKILL');
      }
    }
    return l.done;
  };
  return { localPort: l.localPort, mediaPort: l.mediaPort, artefactsDir: l.dir, result: l.done, stop };
}
