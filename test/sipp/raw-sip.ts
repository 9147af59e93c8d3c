/**
 * A tiny SIP-over-UDP client for torture messages SIPp cannot send (a request without Call-ID or CSeq is
 * one SIPp could not match a reply to; garbage bytes and 65 KB datagrams are not SIP at all): the message
 * goes out byte for byte as given, and every datagram that comes back within the wait is kept and parsed.
 *
 * Just enough of a UAC to leave nothing behind: a final non-2xx answer to an INVITE is ACKed (RFC 3261
 * 17.1.1.3: same branch, the To tag of the answer), so Asterisk stops retransmitting it; a 2xx (a call
 * really started) is ACKed and the call hung up with a BYE; a request Asterisk sends us (BYE, OPTIONS) is
 * answered 200.
 */
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { freeUdpPort } from './sipp.js';

export const ASTERISK = { host: '127.0.0.1', port: 5060 } as const;

export interface SipMessage {
  /** the first line: "SIP/2.0 404 Not Found" or "BYE sip:x SIP/2.0" */
  startLine: string;
  /** 0 for a request */
  status: number;
  reason: string;
  /** request method ('' for a response) */
  method: string;
  /** header name (lower case) -> values */
  headers: Record<string, string[]>;
  body: string;
  raw: string;
}

export function parseSip(data: Buffer): SipMessage {
  const raw = data.toString('latin1');
  const split = raw.indexOf('\r\n\r\n');
  const head = split >= 0 ? raw.slice(0, split) : raw;
  const body = split >= 0 ? raw.slice(split + 4) : '';
  // a line starting with white space continues the header above it (RFC 3261 7.3.1: folding)
  const lines = head.split('\r\n').reduce<string[]>((acc, line) => {
    if (/^[ \t]/.test(line) && acc.length > 1) acc[acc.length - 1] += ` ${line.trim()}`;
    else acc.push(line);
    return acc;
  }, []);
  const startLine = lines[0] ?? '';
  const headers: Record<string, string[]> = {};
  const compact: Record<string, string> = { i: 'call-id', f: 'from', t: 'to', v: 'via', m: 'contact', l: 'content-length', c: 'content-type' };
  for (const line of lines.slice(1)) {
    const at = line.indexOf(':');
    if (at <= 0) continue;
    let name = line.slice(0, at).trim().toLowerCase();
    name = compact[name] ?? name;
    (headers[name] ??= []).push(line.slice(at + 1).trim());
  }
  const m = /^SIP\/2\.0 (\d{3}) ?(.*)$/.exec(startLine);
  return { startLine, status: m ? Number(m[1]) : 0, reason: m?.[2] ?? '', method: m ? '' : (startLine.split(' ')[0] ?? ''), headers, body, raw };
}

export const newBranch = (): string => `z9hG4bK-${randomBytes(6).toString('hex')}`;
export const newTag = (): string => randomBytes(4).toString('hex');
export const newCallId = (): string => `${randomBytes(8).toString('hex')}@torture.test`;

export interface RequestParts {
  method: string;
  /** the Request-URI */
  uri: string;
  /** header lines in order, without CRLF: "Via: ...", "From: ..." (a test leaves out or breaks what it wants) */
  headers: string[];
  body?: string;
  /** Content-Length to declare; default: the body's real length; null: no Content-Length header */
  contentLength?: number | null;
}

/** a request as bytes: start line, the given headers, Content-Length (unless null), blank line, body */
export function buildRequest(p: RequestParts): Buffer {
  const body = p.body ?? '';
  const len = p.contentLength === undefined ? Buffer.byteLength(body, 'utf8') : p.contentLength;
  const head = [`${p.method} ${p.uri} SIP/2.0`, ...p.headers, ...(len === null ? [] : [`Content-Length: ${len}`])];
  return Buffer.from(`${head.join('\r\n')}\r\n\r\n${body}`, 'utf8');
}

