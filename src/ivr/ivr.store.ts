/**
 * The IVR configuration in force: loaded at start (a broken set stops start-up with `file:line: ...`),
 * reloaded when an operator saves a file or calls POST /api/v1/ivr/reload. A broken set is refused whole
 * and the last good version keeps serving; the problems stay visible in status() until a good set loads.
 * A call takes the snapshot current() returned when it arrived and finishes its flow on that version.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Logger } from 'pino';
import type { QueuesConfigStore } from '../acd/queues.config.js';
import { watchPaths } from '../shared/watch.js';
import { IvrConfigError, loadIvrConfig, type IvrConfig, type Line, type MaintenanceFlag } from './ivr.config.js';

export interface IvrStatus {
  configDir: string;
  /** one version for the whole set: what a call's record names */
  version: string | null;
  loadedAt: string | null;
  files: Array<{ file: string; version: string }>;
  lines: number;
  flows: number;
  lastError: { at: string; problems: string[] } | null;
}

export type ReloadResult = { ok: true; version: string; changed: boolean } | { ok: false; problems: string[] };

export interface IvrStore {
  current(): IvrConfig & { version: string };
  /** the line a dialed number reaches (the default line for numbers lines.yaml does not list) */
  lineFor(dialed: string): { line: Line; listed: boolean };
  reload(): ReloadResult;
  status(): IvrStatus;
  /** maintenance switched on in lines.yaml (the API's switch lives in PostgreSQL) */
  maintenanceFlags(): { global: MaintenanceFlag | null; lines: ReadonlyMap<string, MaintenanceFlag> };
  /** a Mandarin prompt with this id exists (maintenance messages are prompt ids) */
  promptExists(id: string): boolean;
  onReload(fn: (version: string) => void): void;
  close(): void;
}

function versionOf(files: Map<string, string>): string {
  const h = createHash('sha256');
  for (const [f, v] of [...files].sort(([a], [b]) => a.localeCompare(b))) h.update(`${f}=${v}\n`);
  return h.digest('hex').slice(0, 12);
}

/** loads now; throws IvrConfigError when the first load fails (the service cannot answer calls without flows) */
export function createIvrStore(configDir: string, queues: QueuesConfigStore, log: Logger, opts: { watch?: boolean } = {}): IvrStore {
  let cfg: (IvrConfig & { version: string }) | null = null;
  let loadedAt: Date | null = null;
  let lastError: IvrStatus['lastError'] = null;
  const listeners: Array<(version: string) => void> = [];

  function reload(): ReloadResult {
    let next: IvrConfig;
    try {
      next = loadIvrConfig(configDir, new Set(queues.all().map((q) => q.id)));
    } catch (err) {
      const problems = err instanceof IvrConfigError ? err.problems : [`unexpected: ${(err as Error).message}`];
      lastError = { at: new Date().toISOString(), problems };
      if (cfg) log.error({ problems, serving: cfg.version }, 'IVR files refused; the last good version keeps serving');
      return { ok: false, problems };
    }
    const version = versionOf(next.files);
    lastError = null;
    if (cfg?.version === version) return { ok: true, version, changed: false };
    cfg = Object.assign(next, { version });
    loadedAt = new Date();
    log.info({ version, lines: next.lines.size, flows: next.flows.size }, 'IVR configuration loaded');
    for (const fn of listeners) {
      try {
        fn(version);
      } catch (err) {
        log.warn({ err }, 'IVR reload listener failed');
      }
    }
    return { ok: true, version, changed: true };
  }

  const first = reload();
  if (!first.ok) throw new IvrConfigError(first.problems);
  // a queue removed from queues.yaml can leave a flow pointing nowhere: re-check the flows then
  queues.onReload(() => {
    const r = reload();
    if (!r.ok) log.error({ problems: r.problems }, 'after the queues reload the IVR files no longer check; the last good version keeps serving');
  });
  const unwatch =
    opts.watch === false
      ? () => undefined
      : watchPaths([configDir, path.join(configDir, 'ivr'), path.join(configDir, 'prompts')], () => void reload(), log);

  const current = () => cfg!;
  return {
    current,
    lineFor(dialed) {
      const c = current();
      const line = c.lines.get(dialed);
      return line ? { line, listed: true } : { line: c.lines.get(c.defaultLine)!, listed: false };
    },
    reload,
    status: () => ({
      configDir,
      version: cfg?.version ?? null,
      loadedAt: loadedAt?.toISOString() ?? null,
      files: cfg ? [...cfg.files].sort(([a], [b]) => a.localeCompare(b)).map(([file, version]) => ({ file, version })) : [],
      lines: cfg?.lines.size ?? 0,
      flows: cfg?.flows.size ?? 0,
      lastError,
    }),
    maintenanceFlags() {
      const c = current();
      const lines = new Map<string, MaintenanceFlag>();
      for (const l of c.lines.values()) if (l.maintenance) lines.set(l.number, l.maintenance);
      return { global: c.maintenance, lines };
    },
    promptExists: (id) => current().prompts.get('zh')?.has(id) ?? false,
    onReload: (fn) => void listeners.push(fn),
    close: unwatch,
  };
}
