/**
 * Bad input on the REST API (issue 9, "Bad input"): wrong types, unknown fields in bodies and queries, huge
 * bodies, prototype-pollution keys, path traversal in ids, malformed JSON, wrong content types, expired and
 * forged tokens, an agent on supervisor routes, an auditor trying to change things, other agents' records and
 * recordings, list imports with formulas, GBK, a BOM and protected numbers, sign-in lockout.
 *
 * Every case asserts a clear 4xx answer `{error: {code, message}}` (no stack trace, no 500) and that the
 * database did not change: the rows of every table are counted before and after, and only the changes the
 * case names are allowed (an agent refused another agent's recording is audited; a refused import keeps its
 * report). Real PostgreSQL and Redis (a schema and a key prefix of this file's own); Asterisk's recordings
 * are an in-memory fake.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { sql } from 'kysely';
import t, { type Test } from 'tap';
import { silentWav } from '../../src/ari/fake.js';
import { AriGone, type Recordings } from '../../src/ari/port.js';
import { AuditLog } from '../../src/audit/audit.js';
import { createLoginLimiter } from '../../src/auth/login-limiter.js';
import { hashPassword } from '../../src/auth/passwords.js';
import { insertCall } from '../../src/calls/calls.repo.js';
import { RecordingsService } from '../../src/recordings/recordings.service.js';
import { isAgentsCorrespondent, listSms } from '../../src/sms/sms.repo.js';
import type { SmsService } from '../../src/sms/sms.service.js';
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

const infra = await testInfra(t, 'badinput');
const { db } = infra;
const audit = new AuditLog(db);
const recordingsService = new RecordingsService({ db, ari: recordings, audit, log: infra.log, retentionDays: 30 });
// sign-in failures: 3 per user name, 6 per address (this file's own limiter, so its lockouts are quick)
const loginLimiter = createLoginLimiter({ redis: infra.redis, keys: infra.keys, maxFailuresPerUser: 3, maxFailuresPerAddress: 6, windowSeconds: 300 });
// SMS reads only (sending is not exercised here)
const sms = { list: (f: Parameters<typeof listSms>[1]) => listSms(db, f), isCorrespondent: (n: string, who: { userId: string; agentId: string | null }) => isAgentsCorrespondent(db, n, who) } as unknown as SmsService;
const { app, tokens } = await buildTestApp(t, infra, { recordings, recordingsService, audit, loginLimiter, sms });
// the test app's agent is agent 7001

const TABLES = [
  'users',
  'auth_sessions',
  'agents',
  'calls',
  'call_events',
  'recordings',
  'voicemails',
  'list_entries',
  'list_imports',
  'list_import_rows',
  'maintenance',
  'sms_messages',
  'breaks',
  'callbacks',
  'tickets',
  'audit_log',
] as const;
type Table = (typeof TABLES)[number];

async function counts(): Promise<Record<Table, number>> {
  const parts = TABLES.map((name) => sql<number>`(select count(*)::int from ${sql.table(name)})`.as(name));
  const r = await db.selectNoFrom(parts as never).executeTakeFirstOrThrow();
  return r as Record<Table, number>;
}

interface Res {
  status: number;
  body: any;
  headers: Record<string, unknown>;
}

async function inject(o: { method: string; url: string; token?: string | null; payload?: string | Buffer; contentType?: string; headers?: Record<string, string>; remoteAddress?: string }): Promise<Res> {
  const res = await app.inject({
    method: o.method as 'GET',
    url: o.url,
    headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(o.contentType ? { 'content-type': o.contentType } : {}), ...o.headers },
    ...(o.payload !== undefined ? { payload: o.payload } : {}),
    ...(o.remoteAddress ? { remoteAddress: o.remoteAddress } : {}),
  });
  let body: unknown = res.body;
  try {
    body = JSON.parse(res.body);
  } catch {
    /* not JSON */
  }
  return { status: res.statusCode, body, headers: res.headers };
}

const json = (method: string, url: string, token: string | null, body: unknown) => inject({ method, url, token, payload: JSON.stringify(body), contentType: 'application/json' });

/**
 * one bad request: a 4xx (the status given), the error body's shape and code, no stack trace, and no
 * change in the database but the ones named
 */
let casesRun = 0;

