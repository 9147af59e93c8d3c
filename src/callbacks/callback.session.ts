/**
 * An agent-first outbound call: the agent's phone is rung first; once the agent answers, the citizen
 * is dialled (showing the hotline's number) and both are bridged. The agent is never left waiting on a
 * citizen who is not being dialled, and no citizen is dialled without an agent. Two kinds:
 * - a callback whose place in line has come (the agent was reserved by the routing engine); the
 *   callback row says done, or pending again for a later attempt;
 * - a click-to-call by an agent in `outbound` state (POST /api/v1/calls): the agent stays `outbound`
 *   (never offered inbound calls) before, during and after it.
 * Recorded as an outbound call.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AcdEngine } from '../acd/engine.js';
import type { QueueConfig } from '../acd/queues.config.js';
import type { AgentStates } from '../agents/agent-states.js';
import { ignoreGone, type AriPort, type ChannelInfo } from '../ari/port.js';
import type { ChannelOwner, SessionDeps } from '../calls/call.session.js';
import { CallRecordWriter } from '../calls/call-record.js';
import type { Db } from '../db/db.js';
import type { CallUpdate } from '../db/database.js';
import type { RecordOp, RecordOpArgs } from '../db/record-ops.js';
import { asteriskIds } from '../redis/keys.js';
import { Waiters } from '../calls/waiters.js';
import { CallRecorder, type CallRecordingSink } from '../calls/call-recorder.js';

export interface CallbackSessionDeps extends Pick<SessionDeps, 'track' | 'untrack' | 'ended'> {
  ari: Pick<AriPort, 'channels' | 'bridges'>;
  db: Db;
  engine: AcdEngine;
  agentStates: AgentStates;
  log: Logger;
  /** the dial string for a citizen's number, `{number}` replaced (CALLBACK_DIAL) */
  dialTemplate: string;
  /** the number citizens see calling them */
  callerId: string;
  citizenRingSeconds: number;
  maxAttempts: number;
  /** the call is recorded once agent and citizen are connected (src/recordings) */
  callRecordings?: CallRecordingSink;
}

export type OutboundJob = { number: string; agentId: string; endpoint: string } & (
  | { kind: 'callback'; callbackId: string; attempts: number; queue: QueueConfig }
  | { kind: 'click'; requestedBy: string; ringSeconds: number }
);

interface Leg {
  channelId: string;
  answered: boolean;
  gone: boolean;
}

export class CallbackSession implements ChannelOwner {
  readonly id = randomUUID();
  private readonly log: Logger;
  private readonly bridgeId: string;
  private readonly agent: Leg;
  private readonly citizen: Leg;
  private readonly waits = new Waiters();
  private readonly record: CallRecordWriter;
  private bridgeCreated = false;
  private readonly recorder: CallRecorder;

  constructor(
    private readonly deps: CallbackSessionDeps,
    private readonly job: OutboundJob,
  ) {
    this.log = deps.log.child({ callId: this.id, ...(job.kind === 'callback' ? { callbackId: job.callbackId } : { requestedBy: job.requestedBy }), agentId: job.agentId, dnis: job.number });
    this.record = new CallRecordWriter(deps.db, this.id, this.log);
    this.bridgeId = asteriskIds.callBridge(this.id);
    this.agent = { channelId: asteriskIds.agentLeg(this.id, 1), answered: false, gone: false };
    this.citizen = { channelId: `${this.id}-citizen`, answered: false, gone: false };
    this.recorder = new CallRecorder(
      { ari: deps.ari, sink: deps.callRecordings, log: this.log, track: (channelId) => deps.track(channelId, this), event: (type, data) => this.event(type, data) },
      this.id,
      job.kind,
    );
  }

