/**
 * The post-call satisfaction survey on the real stack: the agent hangs up its phone (the normal end of a
 * call), the caller hears the line's survey and presses a key; the score lands on the call and on every
 * agent who took part (here A, who transferred the call, and B, who finished it).
 * Line 7301 (queue 7301, skill `sq`) has the survey after the agent; line 7302 uses the 1..5 survey.
 */
import t from 'tap';
import { sql } from 'kysely';
import { runSipp, type SippProcess, startSipp } from '../sipp/sipp.js';
import { callerScript } from '../sipp/caller-script.js';
import { ariBridges, getJson, login, resetAri, startTestService, waitFor } from '../helpers/stack.js';
import { api, createReadyAgent, ivrDirWithDirectLines, setState, writeQueuesFile, type TestAgent } from '../helpers/acd.js';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createDb } from '../../src/db/db.js';

await resetAri();
const queuesFile = writeQueuesFile('defaults: { ringSeconds: 8, wrapUpSeconds: 1, announceEverySeconds: 0, callbackOffer: null }\nqueues:\n  "7301": { name: survey test, skill: sq }\n  "7302": { name: survey test 5, skill: sq }\n');
const ivrDir = ivrDirWithDirectLines(['7301', '7302']);
// these two lines ask after the agent hangs up (the helper turns it off for every other line)
const linesFile = path.join(ivrDir, 'lines.yaml');
writeFileSync(
  linesFile,
  readFileSync(linesFile, 'utf8')
    .replace(/("7301": \{[^}]*)\}/, '$1, surveyAfterAgent: true }')
    .replace(/("7302": \{[^}]*)\}/, '$1, surveyAfterAgent: true, survey: survey-5, surveyScale: 5 }'),
);
const service = await startTestService(t, 'survey', { QUEUES_FILE: queuesFile, IVR_DIR: ivrDir, REPEAT_CALLER_DAYS: '0' });
const base = service.url;
const db = createDb(service.config.databaseUrl);
t.teardown(() => db.destroy());
const admin = await login(base);
const A: TestAgent = { id: '1731', port: 5331, skills: [{ skill: 'sq', level: 5 }] };
const B: TestAgent = { id: '1732', port: 5332, skills: [{ skill: 'sq-b', level: 5 }] };
// A answers and stays; B answers, talks 3 s and hangs up (the normal end)
const phones: SippProcess[] = [
  await startSipp({ scenario: 'agent-answer', localPort: A.port, calls: 10, vars: { ring_ms: '300' }, label: 'agent1731' }),
  await startSipp({ scenario: 'agent-answer-hangup', localPort: B.port, calls: 10, vars: { ring_ms: '300', talk_ms: '3000' }, label: 'agent1732' }),
];
for (const a of [A, B]) await createReadyAgent(base, admin, a);
const tokenA = (await (await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: A.id, password: `pw-${A.id}-secret` }) })).json()) as { token: string };
t.teardown(async () => {
  for (const a of [A, B]) await setState(base, admin, a.id, 'logged_out').catch(() => undefined);
  await Promise.all(phones.map((p) => p.stop().catch(() => undefined)));
});
const tag = String(Date.now()).slice(-5);

async function ready(a: TestAgent): Promise<void> {
  await waitFor(async () => (['on_call', 'reserved'].includes((await getJson(base, `/api/v1/agents/${a.id}`, admin)).body.state?.state) ? undefined : true), 15_000, `${a.id} free`);
  if ((await getJson(base, `/api/v1/agents/${a.id}`, admin)).body.state?.state !== 'ready') await setState(base, admin, a.id, 'ready');
}

/** a caller on this line who, once connected, keeps pressing `key` every 3 s from `fromMs` on (keys before the survey are dropped) */
function caller(line: string, number: string, key: string, fromMs: number) {
  const steps = [{ pause: fromMs }, { keys: key }, { pause: 3000 }, { keys: key }, { pause: 3000 }, { keys: key }, { pause: 3000 }, { keys: key }];
  return runSipp({ scenario: callerScript(steps, 40_000), remote: '127.0.0.1:5060', service: line, callerNumber: number, timeoutSeconds: 90 });
}

