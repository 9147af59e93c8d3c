/**
 * The narrow view of Asterisk that features see. Only src/ari/ knows how it is implemented
 * (ari-client today); features, tests and the benchmark depend on these types alone.
 */
import type { Readable } from 'node:stream';

export interface ChannelInfo {
  id: string;
  name: string;
  state: string;
  callerNumber: string;
  callerName: string;
  /** the extension the channel entered the dialplan with (the dialed number for inbound calls) */
  dialedExten: string;
  language: string;
  createdAt: string;
}

export type AriEvent =
  | { type: 'StasisStart'; at: string; channel: ChannelInfo; args: string[] }
  | { type: 'StasisEnd'; at: string; channel: ChannelInfo }
  | { type: 'ChannelDestroyed'; at: string; channel: ChannelInfo; cause: number; causeText: string }
  /** a hangup was asked for: soft when Asterisk or an application (ARI DELETE) did it; not soft when the far end did (a BYE) */
  | { type: 'ChannelHangupRequest'; at: string; channel: ChannelInfo; soft: boolean; cause: number }
  | { type: 'ChannelDtmfReceived'; at: string; channel: ChannelInfo; digit: string; durationMs: number }
  | { type: 'PlaybackFinished'; at: string; playbackId: string; targetUri: string; state: string }
  /** a recording ended and its file is stored (stopped, terminateOn key, silence, length limit, or the channel hung up) */
  | { type: 'RecordingFinished'; at: string; name: string; targetUri: string; durationSeconds: number }
  | { type: 'RecordingFailed'; at: string; name: string; targetUri: string; cause: string }
  | { type: 'ApplicationReplaced'; at: string };

export type AriEventType = AriEvent['type'];
export type ConnectionState = 'up' | 'down';

/** The channel or bridge is not there any more (ARI 404): the call has gone, not a crash. */
export class AriGone extends Error {
  override name = 'AriGone';
}
/** ARI refused because of the resource's state (409/412/422: not in Stasis, wrong state). */
export class AriConflict extends Error {
  override name = 'AriConflict';
}
/** Asterisk did not answer in time or the connection is down. */
export class AriUnavailable extends Error {
  override name = 'AriUnavailable';
}
/** ARI_URL answered but is not ARI, or refused our user and password: never fixes itself, start-up stops. */
export class AriMisconfigured extends Error {
  override name = 'AriMisconfigured';
}

export interface OriginateRequest {
  endpoint: string;
  /** our own id for the new channel, so events that race the reply are still ours */
  channelId: string;
  appArgs: string[];
  callerNumber?: string;
  callerName?: string;
  timeoutSeconds: number;
  variables?: Record<string, string>;
}

/** POST /channels/{id}/record: Asterisk writes <name>.<format> into its recording directory */
export interface RecordRequest {
  /** the stored recording's name (no extension); may contain '/' for a sub-directory */
  name: string;
  format: 'wav';
  /** 0: no limit */
  maxDurationSeconds: number;
  /** 0: no limit */
  maxSilenceSeconds: number;
  /** a beep before recording starts */
  beep: boolean;
  /** the DTMF key that ends the recording */
  terminateOn: 'none' | 'any' | '*' | '#';
  ifExists: 'fail' | 'overwrite' | 'append';
}

/** POST /channels/{id}/snoop: a new channel that hears (spy) and/or speaks into (whisper) the target channel */
export interface SnoopRequest {
  /** our own id for the snoop channel */
  snoopId: string;
  /** which of the target's audio the snoop channel carries: in = what the target says, out = what it hears */
  spy: 'none' | 'in' | 'out' | 'both';
  /** where the snoop channel's own audio goes: out = the target hears it (coaching), none = nobody */
  whisper: 'none' | 'in' | 'out' | 'both';
  appArgs: string[];
}

