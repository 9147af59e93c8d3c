/**
 * KPI rollups (docs/kpi.md): the records (calls, call_events, survey_results, agent_state_log, tickets, callbacks)
 * counted per 15-minute interval and dimension into `kpi_rollups`, exactly as src/kpi/definitions.ts says; day rows
 * are the sums of their 96 intervals, month rows the sums of their days (Asia/Shanghai), so every grain agrees.
 *
 * A rollup of a set of 15-minute ranges is one transaction: for each range DELETE its interval rows and INSERT them
 * again from the records, then rebuild the days and months those ranges touch from the rows below them. Running it
 * twice gives the same rows (nothing in a row depends on when it was rolled). Rollups are serialised by an advisory
 * lock (two processes, or the 15-minute job meeting the nightly one, never interleave their DELETE + INSERT).
 *
 * Late events: the 15-minute job re-rolls a trailing window (KPI_RECONCILE_HOURS) and, older than that, every
 * interval a recent change belongs to (dirtyIntervals): calls that ended or were surveyed, survey credits, ended
 * wrap-ups, ticket events received, callbacks done, and consultations whose repeats changed the FCR of calls
 * around them. The nightly job re-rolls yesterday whole and the monthly job last month whole.
 */
import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../db/db.js';
import { HOTLINE_TZ, localDayStart, wallTime, zonedToUtc } from '../shared/zoned-time.js';
import { CALLBACK_WITHIN_HOURS, SERVICE_LEVEL_SECONDS, SHORT_ABANDON_SECONDS, SUM_COLUMNS } from './definitions.js';

export const INTERVAL_MS = 15 * 60 * 1000;

export interface Range {
  from: Date;
  to: Date;
}

export interface RollupOptions {
  /** FCR from calls: repeat window in days (FCR_REPEAT_DAYS) */
  fcrRepeatDays: number;
}

export interface RollupResult {
  /** 15-minute intervals rolled from the records */
  intervals: number;
  /** rows written, all grains */
  rows: number;
  ranges: Range[];
}

export const floorInterval = (d: Date): Date => new Date(Math.floor(d.getTime() / INTERVAL_MS) * INTERVAL_MS);
export const ceilInterval = (d: Date): Date => new Date(Math.ceil(d.getTime() / INTERVAL_MS) * INTERVAL_MS);

/** interval starts and ranges -> sorted, merged, 15-minute aligned ranges */
export function mergeRanges(ranges: Range[], intervalStarts: Date[] = []): Range[] {
  const all = [...ranges.map((r) => ({ from: floorInterval(r.from).getTime(), to: ceilInterval(r.to).getTime() })), ...intervalStarts.map((d) => ({ from: floorInterval(d).getTime(), to: floorInterval(d).getTime() + INTERVAL_MS }))]
    .filter((r) => r.to > r.from)
    .sort((a, b) => a.from - b.from);
  const out: Array<{ from: number; to: number }> = [];
  for (const r of all) {
    const last = out[out.length - 1];
    if (last && r.from <= last.to) last.to = Math.max(last.to, r.to);
    else out.push({ ...r });
  }
  return out.map((r) => ({ from: new Date(r.from), to: new Date(r.to) }));
}

/** the local (Asia/Shanghai) day containing an instant: its start and the next day's start */
export function localDayOf(at: Date): Range {
  const w = wallTime(at, HOTLINE_TZ);
  return { from: localDayStart(w.year, w.month, w.day), to: localDayStart(w.year, w.month, w.day, 1) };
}

/** the local month containing an instant */
export function localMonthOf(at: Date): Range {
  const w = wallTime(at, HOTLINE_TZ);
  return { from: zonedToUtc(w.year, w.month, 1), to: zonedToUtc(w.year, w.month + 1, 1) };
}

/** ranges widened to whole units (days or months), merged */
function widen(ranges: Range[], unit: (at: Date) => Range): Range[] {
  const out: Range[] = [];
  for (const r of ranges) out.push({ from: unit(r.from).from, to: unit(new Date(r.to.getTime() - 1)).to });
  return mergeRanges(out);
}

