/**
 * The thin ARI adapter (src/ari/thin-client.ts) on the real Asterisk, under an application name of its own
 * (hotline-thin-test: the dialplan routes callers to `hotline`, which the other tests use). Channels are Local
 * channels into the dialplan's hotline-util context (`wait`: answers, waits 20 s). Everything it creates in
 * Asterisk (channels, a bridge, a global variable, an AstDB key, a PJSIP AOR) is removed before the end.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { pino } from 'pino';
import { ThinAriClient } from '../../src/ari/thin-client.js';
import { FALLBACK_DIAL_MAX_CHARS, FALLBACK_DIAL_VAR, startFallback } from '../../src/calls/fallback.js';
import type { AriEvent } from '../../src/ari/port.js';
import { ARI, ROOT, ariBridges, ariChannels, waitFor } from '../helpers/stack.js';

const APP = 'hotline-thin-test';
const tag = randomUUID().slice(0, 8);
const raw = async (method: string, p: string) =>
  fetch(`${ARI.url}/ari${p}`, { method, headers: { authorization: `Basic ${Buffer.from(`${ARI.user}:${ARI.password}`).toString('base64')}` }, signal: AbortSignal.timeout(5000) });

const cli = async (command: string) => promisify(execFile)('bash', [path.join(ROOT, 'scripts/asterisk.sh'), 'cli', command], { timeout: 20_000 });

const ari = new ThinAriClient({ ...ARI, app: APP, requestTimeoutMs: 5000, startupTimeoutMs: 10_000, log: pino({ level: 'silent' }) });
const events: AriEvent[] = [];
ari.onEvent((e) => events.push(e));
const ours = (id: string) => id.startsWith(`thin-${tag}`);

t.teardown(async () => {
  // whatever failed: nothing of ours stays in Asterisk
  for (const c of await ariChannels().catch(() => [])) if (ours(c.id)) await raw('DELETE', `/channels/${encodeURIComponent(c.id)}`).catch(() => undefined);
  for (const b of await ariBridges().catch(() => [])) if (ours(b.id)) await raw('DELETE', `/bridges/${encodeURIComponent(b.id)}`).catch(() => undefined);
  await raw('DELETE', `/asterisk/config/dynamic/res_pjsip/aor/thin-${tag}`).catch(() => undefined);
  await raw('POST', `/asterisk/variable?variable=HOTLINE_THIN_${tag}`).catch(() => undefined); // no value: the variable is removed
  await cli(`database deltree hotline-thin-${tag}`).catch(() => undefined);
  await ari.close();
});

async function next<T extends AriEvent['type']>(type: T, match: (e: Extract<AriEvent, { type: T }>) => boolean, ms = 5000): Promise<Extract<AriEvent, { type: T }>> {
  return waitFor(() => events.find((e): e is Extract<AriEvent, { type: T }> => e.type === type && match(e as Extract<AriEvent, { type: T }>)), ms, type);
}

await ari.start();

t.test('connected, with the event filter set on our application', async (t) => {
  t.equal(ari.connected, true);
  const app = (await (await raw('GET', `/applications/${APP}`)).json()) as { events_allowed: Array<{ type: string }> };
  t.same(
    app.events_allowed.map((e) => e.type).sort(),
    ['ApplicationReplaced', 'ChannelDestroyed', 'ChannelDtmfReceived', 'ChannelHangupRequest', 'PlaybackFinished', 'RecordingFailed', 'RecordingFinished', 'StasisEnd', 'StasisStart'],
  );
});

t.test('channels and bridges: originate, StasisStart, answer, play, bridge, list, hang up', async (t) => {
  const a = `thin-${tag}-a`;
  const b = `thin-${tag}-b`;
  const bridge = `thin-${tag}-bridge`;
  const chA = await ari.channels.originate({ endpoint: 'Local/wait@hotline-util', channelId: a, appArgs: ['e2e', 'a'], callerNumber: '13800000001', timeoutSeconds: 10 });
  t.equal(chA.id, a);
  t.match(chA.name, /^Local\/wait@hotline-util-/);
  await ari.channels.originate({ endpoint: 'Local/wait@hotline-util', channelId: b, appArgs: ['e2e', 'b'], timeoutSeconds: 10 });
  const start = await next('StasisStart', (e) => e.channel.id === a);
  t.same(start.args, ['e2e', 'a']);
  t.equal(start.channel.callerNumber, '13800000001');
  await next('StasisStart', (e) => e.channel.id === b);

  await ari.channels.answer(a);
  const playbackId = `thin-${tag}-pb`;
  await ari.channels.play(a, ['sound:hotline/zh/goodbye'], playbackId, 'zh');
  const done = await next('PlaybackFinished', (e) => e.playbackId === playbackId, 15_000);
  t.equal(done.targetUri, `channel:${a}`);
  t.equal(done.state, 'done');

  await ari.bridges.create(bridge, 'mixing', 'thin e2e');
  await ari.bridges.addChannel(bridge, [a, b]);
  const bridges = await ari.bridges.list();
  const mine = bridges.find((x) => x.id === bridge);
  t.same(mine?.channels.sort(), [a, b].sort(), 'both channels in the bridge');
  const channels = await ari.channels.list();
  t.ok(channels.some((c) => c.id === a) && channels.some((c) => c.id === b), 'both listed');

  // the other half of a Local channel runs the dialplan: it is in no Stasis application (409)
  const half = channels.find((c) => c.name === chA.name.replace(/;1$/, ';2'));
  t.ok(half, 'the ;2 half of the Local channel');
  await t.rejects(ari.channels.answer(half!.id), { name: 'AriConflict' }, '409 Channel not in Stasis application');

  await ari.channels.hangup(a);
  await next('StasisEnd', (e) => e.channel.id === a);
  const destroyed = await next('ChannelDestroyed', (e) => e.channel.id === a);
  t.equal(destroyed.cause, 16);
  await t.rejects(ari.channels.hangup(a), { name: 'AriGone' }, 'a second hang-up: 404');
  await t.rejects(ari.bridges.addChannel(bridge, [a]), { name: 'AriGone' }, 'adding a channel that is gone (400 Channel not found)');
  await ari.bridges.removeChannel(bridge, [b]);
  await t.rejects(ari.bridges.removeChannel(bridge, [b]), { name: 'AriConflict' }, '422 Channel not in this bridge');
  await ari.bridges.destroy(bridge);
  // just destroyed, Asterisk may still hold it outside Stasis (409) before it is gone (404): both harmless (ignoreGone)
  const again = await ari.bridges.destroy(bridge).then(() => null, (e: Error) => e.name);
  t.ok(again === 'AriGone' || again === 'AriConflict', `a second destroy: ${again}`);
  await ari.channels.hangup(b);
  await next('ChannelDestroyed', (e) => e.channel.id === b);
});

t.test('globals and dialplan functions (through a parked util- channel that the application never sees)', async (t) => {
  const name = `HOTLINE_THIN_${tag}`;
  await ari.globals.set(name, 'x y');
  t.equal(await ari.globals.get(name), 'x y');
  t.equal(await ari.globals.get(`GLOBAL(${name})`), 'x y', 'a function, read on the util channel');

  // an AstDB key (ARI may not write DB() without live_dangerously: the dialplan does, here the CLI), listed by DB_KEYS()
  const family = `hotline-thin-${tag}`;
  await cli(`database put ${family} k1 v1`);
  t.equal(await ari.globals.get(`DB_KEYS(${family})`), 'k1');
  await cli(`database deltree ${family}`);
  t.equal(await ari.globals.get(`DB_KEYS(${family})`), '');
  t.notOk(events.some((e) => 'channel' in e && e.channel.id.startsWith('util-')), 'no util- channel event reached the application');
  await raw('POST', `/asterisk/variable?variable=${name}`);
  t.equal(await ari.globals.get(name), '');
});

t.test('the fallback ring group of a large floor reaches Asterisk (the value goes in the body, not the request line)', async (t) => {
  const before = await ari.globals.get(FALLBACK_DIAL_VAR);
  t.teardown(() => ari.globals.set(FALLBACK_DIAL_VAR, before));
  const lines: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as { level: number; msg: string }) });
  const floor = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ agentId: String(10001 + i), state: 'ready' as const, reason: null, since: 0, callId: null, skills: { general: 5 }, endpoint: `PJSIP/agent${10001 + i}` }));
  let agents = floor(240);
  // db: the sync never reads it (only the import of calls the dialplan took does, when Asterisk holds some: it then
  // fails after the sync and logs a warning)
  const fb = startFallback({ ari, db: {} as never, engine: { listAgents: async () => agents }, skill: 'general', log, intervalMs: 3_600_000 });
  t.teardown(() => fb.stop());

  await fb.sync();
  const all = agents.map((a) => a.endpoint).sort().join('&');
  t.ok(all.length > 3000, `240 phones: a ${all.length}-character dial string`);
  t.equal(await ari.globals.get(FALLBACK_DIAL_VAR), all, 'every phone is in the ring group, read back from Asterisk');
  // (other warnings may come from the import of calls the dialplan took, which this test gives no database)
  t.notOk(lines.some((l) => /too many phones/.test(l.msg)), 'no warning that phones were left out');

  // more phones than Dial() takes: the first that fit ring, and the engineer is told
  agents = floor(600);
  await fb.sync();
  const got = await ari.globals.get(FALLBACK_DIAL_VAR);
  t.ok(got.length <= FALLBACK_DIAL_MAX_CHARS && got.length > FALLBACK_DIAL_MAX_CHARS - 20, `capped at ${got.length} characters`);
  t.ok(all.startsWith(got.split('&').slice(0, 240).join('&')), 'the first phones (in order) are the ones kept');
  t.ok(lines.some((l) => l.level === 40 && /too many phones/.test(l.msg)), 'a warning says only the first ring');
});

t.test('dynamic config: put, get, delete a PJSIP AOR', async (t) => {
  const id = `thin-${tag}`;
  t.equal(await ari.config.get('res_pjsip', 'aor', id), null);
  await ari.config.put('res_pjsip', 'aor', id, { max_contacts: '1', contact: 'sip:thin@127.0.0.1:5999' });
  const got = await ari.config.get('res_pjsip', 'aor', id);
  t.equal(got?.max_contacts, '1');
  t.match(got?.contact, /sip:thin@127\.0\.0\.1:5999/);
  await ari.config.delete('res_pjsip', 'aor', id);
  t.equal(await ari.config.get('res_pjsip', 'aor', id), null);
  await t.rejects(ari.config.delete('res_pjsip', 'aor', id), { name: 'AriGone' });
});

t.test('recordings: a stored file that is not there is AriGone', async (t) => {
  await t.rejects(ari.recordings.file(`thin-${tag}-missing`), { name: 'AriGone' });
  await t.rejects(ari.recordings.delete(`thin-${tag}-missing`), { name: 'AriGone' });
  await t.rejects(ari.recordings.stop(`thin-${tag}-missing`), { name: 'AriGone' });
});

t.test('nothing of ours is left in Asterisk', async (t) => {
  await waitFor(async () => !(await ariChannels()).some((c) => ours(c.id) || c.id.startsWith('util-')) || undefined, 5000, 'our channels to go');
  t.notOk((await ariBridges()).some((b) => ours(b.id)));
  t.equal((await raw('GET', `/asterisk/config/dynamic/res_pjsip/aor/thin-${tag}`)).status, 404);
});