async function refused(
  t: Test,
  request: () => Promise<Res>,
  expect: { status: number; code?: string | RegExp; changes?: Partial<Record<Table, number>>; report?: boolean },
): Promise<Res> {
  casesRun += 1;
  const before = await counts();
  const res = await request();
  t.equal(res.status, expect.status, `status ${expect.status} (got ${res.status}: ${JSON.stringify(res.body).slice(0, 300)})`);
  t.ok(res.status >= 400 && res.status < 500, 'a client error, never a 500');
  if (expect.report) {
    // an all-or-nothing import refused: the contract's answer is the import report naming every bad line
    t.match(res.body, { status: 'rejected', applied: false, invalidCount: Number, invalid: Array }, 'the import report: rejected, every invalid line named');
    t.ok(res.body.invalid.length > 0 && res.body.invalid.every((l: { line: unknown; reason: unknown }) => Number.isInteger(l.line) && typeof l.reason === 'string'), 'line and reason of each');
  } else {
    t.match(res.body, { error: { code: String, message: String } }, 'the error body: {error: {code, message}}');
    t.match(res.body?.error?.code, /^[a-z0-9]+(-[a-z0-9]+)*$/, 'a kebab-case code');
    t.ok(String(res.body?.error?.message ?? '').length > 0, 'a message');
  }
  if (expect.code !== undefined) t.match(res.body?.error?.code, typeof expect.code === 'string' ? new RegExp(`^${expect.code}$`) : expect.code, `code ${expect.code}`);
  t.notMatch(JSON.stringify(res.body), /\bat [\w.<>]+ \(|\.[jt]s:\d+|node_modules|\n\s+at /, 'no stack trace');
  const after = await counts();
  const want = { ...before };
  for (const [k, n] of Object.entries(expect.changes ?? {})) want[k as Table] += n;
  t.same(after, want, expect.changes ? `the database changed only by ${JSON.stringify(expect.changes)}` : 'the database did not change');
  return res;
}

// ---------------------------------------------------------------- fixtures

/** a finished recording of a call taken by these agents */
async function seedCall(agents: string[]): Promise<{ callId: string; recordingId: string }> {
  const callId = randomUUID();
  const startedAt = new Date(Date.now() - 300_000);
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
  const name = `rec-bad-${callId}`;
  const started = await recordingsService.started({ callId, name, callType: 'inbound', startedAt });
  const bytes = silentWav(1);
  randomBytes(bytes.length - 44).copy(bytes, 44);
  files.set(name, bytes);
  await recordingsService.finished(name, { endedAt: new Date(), durationSeconds: 1 });
  return { callId, recordingId: started.id };
}

const mine = await seedCall(['7001']);
const theirs = await seedCall(['7002']);
await db.insertInto('list_entries').values({ kind: 'black', number: '13900000001', reason: 'seed', created_by: 'seed' }).execute();

const tokenHash = (token: string) => createHash('sha256').update(token).digest('hex');
const agentUserId = (await db.selectFrom('users').select('id').where('role', '=', 'agent').executeTakeFirstOrThrow()).id;

const VALID_ENTRY = { number: '13800001111', reason: 'harassment' };
const TRAVERSAL = '..%2F..%2Fetc%2Fpasswd';

// ---------------------------------------------------------------- tokens and roles

t.test('tokens', async (t) => {
  t.test('no token at all: 401', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/calls' }), { status: 401, code: 'unauthorized' });
  });
  t.test('a forged token (random bytes, never issued): 401', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/calls', token: randomBytes(32).toString('base64url') }), { status: 401, code: 'unauthorized' });
  });
  t.test('a forged token that is the hash of a real one (as stored): 401', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/calls', token: tokenHash(tokens.supervisor) }), { status: 401, code: 'unauthorized' });
  });
  t.test('Basic credentials instead of a bearer token: 401', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/calls', headers: { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` } }), { status: 401, code: 'unauthorized' });
  });
  t.test('an expired token: 401 token-expired', async (t) => {
    const expired = randomBytes(32).toString('base64url');
    await db.insertInto('auth_sessions').values({ token_hash: tokenHash(expired), user_id: agentUserId, expires_at: new Date(Date.now() - 60_000) }).execute();
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/calls', token: expired }), { status: 401, code: 'token-expired' });
  });
  t.test('a signed-out token: 401, and a logout with an unknown field does not sign out', async (t) => {
    const username = `t-bye-${randomBytes(3).toString('hex')}`;
    await db.insertInto('users').values({ username, password_hash: await hashPassword('pw-secret-bye'), role: 'supervisor', agent_id: null }).execute();
    const login = await json('POST', '/api/v1/auth/login', null, { username, password: 'pw-secret-bye' });
    const token = login.body.token as string;
    await refused(t, () => json('POST', '/api/v1/auth/logout', token, { everywhere: true }), { status: 400, code: 'invalid-request' });
    t.equal((await inject({ method: 'GET', url: '/api/v1/calls', token })).status, 200, 'still signed in');
    t.equal((await inject({ method: 'POST', url: '/api/v1/auth/logout', token })).status, 204);
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/calls', token }), { status: 401, code: 'unauthorized' });
  });
});

