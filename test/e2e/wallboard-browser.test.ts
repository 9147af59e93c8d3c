/**
 * The wallboard and the supervisor console on the real stack, in headless Chromium (Debian's /usr/bin/chromium
 * through playwright-core): SIPp callers wait on line 7301 (queue 7301, skill `wb`, which only agent A serves,
 * and A is not ready), Asterisk 22, PostgreSQL, Redis and the service started in-process.
 * - the wallboard (opened with the read-only WALLBOARD_KEY) shows the waiting count GET /api/v1/queues reports;
 * - A is made ready, takes one caller, and the page's count follows the API's within one second;
 * - a screenshot of the wall is saved in test-artefacts/;
 * - the console: a supervisor signs in and clicks "not ready" on agent B; the API reports B not_ready.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import t from 'tap';
import { callerScript } from '../sipp/caller-script.js';
import { runSipp, type SippProcess, type SippResult } from '../sipp/sipp.js';
import { api, createReadyAgent, ivrDirWithDirectLines, setState, startPhones, writeQueuesFile, type TestAgent } from '../helpers/acd.js';
import { artefact, ensureWebBuilt, launchBrowser, newPage, textBecomes } from '../helpers/browser.js';
import { getJson, login, resetAri, startTestService, waitFor } from '../helpers/stack.js';

ensureWebBuilt();
await resetAri();
const QUEUE = '7301';
const KEY = `e2e-wallboard-${randomBytes(12).toString('hex')}`;
const queuesFile = writeQueuesFile(`defaults: { ringSeconds: 8, wrapUpSeconds: 1, announceEverySeconds: 0, callbackOffer: null }\nqueues:\n  "${QUEUE}": { name: wallboard test, skill: wb }\n`);
const ivrDir = ivrDirWithDirectLines([QUEUE]);
// the live view pushes every 300 ms (the default is 1 s): the page must follow the API within a second
const service = await startTestService(t, 'wallboard-browser', { QUEUES_FILE: queuesFile, IVR_DIR: ivrDir, REPEAT_CALLER_DAYS: '0', LIVE_VIEW_PUSH_MS: '300', WALLBOARD_KEY: KEY });
const base = service.url;
const admin = await login(base);

// A serves the test queue (kept not ready until the test lets it take a caller); B serves nothing that rings
const A: TestAgent = { id: '1731', port: 5231, skills: [{ skill: 'wb', level: 5 }] };
const B: TestAgent = { id: '1732', port: 5232, skills: [{ skill: 'wb-other', level: 5 }] };
const phones: SippProcess[] = await startPhones([A, B], 'agent-answer', { ring_ms: '300' }, 10);
for (const a of [A, B]) await createReadyAgent(base, admin, a);
await setState(base, admin, A.id, 'not_ready', 'not yet');

// the supervisor who signs in to the console
const S = { id: '1739', password: `pw-1739-${randomBytes(4).toString('hex')}` };
{
  const existing = await api(base, admin, 'GET', `/api/v1/agents/${S.id}`);
  const phone = { uri: `sip:sup${S.id}@127.0.0.1:5239` };
  const r =
    existing.status === 200
      ? await api(base, admin, 'PATCH', `/api/v1/agents/${S.id}`, { phone, role: 'supervisor', password: S.password })
      : await api(base, admin, 'POST', '/api/v1/agents', { employeeNo: S.id, name: 'Floor supervisor', password: S.password, role: 'supervisor', skills: [{ skill: 'wb-lead', level: 1 }], phone });
  if (r.status !== 200 && r.status !== 201) throw new Error(`supervisor: ${r.status} ${JSON.stringify(r.body)}`);
}

const browser = await launchBrowser(t);
const callers: Array<Promise<SippResult>> = [];
t.teardown(async () => {
  await resetAri(); // the callers still waiting or talking are hung up
  await Promise.allSettled(callers);
  for (const a of [A, B]) await setState(base, admin, a.id, 'logged_out').catch(() => undefined);
  await Promise.all(phones.map((p) => p.stop().catch(() => undefined)));
});

const tag = String(Date.now()).slice(-5);
const numbers = [1, 2, 3].map((i) => `1391${tag}${String(i).padStart(2, '0')}`);
const queueWaiting = async (): Promise<number> => {
  const r = await getJson(base, `/api/v1/queues/${QUEUE}`, admin);
  if (r.status !== 200) throw new Error(`GET /api/v1/queues/${QUEUE}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.waiting as number;
};
const stateOf = async (id: string) => (await getJson(base, `/api/v1/agents/${id}`, admin)).body.state?.state as string | undefined;

t.test('the wallboard shows the waiting callers the API reports, and follows an answer within a second', async (t) => {
  for (const caller of numbers) {
    callers.push(runSipp({ scenario: callerScript([], 90_000), remote: '127.0.0.1:5060', service: QUEUE, callerNumber: caller, timeoutSeconds: 150 }));
  }
  await waitFor(async () => ((await queueWaiting()) === 3 ? true : undefined), 20_000, `three callers waiting in ${QUEUE}`);

  const { page, errors } = await newPage(browser);
  await page.goto(`${base}/wallboard?key=${encodeURIComponent(KEY)}`);
  const cell = `[data-testid=waiting-${QUEUE}]`;
  await textBecomes(page, cell, (s) => /^\d+$/.test(s), 10_000, 'the queue row');
  // the page and the API agree (read both until they do: a push may be on its way)
  const agreed = await waitFor(async () => {
    const [apiNow, shown] = await Promise.all([queueWaiting(), page.locator(cell).textContent()]);
    return Number(shown) === apiNow ? apiNow : undefined;
  }, 5000, 'the page showing what the API reports');
  t.equal(agreed, 3, 'the wallboard shows the 3 waiting callers GET /api/v1/queues reports');
  t.equal(await textBecomes(page, '[data-testid=total-waiting]', (s) => s === '3', 3000, 'the total'), '3');
  // the list of waiting callers follows the snapshot (read again after the queues changed)
  const masked = numbers.map((n) => `${n.slice(0, 3)}****${n.slice(-4)}`);
  const listed = await waitFor(async () => {
    const items = await page.locator('[data-testid=waiting-callers] li').allTextContents();
    return masked.every((m) => items.some((s) => s.includes(m))) ? items : undefined;
  }, 5000, 'the three callers listed, masked');
  t.equal(listed.length, 3, 'the waiting callers, their numbers masked');
  const html = await page.content();
  for (const n of numbers) t.notOk(html.includes(n), `caller ${n} is not shown in full`);
  t.ok(await page.locator('[data-testid=banner]').isHidden(), 'connected');

  // A becomes ready and takes the longest-waiting caller: the API's count drops, then the page's
  const watch = async (read: () => Promise<number>, what: string): Promise<number> => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      if ((await read()) === 2) return Date.now();
      if (Date.now() > deadline) throw new Error(`${what} never showed 2 waiting`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const [apiAt, pageAt] = await Promise.all([
    watch(queueWaiting, 'the API'),
    watch(async () => Number(await page.locator(cell).textContent()), 'the page'),
    setState(base, admin, A.id, 'ready'),
  ]);
  const lag = pageAt - apiAt;
  t.ok(lag <= 1000, `the page showed 2 waiting ${lag} ms after the API did (at most 1000)`);
  await waitFor(async () => ((await stateOf(A.id)) === 'on_call' ? true : undefined), 15_000, 'A talking to the caller');

  const shot = artefact('wallboard-e2e.png');
  await page.waitForTimeout(500);
  await page.screenshot({ path: shot, fullPage: true });
  t.ok(existsSync(shot), `screenshot saved: ${shot}`);
  t.ok(statSync(shot).size > 0, `and not empty (${statSync(shot).size} bytes)`);
  t.same(errors, [], 'no error in the page');
  await page.context().close();
});

t.test('the console: a supervisor signs in and forces an agent not ready', async (t) => {
  await waitFor(async () => ((await stateOf(B.id)) === 'ready' ? true : undefined), 5000, 'B ready');
  const { page, errors } = await newPage(browser);
  await page.goto(`${base}/console`);
  await page.locator('[data-testid=username]').fill(S.id);
  await page.locator('[data-testid=password]').fill(S.password);
  await page.locator('[data-testid=signin]').click();
  const button = page.locator(`[data-testid=act-not-ready-${B.id}]`);
  await button.waitFor({ state: 'visible', timeout: 10_000 });
  await waitFor(async () => ((await button.isEnabled()) ? true : undefined), 5000, 'the not-ready button enabled for a ready agent');
  await button.click();
  const state = await waitFor(async () => ((await stateOf(B.id)) === 'not_ready' ? 'not_ready' : undefined), 5000, `GET /api/v1/agents/${B.id} not_ready`);
  t.equal(state, 'not_ready', 'the click forced B not ready');
  await textBecomes(page, `[data-testid=state-${B.id}]`, (s) => s === '示忙', 5000, "the console's grid shows it");
  // the audit entry is written just after the change itself
  await waitFor(async () => {
    const items = (await getJson(base, `/api/v1/audit?action=agent.force-state&target=${B.id}&limit=10`, admin)).body.items as Array<{ actor: string }>;
    return items.some((x) => x.actor === S.id) || undefined;
  }, 5000, 'the forced change audited as the supervisor');
  t.pass('audited as the supervisor');
  await page.screenshot({ path: artefact('console-e2e.png') });
  t.same(errors, [], 'no error in the page');
  await page.context().close();
});
