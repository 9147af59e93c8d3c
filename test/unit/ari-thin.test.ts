/**
 * The thin ARI adapter (src/ari/thin-client.ts) against a small fake Asterisk: an HTTP server answering the
 * ARI REST paths the adapter uses and a WebSocket server on /ari/events. No Asterisk needed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { pino } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { ThinAriClient } from '../../src/ari/thin-client.js';
import { createAriClient } from '../../src/ari/index.js';
import { ariMetrics } from '../../src/metrics/metrics.js';
import type { AriEvent, ConnectionState } from '../../src/ari/port.js';
import { loadConfig } from '../../src/config/env.js';

const AUTH = `Basic ${Buffer.from('hotline:secret').toString('base64')}`;

interface Seen {
  method: string;
  url: string;
  auth: string;
  body: string;
  /** came as a RESTRequest on the event socket */
  ws?: boolean;
}

/** a fake ARI: `routes` answer REST requests ([status, body] or null: never answer); sockets are the open event sockets */
class FakeAsterisk {
  readonly seen: Seen[] = [];
  readonly upgrades: Array<{ url: string; auth: string }> = [];
  readonly sockets = new Set<WebSocket>();
  routes: (req: Seen) => [number, unknown] | null | undefined = () => undefined;
  /** the event socket answers pings (false: a silent socket that stays open) */
  autoPong = true;
  /** refuse every request with this status (401: a wrong password) */
  refuse: number | null = null;
  private server: Server;
  private wss: WebSocketServer;
  port = 0;

  constructor() {
    this.wss = new WebSocketServer({ noServer: true, autoPong: true });
    this.server = this.makeServer();
  }

  private answer(seen: Seen): [number, unknown] | null {
    if (seen.url === '/ari/asterisk/info') return [200, { system: { version: '22.10.1' } }];
    if (seen.url.startsWith('/ari/applications/') && seen.url.endsWith('/eventFilter')) return [200, {}];
    const answer = this.routes(seen);
    return answer === null ? null : (answer ?? [204, undefined]);
  }

  /** Asterisk 22's REST over the event socket: a RESTRequest message answered by a RESTResponse message */
  private restOverWs(ws: WebSocket, auth: string, data: Buffer): void {
    const m = JSON.parse(data.toString()) as { type: string; request_id: string; transaction_id: string; method: string; uri: string; message_body?: string };
    if (m.type !== 'RESTRequest') return;
    const seen = { method: m.method, url: `/ari/${m.uri}`, auth, body: m.message_body ?? '', ws: true };
    this.seen.push(seen);
    const answer = this.answer(seen);
    if (answer === null) return;
    const [status, body] = answer;
    ws.send(
      JSON.stringify({
        type: 'RESTResponse',
        transaction_id: m.transaction_id,
        request_id: m.request_id,
        status_code: status,
        reason_phrase: 'x',
        uri: m.uri,
        ...(body === undefined ? {} : { content_type: 'application/json', message_body: JSON.stringify(body) }),
      }),
    );
  }

