/**
 * One inbound call, from StasisStart to the last record update.
 *
 * answer -> the line of the dialed number (config/lines.yaml) -> black/white lists -> maintenance ->
 * the line's IVR flow (config/ivr/<flow>.yaml, run by ivr.runner.ts on the configuration version in force
 * when the call arrived) -> a queue, a voicemail, an external number or a hang-up. In a queue: the caller
 * in a mixing bridge with music on hold -> ring the best free agent (originate) -> agent answers -> agent
 * joins the bridge -> whoever hangs up first ends the call for both. Prompts play in the caller's language.
 *
 * ARI events reach the session through the on*() methods (the router routes them by channel id);
 * the flow waits on its own fields with waitFor(), always with a timeout.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AcdEngine } from '../acd/engine.js';
import type { QueueConfig, QueuesConfigStore } from '../acd/queues.config.js';
import type { AgentStates } from '../agents/agent-states.js';
import type { Db } from '../db/db.js';
import type { CallUpdate } from '../db/database.js';
import { AriGone, AriUnavailable, ignoreGone, type AriPort, type ChannelInfo } from '../ari/port.js';
import { estimateWaitSeconds } from '../acd/estimate.js';
import { requestCallback } from '../callbacks/callbacks.repo.js';
import { standingOf } from '../lists/lists.repo.js';
import type { ListedNumbers } from '../lists/listed-numbers.js';
import type { IvrConfig, Language, Line } from '../ivr/ivr.config.js';
import { runFlow } from '../ivr/ivr.runner.js';
import type { EventBus } from '../events/bus.js';
import type { IvrStore } from '../ivr/ivr.store.js';
import { startVoicemail } from '../voicemail/voicemails.repo.js';
import type { SmsHistoryItem } from '../sms/sms.repo.js';
import { asteriskIds, type Keys } from '../redis/keys.js';
import { callerOf, normalizePhone } from '../shared/phone.js';
import { withTimeout } from '../shared/timeout.js';
import { Waiters } from './waiters.js';
import { ChannelIo } from './channel-io.js';
import { CallRecorder, type CallRecordingSink } from './call-recorder.js';
import { CallMonitors, type MonitorMode, type MonitorView, type Supervisor } from '../supervision/monitor.js';
import { CallRecordWriter } from './call-record.js';
import { callerContext, type HistoryItem } from './calls.repo.js';
import type { RecordOp, RecordOpArgs } from '../db/record-ops.js';
import { dispositionOnEnd, transition, type CallEvent, type CallState } from './call.state.js';

/** whatever owns channels in our Stasis application and wants their events (a citizen's call, a callback) */
export interface ChannelOwner {
  readonly id: string;
  onChannelGone(channelId: string, cause?: string): void;
  onDtmf(digit: string): void;
  onPlaybackFinished(playbackId: string): void;
  /** a recording of one of this owner's channels ended (RecordingFinished / RecordingFailed) */
  onRecordingDone?(name: string, result: { ok: boolean; durationSeconds: number; cause?: string }): void;
  /** a snoop channel this owner created entered Stasis (recording, supervisor monitoring) */
  onSnoopStarted?(channelId: string): void;
  /** the far end of one of this owner's channels hung up (its StasisEnd follows) */
  onHangupRequested?(channelId: string): void;
  /** a leg this owner originated answered (entered Stasis); false when it is not expected */
  onAnswered(channel: ChannelInfo): boolean;
  /** resolves when every record write so far has been tried */
  flushed(): Promise<void>;
}

/** what a session needs to take over a call whose process died (read from PostgreSQL and Asterisk) */
export interface ResumeState {
  callId: string;
  arrivedAt: Date;
  language: Language;
  /** the queue it waited in (not yet answered), with the time it first queued */
  queue: string | null;
  queuedAt: number | null;
  priority: number;
  ivrPath: string[];
  /** an agent had answered: what is left is the survey */
  answered: boolean;
  answeredAt: Date | null;
  agents: string[];
  /** the call's bridge exists in Asterisk (the caller is in it) */
  bridgeExists: boolean;
}

export interface SessionDeps {
  ari: Pick<AriPort, 'channels' | 'bridges' | 'playbacks'>;
  db: Db;
  /** the black/white lists with the listed numbers in memory (src/lists/listed-numbers.ts); absent: PostgreSQL for each call */
  lists?: Pick<ListedNumbers, 'standingOf'>;
  redis: Redis;
  keys: Keys;
  engine: AcdEngine;
  agentStates: AgentStates;
  queues: QueuesConfigStore;
  ivr: Pick<IvrStore, 'current'>;
  maintenance: MaintenanceView;
  /** dial string of the outbound trunk, `{number}` replaced (IVR transfer to an external number) */
  dialTemplate: string;
  voicemailMaxSeconds: number;
  /** live events to desktops (screen pop, call control); absent in some tests */
  events?: Pick<EventBus, 'publish'>;
  /** a repeat caller within this many days is offered first to the agent of its last answered call */
  repeatCallerDays: number;
  /** average handle time used for the estimated wait until there is history (seconds) */
  defaultHandleSeconds: number;
  log: Logger;
  /** every call with an agent is recorded (from the answer to the end) when this is set */
  callRecordings?: CallRecordingSink;
  /** how long a supervisor's phone rings for listen / whisper / barge (default 30 s) */
  monitorRingSeconds?: number;
  /** the router maps ARI events of this channel to this session */
  track(channelId: string, session: ChannelOwner): void;
  untrack(channelId: string): void;
  ended(session: ChannelOwner): void;
}

/** what maintenance mode means for a call to a line right now (src/maintenance) */
export interface MaintenanceView {
  effective(line: string): { source: string; scope: string; message: string | null; allowVoicemail: boolean } | null;
}

/** a voicemail shorter than this is recorded as empty (the caller hung up at the tone) */
const VOICEMAIL_MIN_SECONDS = 1;
const TRANSFER_RING_SECONDS = 30;
/** a whitelisted caller goes ahead of everyone of lower priority in its queue (overflow adds 1 on top) */
const WHITELIST_PRIORITY = 5;
const LIST_LOOKUP_MS = 1500;
/** a waiting caller re-tries routing at least this often (skill relaxation needs no event to kick in) */
const QUEUE_POLL_MS = 1000;
/** how often a waiting call checks that its entry is still in Redis */
const PRESENCE_CHECK_MS = 5000;
/** how long the end of a call waits for a caller's StasisEnd that follows the last prompt's PlaybackFinished */
const CALLER_HANGUP_GRACE_MS = 250;
const LIVE_TTL_S = 6 * 3600;


/** what happens to the caller after the agent's part (transfers, survey) */
type FollowUp =
  | { kind: 'queue'; queue: string }
  | { kind: 'agent'; agentId: string }
  | { kind: 'number'; number: string }
  | { kind: 'ivr'; flow: string; returnTo: AgentLeg | null }
  | { kind: 'survey' };

/** a refused call-control action: the route maps it to 409/404/422 */
export class ControlError extends Error {
  override name = 'ControlError';
  constructor(
    readonly code: string,
    message: string,
    readonly status = 409,
  ) {
    super(message);
  }
}

export type TransferTarget = { agent: string } | { queue: string } | { number: string } | { ivr: string };

interface AgentLeg {
  /** null for an external number (IVR transfer) */
  agentId: string | null;
  channelId: string;
  answered: boolean;
  gone: boolean;
}

export class CallSession implements ChannelOwner {
  readonly id: string;
  readonly callerChannelId: string;
  readonly log: Logger;
  state: CallState = 'arrived';

  private readonly caller: string;
  private readonly dialed: string;
  private readonly arrivedAt: Date;
  private readonly bridgeId: string;
  private callerGone = false;
  private endedBy: 'caller' | 'agent' | 'supervisor' | 'system' | null = null;
  private agentAttempt = 0;
  private leg: AgentLeg | null = null;
  private answeredAt: Date | null = null;
  private offeredAt: Date | null = null;
  private bridgeCreated = false;
  /** music for the caller: on its own channel while it waits outside any bridge, on the call's bridge once there is one */
  private mohOn: false | 'channel' | 'bridge' = false;
  private queue: QueueConfig | null = null;
  /** first time the call entered any queue (max wait, FIFO place) and this queue (overflow) */
  private firstQueuedAt = 0;
  private queueEnteredAt = 0;
  private priority = 0;
  private preferredAgent: string | undefined;
  private wrapUpTimer: NodeJS.Timeout | null = null;
  /** the call is in the set of live calls (live(): added once, at the first write) */
  private liveListed = false;
  private unsubscribeWake: (() => void) | null = null;
  private ivrPath: string[] = [];
  private readonly waits = new Waiters();
  private outcome: 'callback_requested' | 'restricted' | 'voicemail' | 'ivr_completed' | null = null;
  private language: Language = 'zh';
  private ivrVariables: Record<string, string> = {};
  private recording: { name: string; done: boolean; ok: boolean; durationSeconds: number } | null = null;
  /** the line serving the call (lines.yaml) and the IVR version the call runs on */
  private line = '';
  private lineConfig: Line | null = null;
  private ivrConfig: (IvrConfig & { version: string }) | null = null;
  /** parties besides the caller and the primary agent: conference members, the target of a consultation */
  private readonly extraLegs = new Map<string, AgentLeg>();
  private held = false;
  private holdBridgeCreated = false;
  private consult: { leg: AgentLeg; bridgeId: string } | null = null;
  /** what the call does once the agent's part ends (a transfer, the survey) */
  private next: FollowUp | null = null;
  /** one call-control action at a time */
  private controlBusy = false;
  private screenPop: Record<string, unknown> | null = null;
  /** every agent who answered this call (desktops hear call.ended) */
  private readonly agentsSeen: string[] = [];
  private blacklisted = false;
  private readonly record: CallRecordWriter;
  /** supervisors listening, whispering or barged in */
  readonly monitors: CallMonitors;
  private readonly recorder: CallRecorder;
  /** prompts and keys on the caller's channel */
  private readonly io: ChannelIo;

