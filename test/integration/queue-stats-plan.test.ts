/**
 * The live view reads today's queue figures every second (src/acd/queues.stats.ts). On a calls table of months
 * (here 200 days of 1 000 calls) that read must go through an index on queued_at, not scan every call ever
 * taken (it did: ~0.8 s of PostgreSQL per read on 3 million calls, before calls_queued_at_idx). Real PostgreSQL:
 * the plan is asked of the planner after ANALYZE, with the query the service runs.
 */
import { sql } from 'kysely';
import t from 'tap';
import { todayCountsQuery } from '../../src/acd/queues.stats.js';
import { testInfra } from '../helpers/app.js';

const infra = await testInfra(t, 'queue-stats-plan');
const { db } = infra;

const DAYS = 200;
const PER_DAY = 1000;
// one call every 86.4 s back from now (the first at now, so today has calls even just after midnight in Shanghai):
// 200 days, every call queued 5 s after it arrived and ended; every 4th abandoned
await sql`
  insert into calls (id, direction, caller, dialed, channel_id, arrived_at, queued_at, answered_at, ended_at, queue, disposition)
  select gen_random_uuid(), 'inbound', '139' || lpad((g % 100000)::text, 8, '0'), '12345', 'plan-' || g,
         now() - g * interval '86.4 seconds',
         now() - g * interval '86.4 seconds' + interval '5 seconds',
         case when g % 4 = 0 then null else now() - g * interval '86.4 seconds' + interval '12 seconds' end,
         now() - g * interval '86.4 seconds' + interval '60 seconds',
         case when g % 2 = 0 then 'general' else 'en' end,
         case when g % 4 = 0 then 'abandoned' else 'answered' end
  from generate_series(0, ${DAYS * PER_DAY - 1}::int) g`.execute(db);
await sql`analyze calls`.execute(db);

type PlanNode = { 'Node Type': string; 'Relation Name'?: string; 'Index Name'?: string; Plans?: PlanNode[] };
const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];

t.test("today's queue figures read the calls of today through calls_queued_at_idx, not every call", async (t) => {
  const query = todayCountsQuery(['general', 'en'], [20, 20]);
  const explained = await sql<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>`explain (format json) ${query}`.execute(db);
  const all = nodes(explained.rows[0]!['QUERY PLAN'][0]!.Plan);
  const onCalls = all.filter((n) => n['Relation Name'] === 'calls' || n['Index Name']?.startsWith('calls_'));
  const shown = onCalls.map((n) => `${n['Node Type']}${n['Index Name'] ? ` ${n['Index Name']}` : ''}`).join(', ');
  t.notOk(onCalls.some((n) => n['Node Type'].includes('Seq Scan')), `no sequential scan of calls (${shown})`);
  t.ok(onCalls.some((n) => n['Index Name'] === 'calls_queued_at_idx'), `the queued_at index is used (${shown})`);
});

t.test('and the figures are those of today', async (t) => {
  const rows = (await todayCountsQuery(['general', 'en'], [20, 20]).execute(db)).rows;
  const direct = await sql<{ queue: string; offered: number; abandoned: number }>`
    select queue, count(*)::int as offered, count(*) filter (where disposition = 'abandoned')::int as abandoned
    from calls
    where queued_at >= (date_trunc('day', now() at time zone 'Asia/Shanghai') at time zone 'Asia/Shanghai') and ended_at is not null
    group by queue`.execute(db);
  const byQueue = new Map(direct.rows.map((r) => [r.queue, r]));
  t.ok(rows.length > 0 && rows.length <= 2, `one row per queue with calls today (${rows.length})`);
  for (const r of rows) {
    t.equal(Number(r.offered), byQueue.get(r.queue)?.offered, `${r.queue}: offered today`);
    t.equal(Number(r.abandoned), byQueue.get(r.queue)?.abandoned, `${r.queue}: abandoned today`);
    t.ok(Number(r.offered) <= PER_DAY + 10, `${r.queue}: a day's calls at most, not the table's (${r.offered})`);
  }
});