t.test('an agent token on supervisor routes: 403', async (t) => {
  const cases: Array<[string, () => Promise<Res>]> = [
    ['switch maintenance on', () => json('PUT', '/api/v1/maintenance', tokens.agent, { enabled: true, allowVoicemail: false })],
    ['read the audit trail', () => inject({ method: 'GET', url: '/api/v1/audit', token: tokens.agent })],
    ['approve a break', () => inject({ method: 'POST', url: `/api/v1/breaks/${randomUUID()}/approve`, token: tokens.agent })],
    ['listen to a call', () => json('POST', `/api/v1/calls/${theirs.callId}/listen`, tokens.agent, { extension: '8001' })],
    ['the live floor view', () => inject({ method: 'GET', url: '/api/v1/live', token: tokens.agent })],
    ['add to the black list', () => json('POST', '/api/v1/lists/black/entries', tokens.agent, VALID_ENTRY)],
    ['list voicemails', () => inject({ method: 'GET', url: '/api/v1/voicemails', token: tokens.agent })],
    ["force another agent's state", () => json('PUT', '/api/v1/agents/7002/state', tokens.agent, { state: 'ready' })],
    ["read another agent's account", () => inject({ method: 'GET', url: '/api/v1/agents/7002', token: tokens.agent })],
    ['create an agent', () => json('POST', '/api/v1/agents', tokens.agent, { employeeNo: '9001', name: 'x', password: 'password-1', role: 'admin', skills: [], phone: { sipPassword: 'sip-pass-1' } })],
  ];
  for (const [what, request] of cases) t.test(what, async (t) => void (await refused(t, request, { status: 403, code: 'forbidden' })));
});

t.test('an auditor reads but cannot change anything: 403', async (t) => {
  t.equal((await inject({ method: 'GET', url: '/api/v1/lists/black/entries', token: tokens.auditor })).status, 200, 'it reads the lists');
  t.equal((await inject({ method: 'GET', url: `/api/v1/recordings/${theirs.recordingId}`, token: tokens.auditor })).status, 200, 'and recordings');
  t.equal((await inject({ method: 'GET', url: '/api/v1/audit', token: tokens.auditor })).status, 200, 'and the audit trail');
  const cases: Array<[string, () => Promise<Res>]> = [
    ['add to the black list', () => json('POST', '/api/v1/lists/black/entries', tokens.auditor, VALID_ENTRY)],
    ['remove from the black list', () => inject({ method: 'DELETE', url: '/api/v1/lists/black/entries/13900000001', token: tokens.auditor })],
    ['import a list', () => inject({ method: 'POST', url: '/api/v1/lists/black/import', token: tokens.auditor, payload: '13800002222\n', contentType: 'text/plain' })],
    ['switch maintenance', () => json('PUT', '/api/v1/maintenance', tokens.auditor, { enabled: true, allowVoicemail: true })],
    ["set a call's category", () => json('PUT', `/api/v1/calls/${mine.callId}/category`, tokens.auditor, { category: 'complaint' })],
    ['hang up a call', () => inject({ method: 'POST', url: `/api/v1/calls/${mine.callId}/hangup`, token: tokens.auditor })],
    ['reload the IVR', () => inject({ method: 'POST', url: '/api/v1/ivr/reload', token: tokens.auditor })],
    ['send an SMS', () => json('POST', '/api/v1/sms', tokens.auditor, { to: ['13800138000'], text: 'hello' })],
    ["set an agent's state", () => json('PUT', '/api/v1/agents/7001/state', tokens.auditor, { state: 'ready' })],
  ];
  for (const [what, request] of cases) t.test(what, async (t) => void (await refused(t, request, { status: 403, code: 'forbidden' })));
});

