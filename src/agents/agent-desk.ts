/**
 * The agent desktop's session with the ACD: signing in (POST /api/v1/auth/login) puts an agent in the ACD as
 * not ready and records the extension of the phone in front of it (agents.desk_extension: its current desk;
 * it does not change the provisioned phone the ACD rings), signing out takes it out of the ACD, and the
 * desktop's "today" panel (the agent's queues, its answered calls and talk time today).
 */
import { sql } from 'kysely';
import type { AcdEngine, AgentLive } from '../acd/engine.js';
import type { QueueConfig, QueuesConfigStore } from '../acd/queues.config.js';
import type { Db } from '../db/db.js';
import { AppError } from '../shared/errors.js';
import { IllegalAgentTransition } from './agent.state.js';
import type { AgentStates } from './agent-states.js';

export interface AgentToday {
  queues: Array<{ name: string; title: string; waiting: number; longestWaitSeconds: number }>;
  answered: number;
  talkSeconds: number;
  state: { state: string; reason: string | null; since: string; callId: string | null };
  extension: string | null;
}

export interface AgentDesk {
  /**
   * A user with an agent record signed in: a signed-out agent joins the ACD as not_ready ('signed-in'); one
   * already signed in (another desk, another tab) keeps its state. The extension, when given, is its desk now.
   */
  signIn(agentId: string, extension: string | undefined, actor: string): Promise<void>;
  /** the agent's own sign-out: logged_out ('signed-out'), desk cleared; 409 on-call while it has a call */
  signOut(agentId: string, actor: string): Promise<void>;
  /** null when the ACD does not know the agent */
  today(agentId: string): Promise<AgentToday | null>;
}

/** reserved for a call, talking, or on an outbound call: signing out would drop a citizen */
export const onACall = (a: AgentLive) => a.state === 'reserved' || a.state === 'on_call' || (a.state === 'outbound' && a.callId !== null);

/** the agent may be offered this queue's calls at some stage of their wait */
const mayServe = (q: QueueConfig, a: AgentLive) => q.stages.some((s) => s.needs.some((n) => (a.skills[n.skill] ?? 0) >= n.minLevel));

const onCall = (agentId: string) => new AppError(409, 'on-call', `agent ${agentId} is on a call: sign out after it (a supervisor can force it: PUT /api/v1/agents/${agentId}/state)`);

export function createAgentDesk(deps: { db: Db; engine: AcdEngine; agentStates: AgentStates; queues: QueuesConfigStore }): AgentDesk {
  const { db, engine, agentStates } = deps;
  return {
    async signIn(agentId, extension, actor) {
      const live = await engine.getAgent(agentId);
      if (!live) return; // an account for an agent the ACD does not know (deleted): nothing to sign in to
      if (live.state === 'logged_out') {
        // two sign-ins racing: the second finds the agent signed in already, which is what it wanted
        await agentStates.transition(agentId, 'not_ready', { reason: 'signed-in', actor }).catch((err: unknown) => {
          if (!(err instanceof IllegalAgentTransition)) throw err;
        });
      }
      if (extension !== undefined) await db.updateTable('agents').set({ desk_extension: extension }).where('employee_no', '=', agentId).execute();
    },

    async signOut(agentId, actor) {
      const live = await engine.getAgent(agentId);
      if (live && live.state !== 'logged_out') {
        if (onACall(live)) throw onCall(agentId);
        try {
          await agentStates.transition(agentId, 'logged_out', { reason: 'signed-out', actor });
        } catch (err) {
          // reserved for a call since we looked (reserved -> logged_out is not a move)
          if (err instanceof IllegalAgentTransition) throw onCall(agentId);
          throw err;
        }
      }
      await db.updateTable('agents').set({ desk_extension: null }).where('employee_no', '=', agentId).execute();
    },

    async today(agentId) {
      const live = await engine.getAgent(agentId);
      if (!live) return null;
      const now = Date.now();
      const mine = deps.queues.all().filter((q) => mayServe(q, live));
      const [queues, counts, row] = await Promise.all([
        Promise.all(
          mine.map(async (q) => {
            const waiting = await engine.waiting(q.id);
            return {
              name: q.id,
              title: q.name,
              waiting: waiting.length,
              longestWaitSeconds: waiting.length ? Math.max(0, Math.round((now - Math.min(...waiting.map((w) => w.enqueuedAt))) / 1000)) : 0,
            };
          }),
        ),
        // today in Asia/Shanghai; talk_seconds is the call's (a transferred call counts for each agent in it)
        sql<{ answered: number; talk: number }>`
          select count(*)::int as answered, coalesce(sum(talk_seconds), 0)::float8 as talk
          from calls
          where agents @> array[${agentId}]::text[]
            and answered_at >= (date_trunc('day', now() at time zone 'Asia/Shanghai') at time zone 'Asia/Shanghai')`.execute(db),
        db.selectFrom('agents').select('desk_extension').where('employee_no', '=', agentId).executeTakeFirst(),
      ]);
      return {
        queues,
        answered: counts.rows[0]?.answered ?? 0,
        talkSeconds: Math.round(counts.rows[0]?.talk ?? 0),
        state: { state: live.state, reason: live.reason, since: new Date(live.since).toISOString(), callId: live.callId },
        extension: row?.desk_extension ?? null,
      };
    },
  };
}
