/**
 * The thin ARI adapter: the same public surface and guarantees as src/ari/client.ts (AriClient on ari-client),
 * without ari-client's stack (swagger-client, shred, lodash, bluebird, request). Chosen with ARI_CLIENT=thin.
 *
 * - REST: node:http on a keep-alive pool (a few sockets, reused; idle ones closed before Asterisk's
 *   session_keep_alive does), one JSON.stringify per body and one JSON.parse per answer. A timeout on every
 *   request; errors mapped by HTTP status (mapAriStatus: 404 AriGone, 409/412/422 AriConflict; connection
 *   errors and timeouts AriUnavailable).
 * - Events: one `ws` socket to /ari/events?app=<app>&subscribeAll=false (Basic auth in the upgrade's headers,
 *   not in the URL), each message parsed once and converted by toEvent(); one listener per socket.
 * - The application's event filter (PUT /applications/{app}/eventFilter) set on every connection to the types
 *   toEvent() converts: Asterisk stops sending the rest (~88 % of the event traffic).
 * - Its own reconnect loop with capped backoff, forever; a ping every 2 s, 3 missed: the socket is terminated
 *   and the loop reconnects.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import WebSocket from 'ws';
import {
  AriConflict,
  AriGone,
  AriMisconfigured,
  AriUnavailable,
  type AriPort,
  type OriginateRequest,
  type RecordRequest,
  type SnoopRequest,
} from './port.js';
import { ariMetrics } from '../metrics/metrics.js';
import { AriAdapterBase } from './adapter-base.js';
import { EVENT_TYPES, HEARTBEAT_MS, MAX_BACKOFF_MS, UTIL_PREFIX, ariTimeout, mapAriStatus, metricOp, probe, sleep, toChannel, type AriClientOptions } from './common.js';

export interface ThinAriClientOptions extends AriClientOptions {
  /** set the application's event filter to the converted event types on every connection (default true) */
  eventFilter?: boolean;
  /** keep-alive connections to Asterisk's HTTP server, at most (default 8; each is a thread in Asterisk) */
  maxSockets?: number;
  /**
   * where REST requests go: `http` (default, the keep-alive pool) or `websocket` (Asterisk 22's REST over the
   * event socket, RESTRequest/RESTResponse messages: no HTTP at all, but Asterisk serves one socket's requests one
   * after the other, and while the socket is down requests fail at once). Recording files always use HTTP.
   */
  rest?: 'http' | 'websocket';
}

type Query = Record<string, string | number | boolean | undefined>;
/* eslint-disable @typescript-eslint/no-explicit-any -- ARI's JSON answers, read defensively */
type Json = any;

const enc = encodeURIComponent;
/** `?a=1&b=x%20y` (undefined values left out), '' when there is nothing */
function queryString(query: Query | undefined): string {
  if (!query) return '';
  let qs = '';
  for (const k in query) {
    const v = query[k];
    if (v === undefined) continue;
    qs += `${qs ? '&' : '?'}${k}=${enc(String(v))}`;
  }
  return qs;
}
/** the error of a request on a kept-alive socket the server closed just as it was reused (callers decide whether to send it again) */
const reusedAndClosed = (req: http.ClientRequest, err: NodeJS.ErrnoException) => req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
/** idle keep-alive sockets are closed after this (Asterisk's http.conf session_keep_alive defaults to 15 s) */
const IDLE_SOCKET_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;

export class ThinAriClient extends AriAdapterBase implements AriPort {
  private ws: WebSocket | null = null;
  private started = false;
  private lastPong = 0;
  private reconnecting = false;
  private readonly auth: string;
  private readonly base: URL;
  private readonly transport: typeof http | typeof https;
  /** REST: a small keep-alive pool */
  private readonly agent: http.Agent;
  /** recording downloads: their own sockets, so a slow reader never holds one of the REST pool's */
  private readonly fileAgent: http.Agent;
  private readonly eventFilter: boolean;
  private readonly restOverWs: boolean;
  /** REST over the event socket: requests waiting for their RESTResponse, by request_id */
  private readonly pending = new Map<string, (status: number, body: string) => void>();
  private requestSeq = 0;