// ---- the SQL ---------------------------------------------------------------------------------------------

const COLUMNS = Object.values(SUM_COLUMNS);
type Column = (typeof COLUMNS)[number];

const bin = (expr: string) => `date_bin('15 minutes', ${expr}, timestamptz '2000-01-01 00:00:00+00')`;

/** the dimensions a fact counts in: all, its line, its queue, each of its agents (`whole`: false for agent rows) */
const dims = (line: string, queue: string, agents: string) => `
  cross join lateral (
    select 'all'::text as dim, ''::text as key, true as whole
    union all select 'line', ${line}, true where ${line} is not null
    union all select 'queue', ${queue}, true where ${queue} is not null
    union all (select distinct 'agent', a, false from unnest(${agents}) as a where a is not null and a <> '')
  ) d`;

/** the select list of one source of facts: p, dim, key, every counted column (0 when the source has none), wait_ms */
const factColumns = (p: string, cols: Partial<Record<Column, string>>, wait = 'null::int') =>
  sql.raw(`select ${p} as p, d.dim, d.key, ${COLUMNS.map((c) => `(${cols[c] ?? '0'})::bigint as ${c}`).join(', ')}, ${wait} as wait_ms`);

/** the line of a call as a dimension: inbound calls only (an outbound call's dialled number is a citizen's) */
const CALL_LINE = (c: string) => `case when ${c}.direction = 'inbound' then coalesce(${c}.line, ${c}.dialed) end`;

