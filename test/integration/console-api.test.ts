/**
 * The supervisor console's audio player (issue 10): an <audio> element cannot send the bearer header, so the
 * console asks POST /api/v1/recordings/{id}/audio-ticket for a short-lived URL. The ticket opens that one
 * recording (with Range), as the user it was issued to (audited as such), only while that user's session
 * lasts, and never another recording or route. Real PostgreSQL and Redis; Asterisk's files are a fake.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { silentWav } from '../../src/ari/fake.js';
import { AriGone, type Recordings } from '../../src/ari/port.js';
import { AuditLog } from '../../src/audit/audit.js';
import { insertCall } from '../../src/calls/calls.repo.js';
import { AudioTickets } from '../../src/recordings/audio-tickets.js';
import { RecordingsService } from '../../src/recordings/recordings.service.js';
import { buildTestApp, testInfra } from '../helpers/app.js';

const files = new Map<string, Buffer>();
const recordings: Recordings = {
  async file(name) {
    const bytes = files.get(name);
    if (!bytes) throw new AriGone(`recording ${name}: not found`);
    return { stream: Readable.from([bytes]), contentType: 'audio/wav', size: bytes.length };
  },
  async delete(name) {
    files.delete(name);
  },
  async stop() {},
};

const infra = await testInfra(t, 'console');
const { db } = infra;
const logLines: string[] = [];
const log = pino({ level: 'info' }, new Writable({ write: (chunk, _e, done) => (logLines.push(String(chunk)), done()) }));
const audit = new AuditLog(db);
const service = new RecordingsService({ db, ari: recordings, audit, log: infra.log, retentionDays: 30 });
const tickets = new AudioTickets({ redis: infra.redis, keys: infra.keys, db, ttlSeconds: 2 });
const { api, tokens, app } = await buildTestApp(t, { ...infra, log }, { recordings, recordingsService: service, audit, audioTickets: tickets });

/** a finished recording of a call taken by these agents */
async function seed(agents: string[]): Promise<{ id: string; bytes: Buffer }> {
  const callId = randomUUID();
  const startedAt = new Date(Date.now() - 120_000);
  await insertCall(db, {
    id: callId,
    direction: 'inbound',
    caller: '13800138000',
    dialed: '12345',
    line: '12345',
    queue: 'general',
    agents,
    channel_id: `ch-${callId}`,
    arrived_at: startedAt,
    answered_at: startedAt,
    disposition: 'answered',
  });
  const name = `rec-console-${callId}`;
  const started = await service.started({ callId, name, callType: 'inbound', startedAt });
  const bytes = silentWav(2);
  randomBytes(bytes.length - 44).copy(bytes, 44);
  files.set(name, bytes);
  await service.finished(name, { endedAt: new Date(), durationSeconds: 2 });
  return { id: started.id, bytes };
}

const mine = await seed(['7001']);
const theirs = await seed(['7002']);

const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers });

t.test('a supervisor plays a recording through a ticket URL, with Range, audited as itself', async (t) => {
  const r = await api('POST', `/api/v1/recordings/${mine.id}/audio-ticket`, tokens.supervisor);
  t.equal(r.status, 200, JSON.stringify(r.body));
  t.match(r.body.url, new RegExp(`^/api/v1/recordings/${mine.id}/audio\\?ticket=[A-Za-z0-9_-]{40,}$`));
  t.ok(Date.parse(r.body.expiresAt) > Date.now());
  t.notOk(r.body.url.includes(tokens.supervisor), 'the bearer token is not in the URL');

  const whole = await get(r.body.url);
  t.equal(whole.statusCode, 200);
  t.equal(whole.headers['content-type'], 'audio/wav');
  t.ok(whole.rawPayload.equals(mine.bytes), 'the recording');
  const part = await get(r.body.url, { range: 'bytes=100-199' });
  t.equal(part.statusCode, 206, 'the player seeks with Range');
  t.ok(part.rawPayload.equals(mine.bytes.subarray(100, 200)));

  const plays = await db.selectFrom('audit_log').selectAll().where('action', '=', 'recording.play').where('target', '=', mine.id).execute();
  t.equal(plays.length, 1, 'played once from the start: one audit entry');
  t.match(plays[0], { actor_role: 'supervisor' });
  t.match(plays[0]!.actor, /^t-supervisor-/);
  t.notOk(logLines.join('').includes(r.body.url.split('ticket=')[1]), 'the ticket is masked in the request log');
  const doc = await api('GET', '/docs/json', null);
  t.ok(doc.body.paths['/api/v1/recordings/{id}/audio-ticket']?.post, 'described in the OpenAPI document');
});

t.test('a ticket opens its own recording only, and not without a session', async (t) => {
  const r = await api('POST', `/api/v1/recordings/${mine.id}/audio-ticket`, tokens.supervisor);
  const ticket = r.body.url.split('ticket=')[1] as string;
  t.equal((await get(`/api/v1/recordings/${theirs.id}/audio?ticket=${ticket}`)).statusCode, 401, 'another recording');
  t.equal((await get(`/api/v1/recordings/${mine.id}/audio?ticket=${randomBytes(32).toString('base64url')}`)).statusCode, 401, 'a made-up ticket');
  t.equal((await get(`/api/v1/recordings/${mine.id}?ticket=${ticket}`)).statusCode, 400, 'not the recording itself (unknown field)');
  t.equal((await get(`/api/v1/recordings?ticket=${ticket}`)).statusCode, 400, 'nor the list');
  t.equal((await get(`/api/v1/recordings/${mine.id}/audio`)).statusCode, 401, 'no ticket, no header');
  t.equal((await api('POST', `/api/v1/recordings/${mine.id}/audio-ticket`, null)).status, 401, 'a ticket needs a signed-in user');
});

t.test("an agent gets tickets for its own calls' recordings only", async (t) => {
  t.equal((await api('POST', `/api/v1/recordings/${mine.id}/audio-ticket`, tokens.agent)).status, 200, 'its own call');
  t.equal((await api('POST', `/api/v1/recordings/${theirs.id}/audio-ticket`, tokens.agent)).status, 403, "another agent's call");
  t.equal((await api('POST', `/api/v1/recordings/${randomUUID()}/audio-ticket`, tokens.supervisor)).status, 404);
});

t.test('signing out ends the tickets; they expire on their own', async (t) => {
  const login = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: (await db.selectFrom('users').select('username').where('role', '=', 'auditor').executeTakeFirstOrThrow()).username, password: 'pw-secret' } });
  const token = login.json().token as string;
  const a = await api('POST', `/api/v1/recordings/${mine.id}/audio-ticket`, token);
  t.equal((await get(a.body.url, { range: 'bytes=0-9' })).statusCode, 206, 'an auditor listens');
  t.equal((await api('POST', '/api/v1/auth/logout', token)).status, 204);
  const after = await get(a.body.url, { range: 'bytes=0-9' });
  t.equal(after.statusCode, 401, 'signed out: the ticket is dead');
  t.match(after.json().error.message, /session/);

  const b = await api('POST', `/api/v1/recordings/${mine.id}/audio-ticket`, tokens.supervisor);
  await new Promise((r) => setTimeout(r, 2300));
  t.equal((await get(b.body.url, { range: 'bytes=0-9' })).statusCode, 401, 'expired after its time');
});