t.test("other agents' calls and recordings", async (t) => {
  t.test("another agent's recording: 403, and the attempt is audited", async (t) => {
    await refused(t, () => inject({ method: 'GET', url: `/api/v1/recordings/${theirs.recordingId}`, token: tokens.agent }), { status: 403, code: 'forbidden', changes: { audit_log: 1 } });
    const last = await db.selectFrom('audit_log').selectAll().orderBy('seq', 'desc').executeTakeFirstOrThrow();
    t.match(last, { action: 'recording.denied', target: theirs.recordingId, actor_role: 'agent' });
  });
  t.test("another agent's recording audio: 403, no byte sent", async (t) => {
    const r = await refused(t, () => inject({ method: 'GET', url: `/api/v1/recordings/${theirs.recordingId}/audio`, token: tokens.agent }), { status: 403, code: 'forbidden', changes: { audit_log: 1 } });
    t.notSame(r.headers['content-type'], 'audio/wav');
  });
  t.test("another agent's call record: 404, as if it did not exist", async (t) => {
    await refused(t, () => inject({ method: 'GET', url: `/api/v1/calls/${theirs.callId}`, token: tokens.agent }), { status: 404, code: 'no-such-call' });
  });
  t.test("another agent's call category: 403, unchanged", async (t) => {
    await refused(t, () => json('PUT', `/api/v1/calls/${theirs.callId}/category`, tokens.agent, { category: 'complaint' }), { status: 403, code: 'forbidden' });
    t.equal((await db.selectFrom('calls').select('category').where('id', '=', theirs.callId).executeTakeFirstOrThrow()).category, null);
  });
  t.test("the SMS of a citizen who never called the agent: 403", async (t) => {
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/sms?number=13911112222', token: tokens.agent }), { status: 403, code: 'forbidden' });
    t.equal((await inject({ method: 'GET', url: '/api/v1/sms?number=%2B86%20138-0013-8000', token: tokens.agent })).status, 200, 'its own caller, in any spelling');
    t.equal((await inject({ method: 'GET', url: '/api/v1/sms?number=13911112222', token: tokens.supervisor })).status, 200, 'a supervisor reads any');
  });
  t.test('the list of recordings never shows an agent the others', async (t) => {
    const r = await inject({ method: 'GET', url: '/api/v1/recordings', token: tokens.agent });
    t.equal(r.status, 200);
    t.same(
      r.body.items.map((i: { id: string }) => i.id),
      [mine.recordingId],
    );
    const asked = await inject({ method: 'GET', url: '/api/v1/recordings?agent=7002', token: tokens.agent });
    t.same(asked.body.items, [], 'asking for another agent gives nothing');
  });
});

// ---------------------------------------------------------------- shapes and types

t.test('unknown fields are refused, not stripped', async (t) => {
  t.test('in a body', async (t) => {
    await refused(t, () => json('POST', '/api/v1/lists/black/entries', tokens.supervisor, { ...VALID_ENTRY, colour: 'red' }), { status: 400, code: 'invalid-request' });
  });
  t.test('in a nested object of a body', async (t) => {
    await refused(t, () => json('POST', `/api/v1/calls/${mine.callId}/transfer`, tokens.supervisor, { target: { agent: '8001', force: true }, mode: 'blind' }), { status: 400, code: 'invalid-request' });
  });
  t.test('in a query string', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/calls?limit=5&debug=1', token: tokens.supervisor }), { status: 400, code: 'invalid-request' });
  });
  t.test('in the query of a route that takes none', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/audit/verify?fix=1', token: tokens.admin }), { status: 400, code: 'invalid-request' });
  });
  t.test('in the body of an action that takes none', async (t) => {
    await refused(t, () => json('POST', `/api/v1/calls/${mine.callId}/hold`, tokens.supervisor, { music: 'none' }), { status: 400, code: 'invalid-request' });
  });
  t.test('in the sign-in body', async (t) => {
    await refused(t, () => json('POST', '/api/v1/auth/login', null, { username: 'admin', password: 'admin', role: 'admin' }), { status: 400, code: 'invalid-request' });
  });
});