  constructor(
    private readonly deps: SessionDeps,
    channel: ChannelInfo,
    at: string,
    /** a call whose process died: this session takes it over (same record), see ResumeState */
    private readonly resumed: ResumeState | null = null,
  ) {
    this.id = resumed?.callId ?? randomUUID();
    this.callerChannelId = channel.id;
    this.caller = callerOf(channel.callerNumber);
    this.dialed = normalizePhone(channel.dialedExten) ?? channel.dialedExten;
    const parsed = resumed?.arrivedAt ?? new Date(at);
    this.arrivedAt = Number.isNaN(parsed.getTime()) ? new Date() : parsed;
    this.bridgeId = asteriskIds.callBridge(this.id);
    this.log = deps.log.child({ callId: this.id, caller: this.caller, dnis: this.dialed, line: this.dialed });
    this.record = new CallRecordWriter(deps.db, this.id, this.log);
    this.io = new ChannelIo({ ari: deps.ari, callId: this.id, channelId: this.callerChannelId, waits: this.waits, gone: () => this.callerGone, log: this.log });
    this.recorder = new CallRecorder(
      { ari: deps.ari, sink: deps.callRecordings, log: this.log, track: (channelId) => this.deps.track(channelId, this), event: (type, data) => this.event(type, data) },
      this.id,
      'inbound',
    );
    this.monitors = new CallMonitors(
      { ari: deps.ari, ...(deps.events ? { events: deps.events } : {}), log: this.log.child({ module: 'monitor' }), ringSeconds: deps.monitorRingSeconds ?? 30 },
      {
        id: this.id,
        callerChannelId: this.callerChannelId,
        callBridgeId: this.bridgeId,
        live: () => !this.callerGone && this.state !== 'ended',
        agentChannel: () => (this.leg?.answered && !this.leg.gone && this.leg.agentId ? { agentId: this.leg.agentId, channelId: this.leg.channelId } : null),
        track: (channelId) => this.deps.track(channelId, this),
        untrack: (channelId) => this.deps.untrack(channelId),
        event: (type, data) => this.event(type, data),
      },
    );
  }

  // ---- inputs from the router -------------------------------------------------------------

  onDtmf(digit: string): void {
    this.io.onDtmf(digit);
  }

  onPlaybackFinished(playbackId: string): void {
    this.io.onPlaybackFinished(playbackId);
  }

  /**
   * The caller's phone hung up (ChannelHangupRequest, not soft). It comes before the PlaybackFinished of a prompt
   * the hangup cut short, so a flow that ends on that prompt does not take the end for its own.
   */
  onHangupRequested(channelId: string): void {
    if (channelId === this.callerChannelId && !this.callerGone) this.endedBy ??= 'caller';
  }

  /** the channel left our application (hung up, or never answered) */
  onChannelGone(channelId: string, cause?: string): void {
    if (this.monitors.onChannelGone(channelId)) return;
    if (this.recorder.owns(channelId)) return; // the recording ends with the caller; RecordingFinished tells
    if (channelId === this.callerChannelId && !this.callerGone) {
      this.callerGone = true;
      this.endedBy ??= 'caller';
      this.recorder.citizenLeft();
      this.log.debug({ cause }, 'caller hung up'); // 'call ended' says who ended it, at info
    } else if (this.leg && channelId === this.leg.channelId && !this.leg.gone) {
      this.leg.gone = true;
      if (this.leg.answered) this.endedBy ??= 'agent';
      this.log.debug({ agentId: this.leg.agentId, cause }, this.leg.answered ? 'agent hung up' : 'agent leg ended unanswered');
    } else if (this.extraLegs.has(channelId)) {
      const leg = this.extraLegs.get(channelId)!;
      if (!leg.gone) {
        leg.gone = true;
        this.event('party.left', { agentId: leg.agentId, channelId, cause: cause ?? null });
      }
    }
    this.wake();
  }

  /** the agent's phone answered: the originated channel entered Stasis. false when not expected. */
  onSnoopStarted(channelId: string): void {
    if (this.monitors.onSnoopStarted(channelId)) return;
    this.recorder.onSnoopStarted(channelId);
  }

  onAnswered(channel: ChannelInfo): boolean {
    if (this.monitors.onAnswered(channel)) return true;
    const extra = this.extraLegs.get(channel.id);
    const leg = extra ?? (this.leg?.channelId === channel.id ? this.leg : null);
    if (!leg || leg.gone || this.callerGone) return false;
    leg.answered = true;
    this.wake();
    return true;
  }

  onRecordingDone(name: string, result: { ok: boolean; durationSeconds: number; cause?: string }): void {
    if (!this.recording || this.recording.name !== name) return;
    Object.assign(this.recording, { done: true, ok: result.ok, durationSeconds: result.durationSeconds });
    if (!result.ok) this.log.warn({ cause: result.cause }, 'voicemail recording failed');
    this.wake();
  }

  // ---- the flow -----------------------------------------------------------------------------

  async run(): Promise<void> {
    this.deps.track(this.callerChannelId, this);
    if (this.resumed) return this.runResumed();
    this.log.info('call arrived');
    this.persist('call.insert', {
      id: this.id,
      direction: 'inbound',
      caller: this.caller,
      dialed: this.dialed,
      line: this.dialed,
      language: 'zh',
      channel_id: this.callerChannelId,
      arrived_at: this.arrivedAt,
    });
    this.event('arrived', { channelId: this.callerChannelId });
    return this.flowToEnd();
  }

  /** the live state, then the flow; whatever happens the call is finished (record, agents, Asterisk) */
  private async flowToEnd(): Promise<void> {
    this.live({ state: this.state, caller: this.caller, dialed: this.dialed, arrivedAt: this.arrivedAt.toISOString() });
    try {
      await this.flow();
    } catch (err) {
      if (err instanceof AriGone) this.log.info({ err: err.message }, 'a channel went away mid-step');
      else {
        this.log.error({ err, resumed: Boolean(this.resumed) }, 'call flow failed');
        this.endedBy ??= 'system';
      }
    } finally {
      await this.finish();
    }
  }

  /** a call taken over from a process that died: back in its queue (same place), to the survey, or through the menu again */
  private async runResumed(): Promise<void> {
    const r = this.resumed!;
    this.bridgeCreated = r.bridgeExists;
    this.language = r.language;
    this.priority = r.priority;
    if (r.answered) this.answeredAt = r.answeredAt;
    this.agentsSeen.push(...r.agents);
    this.event('resumed', { queue: r.queue, answered: r.answered });
    this.log.info({ queue: r.queue, answered: r.answered }, 'call taken over from a process that went away');
    return this.flowToEnd();
  }

