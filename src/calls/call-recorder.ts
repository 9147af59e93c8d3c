/**
 * One recording per call, from the moment an agent and the citizen are connected to the end: a snoop
 * channel hears the citizen's channel both ways (what the citizen says and everything the citizen hears),
 * so one file covers hold music, transfers and conferences. It ends by itself when the citizen's channel
 * goes; the router hands RecordingFinished to the sink (src/recordings), often after the session ended.
 * Never holds up the call: a failure is logged and put on the call's timeline. Its index row never holds up the
 * recording: PostgreSQL down or slow, the row goes through the record outbox and the recording starts anyway.
 */
import type { Logger } from 'pino';
import { AriConflict, AriGone, AriUnavailable, type AriPort } from '../ari/port.js';
import { asteriskIds } from '../redis/keys.js';
import { withTimeout } from '../shared/timeout.js';
import { Waiters } from './waiters.js';

export interface StartedRecording {
  callId: string;
  name: string;
  callType: CallType;
  startedAt: Date;
}

/** where call recordings are indexed (src/recordings): told when one starts; the router tells when it ends */
export interface CallRecordingSink {
  /** index it straight in PostgreSQL (fails, or is slow, while PostgreSQL is) */
  started(r: StartedRecording): Promise<unknown>;
  /** the same row through the record outbox: resolves once it is applied or durably queued; never rejects */
  startedLater(r: StartedRecording): Promise<unknown>;
  finished(name: string, r: { endedAt: Date; durationSeconds: number | null }): Promise<unknown>;
  failed?(name: string, r: { endedAt: Date; cause?: string }): Promise<unknown>;
}

export type CallType = 'inbound' | 'outbound' | 'callback' | 'click';

export interface CallRecorderDeps {
  ari: Pick<AriPort, 'channels'>;
  sink: CallRecordingSink | undefined;
  log: Logger;
  /** route the snoop channel's events to the call */
  track(channelId: string): void;
  /** a line on the call's timeline */
  event(type: string, data: Record<string, unknown>): void;
  /** how long the index row may take straight in PostgreSQL before it goes through the outbox (INDEX_DIRECT_MS) */
  indexTimeoutMs?: number;
}

/** as the record outbox's direct writes (OUTBOX_DIRECT_TIMEOUT_MS): past this the recording starts without waiting */
const INDEX_DIRECT_MS = 2000;

export class CallRecorder {
  readonly snoopId: string;
  readonly name: string;
  private started = false;
  private snoopUp = false;
  private citizenGone = false;
  /** the call is ending: a start cut short by its channels going is the end, not a failure */
  private ending = false;
  /** the start in flight (never rejects) */
  private starting: Promise<void> = Promise.resolve();
  private readonly waits = new Waiters();

  constructor(
    private readonly deps: CallRecorderDeps,
    private readonly callId: string,
    private readonly callType: CallType,
  ) {
    this.snoopId = asteriskIds.recordingSnoop(callId);
    this.name = asteriskIds.callRecording(callId);
  }

  /** this channel is the recording's snoop */
  owns(channelId: string): boolean {
    return channelId === this.snoopId;
  }

  /** the snoop entered Stasis (only then can it be recorded) */
  onSnoopStarted(channelId: string): boolean {
    if (channelId !== this.snoopId) return false;
    this.snoopUp = true;
    this.waits.wake();
    return true;
  }

  /** the citizen hung up: nothing more to start */
  citizenLeft(): void {
    this.citizenGone = true;
    this.waits.wake();
  }

  /**
   * The call is ending: nothing more starts, and the start in flight settles (what it puts on the timeline is
   * written by then). The session awaits this before its `ended` event, which stays the timeline's last.
   */
  end(): Promise<void> {
    this.ending = true;
    this.waits.wake();
    return this.starting;
  }

  /** start recording the citizen's channel (once; later calls do nothing) */
  start(citizenChannelId: string): void {
    const { sink, ari, log } = this.deps;
    if (!sink || this.started || this.citizenGone || this.ending) return;
    this.started = true;
    const { snoopId, name } = this;
    this.deps.track(snoopId);
    const startedAt = new Date();
    let indexed = false;
    this.starting = (async () => {
      try {
        await ari.channels.snoop(citizenChannelId, { snoopId, spy: 'both', whisper: 'none', appArgs: ['snoop', this.callId] });
        const up = await this.waits.waitFor(() => (this.snoopUp ? true : this.citizenGone || this.ending ? false : undefined), 5000);
        if (up !== true) {
          if (this.citizenGone || this.ending) return;
          throw new Error('the recording snoop did not enter Stasis');
        }
        // indexed first, so a short call's RecordingFinished finds its row (when it does not, the sweep finishes it)
        const { queued } = await this.index(startedAt);
        indexed = true;
        await ari.channels.record(snoopId, { name, format: 'wav', maxDurationSeconds: 0, maxSilenceSeconds: 0, beep: false, terminateOn: 'none', ifExists: 'overwrite' });
        this.deps.event('recording.started', queued ? { name, index: 'outbox' } : { name });
        await queued;
      } catch (err) {
        // Asterisk did not answer: the recording may have started all the same; RecordingFinished or the
        // recordings sweep settles the row (saved when the file is there, failed when not)
        if (indexed && !(err instanceof AriUnavailable)) void sink.failed?.(name, { endedAt: new Date(), cause: (err as Error).message }).catch(() => undefined);
        if ((err instanceof AriGone && this.citizenGone) || (this.ending && (err instanceof AriGone || err instanceof AriConflict))) return;
        log.error({ err: (err as Error).message }, 'call recording did not start');
        this.deps.event('recording.failed', { name, error: (err as Error).message });
      }
    })();
  }

  /**
   * The index row: straight in PostgreSQL if it answers within indexTimeoutMs, else through the record outbox
   * (in the call's stream; an insert that lands late anyway makes no second row). `queued`: the outbox write,
   * still settling (the recording need not wait for it), or null when the row was written straight. Never throws.
   */
  private async index(startedAt: Date): Promise<{ queued: Promise<unknown> | null }> {
    const { sink, log } = this.deps;
    if (!sink) return { queued: null };
    const r: StartedRecording = { callId: this.callId, name: this.name, callType: this.callType, startedAt };
    const ms = this.deps.indexTimeoutMs ?? INDEX_DIRECT_MS;
    try {
      await withTimeout(sink.started(r), ms, () => new Error(`no answer from PostgreSQL within ${ms} ms`));
      return { queued: null };
    } catch (err) {
      log.warn({ err: (err as Error).message, name: this.name }, 'recording index not written straight: it goes through the record outbox, the recording starts anyway');
      const queued = sink.startedLater(r).catch((e: unknown) => log.error({ err: (e as Error).message, name: this.name }, 'recording index not queued either: the recordings sweep cannot see it'));
      return { queued };
    }
  }
}
