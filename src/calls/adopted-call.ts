/**
 * A connected call this process found in Asterisk without owning it: its process died (kill -9, crash,
 * deploy) or ARI was away. Asterisk kept the bridge, so caller and agent still talk; this owner watches the
 * bridge and, when one side hangs up, ends the call for the others, closes the record in PostgreSQL (the
 * same record the first process opened) and releases the agents as after any call.
 * Call control is not offered on an adopted call (the desktop gets 404 no-such-call). Its recording goes on
 * when the snoop that records it is still there; when it is not (the old process froze or died before the
 * recording started, or its snoop was refused in the hand-over) the adopter records the rest of the call.
 */
import type { Logger } from 'pino';
import type { AcdEngine } from '../acd/engine.js';
import type { QueuesConfigStore } from '../acd/queues.config.js';
import type { AgentStates } from '../agents/agent-states.js';
import { ignoreGone, type AriPort, type ChannelInfo } from '../ari/port.js';
import type { Db } from '../db/db.js';
import type { EventBus } from '../events/bus.js';
import { CallRecordWriter } from './call-record.js';
import { CallRecorder, type CallRecordingSink } from './call-recorder.js';
import type { ChannelOwner } from './call.session.js';

export interface AdoptedCallDeps {
  ari: Pick<AriPort, 'channels' | 'bridges'>;
  db: Db;
  engine: Pick<AcdEngine, 'listAgents'>;
  agentStates: Pick<AgentStates, 'tryTransition'>;
  queues: Pick<QueuesConfigStore, 'get'>;
  events?: Pick<EventBus, 'publish'>;
  /** the recordings index: without one nothing is recorded */
  callRecordings?: CallRecordingSink;
  log: Logger;
  track(channelId: string, owner: ChannelOwner): void;
  untrack(channelId: string): void;
  ended(owner: ChannelOwner): void;
}

export interface AdoptedCallInfo {
  id: string;
  /** the call's own bridges (call-<id>, hold-<id>, consult-<id>) that exist */
  bridges: string[];
  /** the people on it: caller and agent legs */
  members: string[];
  answeredAt: Date | null;
  arrivedAt: Date;
  queue: string | null;
  /** snoop channels to leave alone (the recording's) and to hang up with the call */
  others: string[];
  /** the citizen's channel (the caller, or an outbound call's citizen leg): what the recording hears */
  citizenChannelId: string | null;
  direction: 'inbound' | 'outbound';
}

export class AdoptedCall implements ChannelOwner {
  readonly id: string;
  private readonly log: Logger;
  private readonly record: CallRecordWriter;
  private readonly live = new Set<string>();
  private ending = false;
  private readonly recorder: CallRecorder;

  constructor(
    private readonly deps: AdoptedCallDeps,
    private readonly info: AdoptedCallInfo,
  ) {
    this.id = info.id;
    this.log = deps.log.child({ callId: info.id, adopted: true });
    this.record = new CallRecordWriter(deps.db, info.id, this.log);
    this.recorder = new CallRecorder(
      { ari: deps.ari, sink: deps.callRecordings, log: this.log, track: (channelId) => deps.track(channelId, this), event: (type, data) => this.record.event(type, data) },
      info.id,
      info.direction,
    );
  }

  /** start watching: every member's events come here */
  start(): void {
    for (const c of [...this.info.members, ...this.info.others]) this.deps.track(c, this);
    for (const c of this.info.members) this.live.add(c);
    this.record.event('adopted', { members: this.info.members, bridges: this.info.bridges });
    this.log.info({ members: this.info.members }, 'adopted a connected call left by another process');
    // no recording snoop left: the old process never got its recording going; record the rest of the call
    const citizen = this.info.citizenChannelId;
    if (citizen && this.live.has(citizen) && !this.info.others.includes(this.recorder.snoopId)) {
      this.log.info('the adopted call has no recording running: recording the rest of it');
      this.recorder.start(citizen);
    }
  }

  onSnoopStarted(channelId: string): void {
    this.recorder.onSnoopStarted(channelId);
  }

  onChannelGone(channelId: string, cause?: string): void {
    if (channelId === this.info.citizenChannelId) this.recorder.citizenLeft();
    if (!this.live.delete(channelId)) return;
    this.log.info({ channelId, cause }, 'a party left the adopted call');
    // two people talk: when one leaves the call is over (a conference of three goes on while two remain)
    if (this.live.size < 2 && !this.ending) void this.end(channelId);
  }
  onDtmf(): void {}
  onPlaybackFinished(): void {}
  onAnswered(_channel: ChannelInfo): boolean {
    return false;
  }
  flushed(): Promise<void> {
    return this.record.flushed();
  }

  private async end(firstGone: string): Promise<void> {
    this.ending = true;
    const { ari } = this.deps;
    // a recording start in flight settles first: its timeline line comes before `ended`
    const cleanup: Promise<unknown>[] = [this.recorder.end()];
    // the recording's snoop goes by itself with the citizen's channel (its RecordingFinished settles the index)
    for (const c of [...this.live, ...this.info.others]) cleanup.push(ignoreGone(ari.channels.hangup(c, 'normal')));
    for (const b of this.info.bridges) cleanup.push(ignoreGone(ari.bridges.destroy(b)));
    for (const r of await Promise.allSettled(cleanup)) {
      if (r.status === 'rejected') this.log.warn({ err: (r.reason as Error)?.message }, 'adopted call cleanup step failed');
    }
    const endedAt = new Date();
    const by = firstGone.includes('-agent-') ? 'agent' : 'caller';
    this.record.event('ended', { disposition: 'answered', by, adopted: true });
    this.record.update({
      ended_at: endedAt,
      disposition: 'answered',
      end_reason: by,
      // the wait, as a call that ends in its own process has it (the KPIs' average wait counts it)
      wait_seconds: Math.max(0, ((this.info.answeredAt ?? endedAt).getTime() - this.info.arrivedAt.getTime()) / 1000),
      ...(this.info.answeredAt ? { talk_seconds: (endedAt.getTime() - this.info.answeredAt.getTime()) / 1000 } : {}),
    });
    // the agents this call held: wrap-up, then ready after the queue's wrap-up time
    const agents = (await this.deps.engine.listAgents().catch(() => [])).filter((a) => a.callId === this.id);
    const wrapUp = (this.info.queue ? this.deps.queues.get(this.info.queue)?.wrapUpSeconds : undefined) ?? 10;
    for (const a of agents) {
      const r = await this.deps.agentStates.tryTransition(a.agentId, a.state === 'on_call' ? 'wrap_up' : 'ready', { expectCallId: this.id }).catch(() => null);
      if (r && a.state === 'on_call') setTimeout(() => void this.deps.agentStates.tryTransition(a.agentId, 'ready', { expectCallId: this.id, reason: null }).catch(() => undefined), wrapUp * 1000).unref();
      this.deps.events?.publish('call.ended', { callId: this.id, disposition: 'answered', by }, { agentId: a.agentId });
    }
    for (const c of [...this.info.members, ...this.info.others, this.recorder.snoopId]) this.deps.untrack(c);
    await this.record.flushed();
    this.log.info({ by }, 'adopted call ended');
    this.deps.ended(this);
  }
}