  private async flow(): Promise<void> {
    if (!this.resumed) await this.deps.ari.channels.answer(this.callerChannelId);
    // the configuration in force now serves this call to its end, whatever reloads meanwhile
    const ivr = this.deps.ivr.current();
    const line = ivr.lines.get(this.dialed) ?? ivr.lines.get(ivr.defaultLine)!;
    this.ivrConfig = ivr;
    this.lineConfig = line;
    this.line = line.number;
    if (line.number !== this.dialed) this.log.warn({ line: line.number }, 'dialed number not in lines.yaml; the default line serves it');
    if (line.number !== this.dialed) this.update({ line: line.number });
    if (this.resumed?.answered) {
      // the agent's part was over (or its leg went with the process): the caller still gets the survey
      if (line.survey) this.next = { kind: 'survey' };
      return this.followUp();
    }
    if (this.resumed?.queue && this.deps.queues.get(this.resumed.queue)) {
      this.ivrPath = this.resumed.ivrPath;
      await this.waitInQueue(this.resumed.queue, this.resumed.queuedAt ?? undefined);
      return this.followUp();
    }
    // the lists decide before anything else; a database that cannot answer must not block the call
    const lookup = this.deps.lists ? this.deps.lists.standingOf(this.caller) : standingOf(this.deps.db, this.caller);
    const standing = await withTimeout(lookup, LIST_LOOKUP_MS, () => new Error(`no answer in ${LIST_LOOKUP_MS} ms`)).catch((err) => {
      this.log.warn({ err: (err as Error).message }, 'black/white list lookup failed; treating the caller as unlisted');
      return null;
    });
    if (standing?.black) {
      // the entry's own treatment wins; an entry without one gets what the line is configured for
      const lineQueue = 'queue' in line.blacklist ? line.blacklist.queue : null;
      const treatment = standing.black.treatment === 'line' ? (lineQueue ? 'queue' : 'restrict') : standing.black.treatment;
      const queue = lineQueue ?? 'blacklist';
      this.event('list.black', { reason: standing.black.reason, treatment, ...(treatment === 'queue' ? { queue } : {}) });
      if (treatment === 'restrict' || !this.deps.queues.get(queue)) {
        this.outcome = 'restricted';
        await this.io.playToEnd(this.sound('restricted'));
        this.endedBy ??= 'system';
        return;
      }
      this.ivrPath = ['blacklist'];
      this.blacklisted = true; // served apart, and never called back automatically
      await this.waitInQueue(queue);
      return this.followUp();
    }
    const maintenance = this.deps.maintenance.effective(line.number);
    if (maintenance) return this.maintenanceMode(maintenance);
    if (standing?.white) {
      this.priority = WHITELIST_PRIORITY;
      this.event('list.white', { reason: standing.white.reason, treatment: standing.white.treatment, priority: this.priority });
    }
    let queueId: string;
    if (standing?.white?.treatment === 'skip-menu' && this.deps.queues.get(line.queue)) {
      queueId = line.queue;
      this.ivrPath = ['whitelist'];
    } else {
      this.move('ivr');
      const flow = ivr.flows.get(line.flow)!;
      this.event('ivr.started', { line: line.number, flow: flow.id, version: ivr.version });
      const r = await runFlow(flow, this.io.callIo((type, data) => this.event(type, data)), { holidays: ivr.holidays });
      this.ivrPath = r.path;
      this.ivrVariables = r.variables;
      if (r.language !== this.language) {
        this.language = r.language;
        this.update({ language: r.language });
      }
      this.event('ivr.completed', { outcome: r.outcome.kind, path: r.path, language: r.language, variables: r.variables });
      if (Object.keys(r.variables).length) this.live({ ivrVariables: JSON.stringify(r.variables) });
      switch (r.outcome.kind) {
        case 'gone':
          this.update({ ivr_path: this.ivrPath });
          return;
        case 'hangup':
          this.outcome = 'ivr_completed';
          this.update({ ivr_path: this.ivrPath, ivr_done_at: new Date() });
          this.endedBy ??= 'system';
          return;
        case 'voicemail':
          this.update({ ivr_path: this.ivrPath, ivr_done_at: new Date() });
          return this.takeVoicemail(ivr, line, 'ivr', r.outcome.prompt);
        case 'transfer':
          this.update({ ivr_path: this.ivrPath, ivr_done_at: new Date() });
          return this.transferOut(r.outcome.number);
        case 'queue':
          queueId = r.outcome.queue;
      }
    }
    if (!this.deps.queues.get(queueId)) {
      this.log.error({ queue: queueId }, 'queue missing from queues.yaml; using the line queue');
      queueId = this.deps.queues.get(line.queue) ? line.queue : 'general';
    }
    // repeat-caller routing: read with the screen pop's history, in one statement
    const repeat = this.deps.repeatCallerDays > 0 ? await this.prefetchHistory().catch(() => null) : null;
    if (repeat?.lastAgent) this.preferredAgent = repeat.lastAgent;
    await this.waitInQueue(queueId);
    await this.followUp();
  }

  /** a prompt in the caller's language */
  private sound(prompt: string): string {
    return `sound:hotline/${this.language}/${prompt}`;
  }

  /** the line is in maintenance: its announcement, then a voicemail or "call again later" */
  private async maintenanceMode(m: NonNullable<ReturnType<MaintenanceView['effective']>>): Promise<void> {
    this.ivrPath = ['maintenance'];
    this.event('maintenance', { source: m.source, scope: m.scope, message: m.message, allowVoicemail: m.allowVoicemail });
    this.update({ ivr_path: this.ivrPath });
    if (!(await this.io.playToEnd(this.sound(m.message ?? 'maintenance')))) return;
    if (m.allowVoicemail) {
      const ivr = this.deps.ivr.current();
      return this.takeVoicemail(ivr, ivr.lines.get(this.dialed) ?? ivr.lines.get(ivr.defaultLine)!, 'maintenance', null);
    }
    this.outcome = 'ivr_completed';
    await this.io.playToEnd(this.sound('maintenance-later'));
    this.endedBy ??= 'system';
  }

  /**
   * Record the caller's message through ARI (Asterisk stores the file; the voicemails table indexes it).
   * The caller ends with # or by hanging up; silence or the length limit ends it too.
   */
  private async takeVoicemail(_ivr: IvrConfig, line: Line, reason: 'ivr' | 'maintenance', prompt: string | null): Promise<void> {
    this.outcome = 'voicemail';
    if (!(await this.io.playToEnd(this.sound(prompt ?? 'voicemail-prompt')))) return;
    const name = asteriskIds.voicemail(this.id);
    const startedAt = new Date();
    let voicemailId: string;
    try {
      voicemailId = await startVoicemail(this.deps.db, { callId: this.id, caller: this.caller, line: line.number, language: this.language, reason, recordingName: name, startedAt });
    } catch (err) {
      // without its index row a message would be lost in a folder: apologise instead of recording
      this.log.error({ err }, 'voicemail not indexed; not recording');
      this.outcome = 'ivr_completed';
      await this.io.playToEnd(this.sound('maintenance-later'));
      this.endedBy ??= 'system';
      return;
    }
    this.recording = { name, done: false, ok: false, durationSeconds: 0 };
    this.io.digits.length = 0;
    try {
      await this.deps.ari.channels.record(this.callerChannelId, {
        name,
        format: 'wav',
        maxDurationSeconds: this.deps.voicemailMaxSeconds,
        maxSilenceSeconds: 10,
        beep: true,
        terminateOn: '#',
        ifExists: 'overwrite',
      });
      this.event('voicemail.recording', { voicemailId, name });
      // the caller hanging up ends the recording too: Asterisk still reports RecordingFinished
      await this.waitFor(() => (this.recording!.done || this.callerGone ? true : undefined), (this.deps.voicemailMaxSeconds + 15) * 1000);
      if (!this.recording.done) await this.waitFor(() => (this.recording!.done ? true : undefined), 5000);
    } catch (err) {
      if (!(err instanceof AriGone)) this.log.error({ err: (err as Error).message }, 'voicemail recording did not start');
    }
    const rec = this.recording;
    const status = !rec.done ? 'failed' : !rec.ok ? 'failed' : rec.durationSeconds < VOICEMAIL_MIN_SECONDS ? 'empty' : 'saved';
    this.persist('voicemail.finish', { id: voicemailId, status, durationSeconds: rec.done ? rec.durationSeconds : null });
    this.event('voicemail', { voicemailId, status, durationSeconds: rec.durationSeconds, reason });
    this.log.info({ voicemailId, status, durationSeconds: rec.durationSeconds }, 'voicemail ended');
    if (!this.callerGone) await this.io.playToEnd(this.sound(status === 'saved' ? 'voicemail-saved' : 'goodbye'));
    this.endedBy ??= 'system';
  }

  /** the flow hands the caller to an external number: ring it through the trunk and bridge both */
  private async transferOut(number: string): Promise<void> {
    if (!this.answeredAt) this.outcome = 'ivr_completed'; // from a flow; after an agent the call stays answered
    const channelId = asteriskIds.agentLeg(this.id, ++this.agentAttempt);
    this.leg = { agentId: null, channelId, answered: false, gone: false };
    this.deps.track(channelId, this);
    await this.ensureBridge();
    await ignoreGone(this.deps.ari.channels.ring(this.callerChannelId));
    this.event('ivr.transfer', { number });
    try {
      await this.deps.ari.channels.originate({
        endpoint: this.deps.dialTemplate.replace('{number}', number),
        channelId,
        appArgs: ['agent', this.id],
        callerNumber: this.caller,
        timeoutSeconds: TRANSFER_RING_SECONDS,
      });
    } catch (err) {
      this.log.warn({ err: (err as Error).message, number }, 'external number could not be dialled');
      this.leg.gone = true;
    }
    const r = await this.waitFor(() => (this.callerGone ? 'gone' : this.leg?.answered ? 'answered' : this.leg?.gone ? 'failed' : undefined), (TRANSFER_RING_SECONDS + 5) * 1000);
    if (r === 'answered') {
      await this.deps.ari.bridges.addChannel(this.bridgeId, [channelId]);
      this.event('ivr.transfer_answered', { number });
      await this.waitFor(() => (this.callerGone || this.leg?.gone ? true : undefined), Number.POSITIVE_INFINITY);
      return;
    }
    this.event('ivr.transfer_failed', { number, reason: r });
    if (!this.callerGone) await this.io.playToEnd(this.sound('unavailable'));
    this.endedBy ??= 'system';
  }

