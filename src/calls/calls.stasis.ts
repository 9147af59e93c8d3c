/**
 * Routes ARI events to call sessions. The dialplan hands every call to Stasis(hotline, <role>, ...):
 * - `inbound`: a citizen's call; a new CallSession runs it;
 * - `agent,<callId>`: an agent's phone we originated has answered;
 * - `monitor,<callId>`: a supervisor's phone answered (listen, whisper, barge);
 * - `snoop,<callId>`: a snoop channel the call created (its recording, a supervisor's listening).
 * Anything else is hung up: a channel in our application that nobody owns would be a stuck caller.
 */
import type { Logger } from 'pino';
import { ignoreGone, type AriEvent, type AriPort } from '../ari/port.js';
import { asteriskIds } from '../redis/keys.js';
import { CallSession, type ChannelOwner, type SessionDeps } from './call.session.js';

export type RouterDeps = Omit<SessionDeps, 'track' | 'untrack' | 'ended' | 'ari'> & { ari: AriPort; log: Logger };

export interface CallRouter {
  readonly active: number;
  handle(event: AriEvent): void;
  /** after the event socket came back: finish sessions whose channels vanished while we were deaf */
  resync(): Promise<void>;
  /** stop taking new calls; wait (bounded) for record writes of live calls */
  drain(timeoutMs: number): Promise<void>;
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

  function handle(event: AriEvent): void {
    switch (event.type) {
      case 'StasisStart': {
        const [role, arg] = event.args;
        if (role === 'inbound') {
          if (draining) return refuse(event.channel.id, 'service stopping');
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
            .catch((err: Error) => log.error({ err: err.message, recording: event.name }, 'call recording not indexed'));
          return;
        }
        byChannel.get(channelId)?.onRecordingDone?.(event.name, result);
        return;
      }
      default:
        return;
    }
  }

  async function resync(): Promise<void> {
    if (byChannel.size === 0) return;
    const alive = new Set((await deps.ari.channels.list()).map((c) => c.id));
    for (const [channelId, session] of byChannel) {
      if (!alive.has(channelId)) session.onChannelGone(channelId, 'vanished while ARI was disconnected');
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
    get: (id) => byId.get(id),
    adopt(owner) {
      byId.set(owner.id, owner);
      void owner.run();
    },
    sessionDeps: { track: sessionDeps.track, untrack: sessionDeps.untrack, ended: sessionDeps.ended },
  };
}