t.test('wrong types are refused, not converted', async (t) => {
  t.test('a number where the number field is a string', async (t) => {
    await refused(t, () => json('POST', '/api/v1/lists/black/entries', tokens.supervisor, { number: 13800001111, reason: 'x' }), { status: 400, code: 'invalid-request' });
  });
  t.test('an array where a string is expected', async (t) => {
    await refused(t, () => json('POST', '/api/v1/lists/black/entries', tokens.supervisor, { number: ['13800001111'], reason: 'x' }), { status: 400, code: 'invalid-request' });
  });
  t.test('a string where a boolean is expected', async (t) => {
    await refused(t, () => json('PUT', '/api/v1/maintenance', tokens.supervisor, { enabled: 'true', allowVoicemail: true }), { status: 400, code: 'invalid-request' });
  });
  t.test('a string where an integer is expected, deep in a body (its own code)', async (t) => {
    const body = { employeeNo: '9001', name: 'Wang', password: 'password-1', role: 'agent', skills: [{ skill: 'general', level: '5' }], phone: { sipPassword: 'sip-pass-1' } };
    await refused(t, () => json('POST', '/api/v1/agents', tokens.admin, body), { status: 400, code: 'invalid-skill' });
  });
  t.test('null for a required string', async (t) => {
    await refused(t, () => json('POST', '/api/v1/lists/black/entries', tokens.supervisor, { number: null, reason: 'x' }), { status: 400, code: 'invalid-request' });
  });
  t.test('a JSON array as the whole body', async (t) => {
    await refused(t, () => json('POST', '/api/v1/lists/black/entries', tokens.supervisor, [VALID_ENTRY]), { status: 400, code: 'invalid-request' });
  });
  t.test('a word where a query integer is expected', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/calls?limit=lots', token: tokens.supervisor }), { status: 400, code: 'invalid-request' });
  });
  t.test('a query integer out of range', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/recordings?limit=1000000', token: tokens.supervisor }), { status: 400, code: 'invalid-request' });
  });
  t.test('a date that is no date', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/recordings?from=yesterday', token: tokens.supervisor }), { status: 400, code: 'invalid-request' });
  });
  t.test('a time range that ends before it starts', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/recordings?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z', token: tokens.supervisor }), { status: 400, code: 'invalid-range' });
  });
  t.test('a caller that is no phone number', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: `/api/v1/calls?caller=${encodeURIComponent("1' OR '1'='1")}`, token: tokens.supervisor }), { status: 400, code: 'invalid-number' });
  });
  t.test('a forged paging cursor', async (t) => {
    const cursor = Buffer.from(`2026-01-01T00:00:00.000Z|${'-'.repeat(36)}`).toString('base64url');
    await refused(t, () => inject({ method: 'GET', url: `/api/v1/calls?cursor=${cursor}`, token: tokens.supervisor }), { status: 400, code: 'invalid-cursor' });
    const garbage = Buffer.from(`-271821-04-20T00:00:00.000Z|${randomUUID()}`).toString('base64url');
    await refused(t, () => inject({ method: 'GET', url: `/api/v1/recordings?cursor=${garbage}`, token: tokens.supervisor }), { status: 400, code: 'invalid-cursor' });
  });
  t.test('a NUL character in a query', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: '/api/v1/recordings?category=a%00b', token: tokens.supervisor }), { status: 400, code: 'invalid-characters' });
  });
  t.test('a NUL character in a body', async (t) => {
    await refused(t, () => json('POST', '/api/v1/lists/black/entries', tokens.supervisor, { number: '13800001111', reason: 'a\u0000b' }), { status: 400, code: 'invalid-characters' });
  });
});

// ---------------------------------------------------------------- parsing

