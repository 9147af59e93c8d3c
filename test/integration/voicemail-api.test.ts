/**
 * The voicemail API (API.md "Records and files"): the index in PostgreSQL, the audio streamed from Asterisk's
 * stored recordings (a fake Asterisk here), roles, filters, paging and the error shapes.
 */
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { FakeAri, silentWav } from '../../src/ari/fake.js';
import { AriUnavailable } from '../../src/ari/port.js';
import { finishVoicemail, getVoicemail, startVoicemail } from '../../src/voicemail/voicemails.repo.js';
import { buildTestApp, testInfra } from '../helpers/app.js';

const infra = await testInfra(t, 'voicemail');
const ari = new FakeAri();
const { api, tokens } = await buildTestApp(t, infra, { recordings: ari.recordings });
const { db } = infra;

const T0 = new Date('2026-03-01T02:03:04.000Z'); // 10:03:04 in Hainan
const caller = '13800138000';
const ids: string[] = [];
// five messages a minute apart: three on 12345 (one empty), two on 12333 from another caller
for (let i = 0; i < 5; i++) {
  const line = i < 3 ? '12345' : '12333';
  const id = await startVoicemail(db, {
    callId: i === 4 ? null : randomUUID(),
    caller: i < 3 ? caller : '089866001234',
    line,
    language: i === 1 ? 'en' : 'zh',
    reason: i < 3 ? 'maintenance' : 'ivr',
    recordingName: `vm-test-${randomUUID()}`,
    startedAt: new Date(T0.getTime() + i * 60_000),
  });
  ids.push(id);
  if (i !== 4) await finishVoicemail(db, id, { status: i === 2 ? 'empty' : 'saved', durationSeconds: i === 2 ? 0.4 : 12.5 });
}

t.test('given messages, when a supervisor lists them, then newest first with their fields', async (t) => {
  const r = await api('GET', '/api/v1/voicemails', tokens.supervisor);
  t.equal(r.status, 200);
  t.same(
    r.body.items.map((v: { id: string }) => v.id),
    [...ids].reverse(),
  );
  t.equal(r.body.nextCursor, null);
  const row = await getVoicemail(db, ids[0]!);
  t.same(r.body.items[4], {
    id: ids[0],
    callId: row!.call_id,
    caller,
    line: '12345',
    language: 'zh',
    reason: 'maintenance',
    status: 'saved',
    startedAt: T0.toISOString(),
    durationSeconds: 12.5,
    audioUrl: `/api/v1/voicemails/${ids[0]}/audio`,
  });
  t.match(r.body.items[0], { id: ids[4], callId: null, status: 'recording', durationSeconds: null, reason: 'ivr' });
});

t.test('filters: line, caller (normalised), status, time range', async (t) => {
  const list = async (q: string) => {
    const r = await api('GET', `/api/v1/voicemails?${q}`, tokens.auditor);
    t.equal(r.status, 200, q);
    return r.body.items.map((v: { id: string }) => v.id);
  };
  t.same(await list('line=12333'), [ids[4], ids[3]]);
  t.same(await list(`caller=${encodeURIComponent('+86 138-0013-8000')}`), [ids[2], ids[1], ids[0]], '+86 and dashes are normalised');
  t.same(await list('caller=66001234'), [ids[4], ids[3]], 'a Hainan fixed line without its area code');
  t.same(await list('status=empty'), [ids[2]]);
  t.same(await list('status=recording'), [ids[4]]);
  const from = new Date(T0.getTime() + 60_000).toISOString();
  const to = new Date(T0.getTime() + 3 * 60_000).toISOString();
  t.same(await list(`from=${from}&to=${to}`), [ids[2], ids[1]], 'from inclusive, to exclusive');
  t.same(await list('line=12345&status=saved'), [ids[1], ids[0]]);
});

