/**
 * Dials the callbacks whose place in line has come. A callback accepted in the queue leaves a stand-in
 * in the waiting list (same place); this dialer, in every process, tries to claim an agent for each
 * stand-in exactly as a waiting caller would (the claim is atomic in Redis, so two processes never dial
 * the same callback, and a stand-in gets an agent only when it is first in line for one).
 */
import type { Logger } from 'pino';
import type { AcdEngine } from '../acd/engine.js';
import type { QueuesConfigStore } from '../acd/queues.config.js';
import type { AgentStates } from '../agents/agent-states.js';
import type { CallRouter } from '../calls/calls.stasis.js';
import type { Db } from '../db/db.js';
import { startDialling } from './callbacks.repo.js';
import { CallbackSession, type CallbackSessionDeps } from './callback.session.js';

const STAND_IN = 'callback-';

export function startCallbackDialer(deps: {
  engine: AcdEngine;
  agentStates: AgentStates;
  queues: QueuesConfigStore;
  db: Db;
  router: CallRouter;
  session: Omit<CallbackSessionDeps, 'track' | 'untrack' | 'ended' | 'engine' | 'agentStates' | 'db' | 'log'>;
  log: Logger;
  intervalMs?: number;
}): () => void {
  const log = deps.log.child({ module: 'callback-dialer' });
  let running = false;
  let again = false;

  /** queues a stand-in was seen in at the last full look (stand-ins are put where ticketCallbacks is 'agent' or a callback is offered) */
  let seenIn = new Set<string>();
  let full = true;

  /**
   * every: look at every queue (the 1-second timer); else (an agent is ready, after every call) only at the queues
   * that can hold stand-ins (agent ticket callbacks, a callback offer) or held one at the last full look: a call's
   * end costs one small round trip, not a look at every queue. The waiting ids come in one round trip.
   */
  async function tick(every: boolean): Promise<void> {
    if (every) full = true;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        const all = full;
        full = false;
        const queues = deps.queues.all().filter((q) => all || q.ticketCallbacks === 'agent' || q.callbackOffer || seenIn.has(q.id));
        if (queues.length === 0) continue;
        const ids = await deps.engine.waitingIds(queues.map((q) => q.id));
        if (all) seenIn = new Set(queues.filter((q) => (ids.get(q.id) ?? []).some((id) => id.startsWith(STAND_IN))).map((q) => q.id));
        for (const q of queues) {
          for (const callId of ids.get(q.id) ?? []) {
            if (!callId.startsWith(STAND_IN)) continue;
            const w = { callId };
            const agentId = await deps.engine.claim(q.id, w.callId);
            if (!agentId) continue;
            deps.agentStates.reserved(agentId, w.callId);
            const callbackId = w.callId.slice(STAND_IN.length);
            const job = await startDialling(deps.db, callbackId).catch(() => null);
            const agent = await deps.engine.getAgent(agentId);
            if (!job || !agent) {
              // cancelled meanwhile, or taken by hand: the agent goes back to work
              await deps.agentStates.tryTransition(agentId, 'ready', { expectCallId: w.callId });
              continue;
            }
            log.info({ callbackId, agentId, queue: q.id }, 'callback: its turn has come');
            deps.router.adopt(
              new CallbackSession(
                { ...deps.session, ...deps.router.sessionDeps, engine: deps.engine, agentStates: deps.agentStates, db: deps.db, log: deps.log },
                { kind: 'callback', callbackId, number: job.number, attempts: job.attempts, agentId, endpoint: agent.endpoint, queue: q },
              ),
            );
          }
        }
      } while (again || full);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'callback dialer tick failed');
    } finally {
      running = false;
    }
  }

  const timer = setInterval(() => void tick(true), deps.intervalMs ?? 1000);
  timer.unref();
  const unsubscribe = deps.engine.onAgentReady(() => void tick(false));
  return () => {
    clearInterval(timer);
    unsubscribe();
  };
}
