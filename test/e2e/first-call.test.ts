/**
 * The first call, end to end on the real stack: SIPp caller -> Asterisk 22 -> the control plane (ARI)
 * -> SIPp agent phone, with the call record in PostgreSQL and nothing left behind in Asterisk.
 * Agent 1001 is created through the API with a desk phone at 127.0.0.1:5091 (a SIPp UAS) and signed in ready.
 */
import t, { type Test } from 'tap';
import { runSipp, startSipp } from '../sipp/sipp.js';
import { ariBridges, ariChannels, getJson, login, resetAri, startTestService, waitFor } from '../helpers/stack.js';
import { createReadyAgent, setState, writeQueuesFile } from '../helpers/acd.js';

const AGENT_PORT = 5091;

await resetAri();
// the shipped queues with short wrap-up and no announcements, so one agent serves the tests back to back
const queuesFile = writeQueuesFile(`
defaults: { ringSeconds: 15, wrapUpSeconds: 1, announceEverySeconds: 0 }
queues:
  general: { skill: general }
  en: { skill: en }
`);
const service = await startTestService(t, 'first-call', { REPEAT_CALLER_DAYS: '0', QUEUES_FILE: queuesFile });
const token = await login(service.url);
await createReadyAgent(service.url, token, { id: '1001', port: AGENT_PORT, skills: [{ skill: 'general', level: 5 }] });
t.teardown(() => setState(service.url, token, '1001', 'logged_out').catch(() => undefined));

/** one citizen's call to 12345 with this caller scenario, while the agent phone runs agentScenario */
async function callWithAgent(caller: string, callerScenario: string, vars: Record<string, string>, agentScenario: string, agentVars: Record<string, string> = {}, timeoutSeconds = 40) {
  const agent = await startSipp({ scenario: agentScenario, localPort: AGENT_PORT, calls: 1, vars: agentVars, timeoutSeconds: timeoutSeconds + 10 });
  const call = await runSipp({ scenario: callerScenario, remote: '127.0.0.1:5060', service: '12345', callerNumber: caller, vars, timeoutSeconds });
  return { call, agent: await agent.stop() };
}

async function recordOf(caller: string, disposition?: string): Promise<any> {
  return waitFor(
    async () => {
      const r = await getJson(service.url, `/api/v1/calls?caller=${caller}&limit=1`, token);
      const call = r.body.items?.[0];
      return call && call.endedAt && (!disposition || call.disposition === disposition) ? call : undefined;
    },
    15_000,
    `the call record of ${caller}`,
  );
}

async function assertNothingLeft(t: Test): Promise<void> {
  const channels = await waitFor(async () => ((await ariChannels()).length === 0 ? [] : undefined), 5000, 'no channels in Asterisk').catch(async () => ariChannels());
  t.same(channels, [], 'no channel left in Asterisk');
  t.same(await ariBridges(), [], 'no bridge left in Asterisk');
}

t.test('given a free agent, when a citizen dials 12345 and presses 1, then the agent answers, they talk, and the record says answered', async (t) => {
  const caller = `1390000${String(Date.now()).slice(-4)}`;
  const { call, agent: agentResult } = await callWithAgent(caller, 'caller-dtmf', { digit: '1', talk_ms: '6000' }, 'agent-answer', { ring_ms: '500' });

  t.equal(call.failed, 0, `caller side failed 0 (SIPp errors: ${call.errors.join(' | ')})`);
  t.equal(call.succeeded, 1, 'caller side: 1 call completed cleanly (200 to its BYE)');
  t.equal(agentResult.succeeded, 1, 'agent side: 1 call answered and ended cleanly');
  t.equal(agentResult.failed, 0, 'agent side failed 0');

  const rec = await recordOf(caller, 'answered');
  t.equal(rec.disposition, 'answered');
  t.equal(rec.dialed, '12345');
  t.equal(rec.queue, 'general');
  t.same(rec.agents, ['1001'], 'the right agent');
  t.ok(rec.waitSeconds !== null && rec.waitSeconds < 5, `waited ${rec.waitSeconds} s, under a few seconds`);
  t.ok(rec.talkSeconds !== null && rec.talkSeconds >= 1, `talked ${rec.talkSeconds} s`);
  t.ok(rec.answeredAt && rec.endedAt && rec.answeredAt < rec.endedAt, 'answered before it ended');
  const types = rec.events.map((e: { type: string }) => e.type);
  t.same(
    types.filter((x: string) => ['arrived', 'ivr.digit', 'queued', 'agent.offered', 'agent.answered', 'ended'].includes(x)),
    ['arrived', 'ivr.digit', 'queued', 'agent.offered', 'agent.answered', 'ended'],
    'events in order',
  );
  t.equal(rec.events.at(-1).data.by, 'caller', 'the caller hung up');
  await assertNothingLeft(t);
});