  /** wait in the queue until an agent answers, the caller hangs up, or the queue's max wait */
  private async waitInQueue(queueId: string, since?: number): Promise<void> {
    this.move('queue');
    if (this.deps.events) void this.prefetchHistory().catch(() => undefined);
    const now = Date.now();
    // a resumed caller keeps its first queue time: its place in line and its wait
    this.firstQueuedAt = since ?? now;
    this.enterQueue(queueId, now);
    const queuedAt = new Date(this.firstQueuedAt);
    if (since === undefined) this.update({ queue: queueId, queued_at: queuedAt, ivr_done_at: queuedAt, ivr_path: this.ivrPath });
    this.event('queued', { queue: queueId, preferredAgent: this.preferredAgent ?? null });
    // a first-time caller waits on its own channel (music there, no bridge): the call's bridge is made when an agent
    // answers (ringAgent), with both in at once; a bridge with the music's announcer would be mixed all the wait
    await this.startMoh();
    let woken = false;
    this.unsubscribeWake = this.deps.engine.onAgentReady(() => {
      woken = true;
      this.wake();
    });
    let nextAnnouncement = now + this.queue!.announceEverySeconds * 1000;
    let callbackOffered = false;
    let lastPresenceCheck = now;
    // Redis away (restarting): the caller keeps waiting with music; its entry is written once Redis answers
    let inLine = false;
    let redisDown = false;
    const redisFailed = (err: unknown) => {
      if (!redisDown) this.log.warn({ err: (err as Error).message }, 'Redis not answering: the caller keeps waiting');
      redisDown = true;
    };
    try {
      inLine = await this.enqueue().then(
        () => true,
        (err: unknown) => (redisFailed(err), false),
      );
      while (!this.callerGone) {
        const q = this.queue!;
        const t = Date.now();
        if (callbackOffered && q.callbackOffer && this.io.digits.includes(q.callbackOffer.key)) return await this.callbackAccepted();
        this.io.digits.length = 0; // keys pressed while waiting mean nothing else
        if (t - this.firstQueuedAt >= q.maxWait.seconds * 1000) return await this.maxWaitReached();
        if (q.overflow && t - this.queueEnteredAt >= q.overflow.afterSeconds * 1000) {
          await this.overflowTo(q.overflow.queue);
          continue;
        }
        if (!inLine) {
          inLine = await this.enqueue().then(
            () => true,
            (err: unknown) => (redisFailed(err), false),
          );
          if (inLine && redisDown) this.log.info('Redis answers again: back in line in its place');
          if (inLine) redisDown = false;
        }
        const agentId = inLine
          ? await this.deps.engine.claim(q.id, this.id).catch((err: unknown) => {
              redisFailed(err);
              return null;
            })
          : null;
        if (agentId) {
          redisDown = false;
          this.deps.agentStates.reserved(agentId, this.id);
          const outcome = await this.ringAgent(agentId);
          if (outcome === 'answered') return;
          if (this.callerGone) return;
          inLine = false; // back in line (next turn) with the same arrival time: it keeps its place
          continue;
        }
        if (!callbackOffered && q.callbackOffer && t - this.firstQueuedAt >= q.callbackOffer.afterSeconds * 1000) {
          callbackOffered = true;
          this.event('queue.callback_offered', { key: q.callbackOffer.key });
          await this.announce('callback-offer');
          continue;
        }
        if (q.announceEverySeconds > 0 && t >= nextAnnouncement) {
          await this.announceWait();
          nextAnnouncement = Date.now() + q.announceEverySeconds * 1000;
          continue;
        }
        if (t - lastPresenceCheck >= PRESENCE_CHECK_MS) {
          // Redis restarted empty (it keeps nothing on disk): put this call back in line, same arrival time
          lastPresenceCheck = t;
          if (inLine && (await this.deps.engine.position(q.id, this.id).catch(() => 0)) === null) {
            this.log.warn({ queue: q.id }, 'waiting entry lost (Redis restarted?): queued again in its place');
            inLine = false;
            continue;
          }
        }
        woken = false;
        // the max wait ends on time, not at the next poll (a caller may hang up within that second)
        const untilMaxWait = this.firstQueuedAt + q.maxWait.seconds * 1000 - Date.now();
        await this.waitFor(() => (this.callerGone || woken || (callbackOffered && this.io.digits.length > 0) ? true : undefined), Math.max(1, Math.min(QUEUE_POLL_MS, untilMaxWait)));
      }
    } finally {
      this.unsubscribeWake?.();
      this.unsubscribeWake = null;
      if (this.queue && !this.answeredAt) await this.deps.engine.remove(this.queue.id, this.id).catch(() => undefined);
    }
  }

  private enterQueue(queueId: string, now: number): void {
    this.queue = this.deps.queues.get(queueId)!;
    this.queueEnteredAt = now;
    this.live({ state: this.state, queue: queueId, queuedAt: new Date(this.firstQueuedAt).toISOString() });
  }

  private enqueue(): Promise<void> {
    const q = this.queue!;
    return this.deps.engine.enqueue({
      callId: this.id,
      queue: q.id,
      priority: this.priority,
      enqueuedAt: this.firstQueuedAt,
      stages: q.stages,
      ...(this.preferredAgent ? { preferredAgent: this.preferredAgent } : {}),
    });
  }

  private async overflowTo(target: string): Promise<void> {
    const from = this.queue!.id;
    await this.deps.engine.remove(from, this.id);
    this.priority += 1; // overflowed callers go ahead of the target queue's first-come callers
    this.enterQueue(target, Date.now());
    this.update({ queue: target });
    this.event('queue.overflow', { from, to: target, priority: this.priority });
    this.log.info({ from, to: target }, 'call overflowed');
    if (this.queue!.moh !== this.deps.queues.get(from)?.moh) {
      await this.stopMoh();
      await this.startMoh();
    }
    await this.enqueue();
  }

  private async maxWaitReached(): Promise<void> {
    const q = this.queue!;
    await this.deps.engine.remove(q.id, this.id);
    await this.stopMoh();
    this.event('queue.max_wait', { queue: q.id, action: q.maxWait.action, waitedSeconds: Math.round((Date.now() - this.firstQueuedAt) / 1000) });
    if (q.maxWait.action === 'callback') {
      this.outcome = 'callback_requested';
      this.persist('callback.request', { number: this.caller, callId: this.id, queue: q.id, reason: 'max_wait' });
      await this.io.playToEnd(this.sound('callback-registered'));
    } else {
      await this.io.playToEnd(this.sound('unavailable'));
    }
    this.endedBy ??= 'system';
  }

  /** the estimated wait as an honest range, recomputed each time from the line ahead and the agents staffed */
  private async announceWait(): Promise<void> {
    const q = this.queue!;
    const position = (await this.deps.engine.position(q.id, this.id)) ?? 1;
    const staffed = (await this.deps.engine.listAgents()).filter(
      (a) => !['logged_out', 'on_break', 'not_ready'].includes(a.state) && q.stages[0]!.needs.some((n) => (a.skills[n.skill] ?? 0) >= n.minLevel),
    ).length;
    const seconds = estimateWaitSeconds(position, staffed, this.deps.defaultHandleSeconds);
    const prompt = position <= 1 && staffed > 0 ? 'ewt-next' : seconds < 60 ? 'ewt-1' : seconds < 180 ? 'ewt-3' : seconds < 300 ? 'ewt-5' : 'ewt-long';
    this.event('queue.announcement', { position, staffed, estimatedWaitSeconds: seconds, prompt });
    await this.announce(prompt);
  }

  /** a prompt to the waiting caller: the music pauses for it */
  private async announce(prompt: string): Promise<void> {
    await this.stopMoh();
    await this.io.playToEnd(this.sound(prompt));
    if (!this.callerGone) await this.startMoh();
  }

