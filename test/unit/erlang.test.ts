/**
 * Erlang C / Erlang A against published and independently recomputed values.
 *
 * Sources of the reference figures:
 * - Call Centre Helper, "Erlang C formula – made simple" worked example: 100 calls in 30 minutes, AHT 180 s,
 *   service-level target 20 s -> 10 Erlangs; the widely cited table for 11..15 agents
 *   (14 agents: Pw 17.4 %, service level 88.8 %, ASA 7.8 s; 13 agents: 79.6 %).
 * - Westbay Engineers, "The Erlang-C formula" worked example: 360 calls per half hour, 4 minute calls,
 *   55 agents, 15 s target -> 48 Erlangs, Pw 0.2387, ASA 8.2 s, service level 84.6 %.
 * - Textbook closed forms of M/M/n (e.g. Kleinrock, Queueing Systems vol. 1): n = 2, A = 1 -> Pw = 1/3;
 *   n = 3, A = 2 -> Pw = 4/9. Erlang B table: A = 10 E on 10 trunks -> 21.46 % blocked.
 * Every figure was recomputed to 40 digits with mpmath from the factorial form of the formulas (and, for
 * Erlang A, by summing the birth-death chain's products directly), so the 4-decimal values below are exact.
 */
import t from 'tap';
import { agentsNeeded, averageSpeedOfAnswer, erlangA, erlangB, erlangC, evaluateStaffing, serviceLevel } from '../../src/kpi/erlang.js';

/** equal when rounded to `decimals` places (within half a unit of the last place) */
const near = (t: { ok(v: unknown, msg: string): unknown }, got: number, want: number, decimals: number, msg: string) =>
  t.ok(Math.abs(got - want) <= 0.5 * 10 ** -decimals, `${msg}: got ${got}, want ${want} (to ${decimals} decimals)`);

t.test('given 10 Erlangs (100 calls/30 min, AHT 180 s), then Pw, SL(20 s) and ASA match the published table', async (t) => {
  const A = (100 * 180) / 1800;
  t.equal(A, 10);
  // agents: [Pw, SL within 20 s, ASA seconds]
  const table: Array<[number, number, number, number]> = [
    [11, 0.6821, 0.3896, 122.78],
    [12, 0.4494, 0.6402, 40.44],
    [13, 0.2853, 0.7956, 17.12],
    [14, 0.1741, 0.8884, 7.84],
    [15, 0.102, 0.9415, 3.67],
  ];
  for (const [n, pw, sl, asa] of table) {
    near(t, erlangC(A, n), pw, 3, `Pw with ${n} agents`);
    near(t, serviceLevel(A, n, 180, 20), sl, 3, `SL with ${n} agents`);
    near(t, averageSpeedOfAnswer(A, n, 180), asa, 1, `ASA with ${n} agents`);
  }
  // the full precision figures of the 14-agent example
  near(t, erlangC(A, 14), 0.17413193, 7, 'Pw(10 E, 14)');
  near(t, serviceLevel(A, 14, 180, 20), 0.88835002, 7, 'SL(10 E, 14, 20 s)');
});

t.test('given 48 Erlangs on 55 agents (Westbay example), then Pw 0.2387, SL(15 s) 84.6 %, ASA 8.2 s', async (t) => {
  const A = (360 * 240) / 1800;
  near(t, erlangC(A, 55), 0.2387, 3, 'Pw');
  near(t, serviceLevel(A, 55, 240, 15), 0.8459, 3, 'SL');
  near(t, averageSpeedOfAnswer(A, 55, 240), 8.184, 2, 'ASA');
  near(t, erlangC(A, 50), 0.6945, 3, 'Pw with 50');
  near(t, erlangC(A, 59), 0.0845, 3, 'Pw with 59');
});

t.test('closed forms and Erlang B', async (t) => {
  near(t, erlangC(1, 2), 1 / 3, 9, 'C(A=1, n=2)');
  near(t, erlangC(2, 3), 4 / 9, 9, 'C(A=2, n=3)');
  near(t, erlangB(10, 10), 0.2146, 3, 'B(10, 10)');
  near(t, erlangB(1, 1), 0.5, 9, 'B(1, 1) = A/(1+A)');
  t.equal(erlangC(0, 3), 0, 'no traffic, no wait');
  t.equal(erlangC(10, 10), 1, 'n <= A: everybody waits');
  t.equal(serviceLevel(10, 9, 180, 20), 0);
  t.equal(averageSpeedOfAnswer(10, 10, 180), Infinity);
  t.throws(() => erlangC(-1, 3), RangeError);
  t.throws(() => erlangC(1, 2.5), RangeError);
  t.throws(() => serviceLevel(1, 2, 0, 20), RangeError);
});

t.test('large centres: no factorial overflow, 500 agents', async (t) => {
  // recomputed with mpmath: C(400 E, 420) = 0.230285, C(450 E, 500) = 0.0122089
  near(t, erlangC(400, 420), 0.230285, 5, 'C(400, 420)');
  near(t, erlangC(450, 500), 0.0122089, 6, 'C(450, 500)');
  const big = erlangC(2000, 2100);
  t.ok(big > 0 && big < 1, `C(2000, 2100) = ${big} is a probability`);
  const r = agentsNeeded({ callsPerInterval: 4000, intervalSeconds: 1800, ahtSeconds: 200, targetServiceLevel: 0.8, targetSeconds: 20, targetAsaSeconds: 15 });
  t.ok(r.agents > 444 && r.agents < 500, `${r.agents} agents for 444 Erlangs`);
});