t.test('malformed bodies', async (t) => {
  t.test('malformed JSON', async (t) => {
    await refused(t, () => inject({ method: 'POST', url: '/api/v1/lists/black/entries', token: tokens.supervisor, payload: '{"number": "13800001111", "reason": ', contentType: 'application/json' }), { status: 400, code: 'invalid-json' });
  });
  t.test('an empty JSON body', async (t) => {
    await refused(t, () => inject({ method: 'POST', url: '/api/v1/lists/black/entries', token: tokens.supervisor, payload: '', contentType: 'application/json' }), { status: 400, code: 'invalid-json' });
  });
  t.test('__proto__ in a body (prototype pollution)', async (t) => {
    await refused(
      t,
      () => inject({ method: 'POST', url: '/api/v1/lists/black/entries', token: tokens.supervisor, payload: '{"number":"13800001111","reason":"x","__proto__":{"isAdmin":true}}', contentType: 'application/json' }),
      { status: 400, code: 'invalid-json' },
    );
    t.equal(({} as { isAdmin?: boolean }).isAdmin, undefined, 'Object.prototype untouched');
  });
  t.test('constructor.prototype in a body (prototype pollution)', async (t) => {
    await refused(
      t,
      () => inject({ method: 'POST', url: '/api/v1/auth/login', payload: '{"username":"admin","password":"admin","constructor":{"prototype":{"isAdmin":true}}}', contentType: 'application/json' }),
      { status: 400, code: 'invalid-json' },
    );
    t.equal(({} as { isAdmin?: boolean }).isAdmin, undefined, 'Object.prototype untouched');
  });
  t.test('a nested __proto__ (prototype pollution)', async (t) => {
    await refused(
      t,
      () => inject({ method: 'PUT', url: '/api/v1/maintenance', token: tokens.supervisor, payload: '{"enabled":true,"allowVoicemail":true,"lines":[{"__proto__":{"x":1}}]}', contentType: 'application/json' }),
      { status: 400, code: 'invalid-json' },
    );
  });
  t.test('an XML body: 415', async (t) => {
    await refused(t, () => inject({ method: 'POST', url: '/api/v1/lists/black/entries', token: tokens.supervisor, payload: '<entry><number>13800001111</number></entry>', contentType: 'application/xml' }), { status: 415, code: 'unsupported-media-type' });
  });
  t.test('a form body: 415', async (t) => {
    await refused(t, () => inject({ method: 'POST', url: '/api/v1/auth/login', payload: 'username=admin&password=admin', contentType: 'application/x-www-form-urlencoded' }), { status: 415, code: 'unsupported-media-type' });
  });
  t.test('a text body where JSON is expected: 400', async (t) => {
    await refused(t, () => inject({ method: 'POST', url: '/api/v1/lists/black/entries', token: tokens.supervisor, payload: '13800001111', contentType: 'text/plain' }), { status: 400, code: 'invalid-request' });
  });
  t.test('a huge JSON body (2 MB): 413', async (t) => {
    const huge = JSON.stringify({ number: '13800001111', reason: 'x'.repeat(2 * 1024 * 1024) });
    await refused(t, () => inject({ method: 'POST', url: '/api/v1/lists/black/entries', token: tokens.supervisor, payload: huge, contentType: 'application/json' }), { status: 413, code: 'body-too-large' });
  });
  t.test('a huge sign-in body (2 MB): 413', async (t) => {
    await refused(t, () => inject({ method: 'POST', url: '/api/v1/auth/login', payload: JSON.stringify({ username: 'admin', password: 'p'.repeat(2 * 1024 * 1024) }), contentType: 'application/json' }), { status: 413, code: 'body-too-large' });
  });
  t.test('a list import over 8 MB: 413', async (t) => {
    const big = Buffer.alloc(8 * 1024 * 1024 + 10, '1');
    await refused(t, () => inject({ method: 'POST', url: '/api/v1/lists/black/import', token: tokens.supervisor, payload: big, contentType: 'text/plain' }), { status: 413, code: 'body-too-large' });
  });
});

t.test('path traversal in ids', async (t) => {
  const cases: Array<[string, string, string | null]> = [
    ['a recording id', `/api/v1/recordings/${TRAVERSAL}`, tokens.supervisor],
    ["a recording's audio", `/api/v1/recordings/${TRAVERSAL}/audio`, tokens.supervisor],
    ["a voicemail's audio", `/api/v1/voicemails/${TRAVERSAL}/audio`, tokens.supervisor],
    ['a call id', `/api/v1/calls/${TRAVERSAL}`, tokens.supervisor],
    ['an agent id', `/api/v1/agents/${TRAVERSAL}`, tokens.admin],
    ['a queue name', `/api/v1/queues/${TRAVERSAL}`, tokens.supervisor],
    ['a list kind', `/api/v1/lists/${TRAVERSAL}/entries`, tokens.supervisor],
    ['an import id', `/api/v1/lists/black/imports/${TRAVERSAL}`, tokens.supervisor],
  ];
  for (const [what, url, token] of cases) t.test(what, async (t) => void (await refused(t, () => inject({ method: 'GET', url, token }), { status: 400, code: 'invalid-request' })));
  t.test('a list entry to delete', async (t) => {
    await refused(t, () => inject({ method: 'DELETE', url: `/api/v1/lists/black/entries/${TRAVERSAL}`, token: tokens.supervisor }), { status: 400, code: 'invalid-request' });
  });
  t.test('a recording id with an encoded NUL', async (t) => {
    await refused(t, () => inject({ method: 'GET', url: `/api/v1/recordings/${randomUUID()}%00.wav`, token: tokens.supervisor }), { status: 400 });
  });
});

// ---------------------------------------------------------------- list imports

