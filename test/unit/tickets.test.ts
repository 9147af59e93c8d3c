/** The pure parts of the ticket webhook: folding events, calling hours, the signature. */
import t from 'tap';
import { firstCallingMoment } from '../../src/tickets/calling-hours.js';
import { signBody, verifySignature } from '../../src/tickets/signature.js';
import { foldTicket, type TicketEvent } from '../../src/tickets/ticket.state.js';
import { localDayStart, localHHmm, parseLocalDate, wallTime, zonedToUtc } from '../../src/shared/zoned-time.js';

const e = (eventId: string, type: TicketEvent['type'], at: string, over: Partial<TicketEvent> = {}): TicketEvent => ({ eventId, type, at: new Date(at), callerNumber: '13800138000', ...over });

t.test('fold: every arrival order of the same events gives the same ticket', async (t) => {
  const events = [
    e('a', 'created', '2026-03-01T01:00:00Z', { summary: 'noise' }),
    e('b', 'dispatched', '2026-03-01T02:00:00Z', { unit: 'unit 1' }),
    e('c', 'returned', '2026-03-01T03:00:00Z'),
    e('d', 'dispatched', '2026-03-01T04:00:00Z', { unit: 'unit 2' }),
    e('f', 'closed', '2026-03-01T05:00:00Z'),
  ];
  const want = foldTicket(events);
  t.match(want, { status: 'closed', unit: 'unit 2', summary: 'noise', dispatchCount: 2, returnedCount: 1 });
  t.equal(want.dispatchedAt!.toISOString(), '2026-03-01T02:00:00.000Z', 'the first dispatch');
  const perms = (xs: TicketEvent[]): TicketEvent[][] => (xs.length <= 1 ? [xs] : xs.flatMap((x, i) => perms([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p])));
  for (const p of perms(events)) t.same(foldTicket(p), want);
});

t.test('fold: status', async (t) => {
  t.equal(foldTicket([e('a', 'created', '2026-03-01T01:00:00Z')]).status, 'created');
  t.equal(foldTicket([e('a', 'closed', '2026-03-01T01:00:00Z'), e('b', 'created', '2026-03-01T09:00:00Z')]).status, 'closed', 'a later created does not reopen');
  t.equal(foldTicket([e('a', 'dispatched', '2026-03-01T01:00:00Z'), e('b', 'created', '2026-03-01T09:00:00Z')]).status, 'dispatched');
  t.equal(foldTicket([e('a', 'resolved_first_contact', '2026-03-01T01:00:00Z')]).status, 'resolved_first_contact');
  t.equal(foldTicket([e('a', 'returned', '2026-03-01T01:00:00Z'), e('b', 'dispatched', '2026-03-01T01:00:00Z')]).status, 'returned', 'same instant: the natural order of the steps');
});

t.test('calling hours 08:00-21:00 Asia/Shanghai', async (t) => {
  const h = { startMinute: 480, endMinute: 1260 };
  const at = (iso: string) => firstCallingMoment(new Date(iso), h).toISOString();
  t.equal(at('2026-03-04T02:00:00.000Z'), '2026-03-04T02:00:00.000Z', '10:00 inside');
  t.equal(at('2026-03-03T23:59:59.000Z'), '2026-03-04T00:00:00.000Z', '07:59:59 -> 08:00');
  t.equal(at('2026-03-04T12:59:59.999Z'), '2026-03-04T12:59:59.999Z', '20:59:59.999 inside');
  t.equal(at('2026-03-04T13:00:00.000Z'), '2026-03-05T00:00:00.000Z', '21:00 -> next day');
  t.equal(at('2026-03-04T16:00:00.000Z'), '2026-03-05T00:00:00.000Z', '00:00 local on the 5th -> 08:00 the 5th');
  t.equal(at('2026-12-31T15:30:00.000Z'), '2027-01-01T00:00:00.000Z', 'across the year');
  t.equal(firstCallingMoment(new Date('2026-03-04T13:30:00Z'), { startMinute: 570, endMinute: 1440 }).toISOString(), '2026-03-04T13:30:00.000Z', '21:30 inside 09:30-24:00');
});

t.test('zoned time helpers', async (t) => {
  t.same(wallTime(new Date('2026-03-04T16:30:05Z')), { year: 2026, month: 3, day: 5, hour: 0, minute: 30, second: 5, weekday: 4 });
  t.equal(zonedToUtc(2026, 3, 5, 8, 0).toISOString(), '2026-03-05T00:00:00.000Z');
  t.equal(localDayStart(2026, 3, 1, -7).toISOString(), '2026-02-21T16:00:00.000Z');
  t.equal(localHHmm(new Date('2026-03-04T16:30:00Z')), '00:30');
  t.same(parseLocalDate('2026-02-28'), [2026, 2, 28]);
  t.equal(parseLocalDate('2026-02-30'), null);
  t.equal(parseLocalDate('2026-2-3'), null);
  // a zone with daylight saving: New York's 2026-03-08 lasts 23 hours
  t.equal(localDayStart(2026, 3, 9, 0, 'America/New_York').getTime() - localDayStart(2026, 3, 8, 0, 'America/New_York').getTime(), 23 * 3600e3);
});

t.test('signature', async (t) => {
  const body = Buffer.from('{"a":1}');
  const sig = signBody('k', body);
  t.ok(verifySignature('k', body, `sha256=${sig}`));
  t.ok(verifySignature('k', body, sig));
  t.ok(verifySignature('k', body, ` SHA256=${sig.toUpperCase()} `));
  t.notOk(verifySignature('k2', body, sig));
  t.notOk(verifySignature('k', Buffer.from('{"a":2}'), sig));
  t.notOk(verifySignature('k', body, sig.slice(0, 63)));
  t.notOk(verifySignature('k', body, undefined));
  t.notOk(verifySignature('k', body, [sig, sig]));
});