t.test('Erlang A against the chain summed in 50-digit arithmetic', async (t) => {
  const lambda = 100 / 1800;
  // [agents, patience, P(wait), P(abandon), mean wait]
  const cases: Array<[number, number, number, number, number, number, number]> = [
    [12, 60, 180, lambda, 0.2404, 0.0759, 4.554],
    [10, 60, 180, lambda, 0.4234, 0.1575, 9.452],
    [8, 60, 180, lambda, 0.6252, 0.2784, 16.701],
    [50, 120, 240, 360 / 1800, 0.3423, 0.048, 5.763],
  ];
  for (const [n, patience, aht, l, pw, pab, w] of cases) {
    const r = erlangA(l, aht, patience, n);
    near(t, r.probWait, pw, 3, `P(wait) n=${n}`);
    near(t, r.probAbandon, pab, 3, `P(abandon) n=${n}`);
    near(t, r.averageWaitSeconds, w, 2, `E[wait] n=${n}`);
    near(t, r.answeredRatio, 1 - pab, 3, `answered n=${n}`);
  }
  // with (nearly) infinite patience Erlang A is Erlang C
  const c = erlangA(lambda, 180, 1e9, 14);
  near(t, c.probWait, erlangC(10, 14), 6, 'A -> C: P(wait)');
  near(t, c.averageWaitSeconds, averageSpeedOfAnswer(10, 14, 180), 4, 'A -> C: ASA');
  // overloaded centres stay finite: callers give up
  const over = erlangA(1, 180, 60, 100);
  t.ok(over.probAbandon > 0.4 && over.probAbandon < 1, `180 E on 100 agents: ${over.probAbandon} abandon`);
  near(t, over.occupancy, 1, 3, 'overloaded agents are always busy');
  const huge = erlangA(3, 200, 90, 500);
  t.ok(Number.isFinite(huge.averageWaitSeconds) && huge.probWait > 0, '600 E on 500 agents computes');
});

t.test('agentsNeeded: the minimum meeting both the service level and the ASA', async (t) => {
  const base = { callsPerInterval: 100, intervalSeconds: 1800, ahtSeconds: 180, targetSeconds: 20 };
  // 80 % in 20 s needs 14 (13 gives 79.6 %); ASA <= 15 s alone would be met by 14 as well (13 gives 17.1 s)
  t.match(agentsNeeded({ ...base, targetServiceLevel: 0.8, targetAsaSeconds: 60 }), { agents: 14, model: 'erlang-c' });
  t.equal(agentsNeeded({ ...base, targetServiceLevel: 0.5, targetAsaSeconds: 15 }).agents, 14, 'the ASA decides');
  t.equal(agentsNeeded({ ...base, targetServiceLevel: 0.5, targetAsaSeconds: 60 }).agents, 12, 'the SL decides (64.0 %)');
  t.equal(agentsNeeded({ ...base, targetServiceLevel: 0.9, targetAsaSeconds: 15 }).agents, 15, '88.8 % < 90 %');
  // every result really meets both, and one agent fewer does not
  for (const calls of [1, 5, 30, 100, 250, 900]) {
    const target = { ...base, callsPerInterval: calls, targetServiceLevel: 0.95, targetAsaSeconds: 15 };
    const r = agentsNeeded(target);
    t.ok(r.serviceLevel >= 0.95 && r.averageSpeedOfAnswerSeconds <= 15, `${calls} calls: ${r.agents} agents meet both`);
    if (r.agents > Math.floor(r.trafficErlangs) + 1) {
      const fewer = evaluateStaffing(target, r.agents - 1);
      t.ok(fewer.serviceLevel < 0.95 || fewer.averageSpeedOfAnswerSeconds > 15, `${calls} calls: ${r.agents - 1} agents do not`);
    }
  }
  t.equal(agentsNeeded({ ...base, callsPerInterval: 0, targetServiceLevel: 0.95, targetAsaSeconds: 15 }).agents, 0, 'no calls, no agents');
  t.equal(agentsNeeded({ ...base, targetServiceLevel: 0.5, targetAsaSeconds: 60, maxOccupancy: 0.7 }).agents, 15, 'occupancy cap: ceil(10/0.7)');
  t.throws(() => agentsNeeded({ ...base, targetServiceLevel: 1.2, targetAsaSeconds: 15 }), RangeError);
});

t.test('agentsNeeded with patience: Erlang A answered ratio and wait', async (t) => {
  const target = { callsPerInterval: 100, intervalSeconds: 1800, ahtSeconds: 180, targetSeconds: 20, targetServiceLevel: 0.95, targetAsaSeconds: 15, patienceSeconds: 60 };
  const r = agentsNeeded(target);
  t.equal(r.model, 'erlang-a');
  t.ok(r.serviceLevel >= 0.95 && r.averageSpeedOfAnswerSeconds <= 15);
  const fewer = evaluateStaffing(target, r.agents - 1);
  t.ok(fewer.serviceLevel < 0.95, `one fewer than ${r.agents} loses more than 5 %`);
  // 12 agents lose 7.6 % of callers with a mean patience of 60 s (table above): 13 are needed
  t.equal(r.agents, 13);
  // monotone in load
  let last = 0;
  for (let calls = 0; calls <= 600; calls += 25) {
    const n = agentsNeeded({ ...target, callsPerInterval: calls }).agents;
    t.ok(n >= last, `${calls} calls: ${n} >= ${last}`);
    last = n;
  }
});
