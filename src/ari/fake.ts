/**
 * An in-memory AriPort for tests of call logic without Asterisk: every request is logged, channels and
 * bridges are tracked, and the test drives the call by emitting the events Asterisk would send
 * (a caller arrives, presses a key, an agent's phone answers, someone hangs up).
 */
import { Readable } from 'node:stream';
import {
  AriConflict,
  AriGone,
  AriUnavailable,
  type AriEvent,
  type AriPort,
  type ChannelInfo,
  type ConnectionState,
  type OriginateRequest,
  type RecordRequest,
  type SnoopRequest,
} from './port.js';

export interface FakeRequest {
  op: string;
  args: unknown[];
}

export class FakeAri implements AriPort {
  connected = true;
  readonly requests: FakeRequest[] = [];
  readonly live = new Map<string, ChannelInfo>();
  readonly bridgeMembers = new Map<string, Set<string>>();
  /** make the next originate fail like an unreachable Asterisk */
  originateFailure: Error | null = null;
  /** PlaybackFinished follows every play after this many ms (null: the test finishes playbacks itself) */
  playbackMs: number | null = 5;
  /** recordings in progress, by name: what channels.record was asked for */
  readonly liveRecordings = new Map<string, { channelId: string; req: RecordRequest; startedAt: number }>();
  /** stored recording files, by name: what recordings.file serves */
  readonly storedRecordings = new Map<string, Buffer>();
  /** make recordings.file fail like an unreachable Asterisk */
  recordingFileFailure: Error | null = null;
  private readonly handlers = new Set<(e: AriEvent) => void>();
  private readonly connectionHandlers = new Set<(s: ConnectionState) => void>();
  private seq = 0;

  onEvent(handler: (e: AriEvent) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }
  onConnection(handler: (s: ConnectionState) => void): () => void {
    this.connectionHandlers.add(handler);
    return () => this.connectionHandlers.delete(handler);
  }
  async close(): Promise<void> {}

  emit(e: AriEvent): void {
    for (const h of this.handlers) h(e);
  }

  private log(op: string, ...args: unknown[]): void {
    this.requests.push({ op, args });
  }
  private need(id: string): ChannelInfo {
    const c = this.live.get(id);
    if (!c) throw new AriGone(`channel ${id}: Channel not found`);
    return c;
  }
  ops(op: string): unknown[][] {
    return this.requests.filter((r) => r.op === op).map((r) => r.args);
  }

  // ---- what a test does as the outside world ---------------------------------------------------
  callerArrives(number: string, exten: string): ChannelInfo {
    const c = channel(`caller-${++this.seq}`, number, exten);
    this.live.set(c.id, c);
    this.emit({ type: 'StasisStart', at: new Date().toISOString(), channel: c, args: ['inbound'] });
    return c;
  }
  press(channelId: string, digit: string): void {
    this.emit({ type: 'ChannelDtmfReceived', at: new Date().toISOString(), channel: this.need(channelId), digit, durationMs: 100 });
  }
  /** an originated phone answers: its channel enters Stasis with the app args it was originated with */
  answer(channelId: string): void {
    const c = this.need(channelId);
    const req = this.ops('originate').map((a) => a[0] as OriginateRequest).find((r) => r.channelId === channelId);
    this.emit({ type: 'StasisStart', at: new Date().toISOString(), channel: c, args: req?.appArgs ?? [] });
  }
  /** the far end hangs up (or a phone rings out): Asterisk's ChannelHangupRequest, StasisEnd (if answered) and ChannelDestroyed */
  hangupFromOutside(channelId: string): void {
    const c = this.live.get(channelId);
    if (!c) return;
    // as Asterisk: the hangup request of the far end (a BYE: not soft) is published before anything it ends
    this.emit({ type: 'ChannelHangupRequest', at: new Date().toISOString(), channel: c, soft: false, cause: 16 });
    this.live.delete(channelId);
    for (const m of this.bridgeMembers.values()) m.delete(channelId);
    // a channel that hangs up while recording: Asterisk stores what it has and reports RecordingFinished
    for (const [name, r] of this.liveRecordings) {
      if (r.channelId === channelId) this.finishRecording(name, Math.round((Date.now() - r.startedAt) / 1000));
    }
    this.emit({ type: 'StasisEnd', at: new Date().toISOString(), channel: c });
    this.emit({ type: 'ChannelDestroyed', at: new Date().toISOString(), channel: c, cause: 16, causeText: 'Normal Clearing' });
  }

