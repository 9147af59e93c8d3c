/**
 * Agents' phones, end to end on the real stack: an agent created through the API becomes a PJSIP
 * endpoint in Asterisk (ARI push configuration, in-memory sorcery wizard), a SIPp phone behind it
 * can be rung, a softphone can register with its employee number and SIP password, the phones come
 * back after Asterisk restarts (the service pushes them again when ARI reconnects), and a deleted
 * agent's phone leaves Asterisk. Asserts on Asterisk through raw ARI and the CLI, not our adapter.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { freeUdpPort, runSipp, startSipp } from '../sipp/sipp.js';
import { ARI, ROOT, asteriskCtl, login, startTestService, waitFor } from '../helpers/stack.js';

const execFileP = promisify(execFile);
const service = await startTestService(t, 'agents-provisioning');
const base = service.url;
const token = await login(base);

const run = randomBytes(3).toString('hex').toUpperCase();
const created: string[] = [];
let seq = 0;
const newNo = () => {
  const no = `E${run}${++seq}`;
  created.push(no);
  return no;
};
const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;

// whatever happens below, leave Asterisk running and no test agent behind
t.teardown(async () => {
  if ((await asteriskCtl('status')).code !== 0) await asteriskCtl('start');
  await waitFor(() => service.ari.connected, 20_000, 'ARI to reconnect').catch(() => undefined);
  for (const no of created) await api('DELETE', `/agents/${no}`).catch(() => undefined);
  if (created.length) {
    await service.db.deleteFrom('users').where('agent_id', 'in', created).execute();
    await service.db.deleteFrom('agents').where('employee_no', 'in', created).execute();
  }
});

async function api(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}/api/v1${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** raw ARI (not the service's adapter): status and JSON body */
async function ari(method: string, p: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${ARI.url}/ari${p}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from(`${ARI.user}:${ARI.password}`).toString('base64')}` },
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body };
}

/** a pushed PJSIP object's fields, or null when Asterisk does not have it */
async function pjsip(type: 'endpoint' | 'aor' | 'auth' | 'identify', id: string): Promise<Record<string, string> | null> {
  const r = await ari('GET', `/asterisk/config/dynamic/res_pjsip/${type}/${encodeURIComponent(id)}`);
  if (r.status === 404) return null;
  if (r.status !== 200) throw new Error(`ARI GET ${type}/${id}: ${r.status} ${JSON.stringify(r.body)}`);
  const fields: Record<string, string> = {};
  for (const f of r.body as Array<{ attribute: string; value: string }>) fields[f.attribute] = fields[f.attribute] ? `${fields[f.attribute]},${f.value}` : f.value;
  return fields;
}

async function cli(command: string): Promise<string> {
  const r = await execFileP('bash', [path.join(ROOT, 'scripts/asterisk.sh'), 'cli', command], { timeout: 30_000 });
  return r.stdout;
}

const deskAgent = (no: string, uri: string) => ({
  employeeNo: no,
  name: `E2E ${no}`,
  password: PASSWORD,
  role: 'agent',
  skills: [{ skill: 'general', level: 5 }],
  phone: { uri },
});

/** Asterisk rings the agent's endpoint; answered, the call plays a prompt (dialplan hotline-util phone-check) and hangs up */
async function ring(endpoint: string): Promise<{ status: number; body: any }> {
  const q = new URLSearchParams({ endpoint, context: 'hotline-util', extension: 'phone-check', priority: '1', timeout: '15', callerId: '"e2e" <12345>' });
  return ari('POST', `/channels?${q}`);
}

t.test('a desk phone: the API creates the endpoint and AOR in Asterisk, and the phone can be rung', async (t) => {
  const no = newNo();
  const port = await freeUdpPort();
  const uri = `sip:${no}@127.0.0.1:${port}`;
  const r = await api('POST', '/agents', deskAgent(no, uri));
  t.equal(r.status, 201);
  t.equal(r.body.endpoint, `PJSIP/agent${no}`);
  t.equal(r.body.provisioned, true, 'provisioned: true');

  const endpoint = await pjsip('endpoint', `agent${no}`);
  t.match(endpoint, { context: 'agents', aors: no, direct_media: 'false', rtp_symmetric: 'true', dtmf_mode: 'rfc4733', send_pai: 'false', transport: 'transport-udp' }, 'endpoint with the agents\' media settings');
  t.match(endpoint?.allow ?? '', /alaw/, 'G.711 a-law allowed');
  t.equal(endpoint?.auth ?? '', '', 'a desk phone has no inbound auth');
  t.equal(endpoint?.identify_by, 'ip', 'and is never identified by a From user (identify_by=ip, no identify object)');
  t.match(await pjsip('aor', no), { contact: uri, qualify_frequency: '0' }, 'AOR with the static contact, no qualify');
  t.equal(await pjsip('auth', `agent${no}`), null, 'no auth object');
  t.match(await cli(`pjsip show endpoint agent${no}`), new RegExp(`Endpoint:\\s+agent${no}\\b`), 'the CLI shows it');

  const phone = await startSipp({ scenario: 'agent-answer', localPort: port, calls: 1, vars: { ring_ms: '300' }, timeoutSeconds: 30 });
  const call = await ring(`PJSIP/agent${no}`);
  t.equal(call.status, 200, `originate to PJSIP/agent${no}: ${JSON.stringify(call.body).slice(0, 200)}`);
  const result = await Promise.race([phone.result, new Promise<null>((res) => setTimeout(() => res(null), 25_000))]);
  const final = result ?? (await phone.stop(1000));
  t.equal(final.succeeded, 1, `the SIPp phone was rung, answered, and got the BYE (errors: ${final.errors.join(' | ')})`);

  // a new URI replaces the contact (an update alone would add it next to the old one)
  const port2 = await freeUdpPort();
  const uri2 = `sip:${no}@127.0.0.1:${port2}`;
  const p = await api('PATCH', `/agents/${no}`, { phone: { uri: uri2 } });
  t.equal(p.status, 200);
  t.equal(p.body.provisioned, true);
  t.equal((await pjsip('aor', no))?.contact, uri2, 'one contact: the new URI');
});

t.test('a softphone: registers as <employeeNo> with its SIP password, and is rung on the contact it registered', async (t) => {
  const no = newNo();
  const sipPassword = `sip-${randomBytes(6).toString('hex')}`;
  const r = await api('POST', '/agents', { ...deskAgent(no, 'sip:x@127.0.0.1'), phone: { sipPassword } });
  t.equal(r.status, 201);
  t.equal(r.body.provisioned, true);
  t.match(await pjsip('endpoint', `agent${no}`), { auth: `agent${no}`, aors: no });
  const aor = await pjsip('aor', no);
  t.match(aor, { max_contacts: '1', remove_existing: 'true' }, 'AOR for one registered contact');
  t.equal(aor?.contact, '', 'no static contact');
  t.match(await pjsip('auth', `agent${no}`), { auth_type: 'userpass', username: no });
  t.match(await pjsip('identify', `agent${no}`), { endpoint: `agent${no}` });

  // The phone lives on 127.0.0.2: 127.0.0.1 is the callers' trunk (identified by source address).
  const dir = await mkdtemp(path.join(tmpdir(), 'agents-e2e-'));
  const register = path.join(dir, 'register.xml');
  await writeFile(register, REGISTER_XML);
  const uasPort = await freeUdpPort();
  const phoneArgs = ['-i', '127.0.0.2', '-mi', '127.0.0.2'];
  const wrong = await runSipp({ scenario: register, remote: '127.0.0.1:5060', service: no, vars: { contact_port: String(uasPort) }, extraArgs: [...phoneArgs, '-au', no, '-ap', 'wrong-password'], timeoutSeconds: 8 });
  t.equal(wrong.succeeded, 0, 'a wrong SIP password is refused');
  const reg = await runSipp({ scenario: register, remote: '127.0.0.1:5060', service: no, vars: { contact_port: String(uasPort) }, extraArgs: [...phoneArgs, '-au', no, '-ap', sipPassword], timeoutSeconds: 15 });
  t.equal(reg.succeeded, 1, `REGISTER sip:${no}@asterisk with the SIP password: 200 (errors: ${reg.errors.join(' | ')})`);
  t.match(await cli(`pjsip show aor ${no}`), new RegExp(`${no}/sip:${no}@127\\.0\\.0\\.2:${uasPort}`), 'the registered contact is on the AOR');

  const phone = await startSipp({ scenario: 'agent-answer', localPort: uasPort, calls: 1, vars: { ring_ms: '300' }, timeoutSeconds: 30, extraArgs: phoneArgs });
  const call = await ring(`PJSIP/agent${no}`);
  t.equal(call.status, 200, 'originate to the softphone');
  const result = await Promise.race([phone.result, new Promise<null>((res) => setTimeout(() => res(null), 25_000))]);
  const final = result ?? (await phone.stop(1000));
  t.equal(final.succeeded, 1, `the registered softphone was rung and answered (errors: ${final.errors.join(' | ')})`);

  // softphone -> desk phone: the auth and identify go, the endpoint no longer challenges
  const port = await freeUdpPort();
  const p = await api('PATCH', `/agents/${no}`, { phone: { uri: `sip:${no}@127.0.0.1:${port}` } });
  t.equal(p.body.provisioned, true);
  t.equal((await pjsip('endpoint', `agent${no}`))?.auth ?? '', '', 'no auth on the endpoint any more');
  t.equal(await pjsip('auth', `agent${no}`), null, 'auth object removed');
  t.equal(await pjsip('identify', `agent${no}`), null, 'identify object removed');
  t.equal((await pjsip('aor', no))?.contact, `sip:${no}@127.0.0.1:${port}`);
});

t.test('Asterisk restarts: the phones come back when the service reconnects; one created meanwhile is pushed too', async (t) => {
  const no = newNo();
  const uri = `sip:${no}@127.0.0.1:${await freeUdpPort()}`;
  t.equal((await api('POST', '/agents', deskAgent(no, uri))).status, 201);
  t.ok(await pjsip('endpoint', `agent${no}`), 'there before the restart');

  const stopped = await asteriskCtl('stop');
  t.equal(stopped.code, 0, 'Asterisk stopped');
  await waitFor(() => !service.ari.connected, 20_000, 'the service to see ARI down');
  const meanwhileNo = newNo();
  const meanwhileUri = `sip:${meanwhileNo}@127.0.0.1:${await freeUdpPort()}`;
  const meanwhile = await api('POST', '/agents', deskAgent(meanwhileNo, meanwhileUri));
  t.equal(meanwhile.status, 201, 'creating an agent while Asterisk is down still works');
  t.equal(meanwhile.body.provisioned, false, '... with provisioned: false');
  t.equal((await api('GET', `/agents/${no}`)).body.provisioned, false, 'an existing agent reads provisioned: false while Asterisk is down');

  const started = await asteriskCtl('start');
  t.equal(started.code, 0, `Asterisk started: ${started.out.trim().split('\n').at(-1)}`);
  const back = await waitFor(async () => (await pjsip('endpoint', `agent${no}`)) ?? undefined, 30_000, `agent${no} back in Asterisk`);
  t.match(back, { context: 'agents', aors: no }, 'the endpoint is back after the reconnect');
  t.match(await pjsip('aor', no), { contact: uri }, 'with its AOR');
  t.match(await waitFor(async () => (await pjsip('aor', meanwhileNo)) ?? undefined, 30_000, 'the agent created meanwhile'), { contact: meanwhileUri }, 'the agent created while Asterisk was down is pushed too');
  // the AOR and the endpoint are pushed one after the other: wait for the endpoint as for the AOR
  t.ok(await waitFor(async () => (await pjsip('endpoint', `agent${meanwhileNo}`)) ?? undefined, 10_000, 'its endpoint'));
  await waitFor(async () => (await api('GET', `/agents/${meanwhileNo}`)).body.provisioned === true, 10_000, 'provisioned: true');
  t.pass('provisioned: true again');
});

t.test('delete: the agent\'s endpoint, AOR, auth and identify leave Asterisk', async (t) => {
  const desk = newNo();
  const soft = newNo();
  t.equal((await api('POST', '/agents', deskAgent(desk, `sip:${desk}@127.0.0.1:${await freeUdpPort()}`))).status, 201);
  t.equal((await api('POST', '/agents', { ...deskAgent(soft, 'sip:x@127.0.0.1'), phone: { sipPassword: `sip-${randomBytes(6).toString('hex')}` } })).status, 201);
  t.ok(await pjsip('endpoint', `agent${desk}`));
  t.ok(await pjsip('identify', `agent${soft}`));

  for (const no of [desk, soft]) {
    t.equal((await api('DELETE', `/agents/${no}`)).status, 204);
    t.equal(await pjsip('endpoint', `agent${no}`), null, `endpoint agent${no} gone`);
    t.equal(await pjsip('aor', no), null, `aor ${no} gone`);
    t.equal(await pjsip('auth', `agent${no}`), null, `auth agent${no} gone`);
    t.equal(await pjsip('identify', `agent${no}`), null, `identify agent${no} gone`);
  }
  t.notMatch(await cli('pjsip show endpoints'), new RegExp(`agent${desk}\\b`), 'the CLI no longer lists it');
  const originate = await ring(`PJSIP/agent${desk}`);
  t.not(originate.status, 200, `dialing the deleted agent fails (${originate.status})`);
});

// A softphone's registration: REGISTER, 401 challenge, REGISTER with digest (-au/-ap), 200.
const REGISTER_XML = `<?xml version="1.0" encoding="UTF-8"?>
<!--
  @var contact_port 5060 the port of the Contact the phone registers (where a UAS answers INVITEs)
-->
<scenario name="register">
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:{{contact_port}}>
      Max-Forwards: 70
      Expires: 300
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[service]@[local_ip]:{{contact_port}}>
      [authentication]
      Max-Forwards: 70
      Expires: 300
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
`;
