/**
 * Maintenance mode: a line (or every line) taken out of service, so callers hear an announcement and may
 * leave a voicemail. Two switches combine: rows in PostgreSQL (PUT /api/v1/maintenance, the truth shared by
 * every process) and flags in lines.yaml (the IVR store). Every call asks effective() once, so the answer comes
 * from memory: the rows are loaded at start, reloaded when any process changes them (Redis pub/sub) and every
 * 10 s in case a message was lost. When PostgreSQL cannot be read the last known rows stay in force.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Db } from '../db/db.js';
import type { MaintenanceRow } from '../db/database.js';
import type { Keys } from '../redis/keys.js';
import { badRequest } from '../shared/errors.js';

import type { MaintenanceFlag } from '../ivr/ivr.config.js';

export type { MaintenanceFlag };

/** maintenance switched in the config files (lines.yaml), supplied by the IVR store */
export interface MaintenanceFlags {
  global: MaintenanceFlag | null;
  lines: ReadonlyMap<string, MaintenanceFlag>;
}

/** what a call to a line gets now */
export interface EffectiveMaintenance {
  source: 'api' | 'config';
  scope: 'global' | 'line';
  message: string | null;
  allowVoicemail: boolean;
}

export interface MaintenanceSwitch extends MaintenanceFlag {
  updatedBy: string;
  updatedAt: string;
}
export interface MaintenanceSnapshot {
  /** the API's switch for every line */
  global: MaintenanceSwitch | null;
  /** the API's switches of single lines */
  lines: Array<{ line: string } & MaintenanceSwitch>;
  /** what lines.yaml says */
  config: { global: MaintenanceFlag | null; lines: Array<{ line: string } & MaintenanceFlag> };
}

export interface MaintenanceInput {
  enabled: boolean;
  /** the lines to switch; none: every line (the global switch) */
  lines?: string[];
  message?: string | null;
  allowVoicemail: boolean;
}

export interface MaintenanceDeps {
  db: Db;
  redis: Redis;
  /** a connection of its own in subscribe mode (may be shared with other subscribers: messages are filtered by channel) */
  subscriber: Redis;
  keys: Keys;
  log: Logger;
  configFlags: () => MaintenanceFlags;
  promptExists: (id: string) => boolean;
  /** the safety-net reload period (default 10 s) */
  reloadEveryMs?: number;
}

const GLOBAL_SCOPE = '*';

/** the flag that applies to a line on one side (API or config): an enabled line flag, else an enabled global flag */
function pick(line: MaintenanceFlag | null | undefined, global: MaintenanceFlag | null | undefined): { scope: 'line' | 'global'; flag: MaintenanceFlag } | null {
  if (line?.enabled) return { scope: 'line', flag: line };
  if (global?.enabled) return { scope: 'global', flag: global };
  return null;
}

const toFlag = (r: MaintenanceRow): MaintenanceFlag => ({ enabled: r.enabled, message: r.message, allowVoicemail: r.allow_voicemail });
const toSwitch = (r: MaintenanceRow): MaintenanceSwitch => ({ ...toFlag(r), updatedBy: r.updated_by, updatedAt: r.updated_at.toISOString() });

export class MaintenanceState {
  private rows = new Map<string, MaintenanceRow>();
  /** bumped by every set(): a reload that started before it must not overwrite what it applied */
  private localWrites = 0;
  private loading: Promise<void> | null = null;
  private loadAgain = false;
  private failing = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private subscribed = false;
  private readonly instance = randomUUID();
  private readonly channel: string;
  private readonly log: Logger;

  constructor(private readonly deps: MaintenanceDeps) {
    this.channel = deps.keys.maintenanceChannel();
    this.log = deps.log.child({ module: 'maintenance' });
  }

  /** loads the rows (throws when PostgreSQL cannot be read at start), then follows changes */
  async start(): Promise<void> {
    this.stopped = false;
    this.rows = await this.query();
    this.deps.subscriber.on('message', this.onMessage);
    // a message lost while the subscriber was reconnecting is made up for at once
    this.deps.subscriber.on('ready', this.onReady);
    await this.subscribe();
    this.timer = setInterval(() => void this.refresh(), this.deps.reloadEveryMs ?? 10_000);
    this.timer.unref();
    const on = [...this.rows.values()].filter((r) => r.enabled).map((r) => r.scope);
    if (on.length) this.log.warn({ scopes: on }, 'maintenance is on');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.deps.subscriber.off('message', this.onMessage);
    this.deps.subscriber.off('ready', this.onReady);
    if (this.subscribed) {
      this.subscribed = false;
      await this.deps.subscriber.unsubscribe(this.channel).catch((err: Error) => this.log.warn({ err: err.message }, 'maintenance unsubscribe failed'));
    }
    await this.loading?.catch(() => undefined);
  }