/** the facts of the 15-minute intervals in [from, to), one row per (fact, dimension) */
function factsSql(from: Date, to: Date, o: RollupOptions): RawBuilder<unknown> {
  const repeatHours = o.fcrRepeatDays * 24;
  const calls = sql`
    with base as (
      select c.id, c.caller, coalesce(c.line, c.dialed) as line, c.queue, c.agents, c.arrived_at, c.survey_satisfied,
        ${sql.raw(bin('c.arrived_at'))} as p,
        case when c.answered_at is not null then 'answered'
             when c.disposition = 'ivr_completed' then 'ivr'
             when c.disposition = 'abandoned' and c.ended_at < c.arrived_at + make_interval(secs => ${SHORT_ABANDON_SECONDS}) then 'short'
             when c.disposition = 'abandoned' then 'abandoned'
             when c.disposition = 'voicemail' then 'voicemail'
             when c.disposition = 'callback_requested' then 'callback'
             else 'other' end as outcome,
        case when c.answered_at is not null then greatest(0, round(extract(epoch from (c.answered_at - c.arrived_at)) * 1000))::int
             when c.disposition = 'ivr_completed' then greatest(0, round(extract(epoch from (coalesce(c.ivr_done_at, c.ended_at) - c.arrived_at)) * 1000))::int
        end as wait_ms,
        case when c.answered_at is not null and c.talk_seconds is not null then round(c.talk_seconds * 1000)::bigint end as talk_ms,
        (select count(*) from call_events e
          where e.call_id = c.id and ((e.type = 'transfer' and coalesce(e.data->>'mode', '') <> 'attended') or e.type = 'transfer.completed')) as transfers,
        (c.answered_at is not null and c.caller ~ '^\\+?[0-9]{3,}$') as consultation
      from calls c
      where c.direction = 'inbound' and c.disposition is not null and c.disposition <> 'restricted'
        and c.arrived_at >= ${from} and c.arrived_at < ${to}
    )
    ${factColumns(
      'b.p',
      {
        offered: '1',
        answered: "(b.outcome = 'answered')::int",
        ivr_completed: "(b.outcome = 'ivr')::int",
        abandoned: "(b.outcome = 'abandoned')::int",
        short_abandoned: "(b.outcome = 'short')::int",
        voicemails: "(b.outcome = 'voicemail')::int",
        callback_requested: "(b.outcome = 'callback')::int",
        other_unanswered: "(b.outcome = 'other')::int",
        transfers: 'b.transfers',
        wait_count: '(b.wait_ms is not null)::int',
        wait_sum_ms: 'coalesce(b.wait_ms, 0)',
        sl_answered: `coalesce(b.wait_ms <= ${SERVICE_LEVEL_SECONDS * 1000}, false)::int`,
        talk_count: '(b.talk_ms is not null)::int',
        talk_sum_ms: 'coalesce(b.talk_ms, 0)',
        ratings: '(d.whole and b.survey_satisfied is not null)::int',
        satisfied: 'coalesce(d.whole and b.survey_satisfied, false)::int',
        fcr_first_calls: 'coalesce(f.first_call, false)::int',
        fcr_resolved_calls: 'coalesce(f.first_call and f.not_repeated, false)::int',
      },
      'b.wait_ms',
    )}
    from base b
    -- FCR flags, once per call (a lateral: never re-evaluated per join row, whatever the planner estimates)
    cross join lateral (
      select
        b.consultation and not exists (
          select 1 from calls o
          where o.caller = b.caller and o.direction = 'inbound' and o.answered_at is not null and coalesce(o.line, o.dialed) = b.line
            and o.arrived_at >= b.arrived_at - make_interval(hours => ${repeatHours}) and (o.arrived_at, o.id) < (b.arrived_at, b.id)
        ) as first_call,
        b.consultation and not exists (
          select 1 from calls o
          where o.caller = b.caller and o.direction = 'inbound' and o.answered_at is not null and coalesce(o.line, o.dialed) = b.line
            and o.arrived_at <= b.arrived_at + make_interval(hours => ${repeatHours}) and (o.arrived_at, o.id) > (b.arrived_at, b.id)
        ) as not_repeated
    ) f
    ${sql.raw(dims('b.line', 'b.queue', 'b.agents'))}`;

  // an agent's satisfaction: the scores credited to it, in the interval of the call's arrival
  const agentRatings = sql`
    ${factColumns(bin('c.arrived_at'), { ratings: '1', satisfied: 'sr.satisfied::int' })}
    from survey_results sr join calls c on c.id = sr.call_id
    cross join lateral (select 'agent'::text as dim, sr.agent_id as key) d
    where c.direction = 'inbound' and c.disposition is not null and c.disposition <> 'restricted'
      and c.arrived_at >= ${from} and c.arrived_at < ${to}`;

  // wrap-ups: from entering wrap_up to the agent's next state, where it started
  const wrapUps = sql`
    ${factColumns(bin('w.at'), { wrap_count: '1', wrap_sum_ms: 'greatest(0, round(extract(epoch from (n.at - w.at)) * 1000))' })}
    from agent_state_log w
    cross join lateral (
      select n.at from agent_state_log n where n.agent_id = w.agent_id and (n.at, n.id) > (w.at, w.id) order by n.at, n.id limit 1
    ) n
    left join calls c on c.id = w.call_id
    ${sql.raw(dims(CALL_LINE('c'), 'c.queue', 'array[w.agent_id]'))}
    where w.to_state = 'wrap_up' and w.at >= ${from} and w.at < ${to}`;

  const ticketDims = dims(CALL_LINE('c'), 'c.queue', "coalesce(c.agents, '{}'::text[])");
  const opened = 'least(t.created_at, t.dispatched_at, t.returned_at, t.resolved_first_contact_at, t.closed_at)';
  const ticketsOpened = sql`
    ${factColumns(bin(opened), { tickets_opened: '1', tickets_resolved_first_contact: '(t.resolved_first_contact_at is not null)::int' })}
    from tickets t left join calls c on c.id = t.call_id
    ${sql.raw(ticketDims)}
    where ${sql.raw(opened)} >= ${from} and ${sql.raw(opened)} < ${to}`;
  const ticketsDispatched = sql`
    ${factColumns(bin('t.dispatched_at'), { tickets_dispatched: '1', tickets_returned: '(t.returned_count > 0)::int' })}
    from tickets t left join calls c on c.id = t.call_id
    ${sql.raw(ticketDims)}
    where t.dispatched_at >= ${from} and t.dispatched_at < ${to}`;
  const ticketsClosed = sql`
    ${factColumns(bin('t.closed_at'), {
      tickets_closed: '(t.callback_skipped is null)::int',
      tickets_called_back_24h: `(t.callback_skipped is null and exists (
        select 1 from callbacks cb where (cb.id = t.callback_id or cb.ticket_id = t.ticket_id)
          and cb.status = 'done' and cb.done_at <= t.closed_at + interval '${CALLBACK_WITHIN_HOURS} hours'))::int`,
      tickets_callback_skipped: '(t.callback_skipped is not null)::int',
    })}
    from tickets t left join calls c on c.id = t.call_id
    ${sql.raw(ticketDims)}
    where t.closed_at >= ${from} and t.closed_at < ${to}`;

  return sql`
    select '15m' as grain, p as period_start, dim, key,
      ${sql.raw(COLUMNS.map((c) => `sum(${c})`).join(', '))},
      coalesce(array_agg(wait_ms) filter (where wait_ms is not null), '{}'::int[]) as wait_ms
    from (
      (${calls}) union all (${agentRatings}) union all (${wrapUps})
      union all (${ticketsOpened}) union all (${ticketsDispatched}) union all (${ticketsClosed})
    ) f
    group by p, dim, key`;
}

