/** Helpers for ACD tests: agents created through the API, their SIPp phones, and a queues file of the test's own. */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseQueues } from '../../src/acd/queues.config.js';
import { startSipp, type SippProcess } from '../sipp/sipp.js';

export interface TestAgent {
  id: string;
  port: number;
  skills: Array<{ skill: string; level: number }>;
}

/**
 * A queues file for one test. The shipped IVR flows (config/ivr) name every shipped queue, and the service
 * refuses flows that point at a missing queue: queues the test does not define are added as plain
 * `{ skill: <id> }` queues, so a test only writes the queues it cares about.
 */
export function writeQueuesFile(yaml: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'hotline-queues-'));
  const file = path.join(dir, 'queues.yaml');
  const shipped = parseQueues(readFileSync(path.join(import.meta.dirname, '../../config/queues.yaml'), 'utf8'));
  const mine = parseQueues(yaml);
  const extra = [...shipped.keys()].filter((id) => !mine.has(id)).map((id) => `  "${id}": { skill: "${id}" }\n`);
  writeFileSync(file, extra.length ? `${yaml.replace(/\s*$/, '\n')}${extra.join('')}` : yaml);
  return file;
}

/**
 * A copy of the shipped IVR files plus one line per queue id given, dialed as that number, that goes
 * straight to the queue (no menu): for tests about queues rather than menus. Pass it as IVR_DIR.
 */
export function ivrDirWithDirectLines(queueIds: string[]): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'hotline-ivr-'));
  cpSync(path.join(import.meta.dirname, '../../config'), dir, { recursive: true });
  // no survey after the agent hangs up (tests of their own turn it on): callers here end when the agent does
  let lines = `surveyAfterAgent: false\n${readFileSync(path.join(dir, 'lines.yaml'), 'utf8')}`;
  for (const id of queueIds) {
    writeFileSync(path.join(dir, `ivr/direct-${id}.yaml`), `start: q\nnodes:\n  q: { kind: queue, queue: "${id}" }\n`);
    lines += `  "${id}": { name: test line ${id}, flow: direct-${id}, queue: "${id}" }\n`;
  }
  writeFileSync(path.join(dir, 'lines.yaml'), lines);
  return dir;
}

async function api(base: string, token: string, method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/**
 * the agent with these skills and a desk phone at 127.0.0.1:port (created, or updated when an earlier run
 * left it in the test database), signed in and ready
 */
export async function createReadyAgent(base: string, token: string, a: TestAgent): Promise<void> {
  const phone = { uri: `sip:agent${a.id}@127.0.0.1:${a.port}` };
  const existing = await api(base, token, 'GET', `/api/v1/agents/${a.id}`);
  const r =
    existing.status === 200
      ? await api(base, token, 'PATCH', `/api/v1/agents/${a.id}`, { skills: a.skills, phone })
      : await api(base, token, 'POST', '/api/v1/agents', { employeeNo: a.id, name: `Test agent ${a.id}`, password: `pw-${a.id}-secret`, role: 'agent', skills: a.skills, phone });
  if (r.status !== 200 && r.status !== 201) throw new Error(`agent ${a.id}: ${r.status} ${JSON.stringify(r.body)}`);
  const state = (await api(base, token, 'GET', `/api/v1/agents/${a.id}`)).body.state?.state;
  if (state && state !== 'logged_out') await setState(base, token, a.id, 'logged_out');
  await setState(base, token, a.id, 'ready');
}

export async function setState(base: string, token: string, id: string, state: string, reason?: string): Promise<any> {
  const r = await api(base, token, 'PUT', `/api/v1/agents/${id}/state`, { state, ...(reason ? { reason } : {}) });
  if (r.status !== 200) throw new Error(`state ${id} -> ${state}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export { api };

/** one SIPp UAS phone per agent, taking calls until stopped */
export async function startPhones(agents: TestAgent[], scenario: string, vars: Record<string, string>, calls = 100, timeoutSeconds = 60): Promise<SippProcess[]> {
  return Promise.all(agents.map((a) => startSipp({ scenario, localPort: a.port, calls, vars, label: `agent${a.id}`, timeoutSeconds })));
}