/** the usual headers of a well-formed request from localPort; `override` replaces (or with null removes) one by name */
export function standardHeaders(o: {
  localPort: number;
  method: string;
  ruriUser?: string;
  fromUser?: string;
  fromDisplay?: string;
  callId?: string;
  branch?: string;
  fromTag?: string;
  toTag?: string;
  cseq?: number;
  maxForwards?: number;
  override?: Record<string, string | null>;
  extra?: string[];
}): string[] {
  const user = o.fromUser ?? '13800138000';
  const h: Array<[string, string]> = [
    ['Via', `SIP/2.0/UDP 127.0.0.1:${o.localPort};branch=${o.branch ?? newBranch()};rport`],
    ['Max-Forwards', String(o.maxForwards ?? 70)],
    ['From', `${o.fromDisplay === undefined ? '' : `"${o.fromDisplay}" `}<sip:${user}@127.0.0.1:${o.localPort}>;tag=${o.fromTag ?? newTag()}`],
    ['To', `<sip:${o.ruriUser ?? '12345'}@127.0.0.1:5060>${o.toTag ? `;tag=${o.toTag}` : ''}`],
    ['Call-ID', o.callId ?? newCallId()],
    ['CSeq', `${o.cseq ?? 1} ${o.method}`],
    ['Contact', `<sip:${user}@127.0.0.1:${o.localPort}>`],
    ['User-Agent', 'hotline torture test'],
  ];
  const out: string[] = [];
  for (const [name, value] of h) {
    if (o.override && name in o.override) {
      const v = o.override[name];
      if (v !== null && v !== undefined) out.push(`${name}: ${v}`);
    } else out.push(`${name}: ${value}`);
  }
  for (const [name, v] of Object.entries(o.override ?? {})) if (v !== null && !h.some(([n]) => n === name)) out.push(`${name}: ${v}`);
  return [...out, ...(o.extra ?? [])];
}

/** a plain SDP offer (PCMA + telephone-event) from a media port nobody listens on */
export function sdp(o: { port?: number; formats?: string; attributes?: string[]; noMedia?: boolean } = {}): string {
  const lines = ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=torture', 'c=IN IP4 127.0.0.1', 't=0 0'];
  if (!o.noMedia) lines.push(`m=audio ${o.port ?? 40998} RTP/AVP ${o.formats ?? '8 101'}`);
  lines.push(...(o.attributes ?? ['a=rtpmap:8 PCMA/8000', 'a=rtpmap:101 telephone-event/8000', 'a=sendrecv']));
  return `${lines.join('\r\n')}\r\n`;
}

export interface Exchange {
  localPort: number;
  /** every datagram received, parsed, in order */
  received: SipMessage[];
  /** the responses among them (status > 0), retransmissions included */
  responses: SipMessage[];
  /** the final response (>= 200) to what we sent, if any */
  final?: SipMessage;
  /** a 2xx came back: a call really started (it was ACKed and hung up) */
  callStarted: boolean;
}

function header(msg: SipMessage, name: string): string {
  return msg.headers[name]?.[0] ?? '';
}

/**
 * Sends `build(localPort)` from a fresh UDP port and listens for waitMs (default 1500 ms; it stops 300 ms
 * after a final response; an answered call is hung up holdMs, default 300, after its 2xx). Only a message
 * that parses as an INVITE with Call-ID/CSeq gets the ACK/BYE handling; anything else is just sent.
 */
