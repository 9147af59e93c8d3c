/**
 * The ticket system's webhook (API.md "Tickets (webhook)"): HMAC signature on the raw body, idempotency by
 * eventId, events applied by event time whatever their arrival order, and exactly one callback for a closed
 * ticket, due inside calling hours (08:00-21:00 Asia/Shanghai here) with its 24 h deadline.
 */
import t from 'tap';
import { signBody } from '../../src/tickets/signature.js';
import { createTicketsService } from '../../src/tickets/tickets.service.js';
import { buildTestApp, testInfra } from '../helpers/app.js';

const SECRET = 'test-ticket-secret-0123456789';
const infra = await testInfra(t, 'tickets');
const { db } = infra;
/** the service's clock: before every closure in these tests unless a test moves it */
let clock = new Date('2026-01-01T00:00:00Z');
const service = createTicketsService({ db, log: infra.log, callingHours: { startMinute: 8 * 60, endMinute: 21 * 60 }, callbackQueue: 'general', now: () => clock });
const { app, api } = await buildTestApp(t, infra, { tickets: { service, secret: SECRET } });

let seq = 0;
const ev = (over: Record<string, unknown>) => ({ eventId: `ev-${++seq}`, ticketId: 'T-0', type: 'created', at: '2026-03-01T02:00:00Z', callerNumber: '13800138000', ...over });

async function post(body: unknown, opts: { signature?: string | null; raw?: string; contentType?: string } = {}) {
  const raw = opts.raw ?? JSON.stringify(body);
  const signature = opts.signature === undefined ? `sha256=${signBody(SECRET, raw)}` : opts.signature;
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/tickets/events',
    headers: { 'content-type': opts.contentType ?? 'application/json', ...(signature !== null ? { 'x-signature': signature } : {}) },
    payload: raw,
  });
  return { status: res.statusCode, body: JSON.parse(res.body || 'null') };
}

