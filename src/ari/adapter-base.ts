/**
 * What both ARI adapters (client.ts on ari-client, thin-client.ts on node:http + ws) do the same way: the
 * handlers of events and of the connection, the connection state, event dispatch (our util- channels kept
 * apart, ApplicationReplaced freezing the adapter), freeze and the start-up check. Each adapter brings its
 * own transport and says how to drop it (dropConnection).
 */
import type { Logger } from 'pino';
import type { AriEvent, ConnectionState } from './port.js';
import { UTIL_PREFIX, probe, toEvent, type AriClientOptions } from './common.js';

export abstract class AriAdapterBase {
  protected state: ConnectionState = 'down';
  protected closing = false;
  protected frozen = false;
  protected heartbeat: NodeJS.Timeout | null = null;
  protected readonly eventHandlers = new Set<(e: AriEvent) => void>();
  protected readonly connectionHandlers = new Set<(s: ConnectionState) => void>();
  /** util- channels waiting for their StasisStart (reading dialplan functions) */
  protected readonly utilWaiters = new Map<string, () => void>();
  protected readonly log: Logger;

  constructor(protected readonly opts: AriClientOptions) {
    this.log = opts.log.child({ module: 'ari' });
  }

  get connected(): boolean {
    return this.state === 'up';
  }

  onEvent(handler: (event: AriEvent) => void): () => void {
    this.eventHandlers.add(handler);
    return () => this.eventHandlers.delete(handler);
  }

  onConnection(handler: (state: ConnectionState) => void): () => void {
    this.connectionHandlers.add(handler);
    return () => this.connectionHandlers.delete(handler);
  }

  /** the transport goes (socket closed, listeners removed); no reconnect from it */
  protected abstract dropConnection(): void;

  protected setState(next: ConnectionState): void {
    if (this.state === next) return;
    this.state = next;
    this.log.info({ state: next }, `ARI ${next}`);
    for (const h of this.connectionHandlers) {
      try {
        h(next);
      } catch (err) {
        this.log.error({ err }, 'connection handler failed');
      }
    }
  }

  protected dispatch(raw: unknown): void {
    const event = toEvent(raw);
    if (!event) return;
    // our own short-lived helper channels (reading dialplan functions) never reach the application
    if ('channel' in event && event.channel.id.startsWith(UTIL_PREFIX)) {
      if (event.type === 'StasisStart') this.utilWaiters.get(event.channel.id)?.();
      return;
    }
    if (event.type === 'ApplicationReplaced') {
      // Asterisk gives the application's events to the newcomer: never reconnect (that would take them back)
      this.log.error('another process took over the ARI application (ApplicationReplaced); this one gets no more calls');
      this.freeze();
    }
    for (const h of this.eventHandlers) {
      try {
        h(event);
      } catch (err) {
        this.log.error({ err, eventType: event.type }, 'event handler failed');
      }
    }
    if (event.type === 'ApplicationReplaced') {
      this.dropConnection();
      this.setState('down');
    }
  }

  /**
   * From now on this process does nothing more in Asterisk: every request waits forever (a flow stays where it
   * is instead of reacting to a failure), no reconnect. For a process that another one has replaced or is
   * replacing: its calls are the successor's now (service.ts, src/ha/leadership.ts).
   */
  freeze(): void {
    if (this.frozen) return;
    this.frozen = true;
    this.closing = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.log.warn('ARI frozen: this process no longer acts on calls');
  }

  /** ARI answers with our user and password (start-up check of a standby, which does not connect yet) */
  async check(): Promise<void> {
    await probe(this.opts);
  }
}
