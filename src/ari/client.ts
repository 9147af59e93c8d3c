/**
 * The ARI adapter: the only module that imports ari-client.
 *
 * What it adds on top of ari-client (see DESIGN.md §1, "Facts about ARI"):
 * - a timeout on every REST request (ari-client's promises can hang after a disconnect);
 * - ARI errors mapped to AriGone / AriConflict / AriUnavailable (ari-client drops the status code,
 *   so the mapping reads Asterisk's message text);
 * - its own reconnect loop with capped backoff that never gives up (ari-client's stops after 10 tries),
 *   and a ping heartbeat that closes a socket that stopped answering;
 * - events converted to our AriEvent union and delivered through one global listener per type
 *   (no per-instance listeners: they leak).
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import ari from 'ari-client';
import {
  AriMisconfigured,
  AriConflict,
  AriGone,
  AriUnavailable,
  type AriPort,
  type OriginateRequest,
  type RecordRequest,
  type SnoopRequest,
} from './port.js';
import { ariMetrics } from '../metrics/metrics.js';
import { AriAdapterBase } from './adapter-base.js';
import { EVENT_TYPES, HEARTBEAT_MS, MAX_BACKOFF_MS, UTIL_PREFIX, ariTimeout, mapAriError, metricOp, probe, sleep, toChannel, type AriClientOptions } from './common.js';

export { mapAriError, toEvent, type AriClientOptions } from './common.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- ari-client ships no types */
type RawClient = any;

// swagger-client 2.0 (under ari-client) defines an implicit global `log` that console.logs every
// connect ("deprecated version of Swagger") and keeps every message in log.history forever.
// Replace it once with a no-op so stdout stays one JSON line per event and nothing accumulates.
(globalThis as any).log = () => undefined;

export class AriClient extends AriAdapterBase implements AriPort {
  private raw: RawClient | null = null;
  private lastPong = 0;
  private reconnecting = false;

  constructor(opts: AriClientOptions) {
    super(opts);
  }

  /**
   * First connection. Retries while Asterisk refuses connections, up to startupTimeoutMs;
   * a wrong URL or password fails at once (AriMisconfigured).
   */
  async start(): Promise<void> {
    const deadline = Date.now() + this.opts.startupTimeoutMs;
    let delay = 250;
    for (;;) {
      try {
        await this.connectOnce();
        return;
      } catch (err) {
        if (err instanceof AriMisconfigured || Date.now() + delay > deadline || this.closing) throw err;
        this.log.warn({ err: (err as Error).message }, 'ARI not reachable yet, retrying');
        await sleep(delay);
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      }
    }
  }

  private async connectOnce(): Promise<void> {
    await probe(this.opts);
    const client: RawClient = await ariTimeout(ari.connect(this.opts.url, this.opts.user, this.opts.password), 10000, 'ARI connect');
    for (const type of EVENT_TYPES) {
      client.on(type, (raw: unknown) => this.dispatch(raw));
    }
    client.on('pong', () => {
      this.lastPong = Date.now();
    });
    client.on('WebSocketConnected', () => this.setState('up'));
    client.on('WebSocketReconnecting', (err: Error | undefined) => {
      this.log.warn({ err: err?.message }, 'ARI event socket lost, ari-client reconnecting');
      this.setState('down');
    });
    client.on('WebSocketMaxRetries', () => {
      this.log.warn('ari-client gave up reconnecting; starting over');
      this.setState('down');
      void this.reconnectForever();
    });
    client.on('APILoadError', (err: Error) => this.log.warn({ err: err?.message }, 'ARI API load error'));
    this.raw = client;
    // metrics: count what the event socket receives (ari-client keeps its ws instance as _ws, and makes a new one when it reconnects)
    client.on('WebSocketConnected', () => countWsBytes(client._ws));
    await ariTimeout(client.start(this.opts.app), 10000, 'ARI event socket');
    countWsBytes(client._ws);
    this.lastPong = Date.now();
    this.setState('up');
    this.startHeartbeat();
  }

