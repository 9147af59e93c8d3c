/**
 * Routes ARI events to call sessions. The dialplan hands every call to Stasis(hotline, <role>, ...):
 * - `inbound`: a citizen's call; a new CallSession runs it;
 * - `agent,<callId>`: an agent's phone we originated has answered;
 * - `monitor,<callId>`: a supervisor's phone answered (listen, whisper, barge);
 * - `snoop,<callId>`: a snoop channel the call created (its recording, a supervisor's listening).
 * Anything else is hung up: a channel in our application that nobody owns would be a stuck caller.
 */
import type { Logger } from 'pino';
import type { AgentLive } from '../acd/engine.js';
import { ignoreGone, type AriEvent, type AriPort } from '../ari/port.js';
import { asteriskIds } from '../redis/keys.js';
import { AdoptedCall } from './adopted-call.js';
import { CallSession, type ResumeState, type ChannelOwner, type SessionDeps } from './call.session.js';

export type RouterDeps = Omit<SessionDeps, 'track' | 'untrack' | 'ended' | 'ari'> & { ari: AriPort; log: Logger };

export interface CallRouter {
  readonly active: number;
  handle(event: AriEvent): void;
  /** after the event socket came back: finish sessions whose channels vanished while we were deaf */
  resync(): Promise<void>;
  /** stop taking new calls (they go to the dialplan's fallback); wait (bounded) for record writes of live calls */
  drain(timeoutMs: number): Promise<void>;
  /** wait (bounded) until this process has no call left; true when none is left */
  idle(timeoutMs: number): Promise<boolean>;
  get(callId: string): ChannelOwner | undefined;
  /** run a call this process started itself (a callback), routing its channels' events to it */
  adopt(owner: ChannelOwner & { run(): Promise<void> }): void;
  /** what a session needs to register its channels (for sessions started outside the router) */
  readonly sessionDeps: Pick<SessionDeps, 'track' | 'untrack' | 'ended'>;
}

const isCallRecording = (name: string) => name.startsWith(asteriskIds.callRecording(''));

