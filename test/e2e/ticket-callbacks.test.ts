/**
 * Callbacks for closed tickets on the real stack: the ticket system's signed webhook closes a ticket, the
 * callbacks sweep (BullMQ + node-cron, real Redis) turns the owed callback into a dial job, the service
 * calls the citizen (a SIPp UAS behind the trunk at 127.0.0.1:5099) through Asterisk 22, plays the closure
 * summary and the survey; the citizen's key is the score. A citizen who never answers is tried again after
 * the backoff until the deadline, then the callback fails; losing every BullMQ job in Redis half-way loses
 * no callback; the citizen's phone never gets more calls than there are attempts on record.
 */
import { createHmac, randomUUID } from 'node:crypto';
import t from 'tap';
import { WebSocket } from 'ws';
import { sql } from 'kysely';
import { Redis } from 'ioredis';
import { startSipp } from '../sipp/sipp.js';
import { answererScript } from '../sipp/caller-script.js';
import { login, resetAri, startTestService, waitFor } from '../helpers/stack.js';
import { createDb } from '../../src/db/db.js';

const SECRET = 'e2e-ticket-secret-0123456789';
await resetAri();
const service = await startTestService(t, 'ticket-callbacks', {
  TICKET_WEBHOOK_SECRET: SECRET,
  CALLBACK_HOURS: '00:00-24:00',
  CALLBACK_SWEEP_SECONDS: '1',
  CALLBACK_RETRY_SECONDS: '2',
  CALLBACK_RING_SECONDS: '5',
  CALLBACK_DEADLINE_SECONDS: '30',
  CALLBACK_OVERDUE_ALERT_SECONDS: '24',
});
const base = service.url;
const db = createDb(service.config.databaseUrl);
const redis = new Redis(service.config.redisUrl);
t.teardown(async () => {
  await db.destroy();
  redis.disconnect();
});
const admin = await login(base);
const tag = String(Date.now()).slice(-5);

async function closeTicket(number: string): Promise<string> {
  const ticketId = `T-${tag}-${randomUUID().slice(0, 6)}`;
  const body = JSON.stringify({ eventId: randomUUID(), ticketId, type: 'closed', at: new Date().toISOString(), callerNumber: number, summary: 'road lamp repaired' });
  const res = await fetch(`${base}/api/v1/tickets/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-signature': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}` },
    body,
  });
  if (res.status >= 300) throw new Error(`webhook: ${res.status} ${await res.text()}`);
  return ticketId;
}

const callbackOf = (ticketId: string) => db.selectFrom('callbacks').selectAll().where('ticket_id', '=', ticketId).executeTakeFirst();
const attemptsOf = (callbackId: string) => db.selectFrom('callback_attempts').selectAll().where('callback_id', '=', callbackId).orderBy('attempt').execute();

t.test('a closed ticket: the citizen is called back, hears the summary and presses a score; called once', async (t) => {
  // the citizen answers after 0.5 s and presses 1 (satisfied) 3 s into the call: the key skips the summary
  const citizen = await startSipp({ scenario: answererScript([{ pause: 3000 }, { keys: '1' }], { ringMs: 500, holdMs: 30_000 }), localPort: 5099, calls: 5, label: 'citizen-answers' });
  const number = `1392${tag}01`;
  const ticketId = await closeTicket(number);
  const cb = await waitFor(async () => {
    const c = await callbackOf(ticketId);
    return c?.status === 'done' && c.survey_score !== null ? c : undefined;
  }, 40_000, 'the callback done with a score');
  t.equal(cb.survey_score, 1, "the citizen's key is the score");
  t.equal(cb.reason, 'ticket_closed');
  t.ok(cb.done_at! <= cb.deadline_at!, 'within the deadline');
  await new Promise((r) => setTimeout(r, 4000)); // a few more sweeps: nothing is dialled again
  const attempts = await attemptsOf(cb.id);
  t.equal(attempts.length, 1, 'one attempt');
  t.match(attempts[0], { attempt: 1, outcome: 'answered' });
  const call = await db.selectFrom('calls').selectAll().where('id', '=', attempts[0]!.call_id!).executeTakeFirstOrThrow();
  t.match(call, { direction: 'outbound', caller: number, disposition: 'answered', survey_score: 1, survey_satisfied: true });
  const events = await db.selectFrom('call_events').select('type').where('call_id', '=', call.id).execute();
  t.ok(events.some((e) => e.type === 'callback.answered') && events.some((e) => e.type === 'survey'), 'answered, then the survey');
  const far = await citizen.stop();
  t.equal(far.attempted, 1, "the citizen's phone rang exactly once");
  const listed = await fetch(`${base}/api/v1/callbacks?status=done`, { headers: { authorization: `Bearer ${admin}` } });
  t.equal(listed.status, 200);
});

t.test('a citizen who never answers: retried after the backoff until the deadline, then failed; Redis losing its jobs loses nothing', async (t) => {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/api/v1/events?token=${admin}`);
  const msgs: any[] = [];
  ws.on('message', (m) => msgs.push(JSON.parse(String(m))));
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  t.teardown(() => ws.close());
  const citizen = await startSipp({ scenario: 'agent-ring-no-answer', localPort: 5099, calls: 20, label: 'citizen-never-answers', timeoutSeconds: 120 });
  const number = `1392${tag}02`;
  const ticketId = await closeTicket(number);
  const cb0 = await waitFor(() => callbackOf(ticketId), 5000, 'the callback row');
  await waitFor(async () => ((await attemptsOf(cb0.id)).some((a) => a.outcome === 'no_answer') ? true : undefined), 20_000, 'a first unanswered attempt');
  // Redis loses every job (BullMQ's keys of this deployment): PostgreSQL still knows the callback
  const jobKeys = await redis.keys(`${service.config.redisPrefix}:jobs*`);
  t.ok(jobKeys.length > 0, `BullMQ had ${jobKeys.length} keys`);
  await redis.del(...jobKeys);
  const alert = await waitFor(() => msgs.find((m) => m.type === 'callback.overdue' && m.data.callbackId === cb0.id), 20_000, 'callback.overdue on the supervisor socket');
  t.match(alert.data, { ticketId, callbackId: cb0.id });
  const failed = await waitFor(async () => {
    const c = await callbackOf(ticketId);
    return c?.status === 'failed' ? c : undefined;
  }, 40_000, 'the callback failed after its deadline');
  await new Promise((r) => setTimeout(r, 3000));
  const attempts = await attemptsOf(failed.id);
  t.ok(attempts.length >= 2, `tried again after Redis lost the jobs (${attempts.length} attempts)`);
  t.same(attempts.map((a) => a.attempt), attempts.map((_, i) => i + 1), 'attempts 1..n, each once');
  t.ok(attempts.every((a) => a.outcome === 'no_answer' && a.ended_at), 'each one rang out');
  t.equal(failed.attempts, attempts.length, 'the callback counts the same attempts');
  const far = await citizen.stop(1000);
  t.equal(far.attempted, attempts.length, 'the phone rang exactly once per attempt on record: never twice for one');
  const late = await sql<{ n: number }>`select count(*)::int as n from callback_attempts where callback_id = ${failed.id} and started_at > ${failed.deadline_at}`.execute(db);
  t.equal(late.rows[0]!.n, 0, 'no attempt after the deadline');
});