  private async reconnectForever(): Promise<void> {
    if (this.reconnecting || this.closing) return;
    this.reconnecting = true;
    this.dropRaw();
    let delay = 250;
    try {
      while (!this.closing) {
        try {
          await this.connectOnce();
          this.log.info('ARI reconnected');
          return;
        } catch (err) {
          this.dropRaw();
          this.log.warn({ err: (err as Error).message, retryInMs: delay }, 'ARI reconnect failed');
          await sleep(delay);
          delay = Math.min(delay * 2, MAX_BACKOFF_MS);
        }
      }
    } finally {
      this.reconnecting = false;
    }
  }

  private startHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      const client = this.raw;
      if (!client || this.closing) return;
      if (this.state === 'up' && Date.now() - this.lastPong > HEARTBEAT_MS * 3) {
        // the socket is open but Asterisk stopped answering pings: drop it and let reconnect run
        this.log.warn('ARI heartbeat lost; closing the event socket');
        this.setState('down');
        try {
          client._ws?.terminate();
        } catch {
          /* already closed */
        }
        return;
      }
      try {
        client.ping();
      } catch {
        /* socket not open: reconnect handles it */
      }
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  protected dropConnection(): void {
    this.dropRaw();
  }

  private dropRaw(): void {
    const client = this.raw;
    this.raw = null;
    if (!client) return;
    client.removeAllListeners();
    client.on('error', () => undefined);
    try {
      client.stop();
    } catch {
      /* never started or already closed */
    }
  }