  private makeServer(): Server {
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const seen = { method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization ?? '', body: Buffer.concat(chunks).toString() };
        this.seen.push(seen);
        if (this.refuse) return void res.writeHead(this.refuse, { 'content-type': 'application/json' }).end('{"message":"Authentication required"}');
        const answer = this.answer(seen);
        if (answer === null) return; // never answers
        const [status, body] = answer;
        if (body === undefined) return void res.writeHead(status).end();
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      });
    });
    server.on('upgrade', (req, socket, head) => {
      this.upgrades.push({ url: req.url ?? '', auth: req.headers.authorization ?? '' });
      if (this.refuse || req.headers.authorization !== AUTH) {
        socket.end(`HTTP/1.1 ${this.refuse ?? 401} Unauthorized\r\nContent-Length: 0\r\n\r\n`);
        return;
      }
      const wss = this.autoPong ? this.wss : new WebSocketServer({ noServer: true, autoPong: false });
      wss.handleUpgrade(req, socket, head, (ws) => {
        this.sockets.add(ws);
        ws.on('message', (data: Buffer) => this.restOverWs(ws, req.headers.authorization ?? '', data));
        ws.on('close', () => this.sockets.delete(ws));
      });
    });
    return server;
  }

  async listen(port = 0): Promise<void> {
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** every connection dropped and the port closed (Asterisk stopped) */
  async stop(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  /** listening again on the same port (Asterisk back) */
  async restart(): Promise<void> {
    this.server = this.makeServer();
    await this.listen(this.port);
  }

  send(event: unknown): void {
    for (const ws of this.sockets) ws.send(JSON.stringify(event));
  }
}

const silent = pino({ level: 'silent' });

async function until(fn: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function setup(t: { teardown(fn: () => unknown): void }, extra: { requestTimeoutMs?: number; eventFilter?: boolean; rest?: 'http' | 'websocket' } = {}) {
  const fake = new FakeAsterisk();
  await fake.listen();
  const ari = new ThinAriClient({
    url: `http://127.0.0.1:${fake.port}`,
    user: 'hotline',
    password: 'secret',
    app: 'unit-thin',
    requestTimeoutMs: extra.requestTimeoutMs ?? 300,
    startupTimeoutMs: 0,
    log: silent,
    ...(extra.eventFilter === undefined ? {} : { eventFilter: extra.eventFilter }),
    ...(extra.rest ? { rest: extra.rest } : {}),
  });
  const events: AriEvent[] = [];
  const states: ConnectionState[] = [];
  ari.onEvent((e) => events.push(e));
  ari.onConnection((s) => states.push(s));
  t.teardown(async () => {
    await ari.close();
    await fake.stop().catch(() => undefined);
  });
  return { fake, ari, events, states };
}

t.test('start: the event socket with our app, subscribeAll=false and Basic auth in the headers; the event filter set', async (t) => {
  const { fake, ari, states } = await setup(t);
  await ari.start();
  t.equal(ari.connected, true);
  t.same(states, ['up']);
  t.equal(fake.upgrades.length, 1);
  t.equal(fake.upgrades[0]!.url, '/ari/events?app=unit-thin&subscribeAll=false');
  t.equal(fake.upgrades[0]!.auth, AUTH, 'credentials in the header, not in the URL');
  const filter = fake.seen.find((s) => s.url === '/ari/applications/unit-thin/eventFilter');
  t.ok(filter, 'PUT eventFilter');
  t.equal(filter!.method, 'PUT');
  t.same(
    (JSON.parse(filter!.body) as { allowed: Array<{ type: string }> }).allowed.map((a) => a.type),
    ['StasisStart', 'StasisEnd', 'ChannelDestroyed', 'ChannelHangupRequest', 'ChannelDtmfReceived', 'PlaybackFinished', 'RecordingFinished', 'RecordingFailed', 'ApplicationReplaced'],
  );
});

t.test('eventFilter: false sets no filter', async (t) => {
  const { fake, ari } = await setup(t, { eventFilter: false });
  await ari.start();
  t.notOk(fake.seen.some((s) => s.url.includes('eventFilter')));
});

t.test('start: a refused password is AriMisconfigured at once; nothing reachable is AriUnavailable', async (t) => {
  const { fake, ari } = await setup(t);
  fake.refuse = 401;
  await t.rejects(ari.start(), { name: 'AriMisconfigured', message: /refused ARI_USER "hotline"/ });
  const nowhere = new ThinAriClient({ url: 'http://127.0.0.1:1', user: 'u', password: 'p', app: 'x', requestTimeoutMs: 200, startupTimeoutMs: 0, log: silent });
  await t.rejects(nowhere.start(), { name: 'AriUnavailable' });
  await t.rejects(nowhere.channels.answer('c1'), { name: 'AriUnavailable', message: /not connected/ }, 'requests before start');
  await nowhere.close();
});

t.test('REST: paths, query, JSON bodies and answers', async (t) => {
  const { fake, ari } = await setup(t);
  fake.routes = (req) => {
    if (req.method === 'POST' && req.url.startsWith('/ari/channels?')) return [200, { id: 'c9', name: 'PJSIP/agent1-0001', state: 'Down', caller: { number: '1001', name: '' }, dialplan: { exten: 's' }, language: 'zh', creationtime: 'now' }];
    if (req.url === '/ari/channels') return [200, [{ id: 'a', name: 'n', state: 'Up' }]];
    if (req.url === '/ari/bridges') return [200, [{ id: 'b1', channels: ['a', 'c'] }]];
    if (req.url === '/ari/asterisk/variable?variable=FOO') return [200, { value: 'bar' }];
    if (req.url === '/ari/asterisk/config/dynamic/res_pjsip/aor/t1' && req.method === 'GET') return [200, [{ attribute: 'max_contacts', value: '1' }]];
    return undefined;
  };
  await ari.start();
  const ch = await ari.channels.originate({ endpoint: 'PJSIP/agent1', channelId: 'c9', appArgs: ['agent', 'call-1'], callerNumber: '12345', callerName: 'Hotline', timeoutSeconds: 15, variables: { X: '1' } });
  t.equal(ch.id, 'c9');
  t.equal(ch.dialedExten, 's');
  let last = fake.seen.at(-1)!;
  const q = new URL(last.url, 'http://x').searchParams;
  t.same(Object.fromEntries(q), { endpoint: 'PJSIP/agent1', channelId: 'c9', app: 'unit-thin', appArgs: 'agent,call-1', callerId: '"Hotline" <12345>', timeout: '15' });
  t.same(JSON.parse(last.body), { variables: { X: '1' } });
  t.equal(last.auth, AUTH);

  await ari.channels.play('c 1', ['sound:hotline/zh/welcome', 'sound:beep'], 'pb-1', 'zh');
  last = fake.seen.at(-1)!;
  t.equal(last.url, '/ari/channels/c%201/play/pb-1?media=sound%3Ahotline%2Fzh%2Fwelcome%2Csound%3Abeep&lang=zh');
  await ari.channels.hangup('c1');
  t.equal(fake.seen.at(-1)!.url, '/ari/channels/c1?reason=normal');
  t.equal(fake.seen.at(-1)!.method, 'DELETE');
  await ari.bridges.create('b1');
  t.equal(fake.seen.at(-1)!.url, '/ari/bridges?type=mixing&bridgeId=b1');
  await ari.bridges.addChannel('b1', ['a', 'c']);
  t.equal(fake.seen.at(-1)!.url, '/ari/bridges/b1/addChannel?channel=a%2Cc');
  await ari.channels.record('c1', { name: 'rec/x', format: 'wav', maxDurationSeconds: 0, maxSilenceSeconds: 0, beep: false, terminateOn: '#', ifExists: 'fail' });
  t.equal(fake.seen.at(-1)!.url, '/ari/channels/c1/record?name=rec%2Fx&format=wav&maxDurationSeconds=0&maxSilenceSeconds=0&beep=false&terminateOn=%23&ifExists=fail');
  await ari.config.put('res_pjsip', 'aor', 't1', { max_contacts: '1' });
  t.same(JSON.parse(fake.seen.at(-1)!.body), { fields: [{ attribute: 'max_contacts', value: '1' }] });
  t.equal(fake.seen.at(-1)!.method, 'PUT');
  t.same(await ari.config.get('res_pjsip', 'aor', 't1'), { max_contacts: '1' });
  t.same(await ari.channels.list(), [{ id: 'a', name: 'n', state: 'Up', callerNumber: '', callerName: '', dialedExten: '', language: '', createdAt: '' }]);
  t.same(await ari.bridges.list(), [{ id: 'b1', channels: ['a', 'c'] }]);
  t.equal(await ari.globals.get('FOO'), 'bar');
  await ari.globals.set('FOO', 'a b');
  t.equal(fake.seen.at(-1)!.url, '/ari/asterisk/variable');
  t.same(JSON.parse(fake.seen.at(-1)!.body), { variable: 'FOO', value: 'a b' }, 'in the body: a long value does not fit a request line');
  await ari.channels.setVariable('c1', 'HOTLINE_FALLBACK', '1');
  t.equal(fake.seen.at(-1)!.url, '/ari/channels/c1/variable?variable=HOTLINE_FALLBACK&value=1');
  await ari.channels.continueInDialplan('c1');
  t.equal(fake.seen.at(-1)!.url, '/ari/channels/c1/continue');
});

t.test('errors by HTTP status: 404 AriGone, 409/412/422 AriConflict, 400 "not found" AriGone, others Error with Asterisk\'s message', async (t) => {
  const { fake, ari } = await setup(t);
  const answers: Record<string, [number, unknown]> = {
    '/ari/channels/gone/answer': [404, { message: 'Channel not found' }],
    '/ari/channels/busy/answer': [409, { message: 'Channel not in Stasis application' }],
    '/ari/channels/down/answer': [412, { message: 'Channel in invalid state' }],
    '/ari/bridges/b/removeChannel?channel=x': [422, { message: 'Channel not in this bridge' }],
    '/ari/bridges/b/addChannel?channel=x': [400, { message: 'Channel not found' }],
    '/ari/channels/c/record?name=r&format=wav&maxDurationSeconds=0&maxSilenceSeconds=0&beep=false&terminateOn=none&ifExists=fail': [422, { message: 'specified format is unknown on this system' }],
    '/ari/channels/c/snoop/s?app=unit-thin&appArgs=&spy=in&whisper=none': [500, { message: 'Snoop channel could not be created' }],
    '/ari/asterisk/config/dynamic/res_pjsip/aor/none': [404, { message: "Object with id 'none' not found" }],
    '/ari/channels/text/ring': [503, 'busy'],
  };
  fake.routes = (req) => answers[req.url];
  await ari.start();
  await t.rejects(ari.channels.answer('gone'), { name: 'AriGone', message: 'answer: Channel not found' });
  await t.rejects(ari.channels.answer('busy'), { name: 'AriConflict', message: 'answer: Channel not in Stasis application' });
  await t.rejects(ari.channels.answer('down'), { name: 'AriConflict' });
  await t.rejects(ari.bridges.removeChannel('b', ['x']), { name: 'AriConflict', message: /not in this bridge/ });
  await t.rejects(ari.bridges.addChannel('b', ['x']), { name: 'AriGone' }, 'a channel that hung up before it was bridged');
  await t.rejects(ari.channels.record('c', { name: 'r', format: 'wav', maxDurationSeconds: 0, maxSilenceSeconds: 0, beep: false, terminateOn: 'none', ifExists: 'fail' }), { name: 'AriConflict', message: /format is unknown/ });
  const err = await ari.channels.snoop('c', { snoopId: 's', spy: 'in', whisper: 'none', appArgs: [] }).catch((e: Error) => e);
  t.equal((err as Error).name, 'Error');
  t.equal((err as Error).message, 'snoop: Snoop channel could not be created');
  t.equal(await ari.config.get('res_pjsip', 'aor', 'none'), null, 'config.get of a missing object is null');
  await t.rejects(ari.config.delete('res_pjsip', 'aor', 'none'), { name: 'AriGone' });
  await t.rejects(ari.channels.ring('text'), { name: 'AriUnavailable' });
});

t.test('metrics: latency and errors per operation label, event socket messages and bytes', async (t) => {
  const { fake, ari } = await setup(t);
  fake.routes = (req) => (req.url.includes('agent-nope') ? [404, { message: 'not found' }] : undefined);
  await ari.start();
  const count = (op: string) => Number(new RegExp(`hotline_ari_request_duration_seconds_count\\{op="${op}"\\} (\\d+)`).exec(ariMetrics.requestSeconds.render().join('\n'))?.[1] ?? 0);
  const before = { put: count('put endpoint'), del: count('delete endpoint'), errors: ariMetrics.requestErrors.get({ op: 'delete endpoint' }), msgs: ariMetrics.wsMessages.get(), bytes: ariMetrics.wsBytes.get() };
  await ari.config.put('res_pjsip', 'endpoint', 'agent1001', { context: 'agents' });
  await ari.config.delete('res_pjsip', 'endpoint', 'agent-nope').catch(() => undefined);
  t.equal(count('put endpoint'), before.put + 1, 'one series per operation, without the object id');
  t.equal(count('delete endpoint'), before.del + 1);
  t.equal(ariMetrics.requestErrors.get({ op: 'delete endpoint' }), before.errors + 1);
  const event = JSON.stringify({ type: 'ChannelVarset', variable: 'x' });
  fake.send(JSON.parse(event));
  await until(() => ariMetrics.wsMessages.get() > before.msgs, 2000, 'the message counted');
  t.equal(ariMetrics.wsBytes.get() - before.bytes, Buffer.byteLength(event));
});

t.test('a request Asterisk never answers is AriUnavailable after the timeout; a refused connection too', async (t) => {
  const { fake, ari } = await setup(t, { requestTimeoutMs: 200 });
  fake.routes = (req) => (req.url.startsWith('/ari/channels/hang/') ? null : undefined);
  await ari.start();
  const started = Date.now();
  await t.rejects(ari.channels.answer('hang'), { name: 'AriUnavailable', message: 'answer: no answer from Asterisk within 200 ms' });
  t.ok(Date.now() - started < 1000);
  await ari.channels.answer('ok'); // the pool still works after a destroyed socket
  await fake.stop();
  await t.rejects(ari.channels.answer('ok'), { name: 'AriUnavailable', message: /ECONNREFUSED|ECONNRESET/ });
});

t.test('events: converted by toEvent, util- channels hidden, other types dropped', async (t) => {
  const { fake, ari, events } = await setup(t);
  await ari.start();
  await until(() => fake.sockets.size === 1, 2000, 'the event socket');
  const channel = { id: 'c1', name: 'PJSIP/trunk-0001', state: 'Ring', caller: { number: '13800000000', name: '' }, dialplan: { exten: '12345' }, language: 'zh', creationtime: '2026-01-01T00:00:00.000+0800' };
  fake.send({ type: 'StasisStart', timestamp: 't1', args: ['inbound'], channel, application: 'unit-thin' });
  fake.send({ type: 'StasisStart', timestamp: 't2', args: ['util'], channel: { ...channel, id: 'util-123' } });
  fake.send({ type: 'ChannelVarset', timestamp: 't3', channel });
  fake.send({ type: 'ChannelDtmfReceived', timestamp: 't4', digit: '1', duration_ms: 120, channel });
  fake.send({ type: 'PlaybackFinished', timestamp: 't5', playback: { id: 'pb1', target_uri: 'channel:c1', state: 'done' } });
  fake.send({ type: 'ChannelDestroyed', timestamp: 't6', cause: 16, cause_txt: 'Normal Clearing', channel });
  await until(() => events.length >= 4, 2000, 'four events');
  t.same(
    events.map((e) => e.type),
    ['StasisStart', 'ChannelDtmfReceived', 'PlaybackFinished', 'ChannelDestroyed'],
  );
  t.same(events[0], {
    type: 'StasisStart',
    at: 't1',
    args: ['inbound'],
    channel: { id: 'c1', name: 'PJSIP/trunk-0001', state: 'Ring', callerNumber: '13800000000', callerName: '', dialedExten: '12345', language: 'zh', createdAt: '2026-01-01T00:00:00.000+0800' },
  });
  t.same(events[1], { type: 'ChannelDtmfReceived', at: 't4', channel: events[0]!.type === 'StasisStart' ? events[0]!.channel : null, digit: '1', durationMs: 120 });
  t.same(events[3], { type: 'ChannelDestroyed', at: 't6', channel: (events[0] as { channel: unknown }).channel, cause: 16, causeText: 'Normal Clearing' });
});

t.test('globals.get of a dialplan function: a parked util- channel, its variable read, then hung up', async (t) => {
  const { fake, ari, events } = await setup(t);
  fake.routes = (req) => {
    if (req.method === 'POST' && req.url.startsWith('/ari/channels?')) {
      const id = new URL(req.url, 'http://x').searchParams.get('channelId')!;
      // Asterisk: the reply, then StasisStart when the Local channel is up
      setTimeout(() => fake.send({ type: 'StasisStart', timestamp: 't', args: ['util'], channel: { id } }), 20);
      return [200, { id }];
    }
    if (req.method === 'GET' && req.url.includes('/variable?variable=DB_KEYS(agent)')) return [200, { value: 'a,b' }];
    return undefined;
  };
  await ari.start();
  t.equal(await ari.globals.get('DB_KEYS(agent)'), 'a,b');
  const originate = fake.seen.find((s) => s.url.startsWith('/ari/channels?'))!;
  const q = new URL(originate.url, 'http://x').searchParams;
  t.equal(q.get('endpoint'), 'Local/wait@hotline-util');
  t.match(q.get('channelId'), /^util-/);
  t.equal(fake.seen.at(-1)!.method, 'DELETE', 'hung up');
  t.equal(fake.seen.at(-1)!.url, `/ari/channels/${q.get('channelId')}`);
  t.same(events, [], 'the util channel never reaches the application');
});

t.test('reconnect: the server drops the event socket, then Asterisk goes away and comes back', async (t) => {
  const { fake, ari, states } = await setup(t);
  await ari.start();
  await until(() => fake.sockets.size === 1, 2000, 'the event socket');
  for (const ws of fake.sockets) ws.terminate();
  await until(() => states.length >= 3, 3000, 'down then up');
  t.same(states.slice(0, 3), ['up', 'down', 'up']);
  t.equal(fake.upgrades.length, 2);
  t.equal(fake.seen.filter((s) => s.url.endsWith('/eventFilter')).length, 2, 'the filter set again');

  await fake.stop();
  await until(() => states.length >= 4, 3000, 'down');
  t.equal(ari.connected, false);
  await new Promise((r) => setTimeout(r, 1200)); // a few failed attempts (backoff)
  await fake.restart();
  await until(() => ari.connected, 8000, 'reconnected');
  t.same(states, ['up', 'down', 'up', 'down', 'up']);
  await ari.channels.answer('c1'); // REST works again
});

t.test('heartbeat: a socket that stops answering pings is terminated and replaced', async (t) => {
  const { fake, ari, states } = await setup(t);
  fake.autoPong = false;
  await ari.start();
  fake.autoPong = true; // the next socket answers
  const started = Date.now();
  await until(() => states.length >= 3, 12_000, 'down then up');
  const took = Date.now() - started;
  t.same(states, ['up', 'down', 'up']);
  t.ok(took >= 5500 && took < 10_000, `terminated after 3 missed pings (${took} ms)`);
  t.equal(fake.upgrades.length, 2);
});

t.test('ApplicationReplaced: delivered, then the client is frozen (down, no reconnect, requests wait)', async (t) => {
  const { fake, ari, events, states } = await setup(t);
  await ari.start();
  await until(() => fake.sockets.size === 1, 2000, 'the event socket');
  fake.send({ type: 'ApplicationReplaced', timestamp: 't', application: 'unit-thin' });
  await until(() => events.length === 1, 2000, 'the event');
  t.same(events, [{ type: 'ApplicationReplaced', at: 't' }]);
  await until(() => !ari.connected, 2000, 'down');
  await new Promise((r) => setTimeout(r, 600));
  t.equal(fake.upgrades.length, 1, 'no reconnect: that would take the application back');
  t.same(states, ['up', 'down']);
  const pending = await Promise.race([ari.channels.answer('c1').then(() => 'settled', () => 'settled'), new Promise((r) => setTimeout(() => r('waiting'), 300))]);
  t.equal(pending, 'waiting');
});

t.test('recordings.file: streamed with our credentials on its own connection; 404 AriGone; silence AriUnavailable', async (t) => {
  const body = Buffer.alloc(100_000, 3);
  const { fake, ari } = await setup(t, { requestTimeoutMs: 200 });
  let hang = false;
  fake.routes = (req) => {
    if (!req.url.startsWith('/ari/recordings/stored/')) return undefined;
    if (hang) return null;
    if (req.url === '/ari/recordings/stored/missing/file') return [404, { message: 'Recording not found' }];
    if (req.url === '/ari/recordings/stored/locked/file') return [403, { message: 'Recording could not be opened' }];
    return undefined;
  };
  await ari.start();
  // a file answer needs a raw body: served by a second, tiny server standing in for the stored-file endpoint
  const files = createServer((req, res) => {
    if (req.url === '/ari/recordings/stored/vm%2F1/file' && req.headers.authorization === AUTH) {
      res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': body.length });
      res.write(body.subarray(0, 1000));
      setTimeout(() => res.end(body.subarray(1000)), 300); // longer than the request timeout: only the headers are timed
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"Recording not found"}');
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    files.closeAllConnections();
    files.close();
  });
  const fileClient = new ThinAriClient({ url: `http://127.0.0.1:${(files.address() as AddressInfo).port}`, user: 'hotline', password: 'secret', app: 'unit-thin-files', requestTimeoutMs: 200, startupTimeoutMs: 0, log: silent });
  const f = await fileClient.recordings.file('vm/1');
  t.equal(f.contentType, 'audio/wav');
  t.equal(f.size, body.length);
  const chunks: Buffer[] = [];
  for await (const c of f.stream) chunks.push(c as Buffer);
  t.ok(Buffer.concat(chunks).equals(body), 'every byte, though the body took longer than the request timeout');
  await fileClient.close();

  await t.rejects(ari.recordings.file('missing'), { name: 'AriGone', message: 'recording file missing: Recording not found' });
  await t.rejects(ari.recordings.file('locked'), { name: 'AriUnavailable', message: /HTTP 403/ });
  hang = true;
  await t.rejects(ari.recordings.file('x'), { name: 'AriUnavailable', message: /within 200 ms/ });
});

t.test('recordings.file: downloads reuse a kept-alive connection; one Asterisk closed under a reuse is tried once more on a new one', async (t) => {
  const body = Buffer.alloc(20_000, 7);
  const sockets = new Set<unknown>();
  let requests = 0;
  let dropNextReuse = false;
  const seen = new WeakSet<object>();
  const files = createServer((req, res) => {
    requests++;
    const reused = seen.has(req.socket);
    seen.add(req.socket);
    sockets.add(req.socket);
    if (dropNextReuse && reused) {
      dropNextReuse = false;
      req.socket.destroy(); // as Asterisk closing an idle session just as the client reused it
      return;
    }
    res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    files.closeAllConnections();
    files.close();
  });
  const client = new ThinAriClient({ url: `http://127.0.0.1:${(files.address() as AddressInfo).port}`, user: 'hotline', password: 'secret', app: 'unit-thin-files', requestTimeoutMs: 1000, startupTimeoutMs: 0, log: silent });
  t.teardown(() => client.close());
  const read = async () => {
    const f = await client.recordings.file('call-1');
    const chunks: Buffer[] = [];
    for await (const c of f.stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  for (let i = 0; i < 3; i++) t.ok((await read()).equals(body), `download ${i + 1} complete`);
  t.equal(sockets.size, 1, 'three downloads, one connection');
  dropNextReuse = true;
  t.ok((await read()).equals(body), 'the download after a dropped reuse is complete');
  t.equal(requests, 5, 'the dropped request was sent once more');
  t.equal(sockets.size, 2, 'on a new connection');
});

t.test('createAriClient and ARI_CLIENT', async (t) => {
  const opts = { url: 'http://127.0.0.1:1', user: 'u', password: 'p', app: 'x', requestTimeoutMs: 200, startupTimeoutMs: 0, log: silent };
  const thin = await createAriClient(opts);
  t.ok(thin instanceof ThinAriClient, 'thin by default');
  const classic = await createAriClient({ ...opts, kind: 'ari-client' });
  t.equal(classic.constructor.name, 'AriClient', 'ari-client when asked for');
  await thin.close();
  await classic.close();
  t.equal(loadConfig({}).ari.client, 'thin');
  t.equal(loadConfig({ ARI_CLIENT: 'thin' }).ari.client, 'thin');
  t.throws(() => loadConfig({ ARI_CLIENT: 'undici' }), { name: 'ConfigError', message: /ARI_CLIENT must be one of ari-client, thin, got "undici"/ });
  // ARI_REST: the thin client's REST transport, http unless asked
  t.equal(loadConfig({}).ari.rest, 'http');
  t.equal(loadConfig({ ARI_REST: 'websocket' }).ari.rest, 'websocket');
  t.throws(() => loadConfig({ ARI_REST: 'ws' }), { name: 'ConfigError', message: /ARI_REST must be one of http, websocket, got "ws"/ });
});

t.test('rest: websocket: requests as RESTRequest messages on the event socket, answers matched by request_id', async (t) => {
  const { fake, ari } = await setup(t, { rest: 'websocket', requestTimeoutMs: 200 });
  fake.routes = (req) => {
    if (req.url.startsWith('/ari/channels?')) return [200, { id: 'c1', name: 'Local/x' }];
    if (req.url === '/ari/channels/gone/answer') return [404, { message: 'Channel not found' }];
    if (req.url === '/ari/channels/busy/answer') return [409, { message: 'Channel not in Stasis application' }];
    if (req.url.startsWith('/ari/channels/hang/')) return null;
    return undefined;
  };
  await ari.start();
  const filter = fake.seen.find((s) => s.url.endsWith('/eventFilter'))!;
  t.notOk(filter.ws, 'the filter is set over HTTP');
  t.ok((JSON.parse(filter.body) as { allowed: Array<{ type: string }> }).allowed.some((a) => a.type === 'RESTResponse'), 'RESTResponse allowed through the filter');
  const [a, b] = await Promise.all([
    ari.channels.originate({ endpoint: 'Local/wait@hotline-util', channelId: 'c1', appArgs: ['x'], timeoutSeconds: 5, variables: { A: '1' } }),
    ari.channels.answer('ok'),
  ]);
  t.equal(a.id, 'c1');
  t.equal(b, undefined);
  const originate = fake.seen.find((s) => s.url.startsWith('/ari/channels?'))!;
  t.ok(originate.ws, 'sent over the event socket');
  t.equal(originate.auth, AUTH, 'authorised by the upgrade request');
  t.same(JSON.parse(originate.body), { variables: { A: '1' } });
  await t.rejects(ari.channels.answer('gone'), { name: 'AriGone', message: 'answer: Channel not found' });
  await t.rejects(ari.channels.answer('busy'), { name: 'AriConflict' });
  await t.rejects(ari.channels.answer('hang'), { name: 'AriUnavailable', message: /within 200 ms/ });
  // the socket drops while a request waits: it fails at once, not at its timeout
  fake.routes = () => null;
  const waiting = ari.channels.answer('x');
  await until(() => fake.seen.at(-1)?.url === '/ari/channels/x/answer', 1000, 'the request sent');
  for (const ws of fake.sockets) ws.terminate();
  await t.rejects(waiting, { name: 'AriUnavailable', message: /closed before the answer/ });
});
