/**
 * Queueing formulas for staffing (pure functions, no I/O).
 *
 * Erlang C (M/M/n): callers wait as long as it takes. Computed through the Erlang B recurrence
 *   B(0) = 1, B(k) = A·B(k-1) / (k + A·B(k-1)),   C(n) = n·B(n) / (n - A·(1 - B(n)))
 * which needs no factorial or power, so it stays exact to double precision for 500+ agents.
 *
 * Erlang A (M/M/n+M, Palm): callers also hang up after an exponentially distributed patience (mean 1/θ).
 * Computed from the birth-death chain's stationary distribution (births λ, deaths min(k,n)·μ + max(k-n,0)·θ),
 * in logarithms and truncated where the tail no longer counts, so it is stable for any size too.
 *
 * Units: traffic in Erlangs (A = λ·AHT), times in seconds.
 */

/** probability that a call has to wait (Erlang C, Pw); 1 when the agents cannot keep up (n <= A) */
export function erlangC(trafficErlangs: number, agents: number): number {
  check(trafficErlangs, agents);
  if (trafficErlangs === 0) return 0;
  if (agents <= trafficErlangs) return 1;
  const b = erlangB(trafficErlangs, agents);
  return (agents * b) / (agents - trafficErlangs * (1 - b));
}

/** blocking probability with no queue (Erlang B), by the recurrence above */
export function erlangB(trafficErlangs: number, agents: number): number {
  check(trafficErlangs, agents);
  let b = 1;
  for (let k = 1; k <= agents; k++) b = (trafficErlangs * b) / (k + trafficErlangs * b);
  return b;
}

/** share of calls answered within targetSeconds (Erlang C): 1 - Pw·e^(-(n-A)·t/AHT); 0 when overloaded */
export function serviceLevel(trafficErlangs: number, agents: number, ahtSeconds: number, targetSeconds: number): number {
  positive(ahtSeconds, 'ahtSeconds');
  if (!(targetSeconds >= 0)) throw new RangeError(`targetSeconds must be >= 0, got ${targetSeconds}`);
  const pw = erlangC(trafficErlangs, agents);
  if (pw === 0) return 1;
  if (agents <= trafficErlangs) return 0;
  return 1 - pw * Math.exp((-(agents - trafficErlangs) * targetSeconds) / ahtSeconds);
}

/** average speed of answer (Erlang C): Pw·AHT/(n-A) seconds; Infinity when overloaded */
export function averageSpeedOfAnswer(trafficErlangs: number, agents: number, ahtSeconds: number): number {
  positive(ahtSeconds, 'ahtSeconds');
  const pw = erlangC(trafficErlangs, agents);
  if (pw === 0) return 0;
  if (agents <= trafficErlangs) return Infinity;
  return (pw * ahtSeconds) / (agents - trafficErlangs);
}

export interface ErlangAResult {
  /** probability that a caller waits at all */
  probWait: number;
  /** share of callers who hang up while waiting */
  probAbandon: number;
  /** 1 - probAbandon */
  answeredRatio: number;
  /** mean time in queue over all callers (abandoning ones until they hang up), seconds: Lq/λ */
  averageWaitSeconds: number;
  /** mean number of callers waiting */
  meanQueueLength: number;
  /** agents' busy share */
  occupancy: number;
}

/**
 * Erlang A: n agents, Poisson arrivals (callsPerSecond), exponential handling (ahtSeconds) and exponential
 * patience (patienceSeconds, its mean). Stable for any load (callers who run out of patience leave).
 * P(abandon) = θ·E[Lq]/λ (each waiting caller leaves at rate θ), E[wait] = E[Lq]/λ (Little).
 */
export function erlangA(callsPerSecond: number, ahtSeconds: number, patienceSeconds: number, agents: number): ErlangAResult {
  positive(ahtSeconds, 'ahtSeconds');
  positive(patienceSeconds, 'patienceSeconds');
  if (!(callsPerSecond >= 0) || !Number.isFinite(callsPerSecond)) throw new RangeError(`callsPerSecond must be >= 0, got ${callsPerSecond}`);
  check(0, agents);
  if (callsPerSecond === 0) return { probWait: 0, probAbandon: 0, answeredRatio: 1, averageWaitSeconds: 0, meanQueueLength: 0, occupancy: 0 };
  const lambda = callsPerSecond;
  const mu = 1 / ahtSeconds;
  const theta = 1 / patienceSeconds;
  // log of the unnormalised stationary probabilities p_k = p_(k-1)·λ/death(k), kept relative to the largest
  const logs: number[] = [0];
  const logLambda = Math.log(lambda);
  let log = 0;
  let max = 0;
  for (let k = 1; ; k++) {
    const death = Math.min(k, agents) * mu + Math.max(k - agents, 0) * theta;
    log += logLambda - Math.log(death);
    logs.push(log);
    if (log > max) max = log;
    // past the mode (ratio < 1) and negligible next to the largest term: the rest of the tail adds nothing
    if (k > agents && lambda < death && log - max < -50) break;
    if (k > agents + 10_000_000) throw new RangeError('erlangA: the chain does not converge');
  }
  let total = 0;
  let waiting = 0;
  let queue = 0;
  let busy = 0;
  for (let k = 0; k < logs.length; k++) {
    const p = Math.exp(logs[k]! - max);
    total += p;
    if (k >= agents) waiting += p;
    if (k > agents) queue += (k - agents) * p;
    busy += Math.min(k, agents) * p;
  }
  const meanQueueLength = queue / total;
  const probAbandon = Math.min(1, (theta * meanQueueLength) / lambda);
  return {
    probWait: waiting / total,
    probAbandon,
    answeredRatio: 1 - probAbandon,
    averageWaitSeconds: meanQueueLength / lambda,
    meanQueueLength,
    occupancy: agents === 0 ? 0 : busy / total / agents,
  };
}