  /**
   * A recording ends (the caller pressed #, went silent, hung up, or hit the limit): the file is stored
   * (these bytes, or silence of that length) and RecordingFinished is emitted. Works for a name that was never
   * recorded too, to seed a stored file.
   */
  finishRecording(name: string, durationSeconds: number, bytes?: Buffer): void {
    const live = this.liveRecordings.get(name);
    this.liveRecordings.delete(name);
    this.storedRecordings.set(name, bytes ?? silentWav(durationSeconds));
    this.emit({ type: 'RecordingFinished', at: new Date().toISOString(), name, targetUri: live ? `channel:${live.channelId}` : '', durationSeconds });
  }
  /** a recording fails (disk full, format gone): no file, RecordingFailed */
  failRecording(name: string, cause = 'Recording failed'): void {
    const live = this.liveRecordings.get(name);
    this.liveRecordings.delete(name);
    this.emit({ type: 'RecordingFailed', at: new Date().toISOString(), name, targetUri: live ? `channel:${live.channelId}` : '', cause });
  }

  // ---- the AriPort -----------------------------------------------------------------------------
  readonly channels = {
    answer: async (id: string) => {
      this.log('answer', id);
      this.need(id);
    },
    hangup: async (id: string, reason?: string) => {
      this.log('hangup', id, reason);
      this.need(id);
      setImmediate(() => this.hangupFromOutside(id));
    },
    play: async (id: string, media: string[], playbackId: string) => {
      this.log('play', id, media, playbackId);
      this.need(id);
      if (this.playbackMs !== null) {
        setTimeout(() => this.emit({ type: 'PlaybackFinished', at: new Date().toISOString(), playbackId, targetUri: `channel:${id}`, state: 'done' }), this.playbackMs);
      }
    },
    originate: async (req: OriginateRequest) => {
      this.log('originate', req);
      if (this.originateFailure) {
        const err = this.originateFailure;
        this.originateFailure = null;
        throw err;
      }
      const c = channel(req.channelId, req.endpoint, '');
      this.live.set(c.id, c);
      return c;
    },
    startMoh: async (id: string) => void this.log('startMoh', id),
    stopMoh: async (id: string) => void this.log('stopMoh', id),
    ring: async (id: string) => void this.log('ring', id),
    list: async () => [...this.live.values()],
    snoop: async (id: string, req: SnoopRequest) => {
      this.log('snoop', id, req);
      this.need(id);
      const c = channel(req.snoopId, `Snoop/${id}`, '');
      this.live.set(c.id, c);
      return c;
    },
    record: async (id: string, req: RecordRequest) => {
      this.log('record', id, req);
      this.need(id);
      if (this.liveRecordings.has(req.name) || (req.ifExists === 'fail' && this.storedRecordings.has(req.name))) {
        throw new AriConflict(`record: Recording '${req.name}' already exists and can not be overwritten`);
      }
      this.liveRecordings.set(req.name, { channelId: id, req, startedAt: Date.now() });
    },
    setVariable: async (id: string, name: string, value: string) => {
      this.log('setVariable', id, name, value);
      this.need(id);
    },
    continueInDialplan: async (id: string) => {
      this.log('continue', id);
      const c = this.need(id);
      // the channel leaves the application: StasisEnd, then it lives on in the dialplan (gone for us)
      setImmediate(() => {
        if (!this.live.delete(id)) return;
        this.emit({ type: 'StasisEnd', at: new Date().toISOString(), channel: c });
      });
    },
  };