t.test('paging: a keyset cursor in the calls format, no empty last page', async (t) => {
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const r = await api('GET', `/api/v1/voicemails?limit=2${cursor ? `&cursor=${cursor}` : ''}`, tokens.admin);
    t.equal(r.status, 200);
    seen.push(...r.body.items.map((v: { id: string }) => v.id));
    cursor = r.body.nextCursor;
    pages++;
  } while (cursor && pages < 10);
  t.equal(pages, 3, '2 + 2 + 1');
  t.same(seen, [...ids].reverse());
  // same-time rows are ordered by id, and the cursor keeps that order
  const sameTime = new Date('2026-03-02T00:00:00.000Z');
  const twins = [];
  for (let i = 0; i < 3; i++) twins.push(await startVoicemail(db, { callId: null, caller: '13900000001', line: '95198', language: 'zh', reason: 'ivr', recordingName: `vm-twin-${randomUUID()}`, startedAt: sameTime }));
  const p1 = await api('GET', '/api/v1/voicemails?line=95198&limit=2', tokens.admin);
  const p2 = await api('GET', `/api/v1/voicemails?line=95198&limit=2&cursor=${p1.body.nextCursor}`, tokens.admin);
  t.same([...p1.body.items, ...p2.body.items].map((v: { id: string }) => v.id), [...twins].sort().reverse());
  t.equal(p2.body.nextCursor, null);
});

t.test('bad queries are 400 with the error shape', async (t) => {
  for (const q of ['colour=red', 'limit=0', 'limit=201', 'status=deleted', 'from=yesterday', 'cursor=bm9wZQ', 'caller=abc']) {
    const r = await api('GET', `/api/v1/voicemails?${q}`, tokens.supervisor);
    t.equal(r.status, 400, q);
    t.type(r.body.error.code, 'string', q);
  }
  t.equal((await api('GET', '/api/v1/voicemails?cursor=bm9wZQ', tokens.supervisor)).body.error.code, 'invalid-cursor');
  t.equal((await api('GET', '/api/v1/voicemails?caller=abc', tokens.supervisor)).body.error.code, 'invalid-number');
  t.equal((await api('GET', '/api/v1/voicemails/not-a-uuid', tokens.supervisor)).status, 400);
  t.equal((await api('GET', `/api/v1/voicemails/${ids[0]}/audio?speed=2`, tokens.supervisor)).status, 400);
});

t.test('roles: supervisor, admin and auditor read; an agent gets 403; no token 401', async (t) => {
  for (const role of ['supervisor', 'admin', 'auditor'] as const) t.equal((await api('GET', '/api/v1/voicemails', tokens[role])).status, 200, role);
  for (const p of ['/api/v1/voicemails', `/api/v1/voicemails/${ids[0]}`, `/api/v1/voicemails/${ids[0]}/audio`]) {
    const r = await api('GET', p, tokens.agent);
    t.equal(r.status, 403, p);
    t.equal(r.body.error.code, 'forbidden');
    t.equal((await api('GET', p, null)).status, 401, p);
  }
});

t.test('one voicemail; an unknown id is 404 not-found', async (t) => {
  const r = await api('GET', `/api/v1/voicemails/${ids[1]}`, tokens.auditor);
  t.equal(r.status, 200);
  t.match(r.body, { id: ids[1], language: 'en', status: 'saved' });
  const missing = await api('GET', `/api/v1/voicemails/${randomUUID()}`, tokens.auditor);
  t.equal(missing.status, 404);
  t.equal(missing.body.error.code, 'not-found');
});

t.test('audio: the exact bytes Asterisk stored, as audio/wav with its length; ?download=1 names the file', async (t) => {
  const row = (await getVoicemail(db, ids[0]!))!;
  const bytes = Buffer.concat([silentWav(1), Buffer.from([1, 2, 3, 250, 251, 252])]);
  ari.finishRecording(row.recording_name, 12, bytes);

  const r = await api('GET', `/api/v1/voicemails/${ids[0]}/audio`, tokens.auditor);
  t.equal(r.status, 200);
  t.equal(r.headers['content-type'], 'audio/wav');
  t.equal(Number(r.headers['content-length']), bytes.length);
  t.equal(r.headers['content-disposition'], undefined, 'played in the browser unless asked to download');
  t.ok(r.raw.equals(bytes), 'byte for byte');
  t.same(ari.ops('recording.file').at(-1), [row.recording_name], 'asked Asterisk for the stored recording by name');

  const d = await api('GET', `/api/v1/voicemails/${ids[0]}/audio?download=1`, tokens.supervisor);
  t.equal(d.status, 200);
  // 2026-03-01T02:03:04Z is 10:03:04 in Asia/Shanghai
  t.equal(d.headers['content-disposition'], 'attachment; filename="voicemail-12345-13800138000-20260301-100304.wav"');
  t.ok(d.raw.equals(bytes));
});

