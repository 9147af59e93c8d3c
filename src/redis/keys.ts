/** Every Redis key and every Asterisk object id we name comes from here (STYLE rule 8). */
export function createKeys(prefix: string) {
  return {
    /** live state of one call (hash), expires on its own if the process dies mid-call */
    call: (callId: string) => `${prefix}:call:${callId}`,
    /** ids of the calls currently live in this deployment (set) */
    liveCalls: () => `${prefix}:calls:live`,
    /** an agent's reservation: holds the call id while the agent's phone rings or talks */
    agentLock: (agentId: string) => `${prefix}:agent:${agentId}:lock`,
  };
}
export type Keys = ReturnType<typeof createKeys>;

/** Asterisk ids: deterministic so that a restarted process can find its objects again */
export const asteriskIds = {
  callBridge: (callId: string) => `call-${callId}`,
  agentLeg: (callId: string, attempt: number) => `${callId}-agent-${attempt}`,
  playback: (callId: string, n: number) => `${callId}-pb-${n}`,
};