export async function exchange(build: (localPort: number) => Buffer, opts: { waitMs?: number; holdMs?: number } = {}): Promise<Exchange> {
  const holdMs = opts.holdMs ?? 300;
  const localPort = await freeUdpPort();
  const socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(localPort, '127.0.0.1', () => resolve());
  });
  const received: SipMessage[] = [];
  const out = build(localPort);
  const sent = parseSip(out);
  const send = (b: Buffer | string) => new Promise<void>((r) => socket.send(typeof b === 'string' ? Buffer.from(b, 'latin1') : b, ASTERISK.port, ASTERISK.host, () => r()));
  let final: SipMessage | undefined;
  let callStarted = false;
  let finishAt = Date.now() + (opts.waitMs ?? 1500);
  let byeSent = false;
  let byeCseq = '';
  let ackOf2xx = '';
  const acked = new Set<string>();
  socket.on('message', (data) => {
    const msg = parseSip(data);
    received.push(msg);
    if (msg.status === 0 && msg.method) {
      // a request from Asterisk (its BYE, an OPTIONS): 200 OK
      if (msg.method !== 'ACK') {
        const ok = ['SIP/2.0 200 OK', ...(msg.headers.via ?? []).map((v) => `Via: ${v}`), `From: ${header(msg, 'from')}`, `To: ${header(msg, 'to')}`, `Call-ID: ${header(msg, 'call-id')}`, `CSeq: ${header(msg, 'cseq')}`, 'Content-Length: 0', '', ''].join('\r\n');
        void send(ok);
      }
      return;
    }
    const cseq = header(msg, 'cseq');
    if (byeCseq && cseq === byeCseq) {
      // our BYE answered: the call is over
      if (msg.status >= 200) finishAt = Math.min(finishAt, Date.now() + 100);
      return;
    }
    if (msg.status >= 200) final ??= msg;
    const isInvite = /INVITE$/.test(cseq) && sent.method === 'INVITE';
    if (isInvite && msg.status >= 300) {
      const key = `${msg.status}/${header(msg, 'to')}`;
      if (!acked.has(key)) {
        acked.add(key);
        // ACK for a non-2xx final response: hop-by-hop, same Request-URI, top Via, From, Call-ID, To of the answer
        const uri = sent.startLine.split(' ')[1] ?? '';
        const ack = [`ACK ${uri} SIP/2.0`, `Via: ${header(sent, 'via')}`, 'Max-Forwards: 70', `From: ${header(sent, 'from')}`, `To: ${header(msg, 'to')}`, `Call-ID: ${header(sent, 'call-id')}`, `CSeq: ${cseq.split(' ')[0]} ACK`, 'Content-Length: 0', '', ''].join('\r\n');
        void send(ack);
      }
    } else if (isInvite && msg.status >= 200 && msg.status < 300 && byeSent) {
      void send(ackOf2xx); // a retransmitted 2xx: our ACK was lost
    } else if (isInvite && msg.status >= 200 && msg.status < 300) {
      // a call started: ACK it (a new transaction to the Contact) and hang up at once
      byeSent = true;
      callStarted = true;
      const contact = /<([^>]+)>/.exec(header(msg, 'contact'))?.[1] ?? sent.startLine.split(' ')[1] ?? '';
      const common = [`From: ${header(sent, 'from')}`, `To: ${header(msg, 'to')}`, `Call-ID: ${header(sent, 'call-id')}`];
      const n = Number(cseq.split(' ')[0]) || 1;
      byeCseq = `${n + 1} BYE`;
      ackOf2xx = [`ACK ${contact} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=${newBranch()};rport`, 'Max-Forwards: 70', ...common, `CSeq: ${n} ACK`, 'Content-Length: 0', '', ''].join('\r\n');
      void send(ackOf2xx);
      setTimeout(() => {
        void send([`BYE ${contact} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=${newBranch()};rport`, 'Max-Forwards: 70', ...common, `CSeq: ${byeCseq}`, 'Content-Length: 0', '', ''].join('\r\n'));
      }, holdMs);
      finishAt = Math.max(finishAt, Date.now() + holdMs + 1700);
    }
    if (msg.status >= 200 && !callStarted) finishAt = Math.min(finishAt, Date.now() + 300);
  });
  await send(out);
  while (Date.now() < finishAt) await new Promise((r) => setTimeout(r, 50));
  socket.close();
  const responses = received.filter((m) => m.status > 0);
  return { localPort, received, responses, ...(final ? { final } : {}), callStarted };
}
