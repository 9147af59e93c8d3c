/**
 * One attempt of an automated callback about a closed ticket: the citizen's phone is dialled through the
 * trunk showing the hotline's number; when the citizen answers, the closure summary prompt plays and then
 * the line's satisfaction survey. The outcome (answered / busy / no answer / failed) and the score go back
 * to the job that started it (src/callbacks/ticket-callbacks.ts), which keeps PostgreSQL's record.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { AriUnavailable, ignoreGone, type AriPort, type ChannelInfo } from '../ari/port.js';
import type { ChannelOwner, SessionDeps } from '../calls/call.session.js';
import { surveySatisfied } from '../calls/call.session.js';
import { CallRecordWriter } from '../calls/call-record.js';
import { CallRecorder, type CallRecordingSink } from '../calls/call-recorder.js';
import { ChannelIo } from '../calls/channel-io.js';
import { Waiters } from '../calls/waiters.js';
import type { Db } from '../db/db.js';
import type { CallUpdate } from '../db/database.js';
import type { Language } from '../ivr/ivr.config.js';
import { runFlow } from '../ivr/ivr.runner.js';
import type { IvrStore } from '../ivr/ivr.store.js';

export interface TicketCallbackDeps extends Pick<SessionDeps, 'track' | 'untrack' | 'ended'> {
  ari: Pick<AriPort, 'channels' | 'bridges' | 'playbacks'>;
  db: Db;
  ivr: Pick<IvrStore, 'current'>;
  log: Logger;
  /** the dial string for a citizen's number, `{number}` replaced (CALLBACK_DIAL) */
  dialTemplate: string;
  /** the number citizens see calling them */
  callerId: string;
  ringSeconds: number;
  callRecordings?: CallRecordingSink;
}

export interface TicketCallbackAttempt {
  callbackId: string;
  attempt: number;
  number: string;
  /** the line of the citizen's original call (its survey and scale); null: the default line */
  line: string | null;
  language: Language;
  /** told as soon as the citizen answered: the callback has happened */
  onAnswered(callId: string): Promise<void>;
}

export type AttemptOutcome = 'answered' | 'busy' | 'no_answer' | 'failed';

export interface AttemptResult {
  callId: string;
  outcome: AttemptOutcome;
  cause: string | null;
  score: number | null;
}

/** Asterisk's hangup cause text of an unanswered call, as our outcomes */
export function unansweredOutcome(cause: string | null): Exclude<AttemptOutcome, 'answered'> {
  if (!cause) return 'no_answer';
  if (/busy/i.test(cause)) return 'busy';
  if (/no answer|no user responding|normal clearing|originate|timeout/i.test(cause)) return 'no_answer';
  return 'failed';
}

export class TicketCallbackSession implements ChannelOwner {
  readonly id = randomUUID();
  private readonly channelId: string;
  private readonly log: Logger;
  private readonly waits = new Waiters();
  private readonly io: ChannelIo;
  private readonly recorder: CallRecorder;
  private readonly record: CallRecordWriter;
  private answered = false;
  private answeredAt: Date | null = null;
  private gone = false;
  private cause: string | null = null;
  private resolveDone!: (r: AttemptResult) => void;
  /** settles when the attempt is over */
  readonly done = new Promise<AttemptResult>((r) => (this.resolveDone = r));

  constructor(
    private readonly deps: TicketCallbackDeps,
    private readonly job: TicketCallbackAttempt,
  ) {
    this.channelId = `${this.id}-citizen`;
    this.log = deps.log.child({ callId: this.id, callbackId: job.callbackId, attempt: job.attempt });
    this.record = new CallRecordWriter(deps.db, this.id, this.log);
    this.io = new ChannelIo({ ari: deps.ari, callId: this.id, channelId: this.channelId, waits: this.waits, gone: () => this.gone, log: this.log });
    this.recorder = new CallRecorder(
      { ari: deps.ari, sink: deps.callRecordings, log: this.log, track: (channelId) => deps.track(channelId, this), event: (type, data) => this.record.event(type, data) },
      this.id,
      'callback',
    );
  }

  onChannelGone(channelId: string, cause?: string): void {
    if (this.recorder.owns(channelId)) return;
    if (channelId !== this.channelId || this.gone) return;
    this.gone = true;
    this.cause = cause ?? null;
    this.recorder.citizenLeft();
    this.waits.wake();
  }
  onDtmf(digit: string): void {
    this.io.onDtmf(digit);
  }
  onPlaybackFinished(playbackId: string): void {
    this.io.onPlaybackFinished(playbackId);
  }
  onSnoopStarted(channelId: string): void {
    this.recorder.onSnoopStarted(channelId);
  }
  onAnswered(channel: ChannelInfo): boolean {
    if (channel.id !== this.channelId || this.gone) return false;
    this.answered = true;
    this.waits.wake();
    return true;
  }
  flushed(): Promise<void> {
    return this.record.flushed();
  }

