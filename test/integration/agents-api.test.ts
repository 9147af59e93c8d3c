/**
 * The agents API (API.md "Agents"): create, read, list, change and delete agents with their sign-in
 * accounts, against the real service (PostgreSQL, Redis, Asterisk's ARI). Each run uses fresh
 * employee numbers and removes its rows at the end (employee numbers are never reused otherwise).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { login, startTestService } from '../helpers/stack.js';

const service = await startTestService(t, 'agents-api');
const base = service.url;
const adminToken = await login(base);

const run = randomBytes(3).toString('hex').toUpperCase();
const created: string[] = [];
/** a fresh employee number for this run: T<run><n> */
let seq = 0;
const newNo = () => {
  const no = `T${run}${++seq}`;
  created.push(no);
  return no;
};

const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;
const SIP_PASSWORD = `sip-${randomBytes(6).toString('hex')}`;

async function api(method: string, p: string, body?: unknown, token: string | null = adminToken): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}/api/v1${p}`, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const deskAgent = (no: string, extra: Record<string, unknown> = {}) => ({
  employeeNo: no,
  name: `Agent ${no}`,
  password: PASSWORD,
  role: 'agent',
  skills: [
    { skill: 'general', level: 5 },
    { skill: 'tax_policy', level: 9 },
  ],
  phone: { uri: 'sip:8001@127.0.0.1:5090' },
  ...extra,
});

t.teardown(async () => {
  // through the API first (so Asterisk forgets the phones), then the rows themselves
  for (const no of created) await api('DELETE', `/agents/${no}`).catch(() => undefined);
  if (created.length) {
    await service.db.deleteFrom('users').where('agent_id', 'in', created).execute();
    await service.db.deleteFrom('agents').where('employee_no', 'in', created).execute();
  }
});

t.test('create: 201 with the agent, its dial string, and no password anywhere', async (t) => {
  const no = newNo();
  const r = await api('POST', '/agents', deskAgent(no, { wrapUpSeconds: 30 }));
  t.equal(r.status, 201);
  t.match(r.body, {
    id: no,
    employeeNo: no,
    name: `Agent ${no}`,
    role: 'agent',
    skills: [
      { skill: 'general', level: 5 },
      { skill: 'tax_policy', level: 9 },
    ],
    phone: { kind: 'uri', uri: 'sip:8001@127.0.0.1:5090' },
    endpoint: `PJSIP/agent${no}`,
    wrapUpSeconds: 30,
    provisioned: true,
    createdAt: String,
    updatedAt: String,
  });
  t.notOk('password' in r.body, 'no password field');
  t.notMatch(JSON.stringify(r.body), PASSWORD);

  const soft = newNo();
  const s = await api('POST', '/agents', { ...deskAgent(soft), phone: { sipPassword: SIP_PASSWORD } });
  t.equal(s.status, 201);
  t.same(s.body.phone, { kind: 'softphone' }, 'a softphone shows its kind only');
  t.equal(s.body.wrapUpSeconds, null, 'no wrap-up override unless given');
  t.notMatch(JSON.stringify(s.body), SIP_PASSWORD, 'the SIP password is never returned');
  t.equal((await api('GET', `/agents/${soft}`)).body.provisioned, true, 'its phone is in Asterisk');
});

t.test('duplicate employee number: 409 agent-exists', async (t) => {
  const no = newNo();
  t.equal((await api('POST', '/agents', deskAgent(no))).status, 201);
  const again = await api('POST', '/agents', deskAgent(no));
  t.equal(again.status, 409);
  t.equal(again.body.error.code, 'agent-exists');
  const taken = await api('POST', '/agents', deskAgent('admin'));
  t.equal(taken.status, 409, 'an employee number that is an existing user name');
  t.equal(taken.body.error.code, 'username-taken');
});

t.test('bad bodies: 400 with a code naming what is wrong', async (t) => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['an unknown field', deskAgent('X1', { nickname: 'x' }), 'invalid-request'],
    ['a skill name with capitals', deskAgent('X1', { skills: [{ skill: 'Tax', level: 3 }] }), 'invalid-skill'],
    ['a skill name too long', deskAgent('X1', { skills: [{ skill: 'a'.repeat(33), level: 3 }] }), 'invalid-skill'],
    ['level 0', deskAgent('X1', { skills: [{ skill: 'tax', level: 0 }] }), 'invalid-skill'],
    ['level 10', deskAgent('X1', { skills: [{ skill: 'tax', level: 10 }] }), 'invalid-skill'],
    ['a fractional level', deskAgent('X1', { skills: [{ skill: 'tax', level: 2.5 }] }), 'invalid-skill'],
    ['an unknown field in a skill', deskAgent('X1', { skills: [{ skill: 'tax', level: 2, x: 1 }] }), 'invalid-skill'],
    ['the same skill twice', deskAgent('X1', { skills: [{ skill: 'tax', level: 2 }, { skill: 'tax', level: 3 }] }), 'invalid-skill'],
    ['no phone', (({ phone: _p, ...rest }) => rest)(deskAgent('X1')), 'invalid-phone'],
    ['both sipPassword and uri', deskAgent('X1', { phone: { sipPassword: SIP_PASSWORD, uri: 'sip:8001@127.0.0.1:5090' } }), 'invalid-phone'],
    ['an empty phone', deskAgent('X1', { phone: {} }), 'invalid-phone'],
    ['a uri with a comma', deskAgent('X1', { phone: { uri: 'sip:8001@127.0.0.1,sip:evil@10.0.0.1' } }), 'invalid-phone'],
    ['a short SIP password', deskAgent('X1', { phone: { sipPassword: 'short' } }), 'invalid-phone'],
    ['an employee number with a dash', deskAgent('X-1'), 'invalid-employee-no'],
    ['an employee number of 17 characters', deskAgent('A'.repeat(17)), 'invalid-employee-no'],
    ['role auditor', deskAgent('X1', { role: 'auditor' }), 'invalid-role'],
    ['a short password', deskAgent('X1', { password: 'short' }), 'invalid-password'],
    ['no name', (({ name: _n, ...rest }) => rest)(deskAgent('X1')), 'invalid-request'],
  ];
  for (const [what, body, code] of cases) {
    const r = await api('POST', '/agents', body);
    t.equal(r.status, 400, `${what}: 400`);
    t.equal(r.body?.error?.code, code, `${what}: ${code} (${r.body?.error?.message})`);
    t.notMatch(JSON.stringify(r.body), PASSWORD, `${what}: the password is not echoed`);
  }
  t.equal((await api('GET', '/agents/X1')).status, 404, 'none of them was created');

  const no = newNo();
  t.equal((await api('POST', '/agents', deskAgent(no))).status, 201);
  const empty = await api('PATCH', `/agents/${no}`, {});
  t.equal(empty.status, 400, 'an empty PATCH');
  const badPatch = await api('PATCH', `/agents/${no}`, { skills: [{ skill: 'tax', level: 10 }] });
  t.equal(badPatch.body.error.code, 'invalid-skill', 'PATCH checks skills too');
  t.equal((await api('PATCH', `/agents/${no}`, { employeeNo: 'Z9' })).status, 400, 'the employee number cannot change');
});

t.test('roles: only an admin manages agents; supervisors and auditors read; an agent reads itself', async (t) => {
  const agentNo = newNo();
  const supNo = newNo();
  t.equal((await api('POST', '/agents', deskAgent(agentNo))).status, 201);
  t.equal((await api('POST', '/agents', deskAgent(supNo, { role: 'supervisor' }))).status, 201);
  const agentToken = await login(base, agentNo, PASSWORD);
  const supToken = await login(base, supNo, PASSWORD);

  t.equal((await api('POST', '/agents', deskAgent('X2'), null)).status, 401, 'no token: 401');
  t.equal((await api('POST', '/agents', deskAgent('X2'), agentToken)).status, 403, 'agent: create 403');
  t.equal((await api('GET', '/agents', undefined, agentToken)).status, 403, 'agent: list 403');
  const self = await api('GET', `/agents/${agentNo}`, undefined, agentToken);
  t.equal(self.status, 200, 'agent: reads itself');
  t.equal(self.body.employeeNo, agentNo);
  t.equal((await api('GET', `/agents/${supNo}`, undefined, agentToken)).status, 403, 'agent: not someone else');
  t.equal((await api('PATCH', `/agents/${agentNo}`, { name: 'Me' }, agentToken)).status, 403, 'agent: cannot change itself');
  t.equal((await api('DELETE', `/agents/${agentNo}`, undefined, agentToken)).status, 403, 'agent: cannot delete');

  t.equal((await api('GET', '/agents', undefined, supToken)).status, 200, 'supervisor: list');
  t.equal((await api('GET', `/agents/${agentNo}`, undefined, supToken)).status, 200, 'supervisor: read one');
  t.equal((await api('POST', '/agents', deskAgent('X2'), supToken)).status, 403, 'supervisor: create 403');
  t.equal((await api('PATCH', `/agents/${agentNo}`, { name: 'x' }, supToken)).status, 403, 'supervisor: change 403');

  const me = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: agentNo, password: PASSWORD }),
  });
  t.match(await me.json(), { role: 'agent', agentId: agentNo }, 'an agent signs in with its employee number');
});

t.test('get / patch / delete round trip', async (t) => {
  const no = newNo();
  t.equal((await api('POST', '/agents', deskAgent(no))).status, 201);
  const before = (await api('GET', `/agents/${no}`)).body;

  const patched = await api('PATCH', `/agents/${no}`, {
    name: '王小明',
    role: 'supervisor',
    skills: [{ skill: 'english', level: 7 }],
    wrapUpSeconds: 45,
    phone: { uri: 'sip:8002@127.0.0.1:5090' },
  });
  t.equal(patched.status, 200);
  t.match(patched.body, {
    name: '王小明',
    role: 'supervisor',
    skills: [{ skill: 'english', level: 7 }],
    wrapUpSeconds: 45,
    phone: { kind: 'uri', uri: 'sip:8002@127.0.0.1:5090' },
    provisioned: true,
    createdAt: before.createdAt,
  });
  t.ok(patched.body.updatedAt > before.updatedAt, 'updatedAt moves');
  t.same((await api('GET', `/agents/${no}`)).body.skills, [{ skill: 'english', level: 7 }], 'GET reads the change');

  const reset = await api('PATCH', `/agents/${no}`, { wrapUpSeconds: null, phone: { sipPassword: SIP_PASSWORD } });
  t.equal(reset.body.wrapUpSeconds, null, 'wrapUpSeconds null: back to the default');
  t.same(reset.body.phone, { kind: 'softphone' }, 'desk phone -> softphone');
  t.equal((await api('PATCH', `/agents/${no}`, { wrapUpSeconds: 0 })).body.wrapUpSeconds, 0, 'wrapUpSeconds 0 stays 0 (not null)');
  t.equal(reset.body.provisioned, true);

  const bySkill = await api('GET', '/agents?skill=english');
  t.same(
    bySkill.body.items.map((a: { id: string }) => a.id).filter((id: string) => created.includes(id)),
    [no],
    'the skill filter finds it',
  );

  const del = await api('DELETE', `/agents/${no}`);
  t.equal(del.status, 204);
  t.equal(del.body, null);
  const gone = await api('GET', `/agents/${no}`);
  t.equal(gone.status, 404);
  t.equal(gone.body.error.code, 'no-such-agent');
  t.equal((await api('PATCH', `/agents/${no}`, { name: 'x' })).status, 404, 'a deleted agent cannot be changed');
  t.equal((await api('DELETE', `/agents/${no}`)).status, 404, 'nor deleted twice');
  const again = await api('POST', '/agents', deskAgent(no));
  t.equal(again.status, 409, 'its employee number is not reused');
  t.equal(again.body.error.code, 'agent-exists');
  const row = await service.db.selectFrom('agents').select(['deleted_at', 'name']).where('employee_no', '=', no).executeTakeFirst();
  t.ok(row?.deleted_at, 'the row stays, marked deleted (call records point at it)');
});

t.test('a new password: signs in with it, not with the old one; old tokens end', async (t) => {
  const no = newNo();
  t.equal((await api('POST', '/agents', deskAgent(no))).status, 201);
  const oldToken = await login(base, no, PASSWORD);
  const newPassword = `new-${randomBytes(6).toString('hex')}`;
  t.equal((await api('PATCH', `/agents/${no}`, { password: newPassword })).status, 200);
  await t.resolves(login(base, no, newPassword), 'the new password works');
  await t.rejects(login(base, no, PASSWORD), 'the old one does not');
  t.equal((await api('GET', `/agents/${no}`, undefined, oldToken)).status, 401, 'a token from the old password is dead');
});

t.test('a deleted agent cannot sign in, its tokens end, and listings leave it out', async (t) => {
  const keep = newNo();
  const drop = newNo();
  t.equal((await api('POST', '/agents', deskAgent(keep))).status, 201);
  t.equal((await api('POST', '/agents', deskAgent(drop))).status, 201);
  const token = await login(base, drop, PASSWORD);
  const listed = (await api('GET', '/agents')).body.items.map((a: { id: string }) => a.id);
  t.ok(listed.includes(keep) && listed.includes(drop), 'both listed');

  t.equal((await api('DELETE', `/agents/${drop}`)).status, 204);
  await t.rejects(login(base, drop, PASSWORD), /401/, 'cannot sign in');
  t.equal((await api('GET', `/agents/${drop}`, undefined, token)).status, 401, 'its token is dead');
  const after = (await api('GET', '/agents')).body.items.map((a: { id: string }) => a.id);
  t.ok(after.includes(keep), 'the other is still listed');
  t.notOk(after.includes(drop), 'the deleted one is not');
  t.same(after, [...after].sort(), 'ordered by employee number');
});

t.test('the OpenAPI document describes the agents routes', async (t) => {
  const doc = (await (await fetch(`${base}/docs/json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  t.ok(doc.paths['/api/v1/agents/']?.post ?? doc.paths['/api/v1/agents']?.post, 'POST /api/v1/agents');
  t.ok(doc.paths['/api/v1/agents/{id}']?.patch, 'PATCH /api/v1/agents/{id}');
});

t.test('passwords never reach the service log', async (t) => {
  const text = await readFile(service.logFile, 'utf8');
  t.notMatch(text, PASSWORD, 'no sign-in password');
  t.notMatch(text, SIP_PASSWORD, 'no SIP password');
  t.match(text, /agent created/, 'the log does record the changes');
});
