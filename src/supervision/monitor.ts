/**
 * A supervisor on a live call (ARI snoop): listen, whisper (coach) and barge-in.
 *
 * - listen: a snoop channel on the CALLER's channel (spy both: the caller and everything the caller hears)
 *   joins the supervisor's phone in a bridge of its own. Nobody else's bridge changes, nobody hears the
 *   supervisor, and it survives transfers and conferences (the caller stays).
 * - whisper: a snoop on the AGENT's channel, spy both + whisper out: the supervisor hears the conversation
 *   and the agent hears the supervisor; the caller does not.
 * - barge: the supervisor's phone joins the call's own bridge (three-way); the agent's desktop is told.
 * - stop: the supervisor's phone and the snoop are hung up and the monitor bridge destroyed: the call is as
 *   it was. A supervisor may switch mode on the same phone leg (listen -> whisper -> barge -> listen).
 *
 * The call session owns one CallMonitors; it routes the events of the monitor channels here.
 */
import type { Logger } from 'pino';
import { AriGone, ignoreGone, type AriPort, type ChannelInfo } from '../ari/port.js';
import { Waiters } from '../calls/waiters.js';
import type { EventBus } from '../events/bus.js';
import { asteriskIds } from '../redis/keys.js';

export type MonitorMode = 'listen' | 'whisper' | 'barge';

/** a refused monitoring action; the route maps status and code */
export class MonitorError extends Error {
  override name = 'MonitorError';
  constructor(
    readonly code: string,
    message: string,
    readonly status = 409,
  ) {
    super(message);
  }
}

/** what the call lends its monitors */
export interface MonitorHost {
  readonly id: string;
  readonly callerChannelId: string;
  readonly callBridgeId: string;
  /** the caller is still on the line */
  live(): boolean;
  /** the agent talking with the caller now (null: nobody yet, or an outside party only) */
  agentChannel(): { agentId: string; channelId: string } | null;
  /** route this channel's ARI events to the call */
  track(channelId: string): void;
  untrack(channelId: string): void;
  /** a line on the call's timeline */
  event(type: string, data: Record<string, unknown>): void;
}

export interface MonitorDeps {
  ari: Pick<AriPort, 'channels' | 'bridges'>;
  events?: Pick<EventBus, 'publish'>;
  log: Logger;
  /** how long the supervisor's phone may ring */
  ringSeconds: number;
}

export interface Supervisor {
  username: string;
  /** dial string of the supervisor's phone, e.g. PJSIP/agent9001 */
  endpoint: string;
  extension: string;
}

interface Monitor {
  n: number;
  supervisor: Supervisor;
  legId: string;
  bridgeId: string;
  answered: boolean;
  gone: boolean;
  mode: MonitorMode | null;
  snoopId: string | null;
  snoops: number;
  bridgeCreated: boolean;
  inCallBridge: boolean;
  since: Date;
}

export interface MonitorView {
  supervisor: string;
  extension: string;
  mode: MonitorMode;
  since: string;
}

export class CallMonitors {
  private readonly monitors = new Map<string, Monitor>();
  private seq = 0;
  private readonly waits = new Waiters();
  private busy = false;
  /** snoop channels that have entered Stasis (only then can they join a bridge) */
  private readonly snoopsUp = new Set<string>();

  constructor(
    private readonly deps: MonitorDeps,
    private readonly host: MonitorHost,
  ) {}

  /** who is monitoring this call now */
  list(): MonitorView[] {
    return [...this.monitors.values()]
      .filter((m) => !m.gone && m.mode)
      .map((m) => ({ supervisor: m.supervisor.username, extension: m.supervisor.extension, mode: m.mode!, since: m.since.toISOString() }));
  }

  /** this channel is one of ours */
  owns(channelId: string): boolean {
    for (const m of this.monitors.values()) if (m.legId === channelId || m.snoopId === channelId) return true;
    return false;
  }

  /**
   * Start monitoring in this mode, or switch the supervisor's running monitor to it. Resolves once the
   * supervisor's phone answered and the audio is connected.
   */
  async start(mode: MonitorMode, supervisor: Supervisor): Promise<MonitorView> {
    if (!this.host.live()) throw new MonitorError('call-ended', 'the call has ended', 404);
    if (mode !== 'listen' && !this.host.agentChannel()) throw new MonitorError('not-talking', `${mode} needs an agent on the call`);
    if (this.busy) throw new MonitorError('busy', 'another monitoring action on this call is still running');
    this.busy = true;
    try {
      let m = [...this.monitors.values()].find((x) => x.supervisor.username === supervisor.username && !x.gone);
      if (m && m.supervisor.endpoint !== supervisor.endpoint) {
        await this.teardown(m, 'phone changed');
        m = undefined;
      }
      if (!m) m = await this.dialSupervisor(supervisor);
      await this.apply(m, mode);
      return { supervisor: supervisor.username, extension: supervisor.extension, mode, since: m.since.toISOString() };
    } finally {
      this.busy = false;
    }
  }

