/** Every Redis key and every Asterisk object id we name comes from here (STYLE rule 8). */
export function createKeys(prefix: string) {
  return {
    /** live state of one call (hash), expires on its own if the process dies mid-call */
    call: (callId: string) => `${prefix}:call:${callId}`,
    /** ids of the calls currently live in this deployment (set) */
    liveCalls: () => `${prefix}:calls:live`,

    // ACD (src/acd/redis-engine.ts): its Lua scripts build these same names from templates of these builders
    /** an agent's live record (hash: state, reason, since, callId, endpoint, skills JSON); no TTL, rebuilt from PostgreSQL */
    acdAgent: (agentId: string) => `${prefix}:acd:agent:${agentId}`,
    /** ids of the agents that have a live record (set) */
    acdAgents: () => `${prefix}:acd:agents`,
    /** the READY agents having this skill (sorted set; lowest score first = highest level, then longest idle) */
    acdReadyAgents: (skill: string) => `${prefix}:acd:ready:${skill}`,
    /** a queue's waiting calls (sorted set of call ids; lowest score first = highest priority, then earliest) */
    acdWaiting: (queue: string) => `${prefix}:acd:queue:${queue}:waiting`,
    /** one waiting call's WaitingCall JSON (string with a TTL: a call whose process died cannot wait forever) */
    acdWaitingCall: (queue: string, callId: string) => `${prefix}:acd:queue:${queue}:call:${callId}`,
    /** pub/sub channel carrying the id of each agent that has just become ready */
    acdAgentReadyChannel: () => `${prefix}:acd:agent-ready`,

    /** pub/sub channel: the maintenance switches changed in PostgreSQL, every process reloads them */
    maintenanceChannel: () => `${prefix}:maintenance:changed`,
    /** pub/sub channel of the live events every process's WebSocket hub delivers (src/events/bus.ts) */
    eventsChannel: () => `${prefix}:events`,
    /** the same events, several to a message (a JSON array): what this version publishes */
    eventsBatchChannel: () => `${prefix}:events:batch`,
    /** the process that pushes the supervisors' live view this tick (string with a short TTL) */
    liveViewTick: () => `${prefix}:live:tick`,

    // failed sign-ins (src/auth/login-limiter.ts): counters that expire with the window that began at the first failure
    /** failed sign-ins of one user name (string counter with a TTL) */
    loginFailuresUser: (username: string) => `${prefix}:auth:failures:user:${username}`,
    /** failed sign-ins from one client address (string counter with a TTL) */
    loginFailuresAddress: (address: string) => `${prefix}:auth:failures:address:${address}`,

    /** set once in a Redis: when it is missing after a reconnection, Redis restarted empty (src/agents/agent-restore.ts) */
    redisMarker: () => `${prefix}:redis-marker`,

    // active-standby (src/ha/leadership.ts)
    /** the leader's lease: the id of the process that holds the ARI application (string with a TTL) */
    haLease: () => `${prefix}:ha:leader`,
    /** standby processes saying they are there (sorted set: process id -> last round, epoch ms) */
    haStandbys: () => `${prefix}:ha:standbys`,
    /** pub/sub channel: `handover <id>` (take over now), `released <id>` (its records are written) */
    haChannel: () => `${prefix}:ha:events`,

    /** BullMQ's key prefix (src/jobs): every queue's keys are `<prefix>:jobs:<queue>:...` */
    jobs: () => `${prefix}:jobs`,

    /** the daily recordings retention run (src/recordings/retention.ts): held by the process that runs it (SET NX EX) */
    recordingsRetentionLock: () => `${prefix}:recordings:retention-lock`,
    /** a tick of the recordings sweep (src/recordings/sweep.ts): held a little under the interval (SET NX EX) */
    recordingsSweepLock: () => `${prefix}:recordings:sweep-lock`,
    /** a short-lived ticket that lets an <audio> element fetch one recording (src/recordings/audio-tickets.ts); keyed by the ticket's SHA-256 */
    audioTicket: (ticketHash: string) => `${prefix}:recordings:audio-ticket:${ticketHash}`,
  };
}
export type Keys = ReturnType<typeof createKeys>;

/** Asterisk ids: deterministic so that a restarted process can find its objects again */
export const asteriskIds = {
  callBridge: (callId: string) => `call-${callId}`,
  /** where a held caller (or an agent waiting for a caller in a flow) hears music */
  holdBridge: (callId: string) => `hold-${callId}`,
  /** the agent and the party it consults before an attended transfer */
  consultBridge: (callId: string) => `consult-${callId}`,
  agentLeg: (callId: string, attempt: number) => `${callId}-agent-${attempt}`,
  playback: (callId: string, n: number) => `${callId}-pb-${n}`,
  /** the waiting-list entry that keeps a callback's place in its queue */
  callbackStandIn: (callbackId: string) => `callback-${callbackId}`,
  /** the stored recording (Asterisk's file name) of a call's voicemail */
  voicemail: (callId: string) => `vm-${callId}`,
  /** the snoop channel that hears the caller for the call's recording, and the recording's stored name */
  recordingSnoop: (callId: string) => `${callId}-rec`,
  callRecording: (callId: string) => `call-${callId}`,
  /** a supervisor's phone leg, its snoop channel and the bridge joining the two (listen, whisper) */
  monitorLeg: (callId: string, n: number) => `${callId}-sup-${n}`,
  monitorSnoop: (callId: string, n: number, m: number) => `${callId}-spy-${n}-${m}`,
  monitorBridge: (callId: string, n: number) => `monitor-${callId}-${n}`,
};
