/**
 * One inbound call, from StasisStart to the last record update.
 *
 * The hard-wired first flow (the IVR and ACD issues replace the wiring, not the session):
 * answer -> Mandarin welcome menu (1 consultation, 2 complaints -> general; 9 English -> en) ->
 * caller in a mixing bridge with music on hold -> ring the longest-idle free agent (originate) ->
 * agent answers -> agent joins the bridge -> whoever hangs up first ends the call for both.
 *
 * ARI events reach the session through the on*() methods (the router routes them by channel id);
 * the flow waits on its own fields with waitFor(), always with a timeout.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AgentPool } from '../acd/agent-pool.js';
import type { AgentEndpoint } from '../config/env.js';
import type { Db } from '../db/db.js';
import type { CallUpdate } from '../db/database.js';
import { AriGone, ignoreGone, type AriPort, type ChannelInfo } from '../ari/port.js';
import { asteriskIds, type Keys } from '../redis/keys.js';
import { normalizePhone } from '../shared/phone.js';
import { addCallAgent, appendCallEvent, insertCall, updateCall } from './calls.repo.js';
import { dispositionOnEnd, transition, type CallEvent, type CallState } from './call.state.js';

export interface SessionDeps {
  ari: Pick<AriPort, 'channels' | 'bridges' | 'playbacks'>;
  db: Db;
  redis: Redis;
  keys: Keys;
  agents: AgentPool;
  agentRingSeconds: number;
  log: Logger;
  /** the router maps ARI events of this channel to this session */
  track(channelId: string, session: CallSession): void;
  untrack(channelId: string): void;
  ended(session: CallSession): void;
}

/** hard-wired main menu of 12345 until the IVR issue reads it from config/ivr */
const MENU: Record<string, { queue: string; label: string }> = {
  '1': { queue: 'general', label: 'consultation' },
  '2': { queue: 'general', label: 'complaint' },
  '9': { queue: 'en', label: 'english' },
};
const MENU_ATTEMPTS = 3;
const DIGIT_TIMEOUT_MS = 5000;
const PROMPT_MAX_MS = 60_000;
const NO_AGENT_POLL_MS = 1000;
const LIVE_TTL_S = 6 * 3600;
const TALK_LOCK_MS = 4 * 3600 * 1000;

type PromptResult = { status: 'matched'; digit: string } | { status: 'timeout' } | { status: 'hangup' } | { status: 'failed' };

interface AgentLeg {
  agent: AgentEndpoint;
  channelId: string;
  answered: boolean;
  gone: boolean;
}

export class CallSession {
  readonly id = randomUUID();
  readonly callerChannelId: string;
  readonly log: Logger;
  state: CallState = 'arrived';

