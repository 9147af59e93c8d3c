/**
 * config/queues.yaml: the skill queues, edited by operators. Parsed and validated as a whole: a file
 * with any error is refused with a message naming the place (`queues.en.stages[1].afterSeconds ...`)
 * and the last good version stays in force. Reloaded when the file changes.
 */
import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Logger } from 'pino';
import { watchPaths } from '../shared/watch.js';
import { parseOperatorYaml, readOperatorFile } from '../shared/yaml.js';
import type { Stage } from './engine.js';

const Name = Type.String({ minLength: 1, maxLength: 64 });
const SkillName = Type.String({ pattern: '^[a-z0-9_-]{1,32}$' });
const Need = Type.Object({ skill: SkillName, minLevel: Type.Integer({ minimum: 1, maximum: 9 }) }, { additionalProperties: false });
const StageSchema = Type.Object(
  { afterSeconds: Type.Integer({ minimum: 0, maximum: 86400 }), needs: Type.Array(Need, { minItems: 1, maxItems: 10 }) },
  { additionalProperties: false },
);
const MaxWait = Type.Object(
  { seconds: Type.Integer({ minimum: 10, maximum: 86400 }), action: Type.Union([Type.Literal('callback'), Type.Literal('hangup')]) },
  { additionalProperties: false },
);
const Overflow = Type.Object({ afterSeconds: Type.Integer({ minimum: 1, maximum: 86400 }), queue: Name }, { additionalProperties: false });
const CallbackOffer = Type.Object(
  { afterSeconds: Type.Integer({ minimum: 0, maximum: 86400 }), key: Type.String({ pattern: '^[0-9*#]$' }) },
  { additionalProperties: false },
);
const Tunables = {
  callbackOffer: Type.Optional(Type.Union([CallbackOffer, Type.Null()])),
  ringSeconds: Type.Optional(Type.Integer({ minimum: 5, maximum: 120 })),
  wrapUpSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 })),
  serviceLevelSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
  announceEverySeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 })),
  moh: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,32}$' })),
  maxWait: Type.Optional(MaxWait),
  /** who calls citizens back about their closed tickets: an automated call (summary + survey) or an agent in outbound mode */
  ticketCallbacks: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('agent')])),
};
const QueueSchema = Type.Object(
  {
    name: Type.Optional(Name),
    skill: Type.Optional(SkillName),
    stages: Type.Optional(Type.Array(StageSchema, { minItems: 1, maxItems: 10 })),
    overflow: Type.Optional(Overflow),
    ...Tunables,
  },
  { additionalProperties: false },
);
const FileSchema = Type.Object(
  {
    defaults: Type.Optional(Type.Object(Tunables, { additionalProperties: false })),
    queues: Type.Record(Type.String({ pattern: '^[a-z0-9_-]{1,32}$' }), QueueSchema),
  },
  { additionalProperties: false },
);
type QueuesFile = Static<typeof FileSchema>;

export interface QueueConfig {
  id: string;
  name: string;
  stages: Stage[];
  ringSeconds: number;
  wrapUpSeconds: number;
  serviceLevelSeconds: number;
  announceEverySeconds: number;
  moh: string;
  overflow: { afterSeconds: number; queue: string } | null;
  maxWait: { seconds: number; action: 'callback' | 'hangup' };
  /** after afterSeconds of waiting the caller is offered to press key and be called back, keeping its place; null = never */
  callbackOffer: { afterSeconds: number; key: string } | null;
  /** closed tickets' callbacks of this queue: `auto` (an automated call plays the summary and the survey) or `agent` */
  ticketCallbacks: 'auto' | 'agent';
}

export class QueuesConfigError extends Error {
  override name = 'QueuesConfigError';
}

const BUILT_IN = { callbackOffer: null, ringSeconds: 15, wrapUpSeconds: 10, serviceLevelSeconds: 20, announceEverySeconds: 45, moh: 'default', maxWait: { seconds: 900, action: 'callback' as const } };

function where(path: string): string {
  // TypeBox paths look like /queues/en/stages/1/afterSeconds
  const parts = path.split('/').filter(Boolean);
  return parts.reduce((acc, part, i) => {
    const inArray = /^\d+$/.test(part) && (parts[i - 1] === 'stages' || parts[i - 1] === 'needs');
    return inArray ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part;
  }, '');
}

