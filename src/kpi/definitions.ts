/**
 * The KPI definitions, in one place (DESIGN §4; the contract's wording is procurement 六(一)). docs/kpi.md says
 * the same in prose. The rollup SQL (rollup.ts) counts what is described here; this module turns counts and
 * sums into figures and says whether each meets its target.
 *
 * What is counted, and where (every figure is made of counts and sums, so any set of periods re-aggregates
 * exactly):
 *
 * - THE CALLS COUNTED: inbound calls that have ENDED (disposition set), except `restricted` ones (a black-listed
 *   caller refused by policy is no demand for service). A call belongs to the 15-minute interval, day and month
 *   (Asia/Shanghai) of its ARRIVAL, whenever it ends; it is counted once it has ended (a call still running is
 *   left out and picked up by the next rollup run). Lines: `coalesce(line, dialed)`. Queue: the call's last
 *   queue (null: not in any queue row). Agents: every agent in `calls.agents` (all who took part: transfers,
 *   conference); an agent's row counts the calls it took part in.
 * - OUTCOME, exactly one per call, in this order:
 *     answered           an agent answered (answered_at set), whatever happened after;
 *     ivrCompleted       disposition ivr_completed (self-service);
 *     shortAbandoned     disposition abandoned and ended less than SHORT_ABANDON_SECONDS after ARRIVAL;
 *     abandoned          disposition abandoned, the rest (short abandons are NOT in it);
 *     voicemails         disposition voicemail;
 *     callbackRequested  disposition callback_requested;
 *     otherUnanswered    anything else (failed, ...).
 *   offered = the sum of the seven.
 * - answerRate = (answered + ivrCompleted) / (offered - shortAbandoned). Contract: answered by an agent or by
 *   self-service / calls; short abandons (hang-ups within 5 s of arriving: misdials, before anything could
 *   answer) are left out of the denominator. Voicemails and callback requests are not answers.
 * - wait: for every answered call (agent or IVR), from ARRIVAL to the first answer: `answered_at` for an agent,
 *   the end of the self-service for the IVR (`ivr_done_at`, else `ended_at`). Millisecond integers.
 *   avgWaitSeconds = sum(wait) / count(wait); p90WaitSeconds = nearest-rank 90th percentile (p90Ms below) of
 *   the same waits, exact: the rollup rows keep every wait of their period.
 * - serviceLevel = answered calls (agent or IVR) whose wait <= SERVICE_LEVEL_SECONDS / (offered - shortAbandoned)
 *   (the answer rate's denominator).
 * - avgTalkSeconds = sum(talk_seconds) / count over agent-answered calls.
 * - avgWrapUpSeconds: agent_state_log, from a row entering `wrap_up` to the agent's next row (by time, then id),
 *   counted in the interval where the wrap-up started, for its agent, and for the line / queue of its call_id;
 *   a wrap-up not ended yet is left out.
 * - transfers: per call, `transfer` events that are not attended (blind: done at once) plus `transfer.completed`
 *   (an attended transfer counts when completed; a cancelled one does not).
 * - satisfaction = satisfied ratings / ratings. all / line / queue: the call's own survey (calls.survey_satisfied,
 *   inbound calls only); agent: the scores credited to that agent (survey_results), in the interval of the
 *   call's arrival.
 * - FCR from tickets (`fcr`): tickets resolved on first contact / tickets opened, in the interval where the ticket
 *   opened (its earliest event time). FCR from calls (`fcrCalls`): among CONSULTATIONS (inbound calls answered
 *   by an agent from a callable number), a FIRST CALL has no consultation from the same number on the same line
 *   in the FCR_REPEAT_DAYS days before it; it is resolved unless another consultation from the same number on
 *   the same line arrives within FCR_REPEAT_DAYS days after it. fcrCalls = resolved first calls / first calls.
 * - callbackRate24h = closed tickets whose callback is done (status done) no later than closed_at + 24 h / closed
 *   tickets, in the interval of the closure; tickets that can get no callback (`callback_skipped`: no number,
 *   black-listed) are counted apart (ticketsCallbackSkipped) and left out.
 * - dispatchAccuracy = (tickets dispatched - of those, tickets returned at least once) / tickets dispatched, in
 *   the interval of the first dispatch. The ticket system reports a return only once it accepted it (a valid
 *   return); every returned event counts.
 * - Tickets belong to the line / queue / agents of their call (tickets.call_id); without a call, only to `all`.
 */

