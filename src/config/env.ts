/**
 * Service configuration, read once from the environment, validated, typed and frozen.
 * A wrong value stops start-up with one line naming the variable (ConfigError).
 */
import os from 'node:os';
import path from 'node:path';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type NodeEnv = 'development' | 'production' | 'test';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  nodeEnv: NodeEnv;
  host: string;
  port: number;
  logLevel: LogLevel;
  databaseUrl: string;
  /** every PostgreSQL query's limit, client and server side (DB_QUERY_TIMEOUT_SECONDS, ms here) */
  dbQueryTimeoutMs: number;
  /**
   * the record outbox (src/db/outbox.ts): record writes PostgreSQL does not take within directTimeoutMs are kept
   * in files under dir (OUTBOX_DIR) and replayed when it answers; a restarted process replays what is left there
   */
  outbox: { dir: string; directTimeoutMs: number; batchMs: number };
  redisUrl: string;
  /** prefix of every Redis key and BullMQ queue of this deployment */
  redisPrefix: string;
  /** client: which ARI adapter (ARI_CLIENT): ari-client (src/ari/client.ts) or thin (src/ari/thin-client.ts, node:http + ws) */
  /** rest: where the thin client sends REST requests (ARI_REST): http (keep-alive pool) or websocket (Asterisk 22's REST over WebSocket) */
  ari: { url: string; user: string; password: string; app: string; startupTimeoutMs: number; requestTimeoutMs: number; client: 'ari-client' | 'thin'; rest: 'http' | 'websocket' };
  admin: { user: string; password: string };
  tokenTtlHours: number;
  /** failed sign-ins allowed per user name / per client address within loginFailureWindowSeconds, then 429 */
  loginMaxFailures: number;
  loginMaxFailuresPerAddress: number;
  loginFailureWindowSeconds: number;
  /** how often every process sweeps the breaks (due ones end, deferred ones start) */
  breakSweepSeconds: number;
  /** agents with this skill ring in the dialplan's fallback while no process is connected (FALLBACK_SKILL) */
  fallbackSkill: string;
  /** how often the supervisors' live view (queue.stats, agent.board) is pushed when it changed (ms) */
  liveViewPushMs: number;
  /** SIGTERM with no standby: how long the stopping process lets its calls finish (new ones go to the fallback) */
  drainSeconds: number;
  /** the leader's lease (active-standby): a dead leader is replaced about two of these after its last renewal */
  haLeaseMs: number;
  /** the wallboard (/wallboard, GET /api/v1/wallboard): its read-only key (WALLBOARD_KEY, null: tokens only) and longest-wait colours */
  wallboard: { key: string | null; amberSeconds: number; redSeconds: number };
  /** the skill queues file operators edit (reloaded on change) */
  queuesFile: string;
  /** the folder of the IVR files operators edit: lines.yaml, ivr/, prompts/, holidays.yaml (reloaded on change) */
  ivrDir: string;
  /** longest voicemail message, seconds */
  voicemailMaxSeconds: number;
  /** a caller who called within this many days is offered first to the agent of its last answered call (0 = off) */
  repeatCallerDays: number;
  /** handle time assumed for estimated waits (seconds) */
  defaultHandleSeconds: number;
  callback: {
    /** dial string for a citizen's number, `{number}` replaced: the outbound trunk */
    dial: string;
    /** the number citizens see when the hotline calls them back */
    callerId: string;
    ringSeconds: number;
    maxAttempts: number;
    /** calling hours in Asia/Shanghai (CALLBACK_HOURS, e.g. 08:00-21:00): minutes after local midnight, end exclusive */
    hours: { startMinute: number; endMinute: number };
    /** a closed ticket's callback must be made within this many seconds of the closure (CALLBACK_DEADLINE_SECONDS, 24 h) */
    deadlineSeconds: number;
    /** waits between attempts of an automated callback, the last one repeated (CALLBACK_RETRY_SECONDS, e.g. 600,1800,3600) */
    retrySeconds: number[];
    /** supervisors are alerted when a callback is still open this long before its deadline (4 h) */
    overdueAlertSeconds: number;
    /** how often the callbacks sweep runs (due callbacks to jobs, alerts, deadlines, Redis loss) */
    sweepSeconds: number;
  };
  /** the ticket system's webhook (POST /api/v1/tickets/events) */
  tickets: {
    /** HMAC-SHA256 key of X-Signature (TICKET_WEBHOOK_SECRET) */
    webhookSecret: string;
    /** the queue whose agents make the callbacks owed for closed tickets (TICKET_CALLBACK_QUEUE) */
    callbackQueue: string;
  };
  /** the SMSC (SMPP); the service runs without one, sends fail until it is bound */
  smpp: { url: string; systemId: string; password: string; sourceAddr: string };
  /** call recordings are deleted (Asterisk's file, the index row marked purged) this many days after they started */
  recordingRetentionDays: number;
  /** how often the leader finishes recordings left `recording` after their call ended (src/recordings/sweep.ts) */
  recordingsSweepSeconds: number;
  /** FCR from calls: a consultation is not resolved when the same number calls the same line again within this many days (docs/kpi.md) */
  fcrRepeatDays: number;
  /** every 15-minute KPI rollup re-rolls this many hours back (late events: src/kpi/rollup.ts) */
  kpiReconcileHours: number;
  sms: {
    /** the SMS templates operators edit (reloaded on change) */
    templatesFile: string;
    /** most numbers in one send */
    bulkMax: number;
  };
}

