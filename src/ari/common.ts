/**
 * What both ARI adapters share (src/ari/client.ts on ari-client, src/ari/thin-client.ts on node:http + ws):
 * their options, the conversion of ARI's JSON events to our AriEvent union, the error mapping, the start-up
 * probe, timeouts and the metric label of an operation.
 */
import type { Logger } from 'pino';
import { withTimeout } from '../shared/timeout.js';
import { AriConflict, AriGone, AriMisconfigured, AriUnavailable, type AriEvent, type AriEventType, type ChannelInfo } from './port.js';

export interface AriClientOptions {
  url: string;
  user: string;
  password: string;
  app: string;
  requestTimeoutMs: number;
  /** how long start-up keeps trying an Asterisk that refuses connections */
  startupTimeoutMs: number;
  log: Logger;
}

/** the event types the adapters convert (toEvent); every other ARI event is dropped */
export const EVENT_TYPES = [
  'StasisStart',
  'StasisEnd',
  'ChannelDestroyed',
  'ChannelHangupRequest',
  'ChannelDtmfReceived',
  'PlaybackFinished',
  'RecordingFinished',
  'RecordingFailed',
  'ApplicationReplaced',
] as const satisfies readonly AriEventType[];
export const HEARTBEAT_MS = 2000;
/** channels the client parks in Stasis itself (reading dialplan functions): never shown to the application */
export const UTIL_PREFIX = 'util-';
export const MAX_BACKOFF_MS = 5000;

/* eslint-disable @typescript-eslint/no-explicit-any -- ARI's JSON, read defensively */
export function toChannel(c: any): ChannelInfo {
  return {
    id: String(c?.id ?? ''),
    name: String(c?.name ?? ''),
    state: String(c?.state ?? ''),
    callerNumber: String(c?.caller?.number ?? ''),
    callerName: String(c?.caller?.name ?? ''),
    dialedExten: String(c?.dialplan?.exten ?? ''),
    language: String(c?.language ?? ''),
    createdAt: String(c?.creationtime ?? ''),
  };
}

