/**
 * Prompts and keys on one channel, as every session needs them: play a prompt (a key stops it when
 * barge-in is on, and stays queued for whatever reads keys next: type-ahead), read keys with timeouts,
 * the IVR runner's CallIo. The session feeds it the channel's DTMF and PlaybackFinished events and shares
 * its Waiters, so a wait wakes on any event of the call.
 */
import type { Logger } from 'pino';
import { AriGone, ignoreGone, type AriPort } from '../ari/port.js';
import type { CallIo, KeyResult } from '../ivr/ivr.runner.js';
import { asteriskIds } from '../redis/keys.js';
import type { Waiters } from './waiters.js';

const PROMPT_MAX_MS = 60_000;

export type PromptResult = { status: 'matched'; digit: string } | { status: 'timeout' } | { status: 'hangup' } | { status: 'failed' };

export class ChannelIo {
  /** keys pressed and not read yet */
  readonly digits: string[] = [];
  private readonly finishedPlaybacks = new Set<string>();
  private playbackSeq = 0;

  constructor(
    private readonly deps: {
      ari: Pick<AriPort, 'channels' | 'playbacks'>;
      /** the call's id: playback ids are made from it */
      callId: string;
      channelId: string;
      waits: Waiters;
      /** the channel has gone */
      gone(): boolean;
      log: Logger;
    },
  ) {}

  onDtmf(digit: string): void {
    this.digits.push(digit);
    this.deps.waits.wake();
  }

  onPlaybackFinished(playbackId: string): void {
    this.finishedPlaybacks.add(playbackId);
    this.deps.waits.wake();
  }

  /** the IVR runner's view: prompts in a language, keys with barge-in; step writes the call's timeline */
  callIo(step: CallIo['step']): CallIo {
    return {
      ask: (prompt, language, opts) => this.readKeys(`sound:hotline/${language}/${prompt}`, opts.maxKeys, opts.timeoutMs),
      // a key stops a play node's prompt too and is kept for the next menu (type-ahead)
      play: (prompt, language) => this.playToEnd(`sound:hotline/${language}/${prompt}`, { bargeIn: true }),
      step,
    };
  }

  /** play a prompt a key interrupts, then read up to maxKeys keys (`#` ends early; timeoutMs between keys) */
  async readKeys(media: string, maxKeys: number, timeoutMs: number): Promise<KeyResult> {
    const first = await this.prompt(media, timeoutMs);
    if (first.status === 'hangup') return { status: 'hangup' };
    if (first.status !== 'matched') return { status: 'timeout' };
    let keys = first.digit;
    while (keys.length < maxKeys && !keys.endsWith('#')) {
      const r = await this.deps.waits.waitFor(() => (this.deps.gone() ? 'hangup' : this.digits.length > 0 ? 'digit' : undefined), timeoutMs);
      if (r === 'hangup') return { status: 'hangup' };
      if (r === 'timeout') break;
      keys += this.digits.shift()!;
    }
    return { status: 'keys', keys };
  }

  /** play a prompt that a digit interrupts, then wait for a digit */
  async prompt(media: string, digitTimeoutMs: number): Promise<PromptResult> {
    const { waits, gone } = this.deps;
    if (this.digits.length > 0) return { status: 'matched', digit: this.digits.shift()! }; // type-ahead
    const playbackId = asteriskIds.playback(this.deps.callId, ++this.playbackSeq);
    try {
      await this.deps.ari.channels.play(this.deps.channelId, [media], playbackId);
    } catch (err) {
      if (err instanceof AriGone) return { status: 'hangup' };
      this.deps.log.warn({ err: (err as Error).message, media }, 'prompt failed to play');
      this.finishedPlaybacks.add(playbackId);
    }
    const during = await waits.waitFor(
      () => (gone() ? 'hangup' : this.digits.length > 0 ? 'digit' : this.finishedPlaybacks.has(playbackId) ? 'played' : undefined),
      PROMPT_MAX_MS,
    );
    if (during === 'digit') void ignoreGone(this.deps.ari.playbacks.stop(playbackId)).catch(() => undefined);
    if (during === 'played' || during === 'timeout') {
      const after = await waits.waitFor(() => (gone() ? 'hangup' : this.digits.length > 0 ? 'digit' : undefined), digitTimeoutMs);
      if (after === 'timeout') return { status: 'timeout' };
      if (after === 'hangup') return { status: 'hangup' };
    }
    if (gone()) return { status: 'hangup' };
    return { status: 'matched', digit: this.digits.shift()! };
  }

  /**
   * play to the end; false when the channel hung up. With bargeIn a key stops the prompt (or skips it when
   * keys are already waiting) and stays queued for whatever reads keys next.
   */
  async playToEnd(media: string, opts: { bargeIn?: boolean } = {}): Promise<boolean> {
    const { waits, gone } = this.deps;
    if (opts.bargeIn && this.digits.length > 0) return !gone();
    const playbackId = asteriskIds.playback(this.deps.callId, ++this.playbackSeq);
    try {
      await this.deps.ari.channels.play(this.deps.channelId, [media], playbackId);
    } catch (err) {
      if (err instanceof AriGone) return false;
      this.deps.log.warn({ err: (err as Error).message, media }, 'prompt failed to play');
      return !gone();
    }
    const r = await waits.waitFor(() => (gone() || this.finishedPlaybacks.has(playbackId) ? 'done' : opts.bargeIn && this.digits.length > 0 ? 'key' : undefined), PROMPT_MAX_MS);
    if (r === 'key') void ignoreGone(this.deps.ari.playbacks.stop(playbackId)).catch(() => undefined);
    return !gone();
  }
}