  private call<T>(what: string, fn: (c: RawClient) => Promise<T>): Promise<T> {
    if (this.frozen) return new Promise<T>(() => undefined);
    const client = this.raw;
    if (!client) return Promise.reject(new AriUnavailable(`${what}: ARI is not connected`));
    // metrics: latency per operation (the label is the operation without its object id: "put endpoint", not "put endpoint agent1001")
    const op = metricOp(what);
    const started = process.hrtime.bigint();
    const observe = () => ariMetrics.requestSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9, { op });
    return ariTimeout(Promise.resolve().then(() => fn(client)), this.opts.requestTimeoutMs, what).then(
      (v) => {
        observe();
        return v;
      },
      (err: unknown) => {
        observe();
        ariMetrics.requestErrors.inc(1, { op });
        throw mapAriError(err, what);
      },
    );
  }

  readonly channels = {
    answer: async (channelId: string) => {
      await this.call('answer', (c) => c.channels.answer({ channelId }));
    },
    hangup: async (channelId: string, reason: 'normal' | 'busy' | 'congestion' | 'no_answer' = 'normal') => {
      await this.call('hangup', (c) => c.channels.hangup({ channelId, reason }));
    },
    play: async (channelId: string, media: string[], playbackId: string, lang?: string) => {
      await this.call('play', (c) => c.channels.play({ channelId, media, playbackId, ...(lang ? { lang } : {}) }));
    },
    originate: async (req: OriginateRequest) => {
      const raw = await this.call('originate', (c) =>
        c.channels.originate({
          endpoint: req.endpoint,
          channelId: req.channelId,
          app: this.opts.app,
          appArgs: req.appArgs.join(','),
          callerId: req.callerName ? `"${req.callerName}" <${req.callerNumber ?? ''}>` : req.callerNumber,
          timeout: req.timeoutSeconds,
          ...(req.variables ? { variables: req.variables } : {}),
        }),
      );
      return toChannel(raw);
    },
    startMoh: async (channelId: string, mohClass?: string) => {
      await this.call('startMoh', (c) => c.channels.startMoh({ channelId, ...(mohClass ? { mohClass } : {}) }));
    },
    stopMoh: async (channelId: string) => {
      await this.call('stopMoh', (c) => c.channels.stopMoh({ channelId }));
    },
    ring: async (channelId: string) => {
      await this.call('ring', (c) => c.channels.ring({ channelId }));
    },
    list: async () => {
      const list = await this.call('list channels', (c) => c.channels.list());
      return (list as unknown[]).map(toChannel);
    },
    snoop: async (channelId: string, req: SnoopRequest) => {
      const raw = await this.call('snoop', (c) =>
        c.channels.snoopChannelWithId({ channelId, snoopId: req.snoopId, app: this.opts.app, appArgs: req.appArgs.join(','), spy: req.spy, whisper: req.whisper }),
      );
      return toChannel(raw);
    },
    record: async (channelId: string, req: RecordRequest) => {
      try {
        await this.call('record', (c) =>
          c.channels.record({
            channelId,
            name: req.name,
            format: req.format,
            maxDurationSeconds: req.maxDurationSeconds,
            maxSilenceSeconds: req.maxSilenceSeconds,
            beep: req.beep,
            terminateOn: req.terminateOn,
            ifExists: req.ifExists,
          }),
        );
      } catch (err) {
        // 422 "specified format is unknown on this system" (409s already read as AriConflict)
        if (err instanceof Error && !(err instanceof AriUnavailable) && /format is unknown/i.test(err.message)) throw new AriConflict(err.message);
        throw err;
      }
    },
    setVariable: async (channelId: string, name: string, value: string) => {
      await this.call('set variable', (c) => c.channels.setChannelVar({ channelId, variable: name, value }));
    },
    continueInDialplan: async (channelId: string) => {
      await this.call('continue', (c) => c.channels.continueInDialplan({ channelId }));
    },
  };

  readonly bridges = {
    create: async (bridgeId: string, type: 'mixing' | 'holding' = 'mixing', name?: string) => {
      await this.call('create bridge', (c) => c.bridges.create({ bridgeId, type, ...(name ? { name } : {}) }));
    },
    removeChannel: async (bridgeId: string, channelIds: string[]) => {
      await this.call('remove from bridge', (c) => c.bridges.removeChannel({ bridgeId, channel: channelIds.join(',') }));
    },
    addChannel: async (bridgeId: string, channelIds: string[]) => {
      await this.call('add to bridge', (c) => c.bridges.addChannel({ bridgeId, channel: channelIds.join(',') }));
    },
    destroy: async (bridgeId: string) => {
      await this.call('destroy bridge', (c) => c.bridges.destroy({ bridgeId }));
    },
    startMoh: async (bridgeId: string, mohClass?: string) => {
      await this.call('bridge moh', (c) => c.bridges.startMoh({ bridgeId, ...(mohClass ? { mohClass } : {}) }));
    },
    stopMoh: async (bridgeId: string) => {
      await this.call('bridge stop moh', (c) => c.bridges.stopMoh({ bridgeId }));
    },
    list: async () => {
      const list = (await this.call('list bridges', (c) => c.bridges.list())) as any[];
      return list.map((b) => ({ id: String(b.id), channels: Array.isArray(b.channels) ? b.channels.map(String) : [] }));
    },
  };

  readonly playbacks = {
    stop: async (playbackId: string) => {
      await this.call('stop playback', (c) => c.playbacks.stop({ playbackId }));
    },
  };

  readonly globals = {
    set: async (name: string, value: string) => {
      await this.call('set global', (c) => c.asterisk.setGlobalVar({ variable: name, value }));
    },
    get: async (expression: string) => {
      // ARI reads dialplan functions only on a channel: a Local channel parks in Stasis for the moment it takes
      if (/^[A-Z_]+\(.*\)$/.test(expression)) return this.readFunction(expression);
      const r = (await this.call('get global', (c) => c.asterisk.getGlobalVar({ variable: expression }))) as { value?: string } | undefined;
      return r?.value ?? '';
    },
  };

  private async readFunction(expression: string): Promise<string> {
    const channelId = `${UTIL_PREFIX}${randomUUID()}`;
    let ready!: () => void;
    const up = new Promise<void>((resolve) => (ready = resolve));
    this.utilWaiters.set(channelId, ready);
    try {
      await this.call('originate util', (c) => c.channels.originate({ endpoint: 'Local/wait@hotline-util', app: this.opts.app, appArgs: 'util', channelId, timeout: 5 }));
      await ariTimeout(up, this.opts.requestTimeoutMs, 'util channel');
      const r = (await this.call('read function', (c) => c.channels.getChannelVar({ channelId, variable: expression }))) as { value?: string } | undefined;
      return r?.value ?? '';
    } finally {
      this.utilWaiters.delete(channelId);
      await this.call('hangup util', (c) => c.channels.hangup({ channelId })).catch(() => undefined);
    }
  }

  readonly config = {
    put: async (configClass: string, objectType: string, id: string, fields: Record<string, string>) => {
      const list = Object.entries(fields).map(([attribute, value]) => ({ attribute, value }));
      await this.call(`put ${objectType} ${id}`, (c) => c.asterisk.updateObject({ configClass, objectType, id, fields: list }));
    },
    get: async (configClass: string, objectType: string, id: string) => {
      try {
        const list = (await this.call(`get ${objectType} ${id}`, (c) => c.asterisk.getObject({ configClass, objectType, id }))) as Array<{
          attribute: string;
          value: string;
        }>;
        return Object.fromEntries(list.map((f) => [f.attribute, f.value]));
      } catch (err) {
        if (err instanceof AriGone) return null;
        throw err;
      }
    },
    delete: async (configClass: string, objectType: string, id: string) => {
      await this.call(`delete ${objectType} ${id}`, (c) => c.asterisk.deleteObject({ configClass, objectType, id }));
    },
  };

  readonly recordings = {
    stop: async (name: string) => {
      await this.call('stop recording', (c) => c.recordings.stop({ recordingName: name }));
    },
    delete: async (name: string) => {
      await this.call('delete recording', (c) => c.recordings.deleteStored({ recordingName: name }));
    },
    /**
     * The stored file, streamed: swagger cannot carry a binary body, so this is a plain GET with our credentials.
     * The timeout covers the answer's headers only: the body streams for as long as the reader takes it.
     */
    file: async (name: string) => {
      const what = 'recording file';
      const started = process.hrtime.bigint();
      const observe = () => ariMetrics.requestSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9, { op: what });
      const fail = (err: Error) => {
        observe();
        ariMetrics.requestErrors.inc(1, { op: what });
        return err;
      };
      const url = new URL(`/ari/recordings/stored/${encodeURIComponent(name)}/file`, this.opts.url);
      const abort = new AbortController();
      const ms = this.opts.requestTimeoutMs;
      const timer = setTimeout(() => abort.abort(), ms);
      let res: Response;
      try {
        res = await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`${this.opts.user}:${this.opts.password}`).toString('base64')}` }, signal: abort.signal });
      } catch (err) {
        const why = (err as { cause?: { code?: string; message?: string } }).cause;
        const cause = abort.signal.aborted ? `no answer from Asterisk within ${ms} ms` : (why?.code ?? why?.message ?? (err as Error).message);
        throw fail(new AriUnavailable(`${what} ${name}: ${cause}`));
      } finally {
        clearTimeout(timer);
      }
      if (!res.ok || !res.body) {
        await res.body?.cancel().catch(() => undefined);
        if (res.status === 404) throw fail(new AriGone(`${what} ${name}: Recording not found`));
        throw fail(new AriUnavailable(`${what} ${name}: HTTP ${res.status} from Asterisk`));
      }
      observe();
      const length = Number(res.headers.get('content-length') ?? NaN);
      return {
        // destroying this stream (the HTTP client went away) cancels the download from Asterisk
        stream: Readable.fromWeb(res.body as WebReadableStream<Uint8Array>),
        contentType: res.headers.get('content-type') ?? 'application/octet-stream',
        size: Number.isSafeInteger(length) && length >= 0 ? length : null,
      };
    },
  };

  async close(): Promise<void> {
    this.closing = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.dropRaw();
    this.setState('down');
  }
}

const countedSockets = new WeakSet<object>();
function countWsBytes(ws: any): void {
  if (!ws || typeof ws.on !== 'function' || countedSockets.has(ws)) return;
  countedSockets.add(ws);
  ws.on('message', (data: unknown) => {
    ariMetrics.wsMessages.inc();
    ariMetrics.wsBytes.inc(typeof data === 'string' ? Buffer.byteLength(data) : Buffer.isBuffer(data) ? data.length : data instanceof ArrayBuffer ? data.byteLength : 0);
  });
}