/** the largest SMS_BULK_MAX: the API's hard cap on numbers per request */
export const SMS_BULK_LIMIT = 1000;

type Env = Record<string, string | undefined>;

const DEV_DEFAULTS = {
  ARI_PASSWORD: 'hotline-dev',
  HOTLINE_ADMIN_USER: 'admin',
  HOTLINE_ADMIN_PASSWORD: 'admin',
  SMPP_PASSWORD: 'hotline-dev',
  TICKET_WEBHOOK_SECRET: 'dev-ticket-secret',
};

function str(env: Env, name: string, fallback: string): string {
  const v = env[name];
  return v === undefined || v === '' ? fallback : v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const v = str(env, name, fallback);
  if (!(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${v}"`);
  }
  return v as T;
}

function url(env: Env, name: string, fallback: string, protocols: string[]): string {
  const v = str(env, name, fallback);
  let parsed: URL;
  try {
    parsed = new URL(v);
  } catch {
    throw new ConfigError(`${name} is not a valid URL: "${redact(v)}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}, got "${redact(v)}"`);
  }
  if (!parsed.hostname) throw new ConfigError(`${name} has no host: "${redact(v)}"`);
  return v;
}

/** 'HH:MM-HH:MM' (local time, start before end, end exclusive; 24:00 allowed as an end) -> minutes after midnight */
/** a comma-separated list of whole numbers, each within min..max */
function intList(env: Env, name: string, fallback: string, min: number, max: number): number[] {
  const raw = (env[name] ?? fallback).trim();
  const parts = raw.split(',').map((x) => x.trim());
  if (parts.length === 0 || parts.length > 20 || parts.some((x) => !/^\d+$/.test(x) || Number(x) < min || Number(x) > max)) {
    throw new ConfigError(`${name} must be whole numbers from ${min} to ${max}, separated by commas (e.g. ${fallback}), got "${raw}"`);
  }
  return parts.map(Number);
}

function callingHours(env: Env, name: string, fallback: string): { startMinute: number; endMinute: number } {
  const v = str(env, name, fallback);
  const m = /^(\d{2}):(\d{2})-(\d{2}):(\d{2})$/.exec(v.trim());
  const start = m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
  const end = m ? Number(m[3]) * 60 + Number(m[4]) : NaN;
  if (!m || Number(m[2]) > 59 || Number(m[4]) > 59 || !(start >= 0 && start < end && end <= 24 * 60)) {
    throw new ConfigError(`${name} must be HH:MM-HH:MM with the start before the end (e.g. 08:00-21:00), got "${v}"`);
  }
  return { startMinute: start, endMinute: end };
}

/** hide a password inside a URL before it reaches a message or a log */
export function redact(u: string): string {
  return u.replace(/\/\/([^:/@]+):([^@]+)@/, '//$1:***@');
}

export function loadConfig(env: Env = process.env): Readonly<Config> {
  const nodeEnv = oneOf(env, 'NODE_ENV', ['development', 'production', 'test'] as const, 'development');
  const config: Config = {
    nodeEnv,
    host: str(env, 'HOST', '127.0.0.1'),
    port: int(env, 'PORT', 3000, 0, 65535),
    logLevel: oneOf(env, 'LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
    databaseUrl: url(env, 'DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/hotline', ['postgres:', 'postgresql:']),
    dbQueryTimeoutMs: int(env, 'DB_QUERY_TIMEOUT_SECONDS', 30, 5, 3600) * 1000,
    outbox: Object.freeze({
      dir: path.resolve(str(env, 'OUTBOX_DIR', nodeEnv === 'production' ? '/var/lib/hotline/outbox' : path.join(os.tmpdir(), 'hotline-outbox'))),
      directTimeoutMs: int(env, 'OUTBOX_DIRECT_TIMEOUT_MS', 2000, 100, 30000),
      batchMs: int(env, 'OUTBOX_BATCH_MS', 10, 0, 1000),
    }),
    redisUrl: url(env, 'REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    redisPrefix: str(env, 'REDIS_PREFIX', 'hotline'),
    ari: {
      url: url(env, 'ARI_URL', 'http://127.0.0.1:8088', ['http:', 'https:']),
      user: str(env, 'ARI_USER', 'hotline'),
      password: str(env, 'ARI_PASSWORD', DEV_DEFAULTS.ARI_PASSWORD),
      app: str(env, 'ARI_APP', 'hotline'),
      startupTimeoutMs: int(env, 'ARI_STARTUP_TIMEOUT_SECONDS', 30, 0, 3600) * 1000,
      requestTimeoutMs: int(env, 'ARI_REQUEST_TIMEOUT_MS', 5000, 100, 60000),
      client: oneOf(env, 'ARI_CLIENT', ['ari-client', 'thin'] as const, 'thin'),
      rest: oneOf(env, 'ARI_REST', ['http', 'websocket'] as const, 'http'),
    },
    admin: {
      user: str(env, 'HOTLINE_ADMIN_USER', DEV_DEFAULTS.HOTLINE_ADMIN_USER),
      password: str(env, 'HOTLINE_ADMIN_PASSWORD', DEV_DEFAULTS.HOTLINE_ADMIN_PASSWORD),
    },
    tokenTtlHours: int(env, 'TOKEN_TTL_HOURS', 12, 1, 24 * 30),
    loginMaxFailures: int(env, 'LOGIN_MAX_FAILURES', 5, 1, 1000),
    loginMaxFailuresPerAddress: int(env, 'LOGIN_MAX_FAILURES_PER_ADDRESS', 50, 1, 100000),
    loginFailureWindowSeconds: int(env, 'LOGIN_FAILURE_WINDOW_SECONDS', 300, 1, 86400),
    breakSweepSeconds: int(env, 'BREAK_SWEEP_SECONDS', 5, 1, 300),
    liveViewPushMs: int(env, 'LIVE_VIEW_PUSH_MS', 1000, 200, 60000),
    drainSeconds: int(env, 'DRAIN_SECONDS', 20, 0, 3600),
    haLeaseMs: int(env, 'HA_LEASE_MS', 3000, 1000, 60000),
    fallbackSkill: str(env, 'FALLBACK_SKILL', 'general'),
    wallboard: {
      key: str(env, 'WALLBOARD_KEY', '') || null,
      amberSeconds: int(env, 'WALLBOARD_AMBER_SECONDS', 30, 1, 3600),
      redSeconds: int(env, 'WALLBOARD_RED_SECONDS', 60, 1, 3600),
    },
    queuesFile: str(env, 'QUEUES_FILE', 'config/queues.yaml'),
    ivrDir: str(env, 'IVR_DIR', 'config'),
    voicemailMaxSeconds: int(env, 'VOICEMAIL_MAX_SECONDS', 120, 10, 600),
    repeatCallerDays: int(env, 'REPEAT_CALLER_DAYS', 3, 0, 365),
    defaultHandleSeconds: int(env, 'DEFAULT_HANDLE_SECONDS', 180, 10, 3600),
    callback: {
      dial: str(env, 'CALLBACK_DIAL', 'PJSIP/callers/sip:{number}@127.0.0.1:5099'),
      callerId: str(env, 'CALLBACK_CALLER_ID', '12345'),
      ringSeconds: int(env, 'CALLBACK_RING_SECONDS', 30, 5, 120),
      maxAttempts: int(env, 'CALLBACK_MAX_ATTEMPTS', 3, 1, 10),
      hours: callingHours(env, 'CALLBACK_HOURS', '08:00-21:00'),
      deadlineSeconds: int(env, 'CALLBACK_DEADLINE_SECONDS', 86400, 10, 7 * 86400),
      retrySeconds: intList(env, 'CALLBACK_RETRY_SECONDS', '600,1800,3600', 1, 86400),
      overdueAlertSeconds: int(env, 'CALLBACK_OVERDUE_ALERT_SECONDS', 4 * 3600, 0, 7 * 86400),
      sweepSeconds: int(env, 'CALLBACK_SWEEP_SECONDS', 15, 1, 3600),
    },
    tickets: {
      webhookSecret: str(env, 'TICKET_WEBHOOK_SECRET', DEV_DEFAULTS.TICKET_WEBHOOK_SECRET),
      callbackQueue: str(env, 'TICKET_CALLBACK_QUEUE', 'general'),
    },
    smpp: {
      url: url(env, 'SMPP_URL', 'smpp://127.0.0.1:2775', ['smpp:', 'ssmpp:']),
      systemId: str(env, 'SMPP_SYSTEM_ID', 'hotline'),
      password: str(env, 'SMPP_PASSWORD', DEV_DEFAULTS.SMPP_PASSWORD),
      sourceAddr: str(env, 'SMS_SOURCE_ADDR', '12345'),
    },
    recordingRetentionDays: int(env, 'RECORDING_RETENTION_DAYS', 180, 1, 3650),
    recordingsSweepSeconds: int(env, 'RECORDINGS_SWEEP_SECONDS', 15, 1, 3600),
    fcrRepeatDays: int(env, 'FCR_REPEAT_DAYS', 3, 1, 90),
    kpiReconcileHours: int(env, 'KPI_RECONCILE_HOURS', 3, 1, 48),
    sms: {
      templatesFile: str(env, 'SMS_TEMPLATES_FILE', 'config/sms-templates.yaml'),
      bulkMax: int(env, 'SMS_BULK_MAX', 200, 1, SMS_BULK_LIMIT),
    },
  };
  if (!config.callback.dial.includes('{number}') || !/^(PJSIP|Local)\//.test(config.callback.dial)) {
    throw new ConfigError(`CALLBACK_DIAL must be a PJSIP/ or Local/ dial string containing {number}, got "${config.callback.dial}"`);
  }
  if (config.wallboard.key !== null && !/^[\x21-\x7e]{16,256}$/.test(config.wallboard.key)) throw new ConfigError('WALLBOARD_KEY must be 16 to 256 printable ASCII characters without spaces (it opens the wallboard to whoever has it)');
  if (config.wallboard.redSeconds <= config.wallboard.amberSeconds) throw new ConfigError(`WALLBOARD_RED_SECONDS (${config.wallboard.redSeconds}) must be more than WALLBOARD_AMBER_SECONDS (${config.wallboard.amberSeconds})`);
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(config.ari.app)) throw new ConfigError(`ARI_APP must be a simple name, got "${config.ari.app}"`);
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(config.redisPrefix)) throw new ConfigError(`REDIS_PREFIX must be a simple name, got "${config.redisPrefix}"`);
  // SMPP 3.4: system_id is at most 15 characters, source_addr 20 (alphanumeric senders 11)
  if (!/^[\x21-\x7e]{1,15}$/.test(config.smpp.systemId)) throw new ConfigError(`SMPP_SYSTEM_ID must be 1 to 15 printable ASCII characters, got "${config.smpp.systemId}"`);
  if (!/^(\d{1,20}|[A-Za-z0-9]{1,11})$/.test(config.smpp.sourceAddr)) throw new ConfigError(`SMS_SOURCE_ADDR must be up to 20 digits or 11 letters and digits, got "${config.smpp.sourceAddr}"`);
  if (nodeEnv === 'production') {
    if (config.ari.password === DEV_DEFAULTS.ARI_PASSWORD) throw new ConfigError('ARI_PASSWORD must be set in production (the development default is refused)');
    if (config.ari.password.length < 16) throw new ConfigError('ARI_PASSWORD must have at least 16 characters in production');
    if (config.admin.user === DEV_DEFAULTS.HOTLINE_ADMIN_USER && config.admin.password === DEV_DEFAULTS.HOTLINE_ADMIN_PASSWORD) {
      throw new ConfigError('HOTLINE_ADMIN_USER and HOTLINE_ADMIN_PASSWORD must be set in production (admin/admin is refused)');
    }
    if (config.admin.password.length < 12) throw new ConfigError('HOTLINE_ADMIN_PASSWORD must have at least 12 characters in production');
    if (config.smpp.password === DEV_DEFAULTS.SMPP_PASSWORD) throw new ConfigError('SMPP_PASSWORD must be set in production (the development default is refused)');
    if (config.tickets.webhookSecret === DEV_DEFAULTS.TICKET_WEBHOOK_SECRET) throw new ConfigError('TICKET_WEBHOOK_SECRET must be set in production (the development default is refused)');
    if (config.tickets.webhookSecret.length < 16) throw new ConfigError('TICKET_WEBHOOK_SECRET must have at least 16 characters in production');
  }
  return Object.freeze({ ...config, ari: Object.freeze(config.ari), admin: Object.freeze(config.admin), callback: Object.freeze({ ...config.callback, hours: Object.freeze(config.callback.hours), retrySeconds: Object.freeze([...config.callback.retrySeconds]) as number[] }), tickets: Object.freeze(config.tickets), wallboard: Object.freeze(config.wallboard), smpp: Object.freeze(config.smpp), sms: Object.freeze(config.sms) });
}