/** abandons that end less than this after the call arrived are counted apart and left out of the answer rate */
export const SHORT_ABANDON_SECONDS = 5;
/** service level: answered within this many seconds of arrival */
export const SERVICE_LEVEL_SECONDS = 15;
/** FCR from calls: a consultation is repeated when the same number calls the same line again within this many days (env FCR_REPEAT_DAYS) */
export const DEFAULT_FCR_REPEAT_DAYS = 3;
/** a ticket's callback counts when done within this long of the closure (DESIGN §4) */
export const CALLBACK_WITHIN_HOURS = 24;
/** the 90th percentile */
export const PERCENTILE = 0.9;

/** the contract's targets (DESIGN §4). A ratio target is met when value >= target; the wait target when <= */
export const TARGETS = {
  answerRate: 0.95,
  avgWaitSeconds: 15,
  fcr: 0.7,
  fcrCalls: 0.7,
  callbackRate24h: 1,
  satisfaction: 0.98,
  dispatchAccuracy: 0.95,
} as const;
export type TargetKey = keyof typeof TARGETS;
export const TARGET_KEYS = Object.keys(TARGETS) as TargetKey[];

/** the counts and sums of a rollup row (or of several added together) */
export interface KpiSums {
  offered: number;
  answered: number;
  ivrCompleted: number;
  abandoned: number;
  shortAbandoned: number;
  voicemails: number;
  callbackRequested: number;
  otherUnanswered: number;
  transfers: number;
  waitCount: number;
  waitSumMs: number;
  slAnswered: number;
  talkCount: number;
  talkSumMs: number;
  wrapCount: number;
  wrapSumMs: number;
  ratings: number;
  satisfied: number;
  fcrFirstCalls: number;
  fcrResolvedCalls: number;
  ticketsOpened: number;
  ticketsResolvedFirstContact: number;
  ticketsDispatched: number;
  ticketsReturned: number;
  ticketsClosed: number;
  ticketsCalledBack24h: number;
  ticketsCallbackSkipped: number;
}

/** KpiSums field -> kpi_rollups column */
export const SUM_COLUMNS = {
  offered: 'offered',
  answered: 'answered',
  ivrCompleted: 'ivr_completed',
  abandoned: 'abandoned',
  shortAbandoned: 'short_abandoned',
  voicemails: 'voicemails',
  callbackRequested: 'callback_requested',
  otherUnanswered: 'other_unanswered',
  transfers: 'transfers',
  waitCount: 'wait_count',
  waitSumMs: 'wait_sum_ms',
  slAnswered: 'sl_answered',
  talkCount: 'talk_count',
  talkSumMs: 'talk_sum_ms',
  wrapCount: 'wrap_count',
  wrapSumMs: 'wrap_sum_ms',
  ratings: 'ratings',
  satisfied: 'satisfied',
  fcrFirstCalls: 'fcr_first_calls',
  fcrResolvedCalls: 'fcr_resolved_calls',
  ticketsOpened: 'tickets_opened',
  ticketsResolvedFirstContact: 'tickets_resolved_first_contact',
  ticketsDispatched: 'tickets_dispatched',
  ticketsReturned: 'tickets_returned',
  ticketsClosed: 'tickets_closed',
  ticketsCalledBack24h: 'tickets_called_back_24h',
  ticketsCallbackSkipped: 'tickets_callback_skipped',
} as const satisfies Record<keyof KpiSums, string>;
export const SUM_KEYS = Object.keys(SUM_COLUMNS) as Array<keyof KpiSums>;

export function emptySums(): KpiSums {
  return Object.fromEntries(SUM_KEYS.map((k) => [k, 0])) as unknown as KpiSums;
}

