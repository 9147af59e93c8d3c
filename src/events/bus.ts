/**
 * Live events for desktops, supervisors and the wallboard (`WS /api/v1/events`): any process publishes,
 * every process's WebSocket hub delivers to the sockets the audience allows. Redis pub/sub carries them
 * (live state only: a desktop that reconnects reads the REST snapshots; PostgreSQL keeps the records).
 * Message shape on the socket: `{ type, at, data }` (../shared/API.md).
 *
 * The events a process publishes within BATCH_MS go out as one Redis message (a JSON array, on the batch
 * channel), in order: a call's offer, its answer and its end each come with the agent's state change, and
 * under load several calls' events share a message. One PUBLISH instead of ~8 per call; at most BATCH_MS later
 * on the desktops. The single-event channel is still read, for a process of the version before during a
 * rolling upgrade.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Keys } from '../redis/keys.js';

export type LiveEventType =
  | 'call.offered'
  | 'call.answered'
  | 'call.ended'
  | 'call.held'
  | 'call.resumed'
  | 'call.transferred'
  | 'call.conference'
  | 'agent.state'
  | 'queue.stats'
  | 'break.requested'
  | 'break.approved'
  | 'break.rejected'
  | 'break.ended'
  | 'agent.board'
  | 'monitor.barge'
  | 'callback.overdue'
  | 'ivr.reload'
  | 'sms.status';

/** who may see an event: one agent (and every supervisor), or supervisors only, or everybody signed in */
export type Audience = { agentId: string } | { supervisors: true } | { everyone: true };

export interface LiveEvent {
  type: LiveEventType;
  at: string;
  data: Record<string, unknown>;
  audience: Audience;
}

/** how long a published event may wait for others to go in the same Redis message */
export const BATCH_MS = 5;
/** a message carries at most this many events (a burst is sent at once, without waiting BATCH_MS) */
const BATCH_MAX = 200;

export interface EventBus {
  /** fire and forget: a live event that cannot be published is logged, never fails the caller */
  publish(type: LiveEventType, data: Record<string, unknown>, audience: Audience): void;
  /** every event published by any process (the WebSocket hub); returns the unsubscribe function */
  subscribe(handler: (e: LiveEvent) => void): () => void;
  close(): Promise<void>;
}

/** subscriber: a connection of its own in subscribe mode (it may be shared with other subscribers) */
export async function createEventBus(deps: { redis: Redis; subscriber: Redis; keys: Keys; log: Logger }): Promise<EventBus> {
  const single = deps.keys.eventsChannel();
  const batches = deps.keys.eventsBatchChannel();
  const handlers = new Set<(e: LiveEvent) => void>();
  const log = deps.log.child({ module: 'events' });
  const deliver = (e: LiveEvent) => {
    for (const h of handlers) {
      try {
        h(e);
      } catch (err) {
        log.warn({ err }, 'live event handler failed');
      }
    }
  };
  const onMessage = (ch: string, message: string) => {
    if (ch !== batches && ch !== single) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      log.warn('unreadable live event dropped');
      return;
    }
    if (ch === single) deliver(parsed as LiveEvent);
    else if (Array.isArray(parsed)) for (const e of parsed as LiveEvent[]) deliver(e);
    else log.warn('live event batch that is not a list dropped');
  };
  deps.subscriber.on('message', onMessage);
  await deps.subscriber.subscribe(batches, single);

  let pending: LiveEvent[] = [];
  let timer: NodeJS.Timeout | null = null;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    deps.redis.publish(batches, JSON.stringify(batch)).catch((err: Error) => log.warn({ err: err.message, events: batch.length, types: [...new Set(batch.map((e) => e.type))] }, 'live events not published'));
  };
  return {
    publish(type, data, audience) {
      pending.push({ type, at: new Date().toISOString(), data, audience });
      if (pending.length >= BATCH_MAX) flush();
      else if (!timer) {
        timer = setTimeout(flush, BATCH_MS);
        timer.unref();
      }
    },
    subscribe(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    async close() {
      flush();
      handlers.clear();
      deps.subscriber.off('message', onMessage);
      await deps.subscriber.unsubscribe(batches, single).catch(() => undefined);
    },
  };
}