t.test('list imports: formulas, encodings, protected numbers', async (t) => {
  const upload = (body: Buffer | string, contentType: string, query = '', token = tokens.supervisor) =>
    inject({ method: 'POST', url: `/api/v1/lists/black/import${query}`, token, payload: body, contentType });
  // a refused import keeps its report (list_imports) and is audited; the list itself does not change
  const REPORT_ONLY = { list_imports: 1, audit_log: 1 };

  t.test('formula injection in a CSV cell: 422, nothing added', async (t) => {
    const csv = 'number,reason\n13800003333,ok\n"=HYPERLINK(""http://evil"",""x"")",x\n+cmd|\' /C calc\'!A0,x\n@SUM(1+1),x\n';
    const r = await refused(t, () => upload(csv, 'text/csv'), { status: 422, changes: REPORT_ONLY, report: true });
    t.match(r.body, { status: 'rejected', applied: false, added: 1 });
    t.equal(r.body.invalid.length, 3, 'every formula line is named');
    t.ok(r.body.invalid.every((l: { reason: string }) => /looks like a spreadsheet formula/.test(l.reason)), 'each refused as a formula');
  });
  t.test('GBK (not UTF-8) with protected numbers 110/119/120/122: 422, read as GB18030, nothing added', async (t) => {
    // 号码,原因 / 110,报警 / 119,火警 / 120,急救 / 122,交通 in GBK
    const gbk = Buffer.concat([
      Buffer.from([0xba, 0xc5, 0xc2, 0xeb, 0x2c, 0xd4, 0xad, 0xd2, 0xf2, 0x0d, 0x0a]),
      Buffer.from('110,'), Buffer.from([0xb1, 0xa8, 0xbe, 0xaf, 0x0d, 0x0a]),
      Buffer.from('119,'), Buffer.from([0xbb, 0xf0, 0xbe, 0xaf, 0x0d, 0x0a]),
      Buffer.from('120,'), Buffer.from([0xbc, 0xb1, 0xbe, 0xc8, 0x0d, 0x0a]),
      Buffer.from('122,'), Buffer.from([0xbd, 0xbb, 0xcd, 0xa8, 0x0d, 0x0a]),
    ]);
    const r = await refused(t, () => upload(gbk, 'text/csv'), { status: 422, changes: REPORT_ONLY, report: true });
    t.match(r.body, { encoding: 'gb18030', header: true, status: 'rejected', added: 0 });
    t.same(
      r.body.invalid.map((l: { value: string }) => l.value),
      ['110', '119', '120', '122'],
    );
    t.ok(r.body.invalid.every((l: { reason: string }) => /protected/.test(l.reason)), 'each refused as protected');
  });
  t.test('UTF-8 with BOM, protected numbers in +86 and 0898 spellings: 422', async (t) => {
    const csv = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('号码,原因\n0898-110,x\n+86 119,x\n12345,x\n13800004444,ok\n')]);
    const r = await refused(t, () => upload(csv, 'text/csv'), { status: 422, changes: REPORT_ONLY, report: true });
    t.match(r.body, { encoding: 'utf-8-bom', status: 'rejected', added: 1 });
    t.equal(r.body.invalidCount, 3);
  });
  t.test('best effort still refuses the protected numbers and the formulas (only the good row is added)', async (t) => {
    const before = await db.selectFrom('list_entries').select('number').execute();
    const r = await inject({ method: 'POST', url: '/api/v1/lists/black/import?mode=best-effort', token: tokens.admin, payload: '110\n=1+2\n13800005555\n', contentType: 'text/plain' });
    t.equal(r.status, 200);
    const after = await db.selectFrom('list_entries').select('number').execute();
    t.same(
      after.map((x) => x.number).filter((n) => !before.some((b) => b.number === n)),
      ['13800005555'],
      'only the valid number',
    );
  });
  t.test('a JSON import whose object carries __proto__: 422, nothing added, no pollution', async (t) => {
    const r = await refused(t, () => upload('[{"number":"13800006666","__proto__":{"treatment":"restrict"}}]', 'application/json'), { status: 422, changes: REPORT_ONLY, report: true });
    t.match(r.body.invalid[0], { line: 1, reason: /unknown field __proto__/ });
    t.equal(({} as { treatment?: string }).treatment, undefined);
  });
  t.test('a file that is not a workbook, sent as xlsx: 400', async (t) => {
    await refused(t, () => upload(randomBytes(512), 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'), { status: 400, code: 'invalid-file' });
  });
  t.test('an image sent as an import: 415', async (t) => {
    await refused(t, () => upload(Buffer.from([0x89, 0x50, 0x4e, 0x47]), 'image/png'), { status: 415 });
  });
  t.test('an unknown import option: 400', async (t) => {
    await refused(t, () => upload('13800007777\n', 'text/plain', '?mode=all-or-nothing&dryRun=1'), { status: 400, code: 'invalid-request' });
  });
  t.test('a protected number added by hand: 400 protected-number', async (t) => {
    await refused(t, () => json('POST', '/api/v1/lists/black/entries', tokens.supervisor, { number: '110', reason: 'x' }), { status: 400, code: 'protected-number' });
  });
  t.test('a formula added by hand: 400', async (t) => {
    await refused(t, () => json('POST', '/api/v1/lists/black/entries', tokens.supervisor, { number: '=1+2', reason: 'x' }), { status: 400, code: 'invalid-number' });
  });
  t.test('imports are rate limited per user: the 11th in a minute is a 429', async (t) => {
    const username = `t-importer-${randomBytes(3).toString('hex')}`;
    await db.insertInto('users').values({ username, password_hash: await hashPassword('pw-importer'), role: 'supervisor', agent_id: null }).execute();
    const token = (await json('POST', '/api/v1/auth/login', null, { username, password: 'pw-importer' })).body.token as string;
    for (let i = 0; i < 10; i++) t.equal((await upload('', 'text/plain', '', token)).status, 400, `import ${i + 1}: an empty file`);
    const r = await refused(t, () => upload('13800008888\n', 'text/plain', '', token), { status: 429, code: 'too-many-imports' });
    t.match(r.body.error.message, /at most 10 imports a minute/);
  });
});