t.test('the agent hangs up: the caller rates the call; the score is on the call and on both agents of the transfer', async (t) => {
  await ready(A);
  await ready(B);
  const number = `1391${tag}01`;
  const done = caller('7301', number, '2', 9000);
  const call = await waitFor(async () => (await getJson(base, `/api/v1/calls?caller=${number}&limit=5`, admin)).body.items?.find((c: { endedAt: string | null }) => !c.endedAt), 10_000, 'the call record');
  await waitFor(async () => ((await ariBridges()).find((b) => b.id === `call-${call.id}`)?.channels.length === 2 ? true : undefined), 15_000, 'A talking with the caller');
  const tr = await api(base, tokenA.token, 'POST', `/api/v1/calls/${call.id}/transfer`, { target: { agent: B.id } });
  t.equal(tr.status, 200, JSON.stringify(tr.body));
  const rec = await waitFor(async () => {
    const r = (await getJson(base, `/api/v1/calls/${call.id}`, admin)).body;
    return r.endedAt ? r : undefined;
  }, 60_000, 'the call record completed');
  await done;
  t.same(rec.agents, [A.id, B.id], 'A and B took part');
  const types = rec.events.map((e: { type: string }) => e.type);
  t.ok(types.includes('survey.after_agent'), 'the survey followed the agent hanging up');
  t.match(rec.survey, { score: 2 }, 'the score is on the call');
  const row = await db.selectFrom('calls').select(['survey_score', 'survey_scale', 'survey_satisfied']).where('id', '=', call.id).executeTakeFirstOrThrow();
  t.same(row, { survey_score: 2, survey_scale: 3, survey_satisfied: true }, '2 = basically satisfied counts as satisfied');
  const credits = await db.selectFrom('survey_results').select(['agent_id', 'score', 'satisfied']).where('call_id', '=', call.id).orderBy('agent_id').execute();
  t.same(credits, [
    { agent_id: A.id, score: 2, satisfied: true },
    { agent_id: B.id, score: 2, satisfied: true },
  ], 'credited to both agents');
});

t.test('a 1..5 line: an invalid key is asked again, 2 is not satisfied', async (t) => {
  await ready(A);
  // B takes the call straight (A not ready) and hangs up after 3 s; the caller presses 9 (invalid: asked once more) then 2
  await setState(base, admin, A.id, 'not_ready');
  t.teardown(() => setState(base, admin, A.id, 'ready').catch(() => undefined));
  const number = `1391${tag}02`;
  // B serves sq-b only: give the 7302 queue's skill to B for this test
  await api(base, admin, 'PATCH', `/api/v1/agents/${B.id}`, { skills: [{ skill: 'sq', level: 5 }, { skill: 'sq-b', level: 5 }] });
  t.teardown(() => api(base, admin, 'PATCH', `/api/v1/agents/${B.id}`, { skills: [{ skill: 'sq-b', level: 5 }] }));
  await ready(B);
  const steps = [{ pause: 8000 }, { keys: '9' }, { pause: 4000 }, { keys: '2' }, { pause: 3000 }, { keys: '2' }];
  const done = runSipp({ scenario: callerScript(steps, 40_000), remote: '127.0.0.1:5060', service: '7302', callerNumber: number, timeoutSeconds: 90 });
  const rec = await waitFor(async () => {
    const r = (await getJson(base, `/api/v1/calls?caller=${number}&limit=1`, admin)).body.items?.[0];
    return r?.endedAt ? (await getJson(base, `/api/v1/calls/${r.id}`, admin)).body : undefined;
  }, 60_000, 'the call record completed');
  await done;
  t.same(rec.agents, [B.id]);
  t.ok(rec.events.some((e: { type: string }) => e.type === 'ivr.invalid_entry'), 'the invalid key was refused');
  t.match(rec.survey, { score: 2 });
  const row = await db.selectFrom('calls').select(['survey_scale', 'survey_satisfied']).where('id', '=', rec.id).executeTakeFirstOrThrow();
  t.same(row, { survey_scale: 5, survey_satisfied: false }, 'on 1..5, 2 is not satisfied');
  const n = await sql<{ n: number }>`select count(*)::int as n from survey_results where call_id = ${rec.id} and agent_id = ${B.id} and scale = 5`.execute(db);
  t.equal(n.rows[0]!.n, 1);
});