  onChannelGone(channelId: string): void {
    if (this.recorder.owns(channelId)) return;
    if (channelId === this.citizen.channelId) this.recorder.citizenLeft();
    for (const leg of [this.agent, this.citizen]) if (leg.channelId === channelId) leg.gone = true;
    this.wake();
  }
  onSnoopStarted(channelId: string): void {
    this.recorder.onSnoopStarted(channelId);
  }
  onDtmf(): void {}
  onPlaybackFinished(): void {}
  onAnswered(channel: ChannelInfo): boolean {
    const leg = [this.agent, this.citizen].find((l) => l.channelId === channel.id && !l.gone);
    if (!leg) return false;
    leg.answered = true;
    this.wake();
    return true;
  }
  flushed(): Promise<void> {
    return this.record.flushed();
  }

  async run(): Promise<void> {
    const { ari, agentStates } = this.deps;
    const job = this.job;
    const line = job.kind === 'callback' ? job.queue.id : this.deps.callerId;
    const ringSeconds = job.kind === 'callback' ? job.queue.ringSeconds : job.ringSeconds;
    let outcome: 'done' | 'agent_no_answer' | 'citizen_no_answer' | 'failed' = 'failed';
    const arrivedAt = new Date();
    this.persist('call.insert', {
      id: this.id,
      direction: 'outbound',
      caller: job.number,
      dialed: job.number,
      line,
      queue: job.kind === 'callback' ? job.queue.id : null,
      channel_id: this.agent.channelId,
      arrived_at: arrivedAt,
      queued_at: arrivedAt,
    });
    if (job.kind === 'callback') this.event('callback.started', { callbackId: job.callbackId, attempt: job.attempts });
    else this.event('click_to_call.started', { requestedBy: job.requestedBy, agentId: job.agentId });
    try {
      for (const [id, leg] of [[this.agent.channelId, this.agent], [this.citizen.channelId, this.citizen]] as const) if (leg) this.deps.track(id, this);
      await ari.channels.originate({ endpoint: job.endpoint, channelId: this.agent.channelId, appArgs: ['callback', this.id], callerNumber: job.number, timeoutSeconds: ringSeconds });
      this.event('agent.offered', { agentId: job.agentId, attempt: 1, ...(job.kind === 'callback' ? { queue: job.queue.id } : {}) });
      const a = await this.waitFor(() => (this.agent.answered ? 'answered' : this.agent.gone ? 'gone' : undefined), ringSeconds * 1000 + 5000);
      if (a !== 'answered') {
        outcome = 'agent_no_answer';
        if (job.kind === 'callback') await agentStates.tryTransition(job.agentId, 'not_ready', { expectCallId: this.standIn, reason: 'ring-no-answer' });
        return;
      }
      if (job.kind === 'callback') await agentStates.transition(job.agentId, 'on_call', { expectCallId: this.standIn, callId: this.standIn });
      this.persist('call.addAgent', { callId: this.id, agentId: this.job.agentId });
      this.event('agent.answered', { agentId: this.job.agentId });
      await ari.bridges.create(this.bridgeId, 'mixing', `outbound ${this.id}`);
      this.bridgeCreated = true;
      await ari.bridges.addChannel(this.bridgeId, [this.agent.channelId]);
      await ari.bridges.startMoh(this.bridgeId).catch(() => undefined); // the agent hears music while the citizen's phone rings
      await ari.channels.originate({
        endpoint: this.deps.dialTemplate.replaceAll('{number}', this.job.number),
        channelId: this.citizen.channelId,
        appArgs: ['callback', this.id],
        callerNumber: this.deps.callerId,
        timeoutSeconds: this.deps.citizenRingSeconds,
      });
      this.event('callback.dialled', { number: this.job.number });
      const c = await this.waitFor(
        () => (this.agent.gone ? 'agent_gone' : this.citizen.answered ? 'answered' : this.citizen.gone ? 'gone' : undefined),
        this.deps.citizenRingSeconds * 1000 + 5000,
      );
      if (c !== 'answered') {
        outcome = 'citizen_no_answer';
        return;
      }
      await ari.bridges.addChannel(this.bridgeId, [this.citizen.channelId]);
      await ignoreGone(ari.bridges.stopMoh(this.bridgeId));
      const answeredAt = new Date();
      this.update({ answered_at: answeredAt, wait_seconds: (answeredAt.getTime() - arrivedAt.getTime()) / 1000 });
      this.event('callback.answered', {});
      this.recorder.start(this.citizen.channelId);
      outcome = 'done';
      await this.waitFor(() => (this.agent.gone || this.citizen.gone ? true : undefined), Number.POSITIVE_INFINITY);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'callback failed');
    } finally {
      await this.finish(outcome);
    }
  }

  private get standIn(): string {
    return this.job.kind === 'callback' ? asteriskIds.callbackStandIn(this.job.callbackId) : this.id;
  }

  private async finish(outcome: 'done' | 'agent_no_answer' | 'citizen_no_answer' | 'failed'): Promise<void> {
    const { ari, agentStates, engine } = this.deps;
    const recording = this.recorder.end(); // a start in flight settles before the record's last line
    this.deps.untrack(this.recorder.snoopId);
    for (const leg of [this.agent, this.citizen]) if (!leg.gone) await ignoreGone(ari.channels.hangup(leg.channelId)).catch(() => undefined);
    await recording;
    if (this.bridgeCreated) await ignoreGone(ari.bridges.destroy(this.bridgeId)).catch(() => undefined);
    const job = this.job;
    if (job.kind === 'click') {
      // the agent stays outbound: its desk decides when to take inbound calls again
      this.update({ ended_at: new Date(), disposition: outcome === 'done' ? 'answered' : 'failed', end_reason: outcome });
      this.event('click_to_call.ended', { outcome });
      this.log.info({ outcome }, 'click-to-call ended');
      this.deps.untrack(this.agent.channelId);
      this.deps.untrack(this.citizen.channelId);
      await this.record.flushed();
      this.deps.ended(this);
      return;
    }
    const agent = await engine.getAgent(this.job.agentId);
    if (agent?.callId === this.standIn) {
      if (agent.state === 'on_call') {
        if (await agentStates.tryTransition(this.job.agentId, 'wrap_up', { expectCallId: this.standIn })) {
          setTimeout(() => void agentStates.tryTransition(job.agentId, 'ready', { expectCallId: this.standIn }), job.queue.wrapUpSeconds * 1000).unref();
        }
      } else if (agent.state === 'reserved') await agentStates.tryTransition(this.job.agentId, 'ready', { expectCallId: this.standIn });
    }
    // the agent did not answer: the callback keeps its place for the next agent; the citizen did not: try later
    const retry = outcome !== 'done' && job.attempts < this.deps.maxAttempts;
    const status = outcome === 'done' ? 'done' : retry ? 'pending' : 'failed';
    const ended = new Date();
    this.update({ ended_at: ended, disposition: outcome === 'done' ? 'answered' : 'failed', end_reason: outcome });
    this.event('callback.ended', { outcome, status });
    // in the call's stream (after its record); awaited as before: the stand-in below must find the callback pending
    this.persist('callback.finish', { id: job.callbackId, status, retryAt: status === 'pending' && outcome !== 'agent_no_answer' ? new Date(Date.now() + 10 * 60_000) : null });
    await this.record.flushed();
    if (status === 'pending' && outcome === 'agent_no_answer') {
      await engine.enqueue({ callId: this.standIn, queue: job.queue.id, priority: 0, enqueuedAt: Date.now() - 1, stages: job.queue.stages }).catch(() => undefined);
    }
    this.log.info({ outcome, status }, 'callback ended');
    this.deps.untrack(this.agent.channelId);
    this.deps.untrack(this.citizen.channelId);
    await this.record.flushed();
    this.deps.ended(this);
  }

  private wake(): void {
    this.waits.wake();
  }

  private waitFor<T>(check: () => T | undefined, timeoutMs: number): Promise<T | 'timeout'> {
    return this.waits.waitFor(check, timeoutMs);
  }


  /** a named record write (src/db/record-ops.ts) in this call's stream: applied in order, through the outbox */
  private persist<K extends RecordOp>(op: K, args: RecordOpArgs[K]): void {
    this.record.write(op, args);
  }
  private update(patch: CallUpdate): void {
    this.record.update(patch);
  }
  private event(type: string, data: Record<string, unknown>): void {
    this.record.event(type, data);
  }
}
