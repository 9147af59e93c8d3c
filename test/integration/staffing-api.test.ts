/**
 * GET /api/v1/staffing: the forecast from the same weekday of the previous weeks (weights 4, 3, 2, 1),
 * handle times from the same history, agents needed per half-hour (Erlang A against the contract's targets).
 */
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { agentsNeeded } from '../../src/kpi/erlang.js';
import { DEFAULT_AHT_SECONDS, DEFAULT_PATIENCE_SECONDS } from '../../src/kpi/staffing.js';
import { buildTestApp, testInfra } from '../helpers/app.js';

const infra = await testInfra(t, 'staffing');
const { api, tokens } = await buildTestApp(t, infra, {});
const { db } = infra;

// the day forecast: Thursday 2026-03-05 (Asia/Shanghai); its history: the Thursdays 1..4 weeks before
const DATE = '2026-03-05';
const thursday = (weeksBack: number) => Date.parse('2026-03-04T16:00:00Z') - weeksBack * 7 * 86400e3; // local midnight
const localAt = (weeksBack: number, hh: number, mm: number, s = 0) => new Date(thursday(weeksBack) + ((hh * 60 + mm) * 60 + s) * 1000);

interface CallSpec {
  at: Date;
  line?: string;
  talk?: number | null;
  queued?: boolean;
  abandonedAfter?: number;
  answeredAfter?: number;
  direction?: 'inbound' | 'outbound';
}
async function insertCalls(specs: CallSpec[]): Promise<void> {
  await db
    .insertInto('calls')
    .values(
      specs.map((c) => {
        const queuedAt = c.queued === false ? null : new Date(c.at.getTime() + 5000);
        const answeredAt = queuedAt && c.abandonedAfter === undefined ? new Date(queuedAt.getTime() + (c.answeredAfter ?? 0) * 1000) : null;
        const talk = answeredAt ? (c.talk ?? 200) : null;
        const endedAt = answeredAt ? new Date(answeredAt.getTime() + (talk ?? 0) * 1000) : queuedAt ? new Date(queuedAt.getTime() + (c.abandonedAfter ?? 0) * 1000) : new Date(c.at.getTime() + 30000);
        return {
          id: randomUUID(),
          direction: c.direction ?? 'inbound',
          caller: '13800138000',
          dialed: c.line ?? '12345',
          line: c.line ?? '12345',
          channel_id: randomUUID(),
          arrived_at: c.at,
          queued_at: queuedAt,
          answered_at: answeredAt,
          ended_at: endedAt,
          talk_seconds: talk,
          disposition: answeredAt ? 'answered' : queuedAt ? 'abandoned' : 'ivr_completed',
        } as const;
      }),
    )
    .execute();
}
const many = (n: number, spec: (i: number) => CallSpec) => Array.from({ length: n }, (_, i) => spec(i));

// 09:00-09:30 (slot 18): 10, 8, 6, 4 calls in weeks 1..4 back -> (4·10 + 3·8 + 2·6 + 1·4) / 10 = 8
// 10:30-11:00 (slot 21): 20, 0, 10, 0 -> (80 + 20) / 10 = 10, talk 300 s on 30 answers -> its own AHT 300
// 14:00-14:30 (slot 28): 3 calls one week back -> 1.2
// 00:00-00:30 (slot 0): 1 call two weeks back at 00:00:00 local -> 0.3 (the day's first instant is inside)
await insertCalls([
  ...[10, 8, 6, 4].flatMap((n, k) => many(n, (i) => ({ at: localAt(k + 1, 9, i) }))),
  ...many(20, (i) => ({ at: localAt(1, 10, 30 + i), talk: 300 })),
  ...many(10, (i) => ({ at: localAt(3, 10, 45 + i), talk: 300 })),
  ...many(3, (i) => ({ at: localAt(1, 14, 10 + i) })),
  { at: localAt(2, 0, 0) },
  // not counted: IVR-only calls, outbound calls, other lines when a line is asked for, the neighbouring days
  ...many(7, (i) => ({ at: localAt(1, 9, 20 + i), queued: false })),
  ...many(4, (i) => ({ at: localAt(1, 9, 10 + i), direction: 'outbound' as const })),
  ...many(5, (i) => ({ at: localAt(1, 9, 5 + i), line: '12333' })),
  { at: new Date(thursday(1) - 1000) },
  { at: new Date(thursday(1) + 86400e3) },
  // five weeks back: outside the default four weeks
  ...many(50, (i) => ({ at: localAt(5, 9, i % 30) })),
]);

