/**
 * The HTTP contract of the foundation: health, sign-in, roles, call records, OpenAPI, error shape.
 * Against the real service (PostgreSQL, Redis, Asterisk's ARI); call rows are inserted directly.
 */
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { insertCall, appendCallEvent } from '../../src/calls/calls.repo.js';
import { hashPassword } from '../../src/auth/passwords.js';
import { getJson, login, startTestService } from '../helpers/stack.js';

const service = await startTestService(t, 'api');
const base = service.url;

async function post(p: string, body: unknown, token?: string, contentType = 'application/json') {
  const res = await fetch(`${base}${p}`, {
    method: 'POST',
    headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

t.test('health: /healthz answers, /readyz says all three are up', async (t) => {
  t.equal((await getJson(base, '/healthz')).status, 200);
  const ready = await getJson(base, '/readyz');
  t.equal(ready.status, 200);
  t.match(ready.body, { ari: true, redis: true, postgres: true, down: [] });
  const metrics = await fetch(`${base}/metrics`);
  t.match(await metrics.text(), /hotline_ari_connected 1/);
});

t.test('sign-in', async (t) => {
  const ok = await post('/api/v1/auth/login', { username: 'admin', password: 'admin' });
  t.equal(ok.status, 200);
  t.match(ok.body, { token: String, role: 'admin', agentId: null, expiresAt: String });

  const wrong = await post('/api/v1/auth/login', { username: 'admin', password: 'nope' });
  t.equal(wrong.status, 401);
  t.same(wrong.body, { error: { code: 'invalid-credentials', message: 'wrong user name or password' } });
  const unknownUser = await post('/api/v1/auth/login', { username: 'nobody', password: 'nope' });
  t.same(unknownUser.body, wrong.body, 'an unknown user looks the same as a wrong password');

  const extra = await post('/api/v1/auth/login', { username: 'admin', password: 'admin', remember: true });
  t.equal(extra.status, 400, 'unknown fields are refused');
  t.equal(extra.body.error.code, 'invalid-request');
  const missing = await post('/api/v1/auth/login', { username: 'admin' });
  t.equal(missing.status, 400);
  const garbage = await post('/api/v1/auth/login', '{"username": ', undefined);
  t.equal(garbage.status, 400, 'broken JSON is a 400');
  t.notMatch(JSON.stringify(garbage.body), /at .*\.js/, 'no stack trace');
  const text = await post('/api/v1/auth/login', 'username=admin', undefined, 'text/plain');
  t.equal(text.status, 400, 'a body that is not an object is refused');
  const xml = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<u/>' });
  t.equal(xml.status, 415, 'an unsupported media type is a 415');
  t.equal(((await xml.json()) as { error: { code: string } }).error.code, 'unsupported-media-type');
});

t.test('bearer tokens: required, checked, ended by logout', async (t) => {
  t.equal((await getJson(base, '/api/v1/calls')).status, 401);
  t.equal((await getJson(base, '/api/v1/calls', 'made-up-token')).status, 401);
  const token = await login(base);
  t.equal((await getJson(base, '/api/v1/calls', token)).status, 200);
  t.equal((await post('/api/v1/auth/logout', {}, token)).status, 204);
  t.equal((await getJson(base, '/api/v1/calls', token)).status, 401, 'the token is dead after logout');
});

t.test('call records: filters, cursor, one call with its events, an agent sees only its own', async (t) => {
  const token = await login(base);
  const caller = `1380000${String(Date.now()).slice(-4)}`;
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const id = randomUUID();
    ids.push(id);
    await insertCall(service.db, {
      id,
      direction: 'inbound',
      caller,
      dialed: '12345',
      line: '12345',
      channel_id: `test-${i}`,
      arrived_at: new Date(Date.now() - (3 - i) * 60_000),
      agents: i === 0 ? ['7001'] : [],
      disposition: i === 0 ? 'answered' : 'abandoned',
    });
    await appendCallEvent(service.db, id, new Date(), 'arrived', { n: i });
  }

  const all = await getJson(base, `/api/v1/calls?caller=${encodeURIComponent('+86 ' + caller)}`, token);
  t.equal(all.status, 200);
  t.same(all.body.items.map((c: { id: string }) => c.id), [...ids].reverse(), 'newest first; caller filter normalises +86');
  t.equal(all.body.items[0].events[0].type, 'arrived');

  const page1 = await getJson(base, `/api/v1/calls?caller=${caller}&limit=2`, token);
  t.equal(page1.body.items.length, 2);
  t.type(page1.body.nextCursor, 'string');
  const page2 = await getJson(base, `/api/v1/calls?caller=${caller}&limit=2&cursor=${page1.body.nextCursor}`, token);
  t.same(page2.body.items.map((c: { id: string }) => c.id), [ids[0]], 'the cursor continues where page 1 ended');

  const answered = await getJson(base, `/api/v1/calls?caller=${caller}&disposition=answered`, token);
  t.equal(answered.body.items.length, 1);
  t.equal((await getJson(base, `/api/v1/calls?disposition=hung`, token)).status, 400);
  t.equal((await getJson(base, `/api/v1/calls?limit=0`, token)).status, 400);
  t.equal((await getJson(base, `/api/v1/calls?colour=red`, token)).status, 400, 'unknown query fields are refused');
  t.equal((await getJson(base, `/api/v1/calls?cursor=bm9wZQ`, token)).body.error.code, 'invalid-cursor');

  const one = await getJson(base, `/api/v1/calls/${ids[0]}`, token);
  t.equal(one.status, 200);
  t.match(one.body, { id: ids[0], caller, dialed: '12345', agents: ['7001'], disposition: 'answered', recordingId: null, survey: null });
  t.equal((await getJson(base, `/api/v1/calls/${randomUUID()}`, token)).body.error.code, 'no-such-call');
  t.equal((await getJson(base, `/api/v1/calls/not-a-uuid`, token)).status, 400);

  // an agent account (the ACD issue adds the API to create them)
  await service.db
    .insertInto('users')
    .values({ username: `agent-${caller}`, password_hash: await hashPassword('pw-7001'), role: 'agent', agent_id: '7001' })
    .execute();
  const agentToken = await login(base, `agent-${caller}`, 'pw-7001');
  const mine = await getJson(base, `/api/v1/calls?caller=${caller}`, agentToken);
  t.same(mine.body.items.map((c: { id: string }) => c.id), [ids[0]], 'an agent sees only calls it took part in');
  const notMine = await getJson(base, `/api/v1/calls?caller=${caller}&agent=9999`, agentToken);
  t.same(notMine.body.items.map((c: { id: string }) => c.id), [ids[0]], 'and cannot widen that with ?agent=');
  t.equal((await getJson(base, `/api/v1/calls/${ids[1]}`, agentToken)).status, 404, "another's call is not found");
});

t.test('OpenAPI describes the contract at /docs', async (t) => {
  const doc = await getJson(base, '/docs/json');
  t.equal(doc.status, 200);
  for (const p of ['/healthz', '/readyz', '/api/v1/auth/login', '/api/v1/calls/', '/api/v1/calls/{id}']) t.ok(doc.body.paths[p], `documents ${p}`);
  t.equal((await fetch(`${base}/docs`, { redirect: 'manual' })).status < 400, true, 'the UI is served');
});

t.test('unknown routes get the error shape, not HTML', async (t) => {
  const r = await getJson(base, '/api/v1/nothing-here');
  t.equal(r.status, 404);
  t.equal(r.body.error.code, 'not-found');
});