  /**
   * The caller pressed the callback key: it hangs up now, and a stand-in keeps its place in the line
   * (same queue, priority and arrival time). When the stand-in's turn comes, the callback dialer reserves
   * the agent, rings the agent first, and only then dials the citizen.
   */
  private async callbackAccepted(): Promise<void> {
    const q = this.queue!;
    const callbackId = await requestCallback(this.deps.db, { number: this.caller, callId: this.id, queue: q.id, reason: 'in_queue' }).catch((err) => {
      this.log.error({ err }, 'callback not registered');
      return null;
    });
    await this.deps.engine.remove(q.id, this.id);
    if (callbackId) {
      await this.deps.engine.enqueue({ callId: asteriskIds.callbackStandIn(callbackId), queue: q.id, priority: this.priority, enqueuedAt: this.firstQueuedAt, stages: q.stages });
    }
    this.outcome = 'callback_requested';
    this.event('queue.callback_accepted', { callbackId, keptPlace: Boolean(callbackId) });
    await this.stopMoh();
    await this.io.playToEnd(this.sound('callback-registered'));
    this.endedBy ??= 'system';
  }

  /** ring the reserved agent; 'answered' returns once the conversation has ended */
  private async ringAgent(agentId: string): Promise<'answered' | 'no_answer' | 'caller_gone'> {
    const q = this.queue!;
    const agent = await this.deps.engine.getAgent(agentId);
    const channelId = asteriskIds.agentLeg(this.id, ++this.agentAttempt);
    this.leg = { agentId, channelId, answered: false, gone: false };
    this.deps.track(channelId, this);
    this.move('offer');
    if (!this.offeredAt) {
      this.offeredAt = new Date();
      this.update({ offered_at: this.offeredAt });
    }
    this.event('agent.offered', { agentId, attempt: this.agentAttempt, queue: q.id });
    this.live({ state: this.state, agentId });
    const log = this.log.child({ agentId });
    let cause = 'no answer';
    if (!agent?.endpoint) {
      log.error('reserved agent has no phone endpoint');
      this.leg.gone = true;
      cause = 'no endpoint';
    } else {
      try {
        void this.sendScreenPop(agentId).catch((err) => log.warn({ err }, 'screen pop failed')); // never holds up the ring: the history was fetched while the caller waited
        await this.deps.ari.channels.originate({
          endpoint: agent.endpoint,
          channelId,
          appArgs: ['agent', this.id],
          callerNumber: this.caller,
          timeoutSeconds: q.ringSeconds,
        });
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'could not ring agent');
        this.leg.gone = true;
        cause = err instanceof AriUnavailable ? 'asterisk unreachable' : 'phone unreachable';
      }
    }

    const outcome = await this.waitFor(
      () => (this.callerGone ? 'caller_gone' : this.leg?.answered ? 'answered' : this.leg?.gone ? 'no_answer' : undefined),
      q.ringSeconds * 1000 + 5000,
    );

    if (outcome === 'answered' && !this.callerGone) {
      await this.deps.agentStates.transition(agentId, 'on_call', { expectCallId: this.id, callId: this.id });
      if (this.mohOn === 'channel') await this.stopMoh(); // before the caller joins a bridge
      await this.ensureBridge([channelId]);
      await this.stopMoh(); // the bridge's music, once the agent is in
      this.move('agent_answered');
      if (!this.answeredAt) {
        this.answeredAt = new Date();
        this.update({ answered_at: this.answeredAt });
      }
      this.persist('call.addAgent', { callId: this.id, agentId });
      this.recorder.start(this.callerChannelId);
      this.agentsSeen.push(agentId);
      this.event('agent.answered', { agentId });
      this.deps.events?.publish('call.answered', { callId: this.id, agentId, caller: this.caller, line: this.line }, { agentId });
      this.live({ state: this.state });
      log.info('agent answered; caller and agent bridged');
      await this.talk();
      return 'answered';
    }