t.test('given the agent phone rings but nobody answers, when the caller hangs up while queued, then abandoned and nothing left', async (t) => {
  const caller = `1390001${String(Date.now()).slice(-4)}`;
  const { call, agent: agentResult } = await callWithAgent(caller, 'caller-abandon', { digit: '1', hold_ms: '3500' }, 'agent-ring-no-answer');
  t.equal(call.succeeded, 1, 'caller side ended cleanly');
  t.equal(agentResult.succeeded, 1, "the agent's ringing phone was cancelled cleanly");

  const rec = await recordOf(caller, 'abandoned');
  t.equal(rec.disposition, 'abandoned');
  t.same(rec.agents, [], 'no agent took part');
  t.ok(rec.queuedAt, 'it had reached the queue');
  t.equal(rec.answeredAt, null);
  t.ok(rec.waitSeconds >= 2, `waited ${rec.waitSeconds} s before giving up`);
  const types = rec.events.map((e: { type: string }) => e.type);
  t.ok(types.includes('agent.offered'), 'the agent was offered the call');
  t.ok(types.includes('agent.no_answer'), 'and did not answer');
  await assertNothingLeft(t);
});

t.test('given a wrong key then a right one, when the agent hangs up first, then the caller hears the survey, is hung up and the record says so', async (t) => {
  const caller = `1390002${String(Date.now()).slice(-4)}`;
  // "7" is not on the menu: the caller hears the invalid-key prompt, and "1" typed ahead during it counts
  const { call, agent: agentResult } = await callWithAgent(
    caller,
    'caller-dtmf-wait-bye',
    { digit: '71', bye_timeout_ms: '50000' },
    'agent-answer-hangup',
    { ring_ms: '300', talk_ms: '2000' },
    70,
  );
  t.equal(call.succeeded, 1, 'the caller got a BYE from the hotline (after the survey, unanswered) and answered it');
  t.equal(agentResult.succeeded, 1, 'the agent hung up cleanly');

  const rec = await recordOf(caller, 'answered');
  const digits = rec.events.filter((e: { type: string }) => e.type === 'ivr.digit').map((e: { data: unknown }) => e.data);
  t.same(digits, [{ digit: '7', valid: false }, { digit: '1', valid: true }], 'the wrong key was refused, the right one taken');
  t.same(rec.ivrPath, ['hours', 'welcome', 'main-menu:1', 'consult'], 'the shipped main flow: schedule, welcome, menu option 1, consultation');
  t.same(rec.agents, ['1001']);
  const types = rec.events.map((e: { type: string }) => e.type);
  t.ok(types.includes('survey.after_agent') && types.includes('survey'), 'the agent hung up: the caller heard the survey (shipped lines.yaml)');
  t.equal(rec.survey, null, 'no key pressed: no score');
  t.equal(rec.events.at(-1).data.by, 'agent', 'the agent ended the call');
  await assertNothingLeft(t);
});