  /** dialplan globals and AstDB as the fake keeps them: DB_KEYS(f), DB(f/k), DB_DELETE(f/k) are understood */
  readonly globalVars = new Map<string, string>();
  readonly astDb = new Map<string, string>();
  readonly globals = {
    set: async (name: string, value: string) => {
      this.log('global.set', name, value);
      this.globalVars.set(name, value);
    },
    get: async (expression: string) => {
      const m = /^(DB_KEYS|DB_DELETE|DB)\((.*)\)$/.exec(expression);
      if (!m) return this.globalVars.get(expression) ?? '';
      const [, fn, arg] = m;
      if (fn === 'DB_KEYS') return [...this.astDb.keys()].filter((k) => k.startsWith(`${arg}/`)).map((k) => k.slice(arg!.length + 1)).join(',');
      const v = this.astDb.get(arg!) ?? '';
      if (fn === 'DB_DELETE') this.astDb.delete(arg!);
      return v;
    },
  };

  readonly bridges = {
    create: async (id: string, type?: string) => {
      this.log('bridge.create', id, type);
      this.bridgeMembers.set(id, new Set());
    },
    addChannel: async (id: string, channelIds: string[]) => {
      this.log('bridge.add', id, channelIds);
      const m = this.bridgeMembers.get(id);
      if (!m) throw new AriGone(`bridge ${id}: Bridge not found`);
      for (const c of channelIds) {
        this.need(c);
        m.add(c);
      }
    },
    removeChannel: async (id: string, channelIds: string[]) => {
      this.log('bridge.remove', id, channelIds);
      const m = this.bridgeMembers.get(id);
      if (!m) throw new AriGone(`bridge ${id}: Bridge not found`);
      for (const c of channelIds) if (!m.delete(c)) throw new AriConflict(`bridge ${id}: Channel not in bridge`);
    },
    destroy: async (id: string) => {
      this.log('bridge.destroy', id);
      if (!this.bridgeMembers.delete(id)) throw new AriGone(`bridge ${id}: Bridge not found`);
    },
    startMoh: async (id: string) => void this.log('bridge.moh', id),
    stopMoh: async (id: string) => void this.log('bridge.stopMoh', id),
    list: async () => [...this.bridgeMembers].map(([id, m]) => ({ id, channels: [...m] })),
  };

  readonly playbacks = { stop: async (id: string) => void this.log('playback.stop', id) };

  readonly recordings = {
    stop: async (name: string) => {
      this.log('recording.stop', name);
      const live = this.liveRecordings.get(name);
      if (!live) throw new AriGone(`stop recording: Recording not found`);
      setImmediate(() => this.finishRecording(name, Math.round((Date.now() - live.startedAt) / 1000)));
    },
    file: async (name: string) => {
      this.log('recording.file', name);
      if (this.recordingFileFailure) throw this.recordingFileFailure;
      const bytes = this.storedRecordings.get(name);
      if (!bytes) throw new AriGone(`recording file ${name}: Recording not found`);
      return { stream: Readable.from([bytes]), contentType: 'audio/wav', size: bytes.length };
    },
    delete: async (name: string) => {
      this.log('recording.delete', name);
      if (!this.storedRecordings.delete(name)) throw new AriGone(`delete recording: Recording not found`);
    },
  };

  readonly config = {
    put: async (...args: unknown[]) => void this.log('config.put', ...args),
    get: async () => null,
    delete: async (...args: unknown[]) => void this.log('config.delete', ...args),
  };
}

/** an Asterisk that does not answer: every request fails as unreachable */
export const unreachable = () => new AriUnavailable('originate: no answer from Asterisk within 5000 ms');

/** a WAV file (8 kHz, 16-bit, mono, as Asterisk's `wav` format) of this many seconds of silence */
export function silentWav(seconds: number): Buffer {
  const data = Math.max(0, Math.round(seconds * 8000)) * 2;
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + data, 4);
  h.write('WAVEfmt ', 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(8000, 24);
  h.writeUInt32LE(16000, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(data, 40);
  return Buffer.concat([h, Buffer.alloc(data)]);
}

function channel(id: string, number: string, exten: string): ChannelInfo {
  return { id, name: `PJSIP/${id}`, state: 'Up', callerNumber: number, callerName: '', dialedExten: exten, language: 'en', createdAt: new Date().toISOString() };
}