    // not answered: rang out, rejected, unreachable, or the caller left first
    await ignoreGone(this.deps.ari.channels.hangup(channelId, 'normal')).catch(() => undefined);
    this.deps.untrack(channelId);
    this.leg = null;
    if (outcome === 'caller_gone' || this.callerGone) {
      await this.deps.agentStates.tryTransition(agentId, 'ready', { expectCallId: this.id, reason: null });
      this.event('agent.no_answer', { agentId, reason: 'caller_gone' });
      return 'caller_gone';
    }
    if (cause === 'asterisk unreachable') {
      // we could not ring the phone (Asterisk unreachable, ARI timeout): not the agent's fault, keep it ready
      await this.deps.agentStates.tryTransition(agentId, 'ready', { expectCallId: this.id, reason: null });
      this.event('agent.no_answer', { agentId, reason: cause });
      this.move('no_answer');
      await this.waitFor(() => (this.callerGone ? true : undefined), 1000); // do not spin while Asterisk is away
      return 'no_answer';
    }
    // the agent did not take the call: not ready, so the next caller is not sent to an empty desk
    await this.deps.agentStates.tryTransition(agentId, 'not_ready', { expectCallId: this.id, reason: cause === 'phone unreachable' ? 'phone-unreachable' : 'ring-no-answer' });
    this.event('agent.no_answer', { agentId, reason: outcome === 'timeout' ? 'ring_timeout' : cause });
    log.info({ cause }, 'agent did not answer; set not ready');
    this.move('no_answer');
    this.live({ state: this.state, agentId: '' });
    return 'no_answer';
  }

  private async startMoh(): Promise<void> {
    if (this.mohOn || this.callerGone) return;
    if (this.bridgeCreated) {
      // a taken-over call's bridge may still play music: a conflict is no failure
      await ignoreGone(this.deps.ari.bridges.startMoh(this.bridgeId, this.queue?.moh));
      this.mohOn = 'bridge';
    } else {
      await ignoreGone(this.deps.ari.channels.startMoh(this.callerChannelId, this.queue?.moh));
      this.mohOn = 'channel';
    }
  }

  private async stopMoh(): Promise<void> {
    const where = this.mohOn;
    if (!where) return;
    this.mohOn = false;
    await ignoreGone(where === 'bridge' ? this.deps.ari.bridges.stopMoh(this.bridgeId) : this.deps.ari.channels.stopMoh(this.callerChannelId));
  }

  // ---- the conversation and call control ------------------------------------------------------

  /** the agent who is on this call now (null before an agent answered, or with an outside party only) */
  get currentAgent(): string | null {
    return this.leg?.answered && !this.leg.gone ? this.leg.agentId : null;
  }

  /** every agent taking part now (primary, conference members, consulted) */
  get agentsOnCall(): string[] {
    const all = [this.leg, ...this.extraLegs.values()].filter((l): l is AgentLeg => Boolean(l?.answered && !l.gone && l.agentId));
    return all.map((l) => l.agentId!);
  }

  /** talking until the caller leaves, the agent's part ends, or a follow-up (transfer, survey) is set */
  private async talk(): Promise<void> {
    for (;;) {
      const r = await this.waitFor(() => (this.callerGone ? 'caller' : this.next ? 'next' : this.leg?.gone ? 'agent' : undefined), Number.POSITIVE_INFINITY);
      if (r !== 'agent') return;
      // the primary agent left a conference: the call goes on with the others
      const other = [...this.extraLegs.values()].find((l) => l.answered && !l.gone && l !== this.consult?.leg);
      if (!other) {
        // the agent hung up its phone: the normal end of a call, the caller hears the satisfaction survey
        if (!this.callerGone && !this.next && this.lineConfig?.survey && this.lineConfig.surveyAfterAgent) {
          this.event('survey.after_agent', { agentId: this.leg?.agentId ?? null });
          this.next = { kind: 'survey' };
        }
        return;
      }
      const left = this.leg!;
      this.extraLegs.delete(other.channelId);
      this.leg = other;
      if (left.agentId) void this.releaseAgent(left as AgentLeg & { agentId: string });
      this.event('conference.primary_left', { agentId: left.agentId, next: other.agentId });
    }
  }

  /** after the agent's part: transfers and the survey, one after another, until the caller is done */
  private async followUp(): Promise<void> {
    while (this.next && !this.callerGone) {
      const step = this.next;
      this.next = null;
      if (step.kind !== 'ivr' || !step.returnTo) await this.releasePrimary();
      if (this.held) await this.unhold();
      switch (step.kind) {
        case 'queue':
          this.priority += 1; // a transferred caller has waited already: ahead of first-come callers
          await this.waitInQueue(step.queue);
          break;
        case 'agent': {
          const r = await this.ringAgent(step.agentId);
          if (r === 'no_answer' && !this.callerGone && this.queue) {
            // the target did not answer: the caller goes back to its queue rather than to nobody
            this.event('transfer.no_answer', { agentId: step.agentId });
            await this.waitInQueue(this.queue.id);
          }
          break;
        }
        case 'number':
          await this.transferOut(step.number);
          break;
        case 'ivr':
          await this.ivrDuringCall(step.flow, step.returnTo);
          break;
        case 'survey':
          await this.survey();
          break;
      }
    }
  }

  /** the primary agent's part ends now: its phone is hung up, it goes to wrap-up */
  private async releasePrimary(): Promise<void> {
    const leg = this.leg;
    if (!leg) return;
    this.leg = null;
    if (!leg.gone) {
      leg.gone = true;
      await ignoreGone(this.deps.ari.channels.hangup(leg.channelId, 'normal')).catch(() => undefined);
    }
    this.deps.untrack(leg.channelId);
    if (leg.agentId) await this.releaseAgent(leg as AgentLeg & { agentId: string });
  }

  /** the call's bridge with the caller in it (and `with`, e.g. the agent who just answered, in the same request) */
  private async ensureBridge(withChannels: string[] = []): Promise<void> {
    if (!this.bridgeCreated) {
      await this.deps.ari.bridges.create(this.bridgeId, 'mixing', `call ${this.id}`);
      this.bridgeCreated = true;
      await this.deps.ari.bridges.addChannel(this.bridgeId, [this.callerChannelId, ...withChannels]);
    } else if (withChannels.length) {
      await this.deps.ari.bridges.addChannel(this.bridgeId, withChannels);
    }
  }

  private holdBridge(): string {
    return asteriskIds.holdBridge(this.id);
  }

  /** run one call-control action; refuse a second one while the first runs */
  private async control<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.callerGone || this.state === 'ended') throw new ControlError('call-ended', 'the call has ended', 404);
    if (this.controlBusy) throw new ControlError('busy', 'another action on this call is still running');
    this.controlBusy = true;
    try {
      return await fn();
    } catch (err) {
      if (err instanceof AriGone && this.callerGone) throw new ControlError('call-ended', 'the call has ended', 404);
      throw err;
    } finally {
      this.controlBusy = false;
      this.log.debug({ what }, 'call control done');
    }
  }

  private requireTalking(): void {
    if (this.state !== 'talking' || !this.leg?.answered || this.leg.gone) throw new ControlError('not-talking', 'the call is not connected to an agent');
  }

  /** the caller waits apart with music; the agent and the caller cannot hear each other */
  hold(by: string): Promise<void> {
    return this.control('hold', async () => {
      this.requireTalking();
      if (this.held) throw new ControlError('already-held', 'the call is on hold already');
      await this.putOnHold();
      this.event('call.hold', { by });
      this.deps.events?.publish('call.held', { callId: this.id, by }, { agentId: this.leg!.agentId ?? by });
    });
  }

  resume(by: string): Promise<void> {
    return this.control('resume', async () => {
      this.requireTalking();
      if (!this.held) throw new ControlError('not-held', 'the call is not on hold');
      if (this.consult) throw new ControlError('consulting', 'complete or cancel the consultation first');
      await this.unhold();
      this.event('call.resume', { by });
      this.deps.events?.publish('call.resumed', { callId: this.id, by }, { agentId: this.leg!.agentId ?? by });
    });
  }

  private async putOnHold(): Promise<void> {
    await this.moveToHoldBridge(this.callerChannelId);
    this.held = true;
  }

  /** one party (the held caller, or an agent waiting for its caller to come back from a flow) waits apart with music */
  private async moveToHoldBridge(channelId: string): Promise<void> {
    if (!this.holdBridgeCreated) {
      await this.deps.ari.bridges.create(this.holdBridge(), 'mixing', `hold ${this.id}`);
      this.holdBridgeCreated = true;
    }
    await this.deps.ari.bridges.removeChannel(this.bridgeId, [channelId]);
    await this.deps.ari.bridges.addChannel(this.holdBridge(), [channelId]);
    await this.deps.ari.bridges.startMoh(this.holdBridge(), this.queue?.moh);
  }

  private async unhold(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    await ignoreGone(this.deps.ari.bridges.stopMoh(this.holdBridge()));
    await ignoreGone(this.deps.ari.bridges.removeChannel(this.holdBridge(), [this.callerChannelId]));
    await this.deps.ari.bridges.addChannel(this.bridgeId, [this.callerChannelId]);
  }

  /** listen, whisper or barge-in from a supervisor's phone (src/supervision/monitor.ts) */
  monitor(mode: MonitorMode, supervisor: Supervisor): Promise<MonitorView> {
    return this.monitors.start(mode, supervisor);
  }

  /** a supervisor ends the call for everyone: the agent is released as after any call */
  forceHangup(by: string): Promise<void> {
    return this.control('force-hangup', async () => {
      this.endedBy ??= 'supervisor';
      this.event('supervisor.hangup', { by });
      await ignoreGone(this.deps.ari.channels.hangup(this.callerChannelId, 'normal'));
    });
  }

  /** the agent hangs up on the citizen: allowed, and recorded as such (the normal end is the survey) */
  hangupByAgent(by: string): Promise<void> {
    return this.control('hangup', async () => {
      this.endedBy ??= 'agent';
      this.event('agent.hangup', { by });
      await ignoreGone(this.deps.ari.channels.hangup(this.callerChannelId, 'normal'));
    });
  }

  /** the agent ends its part and the caller hears the satisfaction survey */
  toSurvey(by: string): Promise<void> {
    return this.control('survey', async () => {
      this.requireTalking();
      this.event('survey.requested', { by });
      this.next = { kind: 'survey' };
      this.wake();
    });
  }

  /**
   * Blind transfer: the agent's part ends and the caller goes to another agent, a queue, an outside
   * number or an IVR flow (with returnToAgent the agent waits with music and gets the caller back).
   */
  transfer(target: TransferTarget, by: string, returnToAgent = false): Promise<void> {
    return this.control('transfer', async () => {
      this.requireTalking();
      if (this.consult) throw new ControlError('consulting', 'complete or cancel the consultation first');
      if ('queue' in target) {
        if (!this.deps.queues.get(target.queue)) throw new ControlError('no-such-queue', `no queue ${target.queue}`, 422);
        this.next = { kind: 'queue', queue: target.queue };
      } else if ('agent' in target) {
        if (target.agent === this.leg!.agentId) throw new ControlError('same-agent', 'the call is already with this agent', 422);
        await this.reserveAgent(target.agent);
        this.next = { kind: 'agent', agentId: target.agent };
      } else if ('number' in target) {
        this.next = { kind: 'number', number: target.number };
      } else {
        if (!this.ivrConfig?.flows.has(target.ivr)) throw new ControlError('no-such-flow', `no IVR flow ${target.ivr}`, 422);
        this.next = { kind: 'ivr', flow: target.ivr, returnTo: returnToAgent ? this.leg : null };
      }
      this.event('transfer', { mode: 'blind', target, by, returnToAgent });
      this.deps.events?.publish('call.transferred', { callId: this.id, target, by, mode: 'blind' }, { agentId: this.leg!.agentId ?? by });
      this.wake();
    });
  }

  /** a target agent must be ready, and is held for this call until its phone is answered or not */
  private async reserveAgent(agentId: string): Promise<void> {
    const a = await this.deps.engine.getAgent(agentId);
    if (!a) throw new ControlError('no-such-agent', `no agent ${agentId}`, 422);
    if (a.state !== 'ready') throw new ControlError('agent-not-ready', `agent ${agentId} is ${a.state}`);
    try {
      await this.deps.agentStates.transition(agentId, 'reserved', { callId: this.id });
    } catch (err) {
      throw new ControlError('agent-not-ready', `agent ${agentId} could not be reserved: ${(err as Error).message}`);
    }
  }

  /** attended transfer: the caller waits with music while the agent talks to the target first */
  consultStart(target: { agent: string } | { number: string }, by: string): Promise<void> {
    return this.control('consult', async () => {
      this.requireTalking();
      if (this.consult) throw new ControlError('consulting', 'a consultation is already running');
      if ('agent' in target) {
        if (target.agent === this.leg!.agentId) throw new ControlError('same-agent', 'the call is already with this agent', 422);
        await this.reserveAgent(target.agent);
      }
      if (!this.held) await this.putOnHold();
      this.event('transfer', { mode: 'attended', target, by });
      const primary = this.leg!;
      const bridgeId = asteriskIds.consultBridge(this.id);
      await this.deps.ari.bridges.create(bridgeId, 'mixing', `consult ${this.id}`);
      await this.deps.ari.bridges.removeChannel(this.bridgeId, [primary.channelId]);
      await this.deps.ari.bridges.addChannel(bridgeId, [primary.channelId]);
      const leg = await this.dialParty(target, bridgeId, 'consult');
      if (!leg) {
        // nobody answered: the agent and the caller are put back together
        await ignoreGone(this.deps.ari.bridges.removeChannel(bridgeId, [primary.channelId]));
        await ignoreGone(this.deps.ari.bridges.destroy(bridgeId));
        if (!primary.gone) await this.deps.ari.bridges.addChannel(this.bridgeId, [primary.channelId]);
        await this.unhold();
        throw new ControlError('no-answer', 'the consulted party did not answer');
      }
      this.consult = { leg, bridgeId };
    });
  }

  /** attended transfer, done: the consulted party takes over the caller, the agent's part ends */
  consultComplete(by: string): Promise<void> {
    return this.control('consult-complete', async () => {
      const c = this.consult;
      if (!c) throw new ControlError('not-consulting', 'no consultation is running');
      this.consult = null;
      this.extraLegs.delete(c.leg.channelId);
      await ignoreGone(this.deps.ari.bridges.removeChannel(c.bridgeId, [c.leg.channelId]));
      await ignoreGone(this.deps.ari.bridges.destroy(c.bridgeId));
      const old = this.leg;
      this.leg = c.leg;
      await this.deps.ari.bridges.addChannel(this.bridgeId, [c.leg.channelId]);
      await this.unhold();
      if (old) {
        old.gone = true;
        await ignoreGone(this.deps.ari.channels.hangup(old.channelId, 'normal'));
        this.deps.untrack(old.channelId);
        if (old.agentId) await this.releaseAgent(old as AgentLeg & { agentId: string });
      }
      this.event('transfer.completed', { by, from: old?.agentId ?? null, to: c.leg.agentId });
      this.wake();
    });
  }

  /** attended transfer, called off: the consulted party is hung up, the agent has the caller back */
  consultCancel(by: string): Promise<void> {
    return this.control('consult-cancel', async () => {
      const c = this.consult;
      if (!c) throw new ControlError('not-consulting', 'no consultation is running');
      this.consult = null;
      await this.dropParty(c.leg);
      const primary = this.leg;
      await ignoreGone(this.deps.ari.bridges.removeChannel(c.bridgeId, primary ? [primary.channelId] : []));
      await ignoreGone(this.deps.ari.bridges.destroy(c.bridgeId));
      if (primary && !primary.gone) await this.deps.ari.bridges.addChannel(this.bridgeId, [primary.channelId]);
      await this.unhold();
      this.event('transfer.cancelled', { by, target: c.leg.agentId });
    });
  }

  /** three-way: another agent or an outside expert joins; everyone hears everyone */
  conference(target: { agent: string } | { number: string }, by: string): Promise<void> {
    return this.control('conference', async () => {
      this.requireTalking();
      if (this.consult) throw new ControlError('consulting', 'complete or cancel the consultation first');
      if ('agent' in target) {
        if (this.agentsOnCall.includes(target.agent)) throw new ControlError('same-agent', 'this agent is on the call already', 422);
        await this.reserveAgent(target.agent);
      }
      if (this.held) await this.unhold();
      const leg = await this.dialParty(target, this.bridgeId, 'conference');
      if (!leg) throw new ControlError('no-answer', 'the invited party did not answer');
      this.event('conference.joined', { by, target, agentId: leg.agentId });
      this.deps.events?.publish('call.conference', { callId: this.id, target, by }, { agentId: by });
    });
  }

  /** ring another party (an agent already reserved, or an outside number); joined to bridgeId once answered */
  private async dialParty(target: { agent: string } | { number: string }, bridgeId: string, why: string): Promise<AgentLeg | null> {
    const agentId = 'agent' in target ? target.agent : null;
    let endpoint: string;
    if (agentId) {
      const a = await this.deps.engine.getAgent(agentId);
      if (!a?.endpoint) {
        await this.deps.agentStates.tryTransition(agentId, 'ready', { expectCallId: this.id, reason: null });
        throw new ControlError('no-phone', `agent ${agentId} has no phone`, 422);
      }
      endpoint = a.endpoint;
    } else endpoint = this.deps.dialTemplate.replace('{number}', (target as { number: string }).number);
    const channelId = asteriskIds.agentLeg(this.id, ++this.agentAttempt);
    const leg: AgentLeg = { agentId, channelId, answered: false, gone: false };
    this.extraLegs.set(channelId, leg);
    this.deps.track(channelId, this);
    const ringSeconds = this.queue?.ringSeconds ?? TRANSFER_RING_SECONDS;
    try {
      if (agentId) void this.sendScreenPop(agentId).catch((err) => this.log.warn({ err }, 'screen pop failed'));
      await this.deps.ari.channels.originate({ endpoint, channelId, appArgs: ['agent', this.id], callerNumber: this.caller, timeoutSeconds: ringSeconds });
    } catch (err) {
      this.log.warn({ err: (err as Error).message, why }, 'party could not be rung');
      leg.gone = true;
    }
    const r = await this.waitFor(() => (this.callerGone ? 'gone' : leg.answered ? 'answered' : leg.gone ? 'failed' : undefined), ringSeconds * 1000 + 5000);
    if (r !== 'answered') {
      await this.dropParty(leg, r === 'timeout' || r === 'failed' ? 'ring-no-answer' : null);
      return null;
    }
    if (agentId) {
      await this.deps.agentStates.transition(agentId, 'on_call', { expectCallId: this.id, callId: this.id });
      this.persist('call.addAgent', { callId: this.id, agentId });
      this.agentsSeen.push(agentId);
    }
    await this.deps.ari.bridges.addChannel(bridgeId, [channelId]);
    this.event('party.answered', { why, agentId, channelId });
    return leg;
  }

  /** hang up a non-primary party and free its agent */
  private async dropParty(leg: AgentLeg, agentReason: 'ring-no-answer' | null = null): Promise<void> {
    this.extraLegs.delete(leg.channelId);
    if (!leg.gone) {
      leg.gone = true;
      await ignoreGone(this.deps.ari.channels.hangup(leg.channelId, 'normal')).catch(() => undefined);
    }
    this.deps.untrack(leg.channelId);
    if (!leg.agentId) return;
    if (leg.answered) await this.releaseAgent(leg as AgentLeg & { agentId: string });
    else if (agentReason) await this.deps.agentStates.tryTransition(leg.agentId, 'not_ready', { expectCallId: this.id, reason: agentReason });
    else await this.deps.agentStates.tryTransition(leg.agentId, 'ready', { expectCallId: this.id, reason: null });
  }

  /** an IVR flow in the middle of the call (e.g. the caller keys in an ID number); back to the agent after it when asked */
  private async ivrDuringCall(flowId: string, returnTo: AgentLeg | null): Promise<void> {
    const ivr = this.ivrConfig ?? this.deps.ivr.current();
    const flow = ivr.flows.get(flowId);
    if (!flow) return;
    if (returnTo && !returnTo.gone) {
      // the agent waits apart with music while the caller is in the flow
      await this.moveToHoldBridge(returnTo.channelId);
    }
    this.move('ivr');
    this.event('ivr.started', { line: this.line, flow: flow.id, version: ivr.version, during: 'call', returnToAgent: Boolean(returnTo) });
    this.io.digits.length = 0;
    const r = await runFlow(flow, this.io.callIo((type, data) => this.event(type, data)), { holidays: ivr.holidays, language: this.language });
    Object.assign(this.ivrVariables, r.variables);
    this.event('ivr.completed', { outcome: r.outcome.kind, path: r.path, variables: r.variables, during: 'call' });
    if (returnTo && !returnTo.gone && !this.callerGone) {
      await ignoreGone(this.deps.ari.bridges.stopMoh(this.holdBridge()));
      await ignoreGone(this.deps.ari.bridges.removeChannel(this.holdBridge(), [returnTo.channelId]));
      await this.deps.ari.bridges.addChannel(this.bridgeId, [returnTo.channelId]);
      this.move('agent_answered');
      this.event('transfer.returned', { agentId: returnTo.agentId });
      await this.talk();
      return;
    }
    if (returnTo) await this.releasePrimary();
    if (r.outcome.kind === 'queue') {
      await this.waitInQueue(r.outcome.queue);
    } else if (r.outcome.kind === 'voicemail' && this.lineConfig) await this.takeVoicemail(ivr, this.lineConfig, 'ivr', r.outcome.prompt);
    else if (r.outcome.kind === 'transfer') await this.transferOut(r.outcome.number);
  }

  /** the satisfaction survey: the line's survey flow, its `score` kept on the call */
  private async survey(): Promise<void> {
    const ivr = this.ivrConfig ?? this.deps.ivr.current();
    const flow = ivr.flows.get(this.lineConfig?.survey ?? 'survey');
    if (!flow) {
      await this.io.playToEnd(this.sound('goodbye'));
      this.endedBy ??= 'system';
      return;
    }
    this.io.digits.length = 0;
    const r = await runFlow(flow, this.io.callIo((type, data) => this.event(type, data)), { holidays: ivr.holidays, language: this.language });
    const score = r.variables.score ?? null;
    this.event('survey', { score, flow: flow.id, path: r.path });
    if (score !== null) this.creditSurvey(Number(score));
    this.endedBy ??= 'system';
  }

  /** the score goes on the call and to every agent who took part in it (transfers, conference) */
  private creditSurvey(score: number): void {
    const scale = this.lineConfig?.surveyScale ?? 3;
    const satisfied = surveySatisfied(score, scale);
    const at = new Date();
    this.update({ survey_score: score, survey_scale: scale, survey_satisfied: satisfied, survey_at: at });
    const agents = [...new Set(this.agentsSeen)];
    if (agents.length === 0) return;
    this.persist('survey.credit', { callId: this.id, agents, line: this.line || this.dialed, score, scale, satisfied, at });
    this.event('survey.credited', { agents, score, scale, satisfied });
  }

  private historyPromise: Promise<{ calls: HistoryItem[]; sms: SmsHistoryItem[]; lastAgent: string | null }> | null = null;

  /**
   * the caller's earlier calls and SMS, and the agent of its last answered call: looked up once, as the caller
   * enters the queue (the screen pop needs them at once, repeat-caller routing before the first offer)
   */
  private prefetchHistory(): Promise<{ calls: HistoryItem[]; sms: SmsHistoryItem[]; lastAgent: string | null }> {
    this.historyPromise ??= callerContext(this.deps.db, this.caller, { exceptCallId: this.id, limit: 10, repeatDays: this.deps.repeatCallerDays });
    this.historyPromise.catch(() => undefined); // a failure is reported where it is awaited
    return this.historyPromise;
  }

  /** the screen pop: who is calling, how, and their history, to the agent's desktop before its phone rings */
  private async sendScreenPop(agentId: string): Promise<void> {
    const events = this.deps.events;
    if (!events) return;
    if (!this.screenPop) {
      // fetched once, when the caller entered the queue (prefetchHistory); a slow database leaves it out
      const history = await withTimeout(this.prefetchHistory(), 250, () => new Error('history too slow')).catch((err) => {
        this.log.warn({ err: (err as Error).message }, 'caller history left out of the screen pop');
        return null;
      });
      this.screenPop = { history: history?.calls ?? null, sms: history?.sms ?? null, tickets: [] };
    }
    events.publish(
      'call.offered',
      {
        callId: this.id,
        caller: this.caller,
        dialed: this.dialed,
        line: this.line,
        lineName: this.lineConfig?.name ?? this.line,
        language: this.language,
        queue: this.queue?.id ?? null,
        ivrPath: this.ivrPath,
        digits: this.ivrVariables,
        waitSeconds: Math.round((Date.now() - this.arrivedAt.getTime()) / 1000),
        history: this.screenPop.history,
        sms: this.screenPop.sms,
        tickets: this.screenPop.tickets,
        links: { call: `/api/v1/calls/${this.id}`, callerCalls: `/api/v1/calls?caller=${encodeURIComponent(this.caller)}`, sms: `/api/v1/sms?number=${encodeURIComponent(this.caller)}` },
      },
      { agentId },
    );
  }

  // ---- the end -------------------------------------------------------------------------------

  private async finish(): Promise<void> {
    const endedAt = new Date();
    const answered = this.answeredAt !== null;
    if (this.state !== 'ended') this.move('end');
    const ari = this.deps.ari;
    if (!this.callerGone && this.endedBy === 'system') {
      // The flow ended on a last prompt. When the caller hung up during it, Asterisk sends the prompt's
      // PlaybackFinished (state "done") just before the channel's StasisEnd, and the flow went on to here
      // first: give that StasisEnd a moment before saying the platform ended the call.
      await this.waitFor(() => (this.callerGone ? true : undefined), CALLER_HANGUP_GRACE_MS);
      // a busy loop runs the timer before reading the socket: let the events already received through first
      if (!this.callerGone) await new Promise((r) => setImmediate(r));
      if (this.callerGone) this.endedBy = 'caller';
    }
    // first: a recording start still in flight settles (its timeline line before `ended`), and one cut short by
    // the hang-ups below is the call's end, not a failure
    const cleanup: Promise<unknown>[] = [this.recorder.end()];
    if (!this.callerGone) cleanup.push(ignoreGone(ari.channels.hangup(this.callerChannelId, 'normal')));
    if (this.leg && !this.leg.gone) cleanup.push(ignoreGone(ari.channels.hangup(this.leg.channelId, 'normal')));
    for (const leg of [...this.extraLegs.values()]) cleanup.push(this.dropParty(leg));
    cleanup.push(this.monitors.closeAll());
    if (this.consult) cleanup.push(ignoreGone(ari.bridges.destroy(this.consult.bridgeId)));
    if (this.holdBridgeCreated) cleanup.push(ignoreGone(ari.bridges.destroy(this.holdBridge())));
    if (this.bridgeCreated) cleanup.push(ignoreGone(ari.bridges.destroy(this.bridgeId)));
    if (this.leg?.agentId) cleanup.push(this.releaseAgent(this.leg as AgentLeg & { agentId: string }));
    for (const r of await Promise.allSettled(cleanup)) {
      if (r.status === 'rejected') this.log.warn({ err: (r.reason as Error)?.message }, 'cleanup step failed');
    }
    const disposition = this.outcome ?? dispositionOnEnd(this.state, answered);
    if (disposition === 'abandoned' && this.firstQueuedAt && !this.blacklisted) {
      // an abandoned caller is offered a callback: supervisors see the list (one pending per number)
      this.persist('callback.request', { number: this.caller, callId: this.id, queue: this.queue?.id ?? null, reason: 'abandoned' });
    }
    // the timeline's last event is written before ended_at: whoever sees ended_at sees the whole timeline
    this.event('ended', { disposition, by: this.endedBy ?? 'system' });
    const waitUntil = this.answeredAt ?? endedAt;
    this.update({
      ended_at: endedAt,
      disposition,
      end_reason: this.endedBy ?? 'system',
      wait_seconds: Math.max(0, (waitUntil.getTime() - this.arrivedAt.getTime()) / 1000),
      talk_seconds: this.answeredAt ? (endedAt.getTime() - this.answeredAt.getTime()) / 1000 : null,
    });

    this.log.info({ disposition, by: this.endedBy }, 'call ended');
    for (const agentId of new Set(this.agentsSeen)) this.deps.events?.publish('call.ended', { callId: this.id, disposition, by: this.endedBy ?? 'system' }, { agentId });
    this.deps.untrack(this.callerChannelId);
    if (this.leg) this.deps.untrack(this.leg.channelId);
    this.deps.untrack(this.recorder.snoopId);
    const { redis, keys } = this.deps;
    void Promise.all([redis.del(keys.call(this.id)), redis.srem(keys.liveCalls(), this.id)]).catch(() => undefined);
    await this.record.flushed();
    this.deps.ended(this);
  }

  /** after the call: a talking agent goes to wrap-up then ready; a reserved one straight back to ready */
  private async releaseAgent(leg: AgentLeg & { agentId: string }): Promise<void> {
    const { agentStates } = this.deps;
    if (!leg.answered) {
      await agentStates.tryTransition(leg.agentId, 'ready', { expectCallId: this.id, reason: null });
      return;
    }
    const wrapped = await agentStates.tryTransition(leg.agentId, 'wrap_up', { expectCallId: this.id });
    if (!wrapped) return;
    const seconds = this.queue?.wrapUpSeconds ?? 0;
    // a process that dies here leaves the agent in wrap-up; the agent-state sweeper frees it
    this.wrapUpTimer = setTimeout(() => {
      void agentStates.tryTransition(leg.agentId, 'ready', { expectCallId: this.id, reason: null });
    }, seconds * 1000);
    this.wrapUpTimer.unref();
  }

  /** resolves when every record write of this call so far has been tried */
  flushed(): Promise<void> {
    return this.record.flushed();
  }

  // ---- helpers -------------------------------------------------------------------------------

  private move(event: CallEvent): void {
    const from = this.state;
    this.state = transition(from, event);
    this.log.debug(`${from} -${event}-> ${this.state}`);
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

  private event(type: string, data: Record<string, unknown> = {}): void {
    this.record.event(type, data);
  }

  /**
   * The call's live state (supervisors' lists, /metrics, a restarted process's adoption): a hash with a TTL, and
   * the call in the set of live calls, written at arrival; each later step writes its fields and the TTL again.
   * No MULTI: the commands go out in one write (ioredis auto-pipelining) and none depends on another.
   */
  private live(fields: Record<string, string>): void {
    const { redis, keys } = this.deps;
    const key = keys.call(this.id);
    const writes: Promise<unknown>[] = [redis.hset(key, fields), redis.expire(key, LIVE_TTL_S)];
    if (!this.liveListed) {
      this.liveListed = true;
      writes.push(redis.sadd(keys.liveCalls(), this.id));
    }
    void Promise.all(writes).catch((err: Error) => this.log.warn({ err: err.message }, 'live state not written'));
  }
}

/** 3 levels: 1 satisfied and 2 basically satisfied count as satisfied; 5 levels: 4 and 5 */
export function surveySatisfied(score: number, scale: 3 | 5): boolean {
  return scale === 5 ? score >= 4 : score === 1 || score === 2;
}