  /**
   * What a call to this line (the line's number in lines.yaml) gets now; null when the line is in service.
   * On each side an enabled line switch wins over an enabled global one (a switched-off line switch does not exempt
   * the line from the global one). The line is in maintenance when the API or the config says so; when both do,
   * the API's message and allowVoicemail apply.
   */
  effective(line: string): EffectiveMaintenance | null {
    const cfg = this.deps.configFlags();
    const lineRow = this.rows.get(line);
    const globalRow = this.rows.get(GLOBAL_SCOPE);
    const api = pick(lineRow && toFlag(lineRow), globalRow && toFlag(globalRow));
    if (api) return { source: 'api', scope: api.scope, message: api.flag.message, allowVoicemail: api.flag.allowVoicemail };
    const conf = pick(cfg.lines.get(line), cfg.global);
    if (conf) return { source: 'config', scope: conf.scope, message: conf.flag.message, allowVoicemail: conf.flag.allowVoicemail };
    return null;
  }

  snapshot(): MaintenanceSnapshot {
    const cfg = this.deps.configFlags();
    const globalRow = this.rows.get(GLOBAL_SCOPE);
    return {
      global: globalRow ? toSwitch(globalRow) : null,
      lines: [...this.rows.values()]
        .filter((r) => r.scope !== GLOBAL_SCOPE)
        .sort((a, b) => a.scope.localeCompare(b.scope))
        .map((r) => ({ line: r.scope, ...toSwitch(r) })),
      config: {
        global: cfg.global ? { ...cfg.global } : null,
        lines: [...cfg.lines].sort(([a], [b]) => a.localeCompare(b)).map(([line, f]) => ({ line, ...f })),
      },
    };
  }

  /** switch maintenance for these lines (none: every line); stored, applied here at once, announced to every process */
  async set(input: MaintenanceInput, actor: string): Promise<void> {
    const message = input.message ?? null;
    if (message !== null && !this.deps.promptExists(message)) throw badRequest('unknown-prompt', `there is no prompt "${message}" (prompts/zh.yaml)`);
    const scopes = input.lines?.length ? [...new Set(input.lines)] : [GLOBAL_SCOPE];
    const now = new Date();
    const rows = await this.deps.db
      .insertInto('maintenance')
      .values(scopes.map((scope) => ({ scope, enabled: input.enabled, message, allow_voicemail: input.allowVoicemail, updated_by: actor, updated_at: now })))
      .onConflict((oc) =>
        oc.column('scope').doUpdateSet((eb) => ({
          enabled: eb.ref('excluded.enabled'),
          message: eb.ref('excluded.message'),
          allow_voicemail: eb.ref('excluded.allow_voicemail'),
          updated_by: eb.ref('excluded.updated_by'),
          updated_at: eb.ref('excluded.updated_at'),
        })),
      )
      .returningAll()
      .execute();
    this.localWrites++;
    const next = new Map(this.rows);
    for (const r of rows) next.set(r.scope, r);
    this.rows = next;
    this.log.warn({ scopes, enabled: input.enabled, message, allowVoicemail: input.allowVoicemail, actor }, `maintenance ${input.enabled ? 'on' : 'off'}`);
    try {
      await this.deps.redis.publish(this.channel, JSON.stringify({ from: this.instance, scopes }));
    } catch (err) {
      // stored anyway: the other processes see it at their next periodic reload
      this.log.warn({ err: (err as Error).message }, 'maintenance change not announced over Redis');
    }
  }

  private readonly onMessage = (channel: string, message: string): void => {
    if (channel !== this.channel || this.stopped) return;
    try {
      if ((JSON.parse(message) as { from?: string }).from === this.instance) return; // our own set(), applied already
    } catch {
      /* not ours to parse: reload anyway */
    }
    void this.refresh();
  };

  private readonly onReady = (): void => {
    if (this.stopped) return;
    if (!this.subscribed) void this.subscribe();
    void this.refresh();
  };

  private async subscribe(): Promise<void> {
    if (this.subscribed || this.stopped) return;
    this.subscribed = true;
    try {
      await this.deps.subscriber.subscribe(this.channel);
    } catch (err) {
      // not connected (no offline queue): onReady subscribes when the connection is back; meanwhile the periodic reload
      this.subscribed = false;
      this.log.warn({ err: (err as Error).message }, 'cannot subscribe to maintenance changes yet');
    }
  }

  /** reload from PostgreSQL; concurrent triggers fold into one more load after the running one */
  private refresh(): Promise<void> {
    if (this.loading) {
      this.loadAgain = true;
      return this.loading;
    }
    this.loading = (async () => {
      try {
        do {
          this.loadAgain = false;
          await this.loadOnce();
        } while (this.loadAgain && !this.stopped);
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  private async loadOnce(): Promise<void> {
    const writes = this.localWrites;
    let rows: Map<string, MaintenanceRow>;
    try {
      rows = await this.query();
    } catch (err) {
      if (!this.failing) this.log.error({ err: (err as Error).message }, 'cannot read maintenance switches; keeping the last known ones');
      this.failing = true;
      return;
    }
    if (this.failing) this.log.info('maintenance switches readable again');
    this.failing = false;
    // a set() in this process meanwhile is newer than what this query may have seen; its announcement reloads the others
    if (writes !== this.localWrites || this.stopped) return;
    this.rows = rows;
  }

  private async query(): Promise<Map<string, MaintenanceRow>> {
    const rows = await this.deps.db.selectFrom('maintenance').selectAll().execute();
    return new Map(rows.map((r) => [r.scope, r]));
  }
}