  constructor(protected override readonly opts: ThinAriClientOptions) {
    super(opts);
    this.auth = `Basic ${Buffer.from(`${opts.user}:${opts.password}`).toString('base64')}`;
    this.base = new URL(opts.url);
    this.transport = this.base.protocol === 'https:' ? https : http;
    const Agent = this.base.protocol === 'https:' ? https.Agent : http.Agent;
    const maxSockets = opts.maxSockets ?? 8;
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, timeout: IDLE_SOCKET_MS, scheduling: 'lifo', noDelay: true } as http.AgentOptions);
    // kept alive as well (a new connection per call's recording was a TCP handshake and a new Asterisk HTTP thread
    // each time): a few idle ones, closed before Asterisk's session_keep_alive does; a stream being read holds its own
    this.fileAgent = new Agent({ keepAlive: true, maxFreeSockets: 2, timeout: IDLE_SOCKET_MS, scheduling: 'lifo' } as http.AgentOptions);
    this.eventFilter = opts.eventFilter ?? true;
    this.restOverWs = opts.rest === 'websocket';
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
    const ws = await this.openSocket();
    if (this.closing) {
      ws.terminate();
      throw new AriUnavailable('ARI event socket: the client is closing');
    }
    this.ws = ws;
    this.started = true;
    // closed while being set up: connectOnce fails and its caller (start or reconnectForever) tries again
    let settingUp = true;
    ws.on('close', (code: number) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.failPending();
      if (this.closing || settingUp) return;
      this.log.warn({ code }, 'ARI event socket lost, reconnecting');
      this.setState('down');
      void this.reconnectForever();
    });
    if (this.eventFilter) {
      // Asterisk then sends only what toEvent() converts; an Asterisk without filters (before 19.x/18.16) sends everything
      // (the filter applies to RESTResponse messages as well: allowed too when REST goes over the socket)
      const allowed = [...EVENT_TYPES, ...(this.restOverWs ? ['RESTResponse'] : [])].map((type) => ({ type }));
      await this.httpRequest('event filter', 'PUT', `/applications/${enc(this.opts.app)}/eventFilter`, undefined, { allowed }).catch(
        (err: Error) => this.log.warn({ err: err.message }, 'ARI event filter not set; every event type is received'),
      );
    }
    settingUp = false;
    if (this.ws !== ws) throw new AriUnavailable('ARI event socket: closed while being set up');
    this.lastPong = Date.now();
    this.setState('up');
    this.startHeartbeat();
  }

  /** the event socket, open: rejects with AriMisconfigured on 401/403, AriUnavailable otherwise */
  private openSocket(): Promise<WebSocket> {
    const url = new URL('/ari/events', this.base);
    url.protocol = this.base.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = `app=${enc(this.opts.app)}&subscribeAll=false`;
    return new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url, {
        headers: { authorization: this.auth },
        perMessageDeflate: false,
        handshakeTimeout: CONNECT_TIMEOUT_MS,
        // Asterisk writes valid UTF-8 JSON; JSON.parse would fail on anything else anyway
        skipUTF8Validation: true,
      });
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        ws.removeAllListeners('open');
        ws.on('error', () => undefined);
        ws.terminate();
        reject(err);
      };
      ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
      ws.on('pong', () => {
        this.lastPong = Date.now();
      });
      ws.on('error', (err: Error) => {
        if (!settled) fail(new AriUnavailable(`ARI event socket: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
        else this.log.warn({ err: err.message }, 'ARI event socket error');
      });
      ws.once('unexpected-response', (req: http.ClientRequest, res: IncomingMessage) => {
        res.resume();
        req.destroy();
        const status = res.statusCode ?? 0;
        fail(
          status === 401 || status === 403
            ? new AriMisconfigured(`ARI_URL ${this.opts.url} refused ARI_USER "${this.opts.user}" on the event socket (HTTP ${status})`)
            : new AriUnavailable(`ARI event socket: HTTP ${status}`),
        );
      });
      ws.once('open', () => {
        if (settled) return;
        settled = true;
        resolve(ws);
      });
    });
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    ariMetrics.wsMessages.inc();
    ariMetrics.wsBytes.inc(data.length);
    if (isBinary) return;
    let raw: unknown;
    try {
      raw = JSON.parse(data.toString('utf8'));
    } catch {
      this.log.warn({ bytes: data.length }, 'ARI event is not JSON; dropped');
      return;
    }
    if ((raw as { type?: unknown }).type === 'RESTResponse') {
      const r = raw as { request_id?: string; status_code?: number; message_body?: string };
      this.pending.get(r.request_id ?? '')?.(Number(r.status_code ?? 0), r.message_body ?? '');
      return;
    }
    this.dispatch(raw);
  }

  private async reconnectForever(): Promise<void> {
    if (this.reconnecting || this.closing) return;
    this.reconnecting = true;
    this.dropSocket();
    let delay = 250;
    try {
      while (!this.closing) {
        try {
          await this.connectOnce();
          this.log.info('ARI reconnected');
          return;
        } catch (err) {
          this.dropSocket();
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
      const ws = this.ws;
      if (!ws || this.closing) return;
      if (this.state === 'up' && Date.now() - this.lastPong > HEARTBEAT_MS * 3) {
        // the socket is open but Asterisk stopped answering pings: drop it and let reconnect run
        this.log.warn('ARI heartbeat lost; closing the event socket');
        this.setState('down');
        ws.terminate(); // 'close' follows: reconnectForever
        return;
      }
      try {
        ws.ping();
      } catch {
        /* socket not open: reconnect handles it */
      }
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** the event socket closed: REST requests sent over it will never be answered */
  private failPending(): void {
    for (const answer of [...this.pending.values()]) answer(-1, '');
  }

  protected dropConnection(): void {
    this.dropSocket();
  }

  private dropSocket(): void {
    const ws = this.ws;
    this.ws = null;
    this.failPending();
    if (!ws) return;
    ws.removeAllListeners();
    ws.on('error', () => undefined);
    ws.terminate();
  }

  /** one REST request: JSON in, JSON out (undefined for an empty answer), the timeout, metrics and the error mapping */
  private call(what: string, method: string, path: string, query?: Query, body?: unknown): Promise<Json> {
    if (this.frozen) return new Promise<Json>(() => undefined);
    if (!this.started || this.closing) return Promise.reject(new AriUnavailable(`${what}: ARI is not connected`));
    return this.request(what, method, path, query, body);
  }

  private request(what: string, method: string, path: string, query?: Query, body?: unknown): Promise<Json> {
    return this.restOverWs ? this.wsRequest(what, method, path, query, body) : this.httpRequest(what, method, path, query, body);
  }

  /** a REST request as a RESTRequest message on the event socket; the RESTResponse carries the status and body */
  private wsRequest(what: string, method: string, path: string, query?: Query, body?: unknown): Promise<Json> {
    const op = metricOp(what);
    const started = process.hrtime.bigint();
    const ws = this.ws;
    const ms = this.opts.requestTimeoutMs;
    return new Promise<Json>((resolve, reject) => {
      const id = String(++this.requestSeq);
      const finish = (err: Error | null, value?: Json) => {
        this.pending.delete(id);
        clearTimeout(timer);
        ariMetrics.requestSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9, { op });
        if (err) {
          ariMetrics.requestErrors.inc(1, { op });
          reject(err);
        } else resolve(value);
      };
      const timer = setTimeout(() => finish(new AriUnavailable(`${what}: no answer from Asterisk within ${ms} ms`)), ms);
      if (!ws || ws.readyState !== WebSocket.OPEN) return finish(new AriUnavailable(`${what}: the ARI event socket is not open`));
      this.pending.set(id, (status, text) => {
        if (status < 0) return finish(new AriUnavailable(`${what}: the ARI event socket closed before the answer`));
        if (status < 200 || status >= 300) return finish(mapAriStatus(status, text, what));
        if (!text) return finish(null, undefined);
        try {
          finish(null, JSON.parse(text));
        } catch {
          finish(new Error(`${what}: the answer is not JSON (status ${status})`));
        }
      });
      const msg: Record<string, string> = { type: 'RESTRequest', transaction_id: id, request_id: id, method, uri: `${path.slice(1)}${queryString(query)}` };
      if (body !== undefined) {
        msg.content_type = 'application/json';
        msg.message_body = JSON.stringify(body);
      }
      ws.send(JSON.stringify(msg), (err) => {
        if (err) finish(new AriUnavailable(`${what}: ${err.message}`));
      });
    });
  }

  private httpRequest(what: string, method: string, path: string, query?: Query, body?: unknown): Promise<Json> {
    // metrics: latency per operation (the label is the operation without its object id: "put endpoint", not "put endpoint agent1001")
    const op = metricOp(what);
    const started = process.hrtime.bigint();
    const fullPath = `/ari${path}${queryString(query)}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: OutgoingHttpHeaders = { authorization: this.auth };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    const ms = this.opts.requestTimeoutMs;
    return new Promise<Json>((resolve, reject) => {
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      let current: http.ClientRequest | undefined;
      const finish = (err: Error | null, value?: Json) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        ariMetrics.requestSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9, { op });
        if (err) {
          ariMetrics.requestErrors.inc(1, { op });
          reject(err);
        } else resolve(value);
      };
      const send = (retry: boolean): void => {
        const req = this.transport.request(
          { protocol: this.base.protocol, hostname: this.base.hostname, port: this.base.port, method, path: fullPath, headers, agent: this.agent },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = chunks.length === 0 ? '' : chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
              const status = res.statusCode ?? 0;
              if (status < 200 || status >= 300) return finish(mapAriStatus(status, text, what));
              if (!text) return finish(null, undefined);
              try {
                finish(null, JSON.parse(text));
              } catch {
                finish(new Error(`${what}: the answer is not JSON (HTTP ${status})`));
              }
            });
            res.on('aborted', () => finish(new AriUnavailable(`${what}: the connection closed during the answer`)));
            res.on('error', (err) => finish(new AriUnavailable(`${what}: ${err.message}`)));
          },
        );
        req.on('error', (err: NodeJS.ErrnoException) => {
          if (done) return;
          // a kept-alive socket the server closed just as we reused it: once more on a new one, when harmless to repeat
          if (retry && reusedAndClosed(req, err) && method !== 'POST') return send(false);
          finish(new AriUnavailable(`${what}: ${err.code ?? err.message}`));
        });
        req.end(payload);
        current = req;
      };
      send(true);
      timer = setTimeout(() => {
        finish(new AriUnavailable(`${what}: no answer from Asterisk within ${ms} ms`));
        current?.destroy();
      }, ms);
    });
  }

  readonly channels = {
    answer: async (channelId: string) => {
      await this.call('answer', 'POST', `/channels/${enc(channelId)}/answer`);
    },
    hangup: async (channelId: string, reason: 'normal' | 'busy' | 'congestion' | 'no_answer' = 'normal') => {
      await this.call('hangup', 'DELETE', `/channels/${enc(channelId)}`, { reason });
    },
    play: async (channelId: string, media: string[], playbackId: string, lang?: string) => {
      await this.call('play', 'POST', `/channels/${enc(channelId)}/play/${enc(playbackId)}`, { media: media.join(','), lang: lang || undefined });
    },
    originate: async (req: OriginateRequest) => {
      const raw = await this.call(
        'originate',
        'POST',
        '/channels',
        {
          endpoint: req.endpoint,
          channelId: req.channelId,
          app: this.opts.app,
          appArgs: req.appArgs.join(','),
          callerId: req.callerName ? `"${req.callerName}" <${req.callerNumber ?? ''}>` : req.callerNumber,
          timeout: req.timeoutSeconds,
        },
        req.variables ? { variables: req.variables } : undefined,
      );
      return toChannel(raw);
    },
    startMoh: async (channelId: string, mohClass?: string) => {
      await this.call('startMoh', 'POST', `/channels/${enc(channelId)}/moh`, { mohClass: mohClass || undefined });
    },
    stopMoh: async (channelId: string) => {
      await this.call('stopMoh', 'DELETE', `/channels/${enc(channelId)}/moh`);
    },
    ring: async (channelId: string) => {
      await this.call('ring', 'POST', `/channels/${enc(channelId)}/ring`);
    },
    list: async () => {
      const list = await this.call('list channels', 'GET', '/channels');
      return (Array.isArray(list) ? list : []).map(toChannel);
    },
    snoop: async (channelId: string, req: SnoopRequest) => {
      const raw = await this.call('snoop', 'POST', `/channels/${enc(channelId)}/snoop/${enc(req.snoopId)}`, {
        app: this.opts.app,
        appArgs: req.appArgs.join(','),
        spy: req.spy,
        whisper: req.whisper,
      });
      return toChannel(raw);
    },
    record: async (channelId: string, req: RecordRequest) => {
      try {
        await this.call('record', 'POST', `/channels/${enc(channelId)}/record`, {
          name: req.name,
          format: req.format,
          maxDurationSeconds: req.maxDurationSeconds,
          maxSilenceSeconds: req.maxSilenceSeconds,
          beep: req.beep,
          terminateOn: req.terminateOn,
          ifExists: req.ifExists,
        });
      } catch (err) {
        // 422 "specified format is unknown on this system": already AriConflict by its status; kept for any other status
        if (err instanceof Error && !(err instanceof AriUnavailable) && !(err instanceof AriConflict) && /format is unknown/i.test(err.message)) throw new AriConflict(err.message);
        throw err;
      }
    },
    setVariable: async (channelId: string, name: string, value: string) => {
      await this.call('set variable', 'POST', `/channels/${enc(channelId)}/variable`, { variable: name, value });
    },
    continueInDialplan: async (channelId: string) => {
      await this.call('continue', 'POST', `/channels/${enc(channelId)}/continue`);
    },
  };

  readonly bridges = {
    create: async (bridgeId: string, type: 'mixing' | 'holding' = 'mixing', name?: string) => {
      await this.call('create bridge', 'POST', '/bridges', { type, bridgeId, name: name || undefined });
    },
    removeChannel: async (bridgeId: string, channelIds: string[]) => {
      await this.call('remove from bridge', 'POST', `/bridges/${enc(bridgeId)}/removeChannel`, { channel: channelIds.join(',') });
    },
    addChannel: async (bridgeId: string, channelIds: string[]) => {
      await this.call('add to bridge', 'POST', `/bridges/${enc(bridgeId)}/addChannel`, { channel: channelIds.join(',') });
    },
    destroy: async (bridgeId: string) => {
      await this.call('destroy bridge', 'DELETE', `/bridges/${enc(bridgeId)}`);
    },
    startMoh: async (bridgeId: string, mohClass?: string) => {
      await this.call('bridge moh', 'POST', `/bridges/${enc(bridgeId)}/moh`, { mohClass: mohClass || undefined });
    },
    stopMoh: async (bridgeId: string) => {
      await this.call('bridge stop moh', 'DELETE', `/bridges/${enc(bridgeId)}/moh`);
    },
    list: async () => {
      const list = await this.call('list bridges', 'GET', '/bridges');
      return (Array.isArray(list) ? list : []).map((b: Json) => ({ id: String(b.id), channels: Array.isArray(b.channels) ? b.channels.map(String) : [] }));
    },
  };

  readonly playbacks = {
    stop: async (playbackId: string) => {
      await this.call('stop playback', 'DELETE', `/playbacks/${enc(playbackId)}`);
    },
  };

  readonly globals = {
    set: async (name: string, value: string) => {
      // in the body: a value of a few KB (the fallback ring group of a whole floor) does not fit a request line
      await this.call('set global', 'POST', '/asterisk/variable', undefined, { variable: name, value });
    },
    get: async (expression: string) => {
      // ARI reads dialplan functions only on a channel: a Local channel parks in Stasis for the moment it takes
      if (/^[A-Z_]+\(.*\)$/.test(expression)) return this.readFunction(expression);
      const r = (await this.call('get global', 'GET', '/asterisk/variable', { variable: expression })) as { value?: string } | undefined;
      return r?.value ?? '';
    },
  };

  private async readFunction(expression: string): Promise<string> {
    const channelId = `${UTIL_PREFIX}${randomUUID()}`;
    let ready!: () => void;
    const up = new Promise<void>((resolve) => (ready = resolve));
    this.utilWaiters.set(channelId, ready);
    try {
      await this.call('originate util', 'POST', '/channels', { endpoint: 'Local/wait@hotline-util', app: this.opts.app, appArgs: 'util', channelId, timeout: 5 });
      await ariTimeout(up, this.opts.requestTimeoutMs, 'util channel');
      const r = (await this.call('read function', 'GET', `/channels/${enc(channelId)}/variable`, { variable: expression })) as { value?: string } | undefined;
      return r?.value ?? '';
    } finally {
      this.utilWaiters.delete(channelId);
      await this.call('hangup util', 'DELETE', `/channels/${enc(channelId)}`).catch(() => undefined);
    }
  }

  readonly config = {
    put: async (configClass: string, objectType: string, id: string, fields: Record<string, string>) => {
      const list = Object.entries(fields).map(([attribute, value]) => ({ attribute, value }));
      await this.call(`put ${objectType} ${id}`, 'PUT', `/asterisk/config/dynamic/${enc(configClass)}/${enc(objectType)}/${enc(id)}`, undefined, { fields: list });
    },
    get: async (configClass: string, objectType: string, id: string) => {
      try {
        const list = (await this.call(`get ${objectType} ${id}`, 'GET', `/asterisk/config/dynamic/${enc(configClass)}/${enc(objectType)}/${enc(id)}`)) as
          | Array<{ attribute: string; value: string }>
          | undefined;
        return Object.fromEntries((list ?? []).map((f) => [f.attribute, f.value]));
      } catch (err) {
        if (err instanceof AriGone) return null;
        throw err;
      }
    },
    delete: async (configClass: string, objectType: string, id: string) => {
      await this.call(`delete ${objectType} ${id}`, 'DELETE', `/asterisk/config/dynamic/${enc(configClass)}/${enc(objectType)}/${enc(id)}`);
    },
  };

  readonly recordings = {
    stop: async (name: string) => {
      await this.call('stop recording', 'POST', `/recordings/live/${enc(name)}/stop`);
    },
    delete: async (name: string) => {
      await this.call('delete recording', 'DELETE', `/recordings/stored/${enc(name)}`);
    },
    /**
     * The stored file, streamed (GET /ari/recordings/stored/{name}/file) on a connection of its own pool (not the REST pool's).
     * The timeout covers the answer's headers only: the body streams for as long as the reader takes it.
     */
    file: (name: string) => {
      const what = 'recording file';
      const started = process.hrtime.bigint();
      const observe = () => ariMetrics.requestSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9, { op: what });
      const fail = (err: Error) => {
        observe();
        ariMetrics.requestErrors.inc(1, { op: what });
        return err;
      };
      const ms = this.opts.requestTimeoutMs;
      return new Promise<{ stream: IncomingMessage; contentType: string; size: number | null }>((resolve, reject) => {
        let done = false;
        let req: http.ClientRequest;
        const send = (retry: boolean) => {
          req = this.transport.request(
            {
              protocol: this.base.protocol,
              hostname: this.base.hostname,
              port: this.base.port,
              method: 'GET',
              path: `/ari/recordings/stored/${enc(name)}/file`,
              headers: { authorization: this.auth },
              agent: this.fileAgent,
            },
            (res) => {
              done = true;
              clearTimeout(timer);
              const status = res.statusCode ?? 0;
              if (status < 200 || status >= 300) {
                res.resume();
                if (status === 404) return reject(fail(new AriGone(`${what} ${name}: Recording not found`)));
                return reject(fail(new AriUnavailable(`${what} ${name}: HTTP ${status} from Asterisk`)));
              }
              observe();
              const length = Number(res.headers['content-length'] ?? NaN);
              // destroying this stream (the HTTP client went away) closes the connection: the download from Asterisk stops
              resolve({
                stream: res,
                contentType: String(res.headers['content-type'] ?? 'application/octet-stream'),
                size: Number.isSafeInteger(length) && length >= 0 ? length : null,
              });
            },
          );
          req.on('error', (err: NodeJS.ErrnoException) => {
            if (done) return;
            // a kept-alive socket Asterisk closed just as it was reused: once more on a new one (a GET, harmless)
            if (retry && reusedAndClosed(req, err)) return send(false);
            done = true;
            clearTimeout(timer);
            reject(fail(new AriUnavailable(`${what} ${name}: ${err.code ?? err.message}`)));
          });
          req.end();
        };
        const timer = setTimeout(() => {
          if (done) return;
          done = true;
          req.destroy();
          reject(fail(new AriUnavailable(`${what} ${name}: no answer from Asterisk within ${ms} ms`)));
        }, ms);
        send(true);
      });
    },
  };

  async close(): Promise<void> {
    this.closing = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      // a clean close (Asterisk unregisters the application at once); terminated if Asterisk does not answer
      if (ws.readyState === WebSocket.OPEN) {
        const gone = new Promise<void>((r) => ws.once('close', () => r()));
        ws.close(1000);
        await Promise.race([gone, sleep(1000)]);
      }
      ws.terminate();
    }
    this.agent.destroy();
    this.fileAgent.destroy();
    this.setState('down');
  }
}