/** parse and check the whole file; throws QueuesConfigError naming the first problem */
export function parseQueues(text: string): Map<string, QueueConfig> {
  const doc = parseOperatorYaml(text, (m) => new QueuesConfigError(m));
  if (!Value.Check(FileSchema, doc)) {
    const first = [...Value.Errors(FileSchema, doc)][0];
    throw new QueuesConfigError(first ? `${where(first.path) || 'file'}: ${first.message}` : 'invalid file');
  }
  const file = doc as QueuesFile;
  const defaults = { ...BUILT_IN, ...(file.defaults ?? {}) };
  const out = new Map<string, QueueConfig>();
  for (const [id, q] of Object.entries(file.queues)) {
    if (q.skill && q.stages) throw new QueuesConfigError(`queues.${id}: give either skill or stages, not both`);
    if (!q.skill && !q.stages) throw new QueuesConfigError(`queues.${id}: needs a skill or stages`);
    const stages: Stage[] = q.stages ? q.stages.map((s) => ({ afterSeconds: s.afterSeconds, needs: s.needs.map((n) => ({ ...n })) })) : [{ afterSeconds: 0, needs: [{ skill: q.skill!, minLevel: 1 }] }];
    if (stages[0]!.afterSeconds !== 0) throw new QueuesConfigError(`queues.${id}.stages[0].afterSeconds must be 0 (the first stage applies from the start)`);
    for (let i = 1; i < stages.length; i++) {
      if (stages[i]!.afterSeconds <= stages[i - 1]!.afterSeconds) throw new QueuesConfigError(`queues.${id}.stages[${i}].afterSeconds must be later than the stage before`);
    }
    out.set(id, {
      id,
      name: q.name ?? id,
      stages,
      ringSeconds: q.ringSeconds ?? defaults.ringSeconds,
      wrapUpSeconds: q.wrapUpSeconds ?? defaults.wrapUpSeconds,
      serviceLevelSeconds: q.serviceLevelSeconds ?? defaults.serviceLevelSeconds,
      announceEverySeconds: q.announceEverySeconds ?? defaults.announceEverySeconds,
      moh: q.moh ?? defaults.moh,
      overflow: q.overflow ?? null,
      maxWait: q.maxWait ?? defaults.maxWait,
      callbackOffer: q.callbackOffer !== undefined ? q.callbackOffer : (defaults.callbackOffer ?? null),
      ticketCallbacks: q.ticketCallbacks ?? defaults.ticketCallbacks ?? 'auto',
    });
  }
  for (const q of out.values()) {
    if (!q.overflow) continue;
    if (!out.has(q.overflow.queue)) throw new QueuesConfigError(`queues.${q.id}.overflow.queue: no queue "${q.overflow.queue}"`);
    // follow the overflow chain: it must end, or calls would circle between queues
    const seen = new Set([q.id]);
    for (let next = out.get(q.overflow.queue); next?.overflow; next = out.get(next.overflow.queue)) {
      if (seen.has(next.id)) throw new QueuesConfigError(`queues.${q.id}.overflow: overflow goes round in a circle through "${next.id}"`);
      seen.add(next.id);
    }
  }
  if (out.size === 0) throw new QueuesConfigError('queues: at least one queue is needed');
  return out;
}

export interface QueuesStatus {
  file: string;
  version: string | null;
  loadedAt: string | null;
  queues: number;
  lastError: { at: string; message: string } | null;
}

export interface QueuesConfigStore {
  get(id: string): QueueConfig | undefined;
  all(): QueueConfig[];
  /** re-read the file; the last good version stays when it has an error */
  reload(): { ok: true; version: string } | { ok: false; error: string };
  status(): QueuesStatus;
  /** called after every successful reload */
  onReload(fn: () => void): void;
  close(): void;
}

/** loads the file now (throws when the very first load fails: the service cannot route without queues) */
export function createQueuesConfig(file: string, log: Logger, opts: { watch?: boolean } = {}): QueuesConfigStore {
  let queues = new Map<string, QueueConfig>();
  let version: string | null = null;
  let loadedAt: Date | null = null;
  let lastError: { at: string; message: string } | null = null;
  const listeners: Array<() => void> = [];

  function reload(): { ok: true; version: string } | { ok: false; error: string } {
    let text: string;
    try {
      text = readOperatorFile(file);
    } catch (err) {
      const message = `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      lastError = { at: new Date().toISOString(), message };
      return { ok: false, error: message };
    }
    const hash = createHash('sha256').update(text).digest('hex').slice(0, 12);
    if (hash === version) return { ok: true, version: hash };
    try {
      queues = parseQueues(text);
    } catch (err) {
      const message = err instanceof QueuesConfigError ? err.message : `unexpected: ${(err as Error).message}`;
      lastError = { at: new Date().toISOString(), message };
      log.error({ file, error: message }, 'queues file refused; the last good version stays in force');
      return { ok: false, error: message };
    }
    version = hash;
    loadedAt = new Date();
    lastError = null;
    log.info({ file, version, queues: queues.size }, 'queues loaded');
    for (const fn of listeners) fn();
    return { ok: true, version: hash };
  }

  const first = reload();
  if (!first.ok) throw new QueuesConfigError(`${file}: ${first.error}`);

  const unwatch = opts.watch !== false ? watchPaths([file], () => void reload(), log) : () => undefined;

  return {
    get: (id) => queues.get(id),
    all: () => [...queues.values()],
    reload,
    status: () => ({ file, version, loadedAt: loadedAt?.toISOString() ?? null, queues: queues.size, lastError }),
    onReload: (fn) => void listeners.push(fn),
    close: unwatch,
  };
}