// ---------------------------------------------------------------- sign-in lockout

t.test('sign-in lockout', async (t) => {
  const make = async (password: string) => {
    const username = `t-lock-${randomBytes(3).toString('hex')}`;
    await db.insertInto('users').values({ username, password_hash: await hashPassword(password), role: 'supervisor', agent_id: null }).execute();
    return username;
  };
  const login = (username: string, password: string, remoteAddress = '10.9.8.7') => inject({ method: 'POST', url: '/api/v1/auth/login', payload: JSON.stringify({ username, password }), contentType: 'application/json', remoteAddress });

  t.test('a wrong password: 401, no session', async (t) => {
    const u = await make('right-password-1');
    await refused(t, () => login(u, 'wrong', '10.0.0.1'), { status: 401, code: 'invalid-credentials' });
  });
  t.test('after 3 failures the right password gets 429 with Retry-After, and no session', async (t) => {
    const u = await make('right-password-2');
    for (let i = 0; i < 3; i++) t.equal((await login(u, `wrong-${i}`, '10.0.0.2')).status, 401);
    const r = await refused(t, () => login(u, 'right-password-2', '10.0.0.2'), { status: 429, code: 'too-many-attempts' });
    t.match(r.headers['retry-after'], /^\d+$/);
    t.ok(Number(r.headers['retry-after']) > 0 && Number(r.headers['retry-after']) <= 300);
    await refused(t, () => login(u, 'right-password-2', '10.0.0.99'), { status: 429, code: 'too-many-attempts' });
    t.pass('locked per user name: from another address too');
  });
  t.test('one address trying many user names is locked for every user name', async (t) => {
    const victims = await Promise.all([1, 2, 3, 4, 5, 6].map(() => make('not-guessed')));
    for (const v of victims) t.equal((await login(v, 'guess', '10.0.0.3')).status, 401);
    const good = await make('right-password-3');
    await refused(t, () => login(good, 'right-password-3', '10.0.0.3'), { status: 429, code: 'too-many-attempts' });
    t.equal((await login(good, 'right-password-3', '10.0.0.4')).status, 200, 'the same account from another address signs in');
  });
  t.test('an unknown user name is counted like a known one (no account enumeration)', async (t) => {
    const ghost = `nobody-${randomBytes(3).toString('hex')}`;
    for (let i = 0; i < 3; i++) t.same((await login(ghost, 'x', '10.0.0.5')).body, { error: { code: 'invalid-credentials', message: 'wrong user name or password' } });
    await refused(t, () => login(ghost, 'x', '10.0.0.5'), { status: 429, code: 'too-many-attempts' });
  });
});

t.test('at least 35 bad requests were refused; Object.prototype is clean', async (t) => {
  t.ok(casesRun >= 35, `${casesRun} bad requests refused, each with a clear 4xx and no change`);
  t.same(Object.keys(Object.prototype), []);
  t.equal(({} as Record<string, unknown>).isAdmin, undefined);
});