  /** stop this supervisor's monitor (or every monitor when no supervisor is named); false when there was none */
  async stop(username?: string): Promise<boolean> {
    const mine = [...this.monitors.values()].filter((m) => !m.gone && (username === undefined || m.supervisor.username === username));
    await Promise.all(mine.map((m) => this.teardown(m, 'stopped')));
    return mine.length > 0;
  }

  /** the call ends: every monitor goes */
  async closeAll(): Promise<void> {
    await Promise.all([...this.monitors.values()].map((m) => this.teardown(m, 'call ended')));
  }

  /** the supervisor's phone answered (its channel entered Stasis); false when not expected */
  onAnswered(channel: ChannelInfo): boolean {
    const m = [...this.monitors.values()].find((x) => x.legId === channel.id);
    if (!m || m.gone) return false;
    m.answered = true;
    this.waits.wake();
    return true;
  }

  /** a snoop channel entered Stasis; true when it is one of ours */
  onSnoopStarted(channelId: string): boolean {
    if (!this.owns(channelId) && !channelId.startsWith(`${this.host.id}-spy-`)) return false;
    this.snoopsUp.add(channelId);
    this.waits.wake();
    return true;
  }

  /** a monitor channel left: the supervisor hung up, or the snooped channel went (agent transferred away) */
  onChannelGone(channelId: string): boolean {
    for (const m of this.monitors.values()) {
      if (m.legId === channelId) {
        if (!m.gone) {
          m.gone = true;
          this.waits.wake();
          void this.teardown(m, 'supervisor hung up');
        }
        return true;
      }
      if (m.snoopId === channelId) {
        this.host.untrack(channelId);
        m.snoopId = null;
        // whisper on an agent who left the call: keep the supervisor listening to the caller
        if (!m.gone && this.host.live() && m.mode === 'whisper') {
          void this.apply(m, 'listen').catch((err) => this.log(m).warn({ err: (err as Error).message }, 'could not fall back to listening'));
        }
        return true;
      }
    }
    return false;
  }

  private log(m: Monitor): Logger {
    return this.deps.log.child({ supervisor: m.supervisor.username, monitor: m.n });
  }

  private async dialSupervisor(supervisor: Supervisor): Promise<Monitor> {
    const n = ++this.seq;
    const m: Monitor = {
      n,
      supervisor,
      legId: asteriskIds.monitorLeg(this.host.id, n),
      bridgeId: asteriskIds.monitorBridge(this.host.id, n),
      answered: false,
      gone: false,
      mode: null,
      snoopId: null,
      snoops: 0,
      bridgeCreated: false,
      inCallBridge: false,
      since: new Date(),
    };
    this.monitors.set(m.legId, m);
    this.host.track(m.legId);
    try {
      await this.deps.ari.channels.originate({
        endpoint: supervisor.endpoint,
        channelId: m.legId,
        appArgs: ['monitor', this.host.id],
        callerName: 'monitor',
        callerNumber: this.host.id.slice(0, 8),
        timeoutSeconds: this.deps.ringSeconds,
      });
    } catch (err) {
      m.gone = true;
      this.forget(m);
      throw new MonitorError('phone-unreachable', `could not ring ${supervisor.extension}: ${(err as Error).message}`, 502);
    }
    const r = await this.waits.waitFor(() => (m.answered ? 'answered' : m.gone ? 'gone' : !this.host.live() ? 'ended' : undefined), this.deps.ringSeconds * 1000 + 5000);
    if (r !== 'answered') {
      await this.teardown(m, 'not answered');
      if (r === 'ended') throw new MonitorError('call-ended', 'the call ended while the supervisor phone rang', 404);
      throw new MonitorError('no-answer', `the phone at ${supervisor.extension} did not answer`);
    }
    m.since = new Date();
    return m;
  }