  private readonly caller: string;
  private readonly dialed: string;
  private readonly arrivedAt: Date;
  private readonly bridgeId: string;
  private callerGone = false;
  private endedBy: 'caller' | 'agent' | 'system' | null = null;
  private readonly digits: string[] = [];
  private readonly finishedPlaybacks = new Set<string>();
  private playbackSeq = 0;
  private agentAttempt = 0;
  private leg: AgentLeg | null = null;
  private answeredAt: Date | null = null;
  private offeredAt: Date | null = null;
  private bridgeCreated = false;
  private readonly waiters = new Set<() => void>();
  private writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: SessionDeps,
    channel: ChannelInfo,
    at: string,
  ) {
    this.callerChannelId = channel.id;
    this.caller = normalizePhone(channel.callerNumber) ?? (channel.callerNumber || 'anonymous');
    this.dialed = normalizePhone(channel.dialedExten) ?? channel.dialedExten;
    const parsed = new Date(at);
    this.arrivedAt = Number.isNaN(parsed.getTime()) ? new Date() : parsed;
    this.bridgeId = asteriskIds.callBridge(this.id);
    this.log = deps.log.child({ callId: this.id, caller: this.caller, dnis: this.dialed, line: this.dialed });
  }

  // ---- inputs from the router -------------------------------------------------------------

  onDtmf(digit: string): void {
    this.digits.push(digit);
    this.wake();
  }

  onPlaybackFinished(playbackId: string): void {
    this.finishedPlaybacks.add(playbackId);
    this.wake();
  }

  /** the channel left our application (hung up, or never answered) */
  onChannelGone(channelId: string, cause?: string): void {
    if (channelId === this.callerChannelId && !this.callerGone) {
      this.callerGone = true;
      this.endedBy ??= 'caller';
      this.log.info({ cause }, 'caller hung up');
    } else if (this.leg && channelId === this.leg.channelId && !this.leg.gone) {
      this.leg.gone = true;
      if (this.leg.answered) this.endedBy ??= 'agent';
      this.log.info({ agentId: this.leg.agent.agentId, cause }, this.leg.answered ? 'agent hung up' : 'agent leg ended unanswered');
    }
    this.wake();
  }

  /** the agent's phone answered: the originated channel entered Stasis. false when not expected. */
  onAgentAnswered(channel: ChannelInfo): boolean {
    if (!this.leg || this.leg.channelId !== channel.id || this.leg.gone || this.callerGone) return false;
    this.leg.answered = true;
    this.wake();
    return true;
  }

  // ---- the flow -----------------------------------------------------------------------------

  async run(): Promise<void> {
    this.deps.track(this.callerChannelId, this);
    this.log.info('call arrived');
    this.persist('insert call', (db) =>
      insertCall(db, {
        id: this.id,
        direction: 'inbound',
        caller: this.caller,
        dialed: this.dialed,
        line: this.dialed,
        language: 'zh',
        channel_id: this.callerChannelId,
        arrived_at: this.arrivedAt,
      }),
    );
    this.event('arrived', { channelId: this.callerChannelId });
    this.live({ state: this.state, caller: this.caller, dialed: this.dialed, arrivedAt: this.arrivedAt.toISOString() });
    try {
      await this.flow();
    } catch (err) {
      if (err instanceof AriGone) this.log.info({ err: err.message }, 'a channel went away mid-step');
      else {
        this.log.error({ err }, 'call flow failed');
        this.endedBy ??= 'system';
      }
    } finally {
      await this.finish();
    }
  }

  private async flow(): Promise<void> {
    await this.deps.ari.channels.answer(this.callerChannelId);
    this.move('ivr');
    this.event('ivr.started', { menu: 'main' });

    const choice = await this.mainMenu();
    if (!choice) return;

    this.move('queue');
    const queuedAt = new Date();
    this.update({ queue: choice.queue, queued_at: queuedAt, ivr_done_at: queuedAt, ivr_path: choice.path });
    this.event('queued', { queue: choice.queue });
    await this.deps.ari.bridges.create(this.bridgeId, 'mixing', `call ${this.id}`);
    this.bridgeCreated = true;
    await this.deps.ari.bridges.addChannel(this.bridgeId, [this.callerChannelId]);
    await this.deps.ari.bridges.startMoh(this.bridgeId);

    while (!this.callerGone) {
      const talked = await this.offerToNextAgent();
      if (talked) return;
    }
  }

  private async mainMenu(): Promise<{ queue: string; path: string[] } | null> {
    for (let attempt = 1; attempt <= MENU_ATTEMPTS; attempt++) {
      const r = await this.prompt('sound:hotline/zh/welcome', DIGIT_TIMEOUT_MS);
      if (r.status === 'hangup') return null;
      if (r.status === 'matched') {
        const option = MENU[r.digit];
        this.event('ivr.digit', { digit: r.digit, valid: Boolean(option) });
        if (option) return { queue: option.queue, path: ['main', `${r.digit}:${option.label}`] };
        if (!(await this.playToEnd('sound:hotline/zh/invalid'))) return null;
        continue;
      }
      this.event('ivr.no_input', { attempt });
    }
    if (!(await this.playToEnd('sound:hotline/zh/no-input'))) return null;
    return { queue: 'general', path: ['main', 'no-input'] };
  }

  /** ring one free agent; true when the call was answered and has now ended */
  private async offerToNextAgent(): Promise<boolean> {
    const ringMs = this.deps.agentRingSeconds * 1000;
    const agent = await this.deps.agents.reserve(this.id, ringMs + 10_000);
    if (!agent) {
      await this.waitFor(() => (this.callerGone ? true : undefined), NO_AGENT_POLL_MS);
      return false;
    }
    const channelId = asteriskIds.agentLeg(this.id, ++this.agentAttempt);
    this.leg = { agent, channelId, answered: false, gone: false };
    this.deps.track(channelId, this);
    this.move('offer');
    if (!this.offeredAt) {
      this.offeredAt = new Date();
      this.update({ offered_at: this.offeredAt });
    }
    this.event('agent.offered', { agentId: agent.agentId, attempt: this.agentAttempt });
    this.live({ state: this.state, agentId: agent.agentId });
    const log = this.log.child({ agentId: agent.agentId });
    try {
      await this.deps.ari.channels.originate({
        endpoint: agent.endpoint,
        channelId,
        appArgs: ['agent', this.id],
        callerNumber: this.caller,
        timeoutSeconds: this.deps.agentRingSeconds,
      });
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not ring agent');
      this.leg.gone = true;
    }

    const outcome = await this.waitFor(
      () => (this.callerGone ? 'caller_gone' : this.leg?.answered ? 'answered' : this.leg?.gone ? 'no_answer' : undefined),
      ringMs + 5000,
    );

    if (outcome === 'answered' && !this.callerGone) {
      await this.deps.ari.bridges.addChannel(this.bridgeId, [channelId]);
      await ignoreGone(this.deps.ari.bridges.stopMoh(this.bridgeId));
      this.answeredAt = new Date();
      this.move('agent_answered');
      void this.deps.agents.extend(agent.agentId, this.id, TALK_LOCK_MS).catch((err) => log.warn({ err }, 'could not extend reservation'));
      this.update({ answered_at: this.answeredAt });
      this.persist('add agent', (db) => addCallAgent(db, this.id, agent.agentId));
      this.event('agent.answered', { agentId: agent.agentId });
      this.live({ state: this.state });
      log.info('agent answered; caller and agent bridged');
      // talking until either side hangs up (the talk has no time limit)
      await this.waitFor(() => (this.callerGone || this.leg?.gone ? true : undefined), Number.POSITIVE_INFINITY);
      return true;
    }

    // not answered (rejected, rang out, or the caller left first)
    await ignoreGone(this.deps.ari.channels.hangup(channelId, 'normal')).catch(() => undefined);
    this.deps.untrack(channelId);
    await this.deps.agents.release(agent.agentId, this.id).catch((err) => log.warn({ err }, 'could not release agent'));
    this.event('agent.no_answer', { agentId: agent.agentId, reason: outcome === 'timeout' ? 'ring_timeout' : String(outcome) });
    this.leg = null;
    if (!this.callerGone) {
      this.move('no_answer');
      this.live({ state: this.state, agentId: '' });
      // a short pause so a phone that rejects at once is not rung in a tight loop
      await this.waitFor(() => (this.callerGone ? true : undefined), 500);
    }
    return false;
  }

  /** play a prompt that a digit interrupts, then wait for a digit */
  private async prompt(media: string, digitTimeoutMs: number): Promise<PromptResult> {
    if (this.digits.length > 0) return { status: 'matched', digit: this.digits.shift()! }; // type-ahead
    const playbackId = asteriskIds.playback(this.id, ++this.playbackSeq);
    try {
      await this.deps.ari.channels.play(this.callerChannelId, [media], playbackId);
    } catch (err) {
      if (err instanceof AriGone) return { status: 'hangup' };
      this.log.warn({ err: (err as Error).message, media }, 'prompt failed to play');
      this.finishedPlaybacks.add(playbackId);
    }
    const during = await this.waitFor(
      () => (this.callerGone ? 'hangup' : this.digits.length > 0 ? 'digit' : this.finishedPlaybacks.has(playbackId) ? 'played' : undefined),
      PROMPT_MAX_MS,
    );
    if (during === 'digit') void ignoreGone(this.deps.ari.playbacks.stop(playbackId)).catch(() => undefined);
    if (during === 'played' || during === 'timeout') {
      const after = await this.waitFor(() => (this.callerGone ? 'hangup' : this.digits.length > 0 ? 'digit' : undefined), digitTimeoutMs);
      if (after === 'timeout') return { status: 'timeout' };
      if (after === 'hangup') return { status: 'hangup' };
    }
    if (this.callerGone) return { status: 'hangup' };
    return { status: 'matched', digit: this.digits.shift()! };
  }

  /** play to the end; false when the caller hung up */
  private async playToEnd(media: string): Promise<boolean> {
    const playbackId = asteriskIds.playback(this.id, ++this.playbackSeq);
    try {
      await this.deps.ari.channels.play(this.callerChannelId, [media], playbackId);
    } catch (err) {
      if (err instanceof AriGone) return false;
      this.log.warn({ err: (err as Error).message, media }, 'prompt failed to play');
      return !this.callerGone;
    }
    await this.waitFor(() => (this.callerGone || this.finishedPlaybacks.has(playbackId) ? true : undefined), PROMPT_MAX_MS);
    return !this.callerGone;
  }

  // ---- the end -------------------------------------------------------------------------------

  private async finish(): Promise<void> {
    const endedAt = new Date();
    const answered = this.answeredAt !== null;
    if (this.state !== 'ended') this.move('end');
    const ari = this.deps.ari;
    const cleanup: Promise<unknown>[] = [];
    if (!this.callerGone) cleanup.push(ignoreGone(ari.channels.hangup(this.callerChannelId, 'normal')));
    if (this.leg && !this.leg.gone) cleanup.push(ignoreGone(ari.channels.hangup(this.leg.channelId, 'normal')));
    if (this.bridgeCreated) cleanup.push(ignoreGone(ari.bridges.destroy(this.bridgeId)));
    if (this.leg) cleanup.push(this.deps.agents.release(this.leg.agent.agentId, this.id));
    for (const r of await Promise.allSettled(cleanup)) {
      if (r.status === 'rejected') this.log.warn({ err: (r.reason as Error)?.message }, 'cleanup step failed');
    }
    const disposition = dispositionOnEnd(this.state, answered);
    const waitUntil = this.answeredAt ?? endedAt;
    this.update({
      ended_at: endedAt,
      disposition,
      end_reason: this.endedBy ?? 'system',
      wait_seconds: Math.max(0, (waitUntil.getTime() - this.arrivedAt.getTime()) / 1000),
      talk_seconds: this.answeredAt ? (endedAt.getTime() - this.answeredAt.getTime()) / 1000 : null,
    });
    this.event('ended', { disposition, by: this.endedBy ?? 'system' });
    this.log.info({ disposition, by: this.endedBy }, 'call ended');
    this.deps.untrack(this.callerChannelId);
    if (this.leg) this.deps.untrack(this.leg.channelId);
    const { redis, keys } = this.deps;
    void redis.multi().del(keys.call(this.id)).srem(keys.liveCalls(), this.id).exec().catch(() => undefined);
    await this.writes;
    this.deps.ended(this);
  }

  /** resolves when every record write of this call so far has been tried */
  flushed(): Promise<void> {
    return this.writes;
  }

  // ---- helpers -------------------------------------------------------------------------------

  private move(event: CallEvent): void {
    const from = this.state;
    this.state = transition(from, event);
    this.log.debug(`${from} -${event}-> ${this.state}`);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** wait until check() returns a value (re-checked on every event of this call) or the timeout */
  private waitFor<T>(check: () => T | undefined, timeoutMs: number): Promise<T | 'timeout'> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter = () => {
        const v = check();
        if (v === undefined) return;
        done(v);
      };
      const done = (v: T | 'timeout') => {
        this.waiters.delete(waiter);
        if (timer) clearTimeout(timer);
        resolve(v);
      };
      this.waiters.add(waiter);
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => done('timeout'), timeoutMs);
    });
  }

  /** record writes run in order, retried; the call goes on even when PostgreSQL is down */
  private persist(what: string, fn: (db: Db) => Promise<unknown>): void {
    this.writes = this.writes.then(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await fn(this.deps.db);
          return;
        } catch (err) {
          if (attempt >= 4) {
            this.log.error({ err, what }, 'call record write lost after retries');
            return;
          }
          await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
        }
      }
    });
  }

  private update(patch: CallUpdate): void {
    this.persist('update call', (db) => updateCall(db, this.id, patch));
  }

  private event(type: string, data: Record<string, unknown> = {}): void {
    const at = new Date();
    this.persist(`event ${type}`, (db) => appendCallEvent(db, this.id, at, type, data));
  }

  private live(fields: Record<string, string>): void {
    const { redis, keys } = this.deps;
    void redis
      .multi()
      .hset(keys.call(this.id), fields)
      .expire(keys.call(this.id), LIVE_TTL_S)
      .sadd(keys.liveCalls(), this.id)
      .exec()
      .catch((err: Error) => this.log.warn({ err: err.message }, 'live state not written'));
  }
}