export interface StaffingTarget {
  /** calls offered to agents in the interval */
  callsPerInterval: number;
  intervalSeconds: number;
  ahtSeconds: number;
  /**
   * the share that must be met: with patienceSeconds, the answered ratio (Erlang A, the contract's answer rate);
   * without, the share answered within targetSeconds (Erlang C service level)
   */
  targetServiceLevel: number;
  /** the answer-time threshold of the Erlang C service level (unused with patienceSeconds) */
  targetSeconds: number;
  /** the average speed of answer must not exceed this */
  targetAsaSeconds: number;
  /** mean caller patience: when given, Erlang A (callers abandon) is used instead of Erlang C */
  patienceSeconds?: number;
  /** agents' busy share must not exceed this (e.g. 0.85): at least ceil(A / maxOccupancy) agents */
  maxOccupancy?: number;
  /** stop searching here (default 10 000) */
  maxAgents?: number;
}

export interface StaffingResult {
  agents: number;
  trafficErlangs: number;
  /** Erlang C: answered within targetSeconds; Erlang A: answered ratio */
  serviceLevel: number;
  averageSpeedOfAnswerSeconds: number;
  occupancy: number;
  model: 'erlang-c' | 'erlang-a';
}

/** the performance of a given number of agents under a target's model */
export function evaluateStaffing(t: StaffingTarget, agents: number): StaffingResult {
  const traffic = (t.callsPerInterval * t.ahtSeconds) / t.intervalSeconds;
  if (t.patienceSeconds !== undefined) {
    const r = erlangA(t.callsPerInterval / t.intervalSeconds, t.ahtSeconds, t.patienceSeconds, agents);
    return { agents, trafficErlangs: traffic, serviceLevel: r.answeredRatio, averageSpeedOfAnswerSeconds: r.averageWaitSeconds, occupancy: r.occupancy, model: 'erlang-a' };
  }
  return {
    agents,
    trafficErlangs: traffic,
    serviceLevel: serviceLevel(traffic, agents, t.ahtSeconds, t.targetSeconds),
    averageSpeedOfAnswerSeconds: averageSpeedOfAnswer(traffic, agents, t.ahtSeconds),
    occupancy: agents === 0 ? 0 : Math.min(1, traffic / agents),
    model: 'erlang-c',
  };
}

/**
 * The fewest agents meeting BOTH the service level and the average speed of answer (and the occupancy cap,
 * if any). Both measures improve with every added agent, so the first n that passes is the minimum.
 */
export function agentsNeeded(t: StaffingTarget): StaffingResult {
  if (!(t.callsPerInterval >= 0) || !Number.isFinite(t.callsPerInterval)) throw new RangeError(`callsPerInterval must be >= 0, got ${t.callsPerInterval}`);
  positive(t.intervalSeconds, 'intervalSeconds');
  positive(t.ahtSeconds, 'ahtSeconds');
  if (!(t.targetServiceLevel > 0 && t.targetServiceLevel < 1)) throw new RangeError(`targetServiceLevel must be between 0 and 1 (exclusive), got ${t.targetServiceLevel}`);
  if (!(t.targetAsaSeconds > 0)) throw new RangeError(`targetAsaSeconds must be > 0, got ${t.targetAsaSeconds}`);
  if (t.maxOccupancy !== undefined && !(t.maxOccupancy > 0 && t.maxOccupancy <= 1)) throw new RangeError(`maxOccupancy must be in (0, 1], got ${t.maxOccupancy}`);
  if (t.callsPerInterval === 0) return evaluateStaffing(t, 0);
  const traffic = (t.callsPerInterval * t.ahtSeconds) / t.intervalSeconds;
  const maxAgents = t.maxAgents ?? 10_000;
  // Erlang C is only stable above the traffic; with abandonment, answering a share s of the calls keeps at least
  // s·A agents busy, so fewer than floor(s·A) cannot do; a cap on occupancy raises the floor further
  const floor = t.patienceSeconds === undefined ? Math.floor(traffic) + 1 : Math.floor(traffic * t.targetServiceLevel);
  let n = Math.max(1, floor, t.maxOccupancy ? Math.ceil(traffic / t.maxOccupancy - 1e-9) : 0);
  for (; n <= maxAgents; n++) {
    const r = evaluateStaffing(t, n);
    if (r.serviceLevel >= t.targetServiceLevel && r.averageSpeedOfAnswerSeconds <= t.targetAsaSeconds) return r;
  }
  throw new RangeError(`agentsNeeded: more than ${maxAgents} agents would be needed`);
}

function check(traffic: number, agents: number): void {
  if (!(traffic >= 0) || !Number.isFinite(traffic)) throw new RangeError(`traffic must be a finite number >= 0, got ${traffic}`);
  if (!Number.isInteger(agents) || agents < 0) throw new RangeError(`agents must be a whole number >= 0, got ${agents}`);
}

function positive(v: number, name: string): void {
  if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`${name} must be a finite number > 0, got ${v}`);
}