export interface KpiFigures {
  /** (answered + ivrCompleted) / (offered - shortAbandoned) */
  answerRate: number | null;
  /** arrival to first answer, answered calls (agent or IVR) */
  avgWaitSeconds: number | null;
  p90WaitSeconds: number | null;
  /** answered (agent or IVR) within 15 s / (offered - shortAbandoned) */
  serviceLevel: number | null;
  avgTalkSeconds: number | null;
  avgWrapUpSeconds: number | null;
  /** satisfied ratings / ratings */
  satisfaction: number | null;
  /** tickets resolved on first contact / tickets opened */
  fcr: number | null;
  /** consultations not repeated within FCR_REPEAT_DAYS / first-call consultations */
  fcrCalls: number | null;
  /** closed tickets called back within 24 h / closed tickets (that can get a callback) */
  callbackRate24h: number | null;
  /** dispatched tickets never returned / dispatched tickets */
  dispatchAccuracy: number | null;
}

export type TargetsMet = Record<TargetKey, boolean | null>;

const ratio = (num: number, den: number): number | null => (den > 0 ? num / den : null);
const avgSeconds = (sumMs: number, n: number): number | null => (n > 0 ? sumMs / n / 1000 : null);

/** nearest-rank percentile (default the 90th) of whole-millisecond values: the smallest value with at least 90 % of the values <= it */
export function percentileMs(values: ArrayLike<number>, p = PERCENTILE): number | null {
  const n = values.length;
  if (n === 0) return null;
  const sorted = Int32Array.from(values as ArrayLike<number>).sort();
  // rank ceil(p·n) in integers for p = 0.9 (ceil(9n/10)); other p through the float
  const rank = p === PERCENTILE ? Math.floor((9 * n + 9) / 10) : Math.max(1, Math.ceil(p * n));
  return sorted[rank - 1]!;
}

export function figures(s: KpiSums, waitsMs: ArrayLike<number>): KpiFigures {
  const answerable = s.offered - s.shortAbandoned;
  const p90 = percentileMs(waitsMs);
  return {
    answerRate: ratio(s.answered + s.ivrCompleted, answerable),
    avgWaitSeconds: avgSeconds(s.waitSumMs, s.waitCount),
    p90WaitSeconds: p90 === null ? null : p90 / 1000,
    serviceLevel: ratio(s.slAnswered, answerable),
    avgTalkSeconds: avgSeconds(s.talkSumMs, s.talkCount),
    avgWrapUpSeconds: avgSeconds(s.wrapSumMs, s.wrapCount),
    satisfaction: ratio(s.satisfied, s.ratings),
    fcr: ratio(s.ticketsResolvedFirstContact, s.ticketsOpened),
    fcrCalls: ratio(s.fcrResolvedCalls, s.fcrFirstCalls),
    callbackRate24h: ratio(s.ticketsCalledBack24h, s.ticketsClosed),
    dispatchAccuracy: ratio(s.ticketsDispatched - s.ticketsReturned, s.ticketsDispatched),
  };
}

/** num/den >= pct/100, in integers (no rounding at the boundary: 95 of 100 meets 95 %) */
const atLeast = (num: number, den: number, pct: number): boolean | null => (den > 0 ? num * 100 >= pct * den : null);

/** each target met (true), missed (false), or nothing to measure (null) */
export function targetsMet(s: KpiSums): TargetsMet {
  const pct = (k: TargetKey) => Math.round(TARGETS[k] * 100);
  return {
    answerRate: atLeast(s.answered + s.ivrCompleted, s.offered - s.shortAbandoned, pct('answerRate')),
    avgWaitSeconds: s.waitCount > 0 ? s.waitSumMs <= TARGETS.avgWaitSeconds * 1000 * s.waitCount : null,
    fcr: atLeast(s.ticketsResolvedFirstContact, s.ticketsOpened, pct('fcr')),
    fcrCalls: atLeast(s.fcrResolvedCalls, s.fcrFirstCalls, pct('fcrCalls')),
    callbackRate24h: atLeast(s.ticketsCalledBack24h, s.ticketsClosed, pct('callbackRate24h')),
    satisfaction: atLeast(s.satisfied, s.ratings, pct('satisfaction')),
    dispatchAccuracy: atLeast(s.ticketsDispatched - s.ticketsReturned, s.ticketsDispatched, pct('dispatchAccuracy')),
  };
}

export function addSums(into: KpiSums, s: KpiSums): KpiSums {
  for (const k of SUM_KEYS) into[k] += s[k];
  return into;
}