t.test('given four weeks of history, then the forecast per half-hour is the weighted average, exactly', async (t) => {
  const r = await api('GET', `/api/v1/staffing?date=${DATE}&line=12345`, tokens.supervisor);
  t.equal(r.status, 200);
  t.match(r.body, { date: DATE, line: '12345', weeksOfHistory: 4, patienceSeconds: DEFAULT_PATIENCE_SECONDS, patienceSource: 'default' });
  const items = r.body.items as Array<Record<string, any>>;
  t.equal(items.length, 48, '48 half-hours');
  t.equal(items[0]!.start, '2026-03-04T16:00:00.000Z', 'the day starts at 00:00 Asia/Shanghai');
  t.equal(items[0]!.startLocal, '00:00');
  t.equal(items[47]!.startLocal, '23:30');
  t.equal(items[47]!.start, '2026-03-05T15:30:00.000Z');

  const bySlot = (hhmm: string) => items.find((i) => i.startLocal === hhmm)!;
  t.equal(bySlot('09:00').forecastCalls, 8);
  t.equal(bySlot('10:30').forecastCalls, 10);
  t.equal(bySlot('14:00').forecastCalls, 1.2);
  t.equal(bySlot('00:00').forecastCalls, 0.3);
  t.equal(bySlot('03:00').forecastCalls, 0);
  t.equal(items.reduce((s, i) => s + i.forecastCalls, 0).toFixed(2), '19.50', 'nothing else was counted');

  // AHT: 10:30 has 30 answers in its history (>= 30): its own 300 s; the rest take the day's (answered talk / answers)
  const dayAht = Math.round(((28 + 3 + 1) * 200 + 30 * 300) / 62 * 10) / 10;
  t.equal(bySlot('10:30').ahtSeconds, 300);
  t.equal(bySlot('09:00').ahtSeconds, dayAht);
  t.equal(bySlot('03:00').ahtSeconds, dayAht);

  for (const i of items) {
    const want = agentsNeeded({ callsPerInterval: i.forecastCalls, intervalSeconds: 1800, ahtSeconds: i.ahtSeconds, targetServiceLevel: 0.95, targetSeconds: 15, targetAsaSeconds: 15, patienceSeconds: DEFAULT_PATIENCE_SECONDS });
    t.equal(i.agentsNeeded, want.agents, `${i.startLocal}: ${i.agentsNeeded} agents`);
    if (i.forecastCalls > 0) {
      t.ok(i.expectedServiceLevel >= 0.95 && i.expectedAsaSeconds <= 15, `${i.startLocal} meets the contract`);
      t.ok(i.agentsNeeded >= 1);
    } else {
      t.same([i.agentsNeeded, i.expectedServiceLevel, i.expectedAsaSeconds], [0, 1, 0], `${i.startLocal}: no calls, no agents`);
    }
  }
  // agents needed grow with the load (same handle time)
  const sameAht = items.filter((i) => i.ahtSeconds === dayAht).sort((a, b) => a.forecastCalls - b.forecastCalls);
  for (let k = 1; k < sameAht.length; k++) t.ok(sameAht[k]!.agentsNeeded >= sameAht[k - 1]!.agentsNeeded, `monotone at ${sameAht[k]!.forecastCalls} calls`);
  t.ok(bySlot('09:00').agentsNeeded > bySlot('14:00').agentsNeeded, '8 calls need more agents than 1.2');
});

t.test('every line together, fewer weeks, a line without history', async (t) => {
  const all = await api('GET', `/api/v1/staffing?date=${DATE}`, tokens.admin);
  t.equal(all.status, 200);
  t.equal(all.body.line, null);
  // week 1 also had 5 calls on 12333 at 09:0x: (4·15 + 3·8 + 2·6 + 4) / 10 = 10
  t.equal(all.body.items[18].forecastCalls, 10);

  const two = await api('GET', `/api/v1/staffing?date=${DATE}&line=12345&weeks=2`, tokens.auditor);
  t.equal(two.body.weeksOfHistory, 2);
  // weights 2 (last week) and 1: (2·10 + 1·8) / 3 = 9.33
  t.equal(two.body.items[18].forecastCalls, 9.33);

  const none = await api('GET', `/api/v1/staffing?date=${DATE}&line=95198`, tokens.supervisor);
  t.equal(none.body.weeksOfHistory, 0);
  t.ok(none.body.items.every((i: { forecastCalls: number; agentsNeeded: number; ahtSeconds: number }) => i.forecastCalls === 0 && i.agentsNeeded === 0 && i.ahtSeconds === DEFAULT_AHT_SECONDS));
});

t.test('a week with no calls on that line is left out and the weights renormalised; patience from abandons', async (t) => {
  // line 12329: calls only one and three weeks back (weights 4 and 2), 25 abandoned after 60 s in queue,
  // 25 answered after 10 s: patience = (25·60 + 25·10) / 25 = 70 s
  await insertCalls([
    ...many(25, (i) => ({ at: localAt(1, 11, i), line: '12329', abandonedAfter: 60 })),
    ...many(25, (i) => ({ at: localAt(3, 11, i), line: '12329', answeredAfter: 10 })),
  ]);
  const r = await api('GET', `/api/v1/staffing?date=${DATE}&line=12329`, tokens.supervisor);
  t.equal(r.body.weeksOfHistory, 2);
  t.equal(r.body.patienceSource, 'history');
  t.equal(r.body.patienceSeconds, 70);
  // 11:00: (4·25 + 2·25) / 6 = 25
  t.equal(r.body.items[22].forecastCalls, 25);
  t.equal(r.body.items[22].ahtSeconds, 200, 'only the answered calls make the handle time');
});

t.test('bad requests are 400 with the error shape; roles', async (t) => {
  for (const q of ['date=2026-02-30', 'date=tomorrow', 'date=2026-3-5', '', `date=${DATE}&weeks=0`, `date=${DATE}&weeks=13`, `date=${DATE}&colour=red`, `date=${DATE}&line=a%20b`]) {
    const r = await api('GET', `/api/v1/staffing?${q}`, tokens.supervisor);
    t.equal(r.status, 400, q);
    t.type(r.body.error.code, 'string', q);
  }
  t.equal((await api('GET', '/api/v1/staffing?date=2026-02-30', tokens.supervisor)).body.error.code, 'invalid-date');
  t.equal((await api('GET', `/api/v1/staffing?date=${DATE}`, tokens.agent)).status, 403);
  t.equal((await api('GET', `/api/v1/staffing?date=${DATE}`, null)).status, 401);
  const doc = await api('GET', '/docs/json', null);
  t.same(doc.body.paths['/api/v1/staffing/'].get.tags, ['kpi']);
});