  /** connect the supervisor's answered phone in this mode, undoing the previous one */
  private async apply(m: Monitor, mode: MonitorMode): Promise<void> {
    const { ari } = this.deps;
    const from = m.mode;
    if (m.snoopId) {
      const old = m.snoopId;
      m.snoopId = null;
      this.host.untrack(old);
      await this.hangupSure(old, m);
    }
    if (m.inCallBridge) {
      m.inCallBridge = false;
      await ignoreGone(ari.bridges.removeChannel(this.host.callBridgeId, [m.legId]));
    }
    if (mode === 'barge') {
      if (m.bridgeCreated) await ignoreGone(ari.bridges.removeChannel(m.bridgeId, [m.legId]));
      await ari.bridges.addChannel(this.host.callBridgeId, [m.legId]);
      m.inCallBridge = true;
      const agent = this.host.agentChannel();
      this.deps.events?.publish('monitor.barge', { callId: this.host.id, supervisor: m.supervisor.username }, agent ? { agentId: agent.agentId } : { supervisors: true });
    } else {
      const agent = mode === 'whisper' ? this.host.agentChannel() : null;
      if (mode === 'whisper' && !agent) throw new MonitorError('not-talking', 'whisper needs an agent on the call');
      const target = agent ? agent.channelId : this.host.callerChannelId;
      const snoopId = asteriskIds.monitorSnoop(this.host.id, m.n, ++m.snoops);
      this.host.track(snoopId);
      try {
        await ari.channels.snoop(target, { snoopId, spy: 'both', whisper: mode === 'whisper' ? 'out' : 'none', appArgs: ['snoop', this.host.id] });
      } catch (err) {
        this.host.untrack(snoopId);
        if (err instanceof AriGone) throw new MonitorError('call-ended', 'the channel to monitor has gone', 404);
        throw err;
      }
      m.snoopId = snoopId;
      // the snoop answers ARI before it has entered Stasis; a bridge takes it only after StasisStart
      const up = await this.waits.waitFor(() => (this.snoopsUp.has(snoopId) ? true : m.gone || m.snoopId !== snoopId ? false : undefined), 5000);
      this.snoopsUp.delete(snoopId);
      if (up !== true) throw new MonitorError('snoop-failed', up === 'timeout' ? 'the snoop channel did not start' : 'the monitor ended while starting', 502);
      if (!m.bridgeCreated) {
        await ari.bridges.create(m.bridgeId, 'mixing', `monitor ${this.host.id}`);
        m.bridgeCreated = true;
      }
      await ari.bridges.addChannel(m.bridgeId, [m.legId, snoopId]);
    }
    m.mode = mode;
    this.host.event(`monitor.${mode}`, { supervisor: m.supervisor.username, extension: m.supervisor.extension, ...(from ? { from } : {}) });
    this.log(m).info({ mode, from }, 'monitoring');
  }

  private async teardown(m: Monitor, why: string): Promise<void> {
    const { ari } = this.deps;
    const wasOn = m.mode !== null;
    m.gone = true;
    this.waits.wake();
    // gone already is fine (the supervisor hung up, the call ended); anything else is logged
    const steps: Promise<unknown>[] = [this.hangupSure(m.legId, m)];
    if (m.snoopId) steps.push(this.hangupSure(m.snoopId, m));
    if (m.bridgeCreated) steps.push(ari.bridges.destroy(m.bridgeId).catch((err) => (err instanceof AriGone ? undefined : Promise.reject(err))));
    this.log(m).info({ why, mode: m.mode }, 'monitor ended');
    for (const r of await Promise.allSettled(steps)) {
      if (r.status === 'rejected') this.log(m).warn({ err: (r.reason as Error)?.message, type: (r.reason as Error)?.name }, 'monitor cleanup step failed');
    }
    if (m.snoopId) this.host.untrack(m.snoopId);
    m.snoopId = null;
    m.bridgeCreated = false;
    this.forget(m);
    if (wasOn) this.host.event('monitor.stopped', { supervisor: m.supervisor.username, why });
  }

  /**
   * Hang up a monitor channel and make sure it went: a snoop or phone leg that stayed would keep listening.
   * Asterisk has been seen to answer a hangup of a channel that was just moved between bridges without
   * ending it; the channel list tells, and the hangup is repeated (three tries, a second apart).
   */
  private async hangupSure(channelId: string, m: Monitor): Promise<void> {
    const { ari } = this.deps;
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        await ari.channels.hangup(channelId, 'normal');
      } catch (err) {
        if (!(err instanceof AriGone)) this.log(m).warn({ channelId, attempt, err: (err as Error).message, type: (err as Error).name }, 'monitor channel hangup refused');
      }
      await new Promise((r) => setTimeout(r, attempt === 1 ? 300 : 1000));
      const still = (await ari.channels.list().catch(() => [])).some((c) => c.id === channelId);
      if (!still) return;
      this.log(m).warn({ channelId, attempt }, 'monitor channel still there after its hangup; again');
    }
  }

  private forget(m: Monitor): void {
    this.host.untrack(m.legId);
    this.monitors.delete(m.legId);
  }
}