t.test('audio: no file in Asterisk is 404 not-found; Asterisk not answering is 503 ari-unavailable', async (t) => {
  const none = await api('GET', `/api/v1/voicemails/${ids[3]}/audio`, tokens.supervisor);
  t.equal(none.status, 404);
  t.equal(none.body.error.code, 'not-found');
  const unknown = await api('GET', `/api/v1/voicemails/${randomUUID()}/audio`, tokens.supervisor);
  t.equal(unknown.status, 404);
  t.equal(unknown.body.error.code, 'not-found');

  ari.recordingFileFailure = new AriUnavailable('recording file: no answer from Asterisk within 5000 ms');
  t.teardown(() => void (ari.recordingFileFailure = null));
  const down = await api('GET', `/api/v1/voicemails/${ids[0]}/audio`, tokens.supervisor);
  t.equal(down.status, 503);
  t.equal(down.body.error.code, 'ari-unavailable');
});

t.test('fake Asterisk: record, stop, hang-up and delete behave as ARI does', async (t) => {
  const c = ari.callerArrives('13700000000', '12345');
  const events: string[] = [];
  const off = ari.onEvent((e) => {
    if (e.type === 'RecordingFinished' || e.type === 'RecordingFailed') events.push(`${e.type} ${e.name} ${e.targetUri}`);
  });
  t.teardown(off);
  const req = { name: 'vm-fake-1', format: 'wav', maxDurationSeconds: 60, maxSilenceSeconds: 10, beep: true, terminateOn: '#', ifExists: 'fail' } as const;
  await ari.channels.record(c.id, req);
  t.same(ari.ops('record').at(-1), [c.id, req], 'the request is kept with its parameters');
  await t.rejects(ari.channels.record(c.id, req), { name: 'AriConflict' }, 'the same name twice while recording');
  await ari.recordings.stop('vm-fake-1');
  await new Promise((r) => setImmediate(r));
  t.same(events, [`RecordingFinished vm-fake-1 channel:${c.id}`]);
  await t.rejects(ari.recordings.stop('vm-fake-1'), { name: 'AriGone' }, 'not recording any more');
  await t.rejects(ari.channels.record(c.id, req), { name: 'AriConflict' }, 'ifExists=fail and the file exists');
  await ari.channels.record(c.id, { ...req, ifExists: 'overwrite' });
  ari.hangupFromOutside(c.id);
  t.equal(events.length, 2, 'a hang-up ends the recording with RecordingFinished');
  t.same(ari.liveRecordings.size, 0);
  await t.rejects(ari.channels.record(c.id, { ...req, name: 'vm-fake-2' }), { name: 'AriGone' }, 'the channel has gone');
  const f = await ari.recordings.file('vm-fake-1');
  t.equal(f.contentType, 'audio/wav');
  await ari.recordings.delete('vm-fake-1');
  await t.rejects(ari.recordings.file('vm-fake-1'), { name: 'AriGone' });
  await t.rejects(ari.recordings.delete('vm-fake-1'), { name: 'AriGone' });
});

t.test('OpenAPI describes the voicemail routes', async (t) => {
  const doc = await api('GET', '/docs/json', null);
  for (const p of ['/api/v1/voicemails/', '/api/v1/voicemails/{id}', '/api/v1/voicemails/{id}/audio']) t.ok(doc.body.paths[p], p);
  t.ok(doc.body.paths['/api/v1/voicemails/{id}/audio'].get.responses['200'].content['audio/wav']);
});