  async run(): Promise<void> {
    const { ari, ivr } = this.deps;
    const job = this.job;
    const arrivedAt = new Date();
    const config = ivr.current();
    const line = config.lines.get(job.line ?? '') ?? config.lines.get(config.defaultLine)!;
    this.record.write('call.insert', {
      id: this.id,
      direction: 'outbound',
      caller: job.number,
      dialed: job.number,
      line: line.number,
      language: job.language,
      channel_id: this.channelId,
      arrived_at: arrivedAt,
    });
    this.record.event('callback.started', { callbackId: job.callbackId, attempt: job.attempt, kind: 'ticket' });
    let result: AttemptResult = { callId: this.id, outcome: 'failed', cause: null, score: null };
    this.deps.track(this.channelId, this);
    try {
      try {
        await ari.channels.originate({
          endpoint: this.deps.dialTemplate.replace('{number}', job.number),
          channelId: this.channelId,
          appArgs: ['callback', this.id],
          callerNumber: this.deps.callerId,
          timeoutSeconds: this.deps.ringSeconds,
        });
      } catch (err) {
        result = { ...result, outcome: 'failed', cause: err instanceof AriUnavailable ? 'asterisk unreachable' : (err as Error).message };
        return;
      }
      const r = await this.waits.waitFor(() => (this.answered ? 'answered' : this.gone ? 'gone' : undefined), this.deps.ringSeconds * 1000 + 10_000);
      if (r !== 'answered') {
        result = { ...result, outcome: r === 'timeout' ? 'no_answer' : unansweredOutcome(this.cause), cause: r === 'timeout' ? 'ring timeout' : this.cause };
        return;
      }
      const answeredAt = new Date();
      this.answeredAt = answeredAt;
      this.record.update({ answered_at: answeredAt, wait_seconds: (answeredAt.getTime() - arrivedAt.getTime()) / 1000 });
      this.record.event('callback.answered', {});
      result = { ...result, outcome: 'answered' };
      // the callback has happened whatever follows: a process dying now must not have the citizen called again.
      // The answer is on the call's record (applied, or safe in the outbox) before the callback says done, so a
      // reader (or a kill -9 just after) never sees a done callback whose call record shows no answer.
      await this.record.flushed();
      await job.onAnswered(this.id).catch((err) => this.log.error({ err: (err as Error).message }, 'callback answered but not recorded as done'));
      this.recorder.start(this.channelId);
      const io = this.io.callIo((type, data) => this.record.event(type, data));
      if (!(await io.play('callback-ticket-closed', job.language))) return;
      const flow = line.survey ? config.flows.get(line.survey) : undefined;
      if (!flow) return;
      const s = await runFlow(flow, io, { holidays: config.holidays, language: job.language });
      const score = s.variables.score === undefined ? null : Number(s.variables.score);
      this.record.event('survey', { score, flow: flow.id, path: s.path });
      if (score !== null) {
        result = { ...result, score };
        this.record.update({ survey_score: score, survey_scale: line.surveyScale, survey_satisfied: surveySatisfied(score, line.surveyScale), survey_at: new Date() });
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'callback attempt failed');
    } finally {
      await this.finish(result, arrivedAt);
      this.resolveDone(result);
    }
  }

  private async finish(result: AttemptResult, arrivedAt: Date): Promise<void> {
    const recording = this.recorder.end(); // a start in flight settles before the record's last line
    if (!this.gone) await ignoreGone(this.deps.ari.channels.hangup(this.channelId, 'normal')).catch(() => undefined);
    await recording;
    const endedAt = new Date();
    const patch: CallUpdate = {
      ended_at: endedAt,
      disposition: result.outcome === 'answered' ? 'answered' : 'failed',
      end_reason: result.outcome,
      talk_seconds: this.answeredAt ? (endedAt.getTime() - this.answeredAt.getTime()) / 1000 : 0,
    };
    if (result.outcome !== 'answered') patch.wait_seconds = (endedAt.getTime() - arrivedAt.getTime()) / 1000;
    this.record.event('callback.ended', { outcome: result.outcome, cause: result.cause, score: result.score });
    this.record.update(patch);
    this.log.info({ outcome: result.outcome, cause: result.cause, score: result.score }, 'ticket callback attempt ended');
    this.deps.untrack(this.channelId);
    this.deps.untrack(this.recorder.snoopId);
    await this.record.flushed();
    this.deps.ended(this);
  }
}