const ticket = (id: string) => db.selectFrom('tickets').selectAll().where('ticket_id', '=', id).executeTakeFirst();
const callbacksOf = (id: string) => db.selectFrom('callbacks').selectAll().where('ticket_id', '=', id).execute();
const eventCount = async () => Number((await db.selectFrom('ticket_events').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

t.test('signature: missing, wrong, right (both forms), tampered body', async (t) => {
  const body = ev({ ticketId: 'T-sig' });
  const before = await eventCount();

  const missing = await post(body, { signature: null });
  t.equal(missing.status, 401);
  t.same(missing.body, { error: { code: 'unauthorized', message: 'missing X-Signature' } });

  const wrong = await post(body, { signature: `sha256=${signBody('another-secret', JSON.stringify(body))}` });
  t.equal(wrong.status, 401);
  t.equal(wrong.body.error.code, 'unauthorized');
  t.equal((await post(body, { signature: 'sha256=zz' })).status, 401, 'not hex');
  t.equal((await post(body, { signature: '' })).status, 401, 'empty');

  const signedFor = JSON.stringify(body);
  const tampered = await post(null, { raw: signedFor.replace('13800138000', '13900139000'), signature: `sha256=${signBody(SECRET, signedFor)}` });
  t.equal(tampered.status, 401, 'a body changed after signing');
  t.equal(await eventCount(), before, 'nothing stored for a bad signature');
  t.notOk(await ticket('T-sig'));

  const noBody = await app.inject({ method: 'POST', url: '/api/v1/tickets/events' });
  t.equal(noBody.statusCode, 401, 'no body at all is unsigned too');

  const ok = await post(body);
  t.equal(ok.status, 200);
  t.same(ok.body, { ticketId: 'T-sig', status: 'created', duplicate: false });
  const bare = await post(ev({ ticketId: 'T-sig', type: 'dispatched', at: '2026-03-01T03:00:00Z', unit: 'Haikou water' }), { signature: undefined });
  t.equal(bare.status, 200);
  const raw2 = JSON.stringify(ev({ ticketId: 'T-sig', type: 'returned', at: '2026-03-01T04:00:00Z' }));
  const plainHex = await post(null, { raw: raw2, signature: signBody(SECRET, raw2).toUpperCase() });
  t.equal(plainHex.status, 200, 'bare hex (any case) is accepted');
  t.match(await ticket('T-sig'), { status: 'returned', unit: 'Haikou water', dispatch_count: 1, returned_count: 1 });
});

t.test('bad bodies: invalid JSON 400 invalid-json (only once signed), unknown fields 400, wrong types 400', async (t) => {
  const invalid = await post(null, { raw: '{"eventId": "x",' });
  t.equal(invalid.status, 400);
  t.equal(invalid.body.error.code, 'invalid-json');
  t.equal((await post(null, { raw: '{"eventId": "x",', signature: null })).status, 401, 'an unsigned bad body is 401, not parsed');

  const unknown = await post({ ...ev({ ticketId: 'T-bad' }), priority: 'high' });
  t.equal(unknown.status, 400);
  t.equal(unknown.body.error.code, 'invalid-request');
  for (const [what, body] of [
    ['unknown type', ev({ ticketId: 'T-bad', type: 'reopened' })],
    ['bad time', ev({ ticketId: 'T-bad', at: 'yesterday' })],
    ['bad call id', ev({ ticketId: 'T-bad', callId: 'call-1' })],
    ['no ticket id', { ...ev({}), ticketId: undefined }],
    ['no caller number', { ...ev({ ticketId: 'T-bad' }), callerNumber: undefined }],
  ] as const) {
    const r = await post(body);
    t.equal(r.status, 400, what);
    t.type(r.body.error.message, 'string', what);
  }
  t.equal((await post(ev({ ticketId: 'T-bad' }), { contentType: 'text/plain' })).status, 415);
  t.notOk(await ticket('T-bad'), 'nothing stored');
});

t.test('idempotency: the same eventId twice is a duplicate and changes nothing', async (t) => {
  const body = ev({ ticketId: 'T-idem', type: 'dispatched', at: '2026-03-02T01:00:00Z', unit: 'unit A' });
  const first = await post(body);
  t.same(first.body, { ticketId: 'T-idem', status: 'dispatched', duplicate: false });
  const row1 = await ticket('T-idem');
  const again = await post({ ...body, unit: 'unit B' });
  t.equal(again.status, 200);
  t.same(again.body, { ticketId: 'T-idem', status: 'dispatched', duplicate: true });
  const row2 = await ticket('T-idem');
  t.same(row2, row1, 'the ticket row is untouched (updated_at too)');
  t.equal(row2!.dispatch_count, 1);
  t.equal(Number((await db.selectFrom('ticket_events').select((eb) => eb.fn.countAll().as('n')).where('ticket_id', '=', 'T-idem').executeTakeFirstOrThrow()).n), 1);
});

t.test('out of order: applied by event time; a late created never undoes closed', async (t) => {
  const id = 'T-order';
  const T1 = '2026-03-03T01:00:00.000Z';
  const T2 = '2026-03-03T02:00:00.000Z';
  const T3 = '2026-03-03T05:00:00.000Z';
  t.equal((await post(ev({ ticketId: id, type: 'closed', at: T3 }))).body.status, 'closed');
  t.equal((await post(ev({ ticketId: id, type: 'dispatched', at: T2, unit: 'Sanya transport' }))).body.status, 'closed', 'an earlier dispatch arriving late');
  t.equal((await post(ev({ ticketId: id, type: 'created', at: T1, summary: 'street light broken', callId: '0b6c7c1e-0b7e-4a57-9d3a-2b7f1f4f6a10' }))).body.status, 'closed');
  // a 'created' stamped AFTER the closure (clock skew in the ticket system) still does not reopen it
  t.equal((await post(ev({ ticketId: id, type: 'created', at: '2026-03-03T06:00:00Z' }))).body.status, 'closed');
  const row = await ticket(id);
  t.match(row, { status: 'closed', unit: 'Sanya transport', summary: 'street light broken', call_id: '0b6c7c1e-0b7e-4a57-9d3a-2b7f1f4f6a10', dispatch_count: 1, returned_count: 0, caller_number: '13800138000' });
  t.equal(row!.created_at!.toISOString(), T1, 'the first created');
  t.equal(row!.dispatched_at!.toISOString(), T2);
  t.equal(row!.closed_at!.toISOString(), T3);

  // without a closure, the latest step by event time wins, whatever the arrival order
  const id2 = 'T-order-2';
  await post(ev({ ticketId: id2, type: 'returned', at: '2026-03-03T03:00:00Z' }));
  await post(ev({ ticketId: id2, type: 'dispatched', at: '2026-03-03T04:00:00Z' }));
  await post(ev({ ticketId: id2, type: 'dispatched', at: '2026-03-03T02:00:00Z' }));
  t.match(await ticket(id2), { status: 'dispatched', dispatch_count: 2, returned_count: 1, created_at: null });
});

t.test('closed: one callback, due at the first moment inside calling hours, deadline closure + 24 h', async (t) => {
  // [closure (UTC), its local time, expected due (UTC)]
  const cases: Array<[string, string, string]> = [
    ['2026-03-04T14:30:00.000Z', '22:30: after hours -> next day 08:00', '2026-03-05T00:00:00.000Z'],
    ['2026-03-04T02:15:30.000Z', '10:15:30: inside -> at once', '2026-03-04T02:15:30.000Z'],
    ['2026-03-03T22:00:00.000Z', '06:00 on the 4th: before hours -> 08:00 the same day', '2026-03-04T00:00:00.000Z'],
    ['2026-03-04T13:00:00.000Z', '21:00 exactly: closed -> next day 08:00', '2026-03-05T00:00:00.000Z'],
    ['2026-03-04T00:00:00.000Z', '08:00 exactly: open', '2026-03-04T00:00:00.000Z'],
  ];
  let n = 0;
  for (const [closedAt, what, due] of cases) {
    const id = `T-close-${++n}`;
    const number = `1390013900${n}`;
    await post(ev({ ticketId: id, type: 'created', at: '2026-03-03T00:00:00Z', callerNumber: `+86 ${number.slice(0, 3)}-${number.slice(3)}` }));
    const r = await post(ev({ ticketId: id, type: 'closed', at: closedAt, callerNumber: `+86 ${number.slice(0, 3)}-${number.slice(3)}` }));
    t.same(r.body, { ticketId: id, status: 'closed', duplicate: false }, what);
    const cbs = await callbacksOf(id);
    t.equal(cbs.length, 1, `${what}: one callback`);
    const cb = cbs[0]!;
    t.match(cb, { number, reason: 'ticket_closed', status: 'pending', queue: 'general', ticket_id: id, idempotency_key: `ticket-closed:${id}`, call_id: null }, what);
    t.equal(cb.due_at.toISOString(), due, `${what}: due`);
    t.equal(cb.deadline_at!.toISOString(), new Date(Date.parse(closedAt) + 24 * 3600e3).toISOString(), `${what}: deadline`);
    t.equal((await ticket(id))!.callback_id, cb.id, 'the ticket points at its callback');
  }
});

t.test('closed twice with different eventIds: still one callback; an earlier closure moves the deadline earlier', async (t) => {
  const id = 'T-twice';
  await post(ev({ ticketId: id, type: 'closed', at: '2026-03-06T03:00:00Z', callerNumber: '13700137000' }));
  await post(ev({ ticketId: id, type: 'closed', at: '2026-03-06T05:00:00Z', callerNumber: '13700137000' }));
  let cbs = await callbacksOf(id);
  t.equal(cbs.length, 1);
  t.equal(cbs[0]!.deadline_at!.toISOString(), '2026-03-07T03:00:00.000Z', 'a later closure leaves the deadline');
  await post(ev({ ticketId: id, type: 'closed', at: '2026-03-06T01:00:00Z', callerNumber: '13700137000' }));
  cbs = await callbacksOf(id);
  t.equal(cbs.length, 1);
  t.equal(cbs[0]!.deadline_at!.toISOString(), '2026-03-07T01:00:00.000Z', 'the earliest closure counts');
  t.equal(cbs[0]!.due_at.toISOString(), '2026-03-06T01:00:00.000Z');
  t.equal((await ticket(id))!.closed_at!.toISOString(), '2026-03-06T01:00:00.000Z');
  t.equal(Number((await db.selectFrom('callbacks').select((eb) => eb.fn.countAll().as('n')).where('number', '=', '13700137000').executeTakeFirstOrThrow()).n), 1);
});

t.test('a blacklisted number, or none, gets no callback', async (t) => {
  await db.insertInto('list_entries').values({ kind: 'black', number: '13600136000', reason: 'abusive', treatment: null, created_by: null }).execute();
  await post(ev({ ticketId: 'T-black', type: 'closed', at: '2026-03-07T03:00:00Z', callerNumber: '+86 136 0013 6000' }));
  t.same(await callbacksOf('T-black'), []);
  t.match(await ticket('T-black'), { status: 'closed', callback_id: null, callback_skipped: 'blacklisted' });
  t.equal(Number((await db.selectFrom('callbacks').select((eb) => eb.fn.countAll().as('n')).where('number', '=', '13600136000').executeTakeFirstOrThrow()).n), 0);

  await post(ev({ ticketId: 'T-anon', type: 'closed', at: '2026-03-07T03:00:00Z', callerNumber: 'anonymous' }));
  t.match(await ticket('T-anon'), { status: 'closed', caller_number: null, callback_id: null, callback_skipped: 'no-number' });
});

t.test('a citizen already awaiting a callback gets no second one: the pending callback serves the ticket', async (t) => {
  const pending = await db
    .insertInto('callbacks')
    .values({ number: '13500135000', call_id: null, queue: 'general', reason: 'abandoned', due_at: new Date('2026-03-08T01:00:00Z') })
    .returning('id')
    .executeTakeFirstOrThrow();
  await post(ev({ ticketId: 'T-join', type: 'closed', at: '2026-03-08T02:00:00Z', callerNumber: '13500135000' }));
  const rows = await db.selectFrom('callbacks').selectAll().where('number', '=', '13500135000').execute();
  t.equal(rows.length, 1, 'one callback to the number');
  t.match(rows[0], { id: pending.id, reason: 'abandoned', ticket_id: 'T-join' });
  t.equal(rows[0]!.deadline_at!.toISOString(), '2026-03-09T02:00:00.000Z');
  t.equal(rows[0]!.due_at.toISOString(), '2026-03-08T01:00:00.000Z', 'the earlier due time stays');
  t.equal((await ticket('T-join'))!.callback_id, pending.id);
});

t.test('a closure reported late, at night: the callback is due at the next opening, the deadline stays closure + 24 h', async (t) => {
  clock = new Date('2026-03-10T15:00:00Z'); // 23:00 local
  t.teardown(() => void (clock = new Date('2026-01-01T00:00:00Z')));
  await post(ev({ ticketId: 'T-late', type: 'closed', at: '2026-03-10T04:00:00Z', callerNumber: '13300133000' }));
  const [cb] = await callbacksOf('T-late');
  t.equal(cb!.due_at.toISOString(), '2026-03-11T00:00:00.000Z', 'not at 23:00: at 08:00 the next morning');
  t.equal(cb!.deadline_at!.toISOString(), '2026-03-11T04:00:00.000Z');
});

t.test('concurrent events of one ticket (two requests at once) keep one callback and a consistent ticket', async (t) => {
  const id = 'T-race';
  const bodies = [
    ev({ ticketId: id, type: 'created', at: '2026-03-12T01:00:00Z', callerNumber: '13200132000' }),
    ev({ ticketId: id, type: 'dispatched', at: '2026-03-12T02:00:00Z', callerNumber: '13200132000' }),
    ev({ ticketId: id, type: 'closed', at: '2026-03-12T03:00:00Z', callerNumber: '13200132000' }),
    ev({ ticketId: id, type: 'closed', at: '2026-03-12T03:30:00Z', callerNumber: '13200132000' }),
  ];
  const results = await Promise.all([...bodies, ...bodies].map((b) => post(b)));
  t.ok(results.every((r) => r.status === 200));
  t.equal(results.filter((r) => r.body.duplicate).length, 4, 'each event counted once');
  t.match(await ticket(id), { status: 'closed', dispatch_count: 1 });
  t.equal((await callbacksOf(id)).length, 1);
});

t.test('the webhook needs no bearer token and is in the OpenAPI document', async (t) => {
  const doc = await api('GET', '/docs/json', null);
  const op = doc.body.paths['/api/v1/tickets/events'].post;
  t.ok(op, 'documented');
  t.same(op.tags, ['tickets']);
  t.ok(op.responses['401']);
});