export function createCallRouter(deps: RouterDeps): CallRouter {
  const byChannel = new Map<string, ChannelOwner>();
  const byId = new Map<string, ChannelOwner>();
  const log = deps.log.child({ module: 'calls' });
  let draining = false;
  let reconciling: Promise<void> | null = null;

  const sessionDeps: SessionDeps = {
    ...deps,
    track: (channelId, session) => byChannel.set(channelId, session),
    untrack: (channelId) => byChannel.delete(channelId),
    ended: (session) => byId.delete(session.id),
  };

  function refuse(channelId: string, why: string): void {
    log.warn({ channelId, why }, 'hanging up a channel nobody owns');
    ignoreGone(deps.ari.channels.hangup(channelId, 'normal')).catch((err) => log.warn({ err }, 'hangup failed'));
  }

  /** a new caller while this process stops: the dialplan's fallback serves it ([stasis-fallback], HOTLINE_FALLBACK) */
  function toFallback(channelId: string): void {
    log.warn({ channelId }, 'service stopping: new call handed to the dialplan fallback');
    deps.ari.channels
      .setVariable(channelId, 'HOTLINE_FALLBACK', '1')
      .then(() => deps.ari.channels.continueInDialplan(channelId))
      .catch((err: Error) => {
        log.warn({ channelId, err: err.message }, 'could not hand a new call to the fallback; hanging up');
        refuse(channelId, 'service stopping');
      });
  }

  function handle(event: AriEvent): void {
    switch (event.type) {
      case 'StasisStart': {
        const [role, arg] = event.args;
        if (role === 'inbound') {
          if (draining) return toFallback(event.channel.id);
          const session = new CallSession(sessionDeps, event.channel, event.at);
          byId.set(session.id, session);
          void session.run();
        } else if (role === 'snoop' && arg) {
          // created by the session itself (recording, monitoring): it may use the channel now
          const session = byId.get(arg);
          if (!session) refuse(event.channel.id, 'a snoop for a call that has gone');
          else session.onSnoopStarted?.(event.channel.id);
        } else if ((role === 'agent' || role === 'callback' || role === 'monitor') && arg) {
          // a leg we originated has answered
          const session = byId.get(arg);
          if (!session || !session.onAnswered(event.channel)) refuse(event.channel.id, 'a leg answered for a call that has gone');
        } else {
          refuse(event.channel.id, `unknown Stasis role ${String(role)}`);
        }
        return;
      }
      case 'StasisEnd':
        byChannel.get(event.channel.id)?.onChannelGone(event.channel.id, 'stasis end');
        return;
      case 'ChannelDestroyed':
        byChannel.get(event.channel.id)?.onChannelGone(event.channel.id, event.causeText);
        return;
      case 'ChannelHangupRequest':
        // the far end hung up (a BYE): told before the playback it cuts short ends and before StasisEnd
        if (!event.soft) byChannel.get(event.channel.id)?.onHangupRequested?.(event.channel.id);
        return;
      case 'ChannelDtmfReceived':
        byChannel.get(event.channel.id)?.onDtmf(event.digit);
        return;
      case 'PlaybackFinished': {
        const channelId = event.targetUri.startsWith('channel:') ? event.targetUri.slice('channel:'.length) : '';
        byChannel.get(channelId)?.onPlaybackFinished(event.playbackId);
        return;
      }
      case 'RecordingFinished':
      case 'RecordingFailed': {
        const channelId = event.targetUri.startsWith('channel:') ? event.targetUri.slice('channel:'.length) : '';
        const result = event.type === 'RecordingFinished' ? { ok: true, durationSeconds: event.durationSeconds } : { ok: false, durationSeconds: 0, cause: event.cause };
        if (deps.callRecordings && isCallRecording(event.name)) {
          // a call's recording ends with the caller, often after its session finished: indexed apart from it
          const endedAt = new Date(event.at);
          const sink = deps.callRecordings;
          (result.ok || !sink.failed ? sink.finished(event.name, { endedAt, durationSeconds: result.ok ? result.durationSeconds : null }) : sink.failed(event.name, { endedAt, cause: result.cause ?? 'failed' }))
            // its row not in yet (queued in the record outbox), PostgreSQL away: the recordings sweep finishes it
            .catch((err: Error) => log.warn({ err: err.message, recording: event.name }, 'call recording not finished now: the recordings sweep will'));
          return;
        }
        byChannel.get(channelId)?.onRecordingDone?.(event.name, result);
        return;
      }
      default:
        return;
    }
  }

  /**
   * After every (re)connection: what Asterisk has against what this process owns. Our channels that vanished
   * while we were deaf end their sessions; calls another process left (it died) are taken over: a connected
   * call is adopted (watched to its end, record closed, agents released), a caller in a queue goes back to
   * its place, one in a menu hears the menu again, an answered one gets the survey; legs and snoops and
   * bridges nobody owns any more are cleaned away.
   */
  async function resync(): Promise<void> {
    if (reconciling) return reconciling;
    reconciling = reconcile().finally(() => (reconciling = null));
    return reconciling;
  }

  async function reconcile(): Promise<void> {
    // only the channels known before the lists are asked for can be missing from them: a caller whose StasisStart
    // arrives while the lists are on their way (new calls keep coming during a hand-over) is not in them, and alive
    const known = [...byChannel];
    const [channels, bridges] = await Promise.all([deps.ari.channels.list(), deps.ari.bridges.list()]);
    const alive = new Map(channels.map((c) => [c.id, c]));
    for (const [channelId, session] of known) {
      if (!alive.has(channelId) && byChannel.get(channelId) === session) session.onChannelGone(channelId, 'vanished while ARI was disconnected');
    }
    const bridgeOf = new Map<string, { id: string; channels: string[] }>();
    for (const b of bridges) for (const c of b.channels) bridgeOf.set(c, b);
    const open = await deps.db
      .selectFrom('calls')
      .select(['id', 'channel_id', 'direction', 'language', 'queue', 'queued_at', 'answered_at', 'arrived_at', 'agents', 'ivr_path'])
      .where('ended_at', 'is', null)
      .where('arrived_at', '>', new Date(Date.now() - 12 * 3600_000))
      .execute();
    const handled = new Set<string>();
    /** channels of the calls taken over here: they may hang up before they are tracked (checked again at the end) */
    const taken = new Set<string>();
    const callOf = (channelId: string) => /^([0-9a-f-]{36})-/.exec(channelId)?.[1] ?? null;
    // the agents as they were when the dead process left them, read once (only when a call is taken over)
    let agentsThen: Promise<AgentLive[]> | null = null;
    const agentsLeft = () => (agentsThen ??= deps.engine.listAgents().catch(() => []));
    for (const call of open) {
      if (byId.has(call.id)) continue;
      const own = channels.filter((c) => c.id === call.channel_id || callOf(c.id) === call.id);
      for (const c of own) handled.add(c.id);
      const callBridges = bridges.filter((b) => [`call-${call.id}`, `hold-${call.id}`, `consult-${call.id}`].includes(b.id) || b.id.startsWith(`monitor-${call.id}`));
      const people = own.filter((c) => c.id === call.channel_id || /-(agent-\d+|citizen)$/.test(c.id));
      const snoops = own.filter((c) => !people.includes(c));
      const caller = alive.get(call.channel_id);
      const log1 = log.child({ callId: call.id });
      if (people.length >= 2 && people.every((p) => bridgeOf.get(p.id)?.id === `call-${call.id}`)) {
        // connected: they talk on; watch the call to its end
        const adopted = new AdoptedCall(
          { ...sessionDeps, ari: deps.ari, log: deps.log },
          {
            id: call.id,
            bridges: callBridges.map((b) => b.id),
            members: people.map((p) => p.id),
            others: snoops.map((c) => c.id),
            answeredAt: call.answered_at,
            arrivedAt: call.arrived_at,
            queue: call.queue,
            citizenChannelId: (call.direction === 'inbound' ? people.find((p) => p.id === call.channel_id) : people.find((p) => p.id.endsWith('-citizen')))?.id ?? null,
            direction: call.direction === 'inbound' ? 'inbound' : 'outbound',
          },
        );
        byId.set(call.id, adopted);
        adopted.start();
        for (const p of people) taken.add(p.id);
        continue;
      }
      // not connected: the legs and snoops of the dead process go, the caller (if still there) is taken over
      for (const c of own) if (c.id !== call.channel_id) await ignoreGone(deps.ari.channels.hangup(c.id, 'normal')).catch(() => undefined);
      for (const b of callBridges) if (!b.id.startsWith('call-') || !caller) await ignoreGone(deps.ari.bridges.destroy(b.id)).catch(() => undefined);
      if (!caller || call.direction !== 'inbound') {
        if (caller) await ignoreGone(deps.ari.channels.hangup(caller.id, 'normal')).catch(() => undefined);
        log1.warn({ callerThere: Boolean(caller) }, 'closing a call its process left behind');
        await closeLost(call.id, call.answered_at, call.arrived_at, call.queued_at, await agentsLeft()).catch((err) => log1.error({ err: (err as Error).message }, 'could not close a lost call record'));
        continue;
      }
      // an agent the dead process reserved (its phone rang) or put on this call is free again: its leg is gone,
      // and nobody else would release it while the call lives on (the sweeper leaves agents of live calls alone)
      await freeAgentsOf(call.id, await agentsLeft());
      const live = await deps.redis.hgetall(deps.keys.call(call.id)).catch(() => ({}) as Record<string, string>);
      const waitingIn = call.answered_at ? null : (call.queue ?? live.queue ?? null);
      const session = new CallSession(sessionDeps, caller, caller.createdAt, {
        callId: call.id,
        arrivedAt: call.arrived_at,
        language: (call.language ?? 'zh') as ResumeState['language'],
        queue: waitingIn,
        queuedAt: call.queued_at ? call.queued_at.getTime() : live.queuedAt ? Date.parse(live.queuedAt) : null,
        priority: 0,
        ivrPath: call.ivr_path ?? [],
        answered: call.answered_at !== null,
        answeredAt: call.answered_at,
        agents: call.agents ?? [],
        bridgeExists: bridges.some((b) => b.id === `call-${call.id}` && b.channels.includes(caller.id)),
      });
      byId.set(session.id, session);
      void session.run();
      taken.add(caller.id);
    }
    // leftovers nobody owns: legs and snoops of calls that are over, empty bridges
    for (const c of channels) {
      if (handled.has(c.id) || byChannel.has(c.id)) continue;
      const callId = callOf(c.id);
      if (callId && !byId.has(callId)) {
        log.warn({ channelId: c.id }, 'hanging up a leg left by a call that is over');
        await ignoreGone(deps.ari.channels.hangup(c.id, 'normal')).catch(() => undefined);
      }
    }
    for (const b of bridges) {
      if (b.channels.length > 0) continue;
      const m = /^(?:call|hold|consult|monitor)-([0-9a-f-]{36})/.exec(b.id);
      if (m && byId.has(m[1]!)) continue;
      await ignoreGone(deps.ari.bridges.destroy(b.id)).catch(() => undefined);
    }
    // a channel taken over that hung up between the list above and its tracking: its StasisEnd found nobody
    // (an adopted call would wait for it for ever, its record open): what Asterisk no longer has is gone
    if (taken.size > 0) {
      const still = new Set((await deps.ari.channels.list()).map((c) => c.id));
      for (const channelId of taken) {
        if (still.has(channelId)) continue;
        log.info({ channelId }, 'a channel taken over hung up during the reconciliation');
        byChannel.get(channelId)?.onChannelGone(channelId, 'hung up during the reconciliation');
      }
    }
  }

  /** a call whose caller left while no process watched: closed as it stood (answered, or abandoned) */
  async function closeLost(callId: string, answeredAt: Date | null, arrivedAt: Date, queuedAt: Date | null, agents: AgentLive[]): Promise<void> {
    const now = new Date();
    await deps.db.insertInto('call_events').values({ call_id: callId, at: now, type: 'ended', data: JSON.stringify({ by: 'system', lost: true }) }).execute();
    await deps.db
      .updateTable('calls')
      .set({
        ended_at: now,
        disposition: answeredAt ? 'answered' : queuedAt ? 'abandoned' : 'failed',
        end_reason: 'lost',
        wait_seconds: ((answeredAt ?? now).getTime() - arrivedAt.getTime()) / 1000,
        ...(answeredAt ? { talk_seconds: (now.getTime() - answeredAt.getTime()) / 1000 } : {}),
      })
      .where('id', '=', callId)
      .where('ended_at', 'is', null)
      .execute();
    await freeAgentsOf(callId, agents, true);
  }

  /** agents held for a call whose legs are gone back to ready: reserved for it or on it (and in its wrap-up when the call is over) */
  async function freeAgentsOf(callId: string, agents: AgentLive[], wrapUpToo = false): Promise<void> {
    for (const a of agents) {
      if (a.callId !== callId || !(a.state === 'reserved' || a.state === 'on_call' || (wrapUpToo && a.state === 'wrap_up'))) continue;
      log.info({ callId, agentId: a.agentId, state: a.state }, 'agent held by a call taken over: free again');
      await deps.agentStates.tryTransition(a.agentId, 'ready', { expectCallId: callId, reason: null, actor: 'system:takeover' }).catch(() => undefined);
    }
  }

  async function drain(timeoutMs: number): Promise<void> {
    draining = true;
    const writes = Promise.all([...byId.values()].map((s) => s.flushed()));
    await Promise.race([writes, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  return {
    get active() {
      return byId.size;
    },
    handle,
    resync,
    drain,
    async idle(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (byId.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200).unref());
      return byId.size === 0;
    },
    get: (id) => byId.get(id),
    adopt(owner) {
      byId.set(owner.id, owner);
      void owner.run();
    },
    sessionDeps: { track: sessionDeps.track, untrack: sessionDeps.untrack, ended: sessionDeps.ended },
  };
}