export function toEvent(raw: any): AriEvent | null {
  const at = String(raw?.timestamp ?? new Date().toISOString());
  switch (raw?.type) {
    case 'StasisStart':
      return { type: 'StasisStart', at, channel: toChannel(raw.channel), args: Array.isArray(raw.args) ? raw.args.map(String) : [] };
    case 'StasisEnd':
      return { type: 'StasisEnd', at, channel: toChannel(raw.channel) };
    case 'ChannelDestroyed':
      return { type: 'ChannelDestroyed', at, channel: toChannel(raw.channel), cause: Number(raw.cause ?? 0), causeText: String(raw.cause_txt ?? '') };
    case 'ChannelHangupRequest':
      return { type: 'ChannelHangupRequest', at, channel: toChannel(raw.channel), soft: raw.soft === true, cause: Number(raw.cause ?? 0) };
    case 'ChannelDtmfReceived':
      return { type: 'ChannelDtmfReceived', at, channel: toChannel(raw.channel), digit: String(raw.digit ?? ''), durationMs: Number(raw.duration_ms ?? 0) };
    case 'PlaybackFinished':
      return { type: 'PlaybackFinished', at, playbackId: String(raw.playback?.id ?? ''), targetUri: String(raw.playback?.target_uri ?? ''), state: String(raw.playback?.state ?? '') };
    // event.recording is a LiveRecording: {name, format, state, target_uri, duration?, talking_duration?, silence_duration?, cause?}
    case 'RecordingFinished':
      return { type: 'RecordingFinished', at, name: String(raw.recording?.name ?? ''), targetUri: String(raw.recording?.target_uri ?? ''), durationSeconds: Number(raw.recording?.duration ?? 0) };
    case 'RecordingFailed':
      return { type: 'RecordingFailed', at, name: String(raw.recording?.name ?? ''), targetUri: String(raw.recording?.target_uri ?? ''), cause: String(raw.recording?.cause ?? '') };
    case 'ApplicationReplaced':
      return { type: 'ApplicationReplaced', at };
    default:
      return null;
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** ari-client turns an HTTP error into Error(body): read Asterisk's message to know what happened */
export function mapAriError(err: unknown, what: string): Error {
  if (err instanceof AriGone || err instanceof AriConflict || err instanceof AriUnavailable) return err;
  const text = err instanceof Error ? err.message : String(err);
  let message = text;
  try {
    const parsed = JSON.parse(text) as { message?: string; error?: string };
    message = parsed.message ?? parsed.error ?? text;
  } catch {
    /* not JSON: keep the text */
  }
  if (/not found|does not exist/i.test(message)) return new AriGone(`${what}: ${message}`);
  if (/not in (a )?stasis|invalid state|not in bridge|already|in use|not (up|answered)/i.test(message)) return new AriConflict(`${what}: ${message}`);
  if (/ECONNREFUSED|ECONNRESET|socket hang up|ETIMEDOUT|EPIPE/i.test(message)) return new AriUnavailable(`${what}: ${message}`);
  return new Error(`${what}: ${message}`);
}

/**
 * An ARI error answer, by its HTTP status (the thin client has it): 404 gone; 409/412/422 the resource's
 * state (not in Stasis, not in this bridge, unknown format); 400 "... not found" gone as well (POST
 * /bridges/{id}/addChannel answers 400 "Channel not found" for a channel that hung up); 502-504 unavailable.
 */
export function mapAriStatus(status: number, body: string, what: string): Error {
  let message = body.trim();
  try {
    const parsed = JSON.parse(body) as { message?: string; error?: string };
    message = parsed.message ?? parsed.error ?? message;
  } catch {
    /* not JSON: keep the text */
  }
  const text = `${what}: ${message || `HTTP ${status}`}`;
  if (status === 404) return new AriGone(text);
  if (status === 409 || status === 412 || status === 422) return new AriConflict(text);
  if (status === 400 && /not found/i.test(message)) return new AriGone(text);
  if (status === 502 || status === 503 || status === 504) return new AriUnavailable(text);
  return new Error(text);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** Probe ARI once with our credentials: tells a wrong URL or password from an Asterisk that is simply down. */
export async function probe(opts: AriClientOptions): Promise<void> {
  const auth = Buffer.from(`${opts.user}:${opts.password}`).toString('base64');
  let res: Response;
  try {
    res = await fetch(new URL('/ari/asterisk/info', opts.url), {
      headers: { authorization: `Basic ${auth}` },
      signal: AbortSignal.timeout(3000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    if (cause.startsWith('HPE_') || cause === 'UND_ERR_SOCKET') throw new AriMisconfigured(`ARI_URL ${opts.url} does not answer HTTP (${cause}); is it the Asterisk HTTP port?`);
    throw new AriUnavailable(`cannot reach Asterisk ARI at ARI_URL ${opts.url}: ${cause}`);
  }
  await res.arrayBuffer().catch(() => undefined);
  if (res.status === 401 || res.status === 403) {
    throw new AriMisconfigured(`ARI_URL ${opts.url} refused ARI_USER "${opts.user}" and its password (HTTP ${res.status})`);
  }
  if (!res.ok || !(res.headers.get('content-type') ?? '').includes('json')) {
    throw new AriMisconfigured(`ARI_URL ${opts.url} does not look like Asterisk ARI (HTTP ${res.status} at /ari/asterisk/info)`);
  }
}

/** "put endpoint agent1001" -> "put endpoint": one metric series per operation, not per object */
export function metricOp(what: string): string {
  const m = /^(put|get|delete) (\S+)/.exec(what);
  return m ? `${m[1]} ${m[2]}` : what;
}

export function ariTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return withTimeout(p, ms, () => new AriUnavailable(`${what}: no answer from Asterisk within ${ms} ms`));
}
