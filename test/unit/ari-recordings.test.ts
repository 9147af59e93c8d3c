/**
 * The ARI adapter's recording pieces that need no Asterisk: the Recording* events as ARI sends them, and the
 * stored-file download (a plain HTTP GET) against a small server standing in for Asterisk's HTTP port.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { pino } from 'pino';
import { AriClient, toEvent } from '../../src/ari/client.js';

t.test('RecordingFinished and RecordingFailed: the LiveRecording fields ARI sends', async (t) => {
  const finished = toEvent({
    type: 'RecordingFinished',
    timestamp: '2026-03-01T10:00:00.000+0800',
    application: 'hotline',
    recording: { name: 'vm-abc', format: 'wav', state: 'done', target_uri: 'channel:abc', duration: 7, talking_duration: 5, silence_duration: 2 },
  });
  t.same(finished, { type: 'RecordingFinished', at: '2026-03-01T10:00:00.000+0800', name: 'vm-abc', targetUri: 'channel:abc', durationSeconds: 7 });
  const failed = toEvent({ type: 'RecordingFailed', timestamp: 'x', recording: { name: 'vm-abc', format: 'wav', state: 'failed', target_uri: 'channel:abc', cause: 'Disk full' } });
  t.same(failed, { type: 'RecordingFailed', at: 'x', name: 'vm-abc', targetUri: 'channel:abc', cause: 'Disk full' });
  t.equal((toEvent({ type: 'RecordingFinished', recording: { name: 'n', target_uri: 'bridge:b', state: 'done' } }) as { durationSeconds: number }).durationSeconds, 0, 'no duration: 0');
});

t.test('ChannelHangupRequest: soft when Asterisk or an application asked, not soft when the far end hung up', async (t) => {
  const channel = { id: 'c1', name: 'PJSIP/trunk-1', state: 'Up', caller: { number: '13800138000' } };
  const bye = toEvent({ type: 'ChannelHangupRequest', timestamp: 'x', cause: 16, channel });
  t.match(bye, { type: 'ChannelHangupRequest', soft: false, cause: 16, channel: { id: 'c1' } }, 'a BYE (ast_queue_hangup: no soft field)');
  t.match(toEvent({ type: 'ChannelHangupRequest', timestamp: 'x', cause: 16, soft: true, channel }), { soft: true }, 'ARI DELETE (ast_softhangup)');
});

t.test('recordings.file: streams the stored file with our credentials; 404 is AriGone; errors and silence are AriUnavailable', async (t) => {
  const body = Buffer.alloc(200_000, 7);
  const seen: Array<{ url: string; auth: string }> = [];
  let hang = false;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push({ url: req.url ?? '', auth: req.headers.authorization ?? '' });
    if (hang) return; // never answers
    if (req.url === '/ari/recordings/stored/vm-1/file') {
      res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': body.length });
      // in two parts, the second after a pause longer than the request timeout: only the headers are timed
      res.write(body.subarray(0, 1000));
      setTimeout(() => res.end(body.subarray(1000)), 300);
      return;
    }
    if (req.url === '/ari/recordings/stored/broken/file') {
      res.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"Recording could not be opened"}');
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"Recording not found"}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  const ari = new AriClient({
    url: `http://127.0.0.1:${port}`,
    user: 'hotline',
    password: 'secret',
    app: 'unit-test',
    requestTimeoutMs: 200,
    startupTimeoutMs: 0,
    log: pino({ level: 'silent' }),
  });

  const f = await ari.recordings.file('vm-1');
  t.equal(f.contentType, 'audio/wav');
  t.equal(f.size, body.length);
  const chunks: Buffer[] = [];
  for await (const c of f.stream) chunks.push(c as Buffer);
  t.ok(Buffer.concat(chunks).equals(body), 'every byte, though the body took longer than the request timeout');
  t.equal(seen[0]!.auth, `Basic ${Buffer.from('hotline:secret').toString('base64')}`);

  await t.rejects(ari.recordings.file('nothing'), { name: 'AriGone' });
  await t.rejects(ari.recordings.file('broken'), { name: 'AriUnavailable' });
  t.equal(seen.at(-1)!.url, '/ari/recordings/stored/broken/file');
  await ari.recordings.file('a name/with spaces').catch(() => undefined);
  t.equal(seen.at(-1)!.url, '/ari/recordings/stored/a%20name%2Fwith%20spaces/file', 'the name is one path segment');
  hang = true;
  await t.rejects(ari.recordings.file('vm-1'), { name: 'AriUnavailable', message: /within 200 ms/ });

  // a port where nothing listens any more
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const nowhere = new AriClient({ url: `http://127.0.0.1:${closedPort}`, user: 'u', password: 'p', app: 'x', requestTimeoutMs: 1000, startupTimeoutMs: 0, log: pino({ level: 'silent' }) });
  await t.rejects(nowhere.recordings.file('vm-1'), { name: 'AriUnavailable', message: /ECONNREFUSED/ });
  await t.rejects(nowhere.recordings.stop('vm-1'), { name: 'AriUnavailable' }, 'not connected: stop fails fast');
});