const INSERT_COLUMNS = sql.raw(`(grain, period_start, dim, key, ${COLUMNS.join(', ')}, wait_ms)`);

/** rebuild `grain` rows in [from, to) from the rows of `below`, grouped by the local `unit` */
async function derive(trx: Db, grain: 'day' | 'month', below: '15m' | 'day', r: Range): Promise<number> {
  await sql`delete from kpi_rollups where grain = ${grain} and period_start >= ${r.from} and period_start < ${r.to}`.execute(trx);
  const res = await sql`
    insert into kpi_rollups ${INSERT_COLUMNS}
    select ${grain}, date_trunc(${grain}, period_start, ${HOTLINE_TZ}), dim, key,
      ${sql.raw(COLUMNS.map((c) => `sum(${c})`).join(', '))}, kpi_int_array_cat(wait_ms)
    from kpi_rollups
    where grain = ${below} and period_start >= ${r.from} and period_start < ${r.to}
    group by 2, dim, key`.execute(trx);
  return Number(res.numAffectedRows ?? 0);
}

/**
 * Roll these ranges (15-minute aligned; merged here) from the records, then their days and months, in one
 * transaction. `kind` and `jobId` go to kpi_rollup_runs.
 */
export async function rollRanges(db: Db, input: Range[], o: RollupOptions & { kind: string; jobId?: string | null }): Promise<RollupResult> {
  const ranges = mergeRanges(input);
  const started = new Date();
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(current_schema() || ':kpi-rollup'))`.execute(trx);
    let rows = 0;
    let intervals = 0;
    for (const r of ranges) {
      intervals += (r.to.getTime() - r.from.getTime()) / INTERVAL_MS;
      await sql`delete from kpi_rollups where grain = '15m' and period_start >= ${r.from} and period_start < ${r.to}`.execute(trx);
      const res = await sql`insert into kpi_rollups ${INSERT_COLUMNS} ${factsSql(r.from, r.to, o)}`.execute(trx);
      rows += Number(res.numAffectedRows ?? 0);
    }
    const days = widen(ranges, localDayOf);
    for (const d of days) rows += await derive(trx, 'day', '15m', d);
    for (const m of widen(days, localMonthOf)) rows += await derive(trx, 'month', 'day', m);
    await trx
      .insertInto('kpi_rollup_runs')
      .values({ job_id: o.jobId ?? null, kind: o.kind, ranges: JSON.stringify(ranges.map((r) => [r.from.toISOString(), r.to.toISOString()])), intervals, rows, started_at: started })
      .execute();
    await trx.deleteFrom('kpi_rollup_runs').where('finished_at', '<', new Date(Date.now() - 90 * 86_400_000)).execute();
    return { intervals, rows, ranges };
  });
}

/**
 * The 15-minute intervals before `before` that changes since `since` belong to (late events): calls that ended or
 * were surveyed, survey credits, wrap-ups that ended, tickets whose events arrived or whose row changed (every
 * time of every event of theirs: an opening moved earlier leaves its old interval too), callbacks done (their
 * tickets' closure), and consultations answered (the FCR flags of the consultations within the repeat window on
 * either side of them).
 */
export async function dirtyIntervals(db: Db, since: Date, before: Date, o: RollupOptions): Promise<Date[]> {
  const repeatHours = o.fcrRepeatDays * 24;
  const opened = 'least(t.created_at, t.dispatched_at, t.returned_at, t.resolved_first_contact_at, t.closed_at)';
  const res = await sql<{ p: Date }>`
    select distinct p from (
      select ${sql.raw(bin('c.arrived_at'))} as p from calls c where c.direction = 'inbound' and c.ended_at >= ${since}
      union select ${sql.raw(bin('c.arrived_at'))} from calls c where c.direction = 'inbound' and c.survey_at >= ${since}
      union select ${sql.raw(bin('c.arrived_at'))} from survey_results sr join calls c on c.id = sr.call_id where sr.at >= ${since}
      union select ${sql.raw(bin('pr.at'))} from agent_state_log n
        cross join lateral (
          select p.at, p.to_state from agent_state_log p where p.agent_id = n.agent_id and (p.at, p.id) < (n.at, n.id) order by p.at desc, p.id desc limit 1
        ) pr
        where n.at >= ${since} and pr.to_state = 'wrap_up'
      union select ${sql.raw(bin('e.at'))} from ticket_events e
        where e.ticket_id in (select ticket_id from ticket_events where received_at >= ${since} union select ticket_id from tickets where updated_at >= ${since})
      union select ${sql.raw(bin('x'))} from tickets t
        cross join lateral unnest(array[${sql.raw(opened)}, t.dispatched_at, t.closed_at]) as x
        where t.updated_at >= ${since} and x is not null
      union select ${sql.raw(bin('t.closed_at'))} from callbacks cb join tickets t on t.callback_id = cb.id where cb.done_at >= ${since} and t.closed_at is not null
      union select ${sql.raw(bin('t.closed_at'))} from callbacks cb join tickets t on t.ticket_id = cb.ticket_id where cb.done_at >= ${since} and t.closed_at is not null
      union select ${sql.raw(bin('o.arrived_at'))} from calls r
        join calls o on o.caller = r.caller and o.direction = 'inbound' and o.answered_at is not null
          and coalesce(o.line, o.dialed) = coalesce(r.line, r.dialed)
          and o.arrived_at >= r.arrived_at - make_interval(hours => ${repeatHours}) and o.arrived_at <= r.arrived_at + make_interval(hours => ${repeatHours})
        where r.direction = 'inbound' and r.answered_at >= ${since}
    ) d
    where p < ${before}`.execute(db);
  return res.rows.map((r) => r.p);
}

/** the 15-minute job at fire time `at`: the trailing window up to the interval that just closed, and the late changes' intervals */
export async function rollupRecent(db: Db, at: Date, o: RollupOptions & { reconcileHours: number; jobId?: string | null }): Promise<RollupResult> {
  const to = floorInterval(at);
  const from = new Date(to.getTime() - o.reconcileHours * 3_600_000);
  const dirty = await dirtyIntervals(db, from, to, o);
  return rollRanges(db, mergeRanges([{ from, to }], dirty), { ...o, kind: '15m' });
}
