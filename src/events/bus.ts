/**
 * Live events for desktops, supervisors and the wallboard (`WS /api/v1/events`): any process publishes,
 * every process's WebSocket hub delivers to the sockets the audience allows. Redis pub/sub carries them
 * (live state only: a desktop that reconnects reads the REST snapshots; PostgreSQL keeps the records).
 * Message shape on the socket: `{ type, at, data }` (../shared/API.md).
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

export interface EventBus {
  /** fire and forget: a live event that cannot be published is logged, never fails the caller */
  publish(type: LiveEventType, data: Record<string, unknown>, audience: Audience): void;
  /** every event published by any process (the WebSocket hub); returns the unsubscribe function */
  subscribe(handler: (e: LiveEvent) => void): () => void;
  close(): Promise<void>;
}

/** subscriber: a connection of its own in subscribe mode (it may be shared with other subscribers) */
export async function createEventBus(deps: { redis: Redis; subscriber: Redis; keys: Keys; log: Logger }): Promise<EventBus> {
  const channel = deps.keys.eventsChannel();
  const handlers = new Set<(e: LiveEvent) => void>();
  const log = deps.log.child({ module: 'events' });
  const onMessage = (ch: string, message: string) => {
    if (ch !== channel) return;
    let e: LiveEvent;
    try {
      e = JSON.parse(message) as LiveEvent;
    } catch {
      log.warn('unreadable live event dropped');
      return;
    }
    for (const h of handlers) {
      try {
        h(e);
      } catch (err) {
        log.warn({ err }, 'live event handler failed');
      }
    }
  };
  deps.subscriber.on('message', onMessage);
  await deps.subscriber.subscribe(channel);
  return {
    publish(type, data, audience) {
      const e: LiveEvent = { type, at: new Date().toISOString(), data, audience };
      deps.redis.publish(channel, JSON.stringify(e)).catch((err: Error) => log.warn({ err: err.message, type }, 'live event not published'));
    },
    subscribe(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    async close() {
      handlers.clear();
      deps.subscriber.off('message', onMessage);
      await deps.subscriber.unsubscribe(channel).catch(() => undefined);
    },
  };
}
