/**
 * Estimated wait for the caller at `position` (1 = next): the callers ahead are shared among the agents
 * staffed for the queue, each taking about one handle time per call. Deliberately simple and announced
 * only as a range ("under one minute", "one to three minutes", ...), recomputed during the wait.
 */
export function estimateWaitSeconds(position: number, staffedAgents: number, handleSeconds: number): number {
  if (staffedAgents <= 0) return Number.POSITIVE_INFINITY;
  const ahead = Math.max(0, position - 1);
  // the next free agent comes after half a handle time on average; each caller ahead takes one more
  return Math.ceil(((ahead + 0.5) * handleSeconds) / staffedAgents);
}