export interface Channels {
  answer(channelId: string): Promise<void>;
  hangup(channelId: string, reason?: 'normal' | 'busy' | 'congestion' | 'no_answer'): Promise<void>;
  /** starts a playback; PlaybackFinished with this playbackId tells when it ends */
  play(channelId: string, media: string[], playbackId: string, lang?: string): Promise<void>;
  originate(req: OriginateRequest): Promise<ChannelInfo>;
  startMoh(channelId: string, mohClass?: string): Promise<void>;
  stopMoh(channelId: string): Promise<void>;
  ring(channelId: string): Promise<void>;
  list(): Promise<ChannelInfo[]>;
  /** a snoop channel on the target (it enters Stasis with appArgs); it hangs up by itself when the target goes */
  snoop(channelId: string, req: SnoopRequest): Promise<ChannelInfo>;
  /** starts recording the channel; RecordingFinished / RecordingFailed with req.name tell when it ends */
  record(channelId: string, req: RecordRequest): Promise<void>;
  /** set a channel variable (the dialplan reads it as ${name}) */
  setVariable(channelId: string, name: string, value: string): Promise<void>;
  /** the channel leaves Stasis and goes on in the dialplan after its Stasis() (the fallback) */
  continueInDialplan(channelId: string): Promise<void>;
}

export interface Bridges {
  create(bridgeId: string, type?: 'mixing' | 'holding', name?: string): Promise<void>;
  addChannel(bridgeId: string, channelIds: string[]): Promise<void>;
  /** AriGone when the bridge is gone; AriConflict when the channel is not in it */
  removeChannel(bridgeId: string, channelIds: string[]): Promise<void>;
  destroy(bridgeId: string): Promise<void>;
  startMoh(bridgeId: string, mohClass?: string): Promise<void>;
  stopMoh(bridgeId: string): Promise<void>;
  list(): Promise<Array<{ id: string; channels: string[] }>>;
}

export interface Playbacks {
  stop(playbackId: string): Promise<void>;
}

/** ARI push configuration (sorcery objects such as PJSIP endpoints, AORs and auths) */
export interface DynamicConfig {
  /** create or replace an object, e.g. put('res_pjsip', 'endpoint', 'agent1001', { context: 'agents', ... }) */
  put(configClass: string, objectType: string, id: string, fields: Record<string, string>): Promise<void>;
  /** the object's fields, or null when it does not exist */
  get(configClass: string, objectType: string, id: string): Promise<Record<string, string> | null>;
  /** AriGone when it does not exist */
  delete(configClass: string, objectType: string, id: string): Promise<void>;
}

/** dialplan global variables and functions (GET/POST /asterisk/variable) */
export interface Globals {
  /** set a global variable (the dialplan reads it as ${GLOBAL(name)}) */
  set(name: string, value: string): Promise<void>;
  /** a global variable, or a dialplan function's value such as DB_KEYS(family); '' when empty */
  get(expression: string): Promise<string>;
}

export interface Recordings {
  /** stop a live recording (the file is kept); AriGone when it is not recording */
  stop(name: string): Promise<void>;
  /** the stored file as a stream (GET /ari/recordings/stored/{name}/file); AriGone when there is none */
  file(name: string): Promise<{ stream: Readable; contentType: string; size: number | null }>;
  /** delete a stored recording; AriGone when there is none */
  delete(name: string): Promise<void>;
}

export interface AriPort {
  readonly connected: boolean;
  readonly channels: Channels;
  readonly bridges: Bridges;
  readonly playbacks: Playbacks;
  readonly config: DynamicConfig;
  readonly recordings: Recordings;
  readonly globals: Globals;
  /** subscribe to application events; returns the unsubscribe function */
  onEvent(handler: (event: AriEvent) => void): () => void;
  /** 'up' on every (re)connection of the event socket, 'down' when it is lost */
  onConnection(handler: (state: ConnectionState) => void): () => void;
  close(): Promise<void>;
}

/** await an ARI call whose failure because the call has gone is expected and harmless */
export async function ignoreGone(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AriGone || err instanceof AriConflict) return;
    throw err;
  }
}
