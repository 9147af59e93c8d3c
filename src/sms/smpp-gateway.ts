/**
 * The SMS gateway over SMPP 3.4 (npm `smpp`): the only module that imports it.
 *
 * What it adds on top of the library:
 * - one transceiver session (bind_transceiver: submit and receive on the same link), bound in the background
 *   and re-bound with capped backoff whenever it drops; the service runs without an SMSC and a send while
 *   unbound fails at once with the reason;
 * - a timeout on every request (the library's callbacks never fire when the link dies), and every request
 *   still waiting is failed the moment the link drops;
 * - enquire_link keepalive: a link that stops answering is dropped and re-bound;
 * - the text encoded by us, never by the library: SMSC default alphabet for the characters on which GSM 03.38
 *   and ASCII agree (either reading of data_coding 0 is right), UCS2 (data_coding 8) for everything else
 *   (Chinese); a text longer than one SMS goes whole in the message_payload TLV (one submit_sm, one message
 *   id, one receipt; the SMSC splits it for the handset) instead of UDH parts;
 * - deliver_sm read as a delivery receipt (esm_class message type, or receipted_message_id / message_state
 *   TLVs, else the `id:... stat:...` text) or as a citizen's message; acknowledged only once stored.
 */
import smpp, { type Pdu, type Session } from 'smpp';
import type { Logger } from 'pino';
import { withTimeout } from '../shared/timeout.js';
import { SmsGatewayError, type DeliveryReceipt, type GatewayHandler, type IncomingSms, type OutgoingSms, type ReceiptStatus, type SmsGateway } from './gateway.js';

export interface SmppGatewayOptions {
  /** smpp://host:port (ssmpp:// for TLS) */
  url: string;
  systemId: string;
  password: string;
  /** the sender citizens see (SMS_SOURCE_ADDR) */
  sourceAddr: string;
  log: Logger;
  /** every request (bind, submit_sm, enquire_link) fails without an answer within this (default 10 s) */
  requestTimeoutMs?: number;
  /** keepalive period (default 30 s) */
  enquireLinkMs?: number;
  /** re-bind backoff: doubles from min to max (default 1 s to 30 s), back to min once bound */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

const DATA_CODING_DEFAULT = 0x00;
const DATA_CODING_UCS2 = 0x08;
/** the message-type bits of esm_class: 0 is a message from a handset, anything else a notification (receipt, ack) */
const ESM_MESSAGE_TYPE = 0x3c;
/** characters with the same code in GSM 03.38 and ASCII: safe under either reading of data_coding 0 */
const SAFE_DEFAULT_ALPHABET = /^[A-Za-z0-9 \r\n!"#%&'()*+,\-./:;<=>?]*$/;
/** what fits one SMS: 160 characters of the default alphabet, 70 UCS2 characters */
const SINGLE_SMS_OCTETS = { [DATA_CODING_DEFAULT]: 160, [DATA_CODING_UCS2]: 140 } as const;

const STATUS_NAMES = new Map(Object.entries(smpp.errors).map(([name, code]) => [code, name]));
const statusName = (code: number) => `${STATUS_NAMES.get(code) ?? 'status'} (0x${code.toString(16).padStart(8, '0')})`;
/** the SMSC asks us to slow down: tried again after a pause instead of failing the message */
const THROTTLED = new Set([smpp.errors.ESME_RTHROTTLED, smpp.errors.ESME_RMSGQFUL]);

/** message_state TLV (SMPP 3.4 §5.3.2.35) as the receipt text's stat words */
const STATE_WORDS = ['SCHEDULED', 'ENROUTE', 'DELIVRD', 'EXPIRED', 'DELETED', 'UNDELIV', 'ACCEPTD', 'UNKNOWN', 'REJECTD', 'SKIPPED'];
const WORD_STATUS: Record<string, ReceiptStatus> = { DELIVRD: 'delivered', EXPIRED: 'expired', DELETED: 'failed', UNDELIV: 'failed', REJECTD: 'rejected', SKIPPED: 'failed' };

/** the octets of a text and their data_coding */
export function encodeText(text: string): { dataCoding: typeof DATA_CODING_DEFAULT | typeof DATA_CODING_UCS2; octets: Buffer } {
  if (SAFE_DEFAULT_ALPHABET.test(text)) return { dataCoding: DATA_CODING_DEFAULT, octets: Buffer.from(text, 'latin1') };
  return { dataCoding: DATA_CODING_UCS2, octets: Buffer.from(text, 'utf16le').swap16() };
}

/** the params of the submit_sm for one message */
export function submitParams(msg: Pick<OutgoingSms, 'to' | 'text'>, sourceAddr: string): Record<string, unknown> {
  const { dataCoding, octets } = encodeText(msg.text);
  const international = msg.to.startsWith('+');
  return {
    source_addr_ton: /^\d+$/.test(sourceAddr) ? 0 : 5, // unknown (a short code), or alphanumeric
    source_addr_npi: /^\d+$/.test(sourceAddr) ? 1 : 0,
    source_addr: sourceAddr,
    dest_addr_ton: international ? 1 : 0,
    dest_addr_npi: 1,
    destination_addr: international ? msg.to.slice(1) : msg.to,
    registered_delivery: 1, // a receipt for the final outcome, success or failure
    data_coding: dataCoding,
    ...(octets.length <= SINGLE_SMS_OCTETS[dataCoding] ? { short_message: octets } : { message_payload: octets }),
  };
}

/** the library decodes short_message / message_payload into {message}; anything else is read as text */
function textOf(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  if (v && typeof v === 'object' && 'message' in v) return textOf((v as { message: unknown }).message);
  return '';
}

export type Delivered = { kind: 'receipt'; receipt: DeliveryReceipt | null } | { kind: 'inbound'; message: IncomingSms };

/**
 * A deliver_sm: a delivery receipt (null when it names no message) or a citizen's message.
 * Receipt text (SMPP 3.4 appendix B): `id:IIII sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:...`;
 * the TLVs win over the text when the SMSC sends both.
 */
export function readDeliverSm(pdu: Record<string, any>, at: Date): Delivered {
  const text = textOf(pdu.short_message) || textOf(pdu.message_payload);
  const type = Number(pdu.esm_class ?? 0) & ESM_MESSAGE_TYPE;
  if (type === 0 && !pdu.receipted_message_id) {
    return { kind: 'inbound', message: { from: String(pdu.source_addr ?? ''), to: String(pdu.destination_addr ?? ''), text, at } };
  }
  const messageId = String(pdu.receipted_message_id || (/\bid:(\S+)/i.exec(text)?.[1] ?? ''));
  if (!messageId) return { kind: 'receipt', receipt: null };
  const word = typeof pdu.message_state === 'number' ? STATE_WORDS[pdu.message_state] : /\bstat:(\w+)/i.exec(text)?.[1]?.toUpperCase();
  const status = (word && WORD_STATUS[word]) || 'unknown';
  if (status === 'delivered') return { kind: 'receipt', receipt: { messageId, status, at } };
  const err = /\berr:(\w+)/i.exec(text)?.[1];
  const network = Buffer.isBuffer(pdu.network_error_code) ? ` network_error_code:${pdu.network_error_code.toString('hex')}` : '';
  return { kind: 'receipt', receipt: { messageId, status, at, error: `${word ?? 'no stat'}${err ? ` err:${err}` : ''}${network}` } };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SmppGateway implements SmsGateway {
  private session: Session | null = null;
  private bound = false;
  private closing = false;
  /** why we are not bound, for the error of a send and the log */
  private lastError = 'connecting';
  private lastLogged = '';
  private backoffMs: number;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private keepalive: NodeJS.Timeout | null = null;
  /** requests waiting for their answer: failed at once when the link drops */
  private readonly waiting = new Set<(err: Error) => void>();
  private readonly receiptHandlers: Array<GatewayHandler<DeliveryReceipt>> = [];
  private readonly inboundHandlers: Array<GatewayHandler<IncomingSms>> = [];
  private readonly target: { host: string; port: number; tls: boolean };
  private readonly timeoutMs: number;
  private readonly log: Logger;

  constructor(private readonly opts: SmppGatewayOptions) {
    this.log = opts.log.child({ module: 'smpp' });
    const u = new URL(opts.url);
    const tls = u.protocol === 'ssmpp:';
    this.target = { host: u.hostname, port: Number(u.port) || (tls ? 3550 : 2775), tls };
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.backoffMs = opts.minBackoffMs ?? 1000;
  }

  get connected(): boolean {
    return this.bound;
  }

  onDeliveryReceipt(handler: GatewayHandler<DeliveryReceipt>): void {
    this.receiptHandlers.push(handler);
  }

  onInbound(handler: GatewayHandler<IncomingSms>): void {
    this.inboundHandlers.push(handler);
  }

  /** connects in the background and keeps reconnecting; never throws */
  start(): void {
    if (!this.session && !this.reconnectTimer) this.connect();
  }

  async send(msg: OutgoingSms): Promise<{ messageId: string }> {
    const params = submitParams(msg, this.opts.sourceAddr);
    for (let attempt = 1; ; attempt++) {
      const session = this.session;
      if (!this.bound || !session) throw new SmsGatewayError(`not connected to the SMSC at ${this.opts.url}: ${this.lastError}`);
      const resp = await this.request(session, 'submit_sm', params);
      if (resp.command_status === 0) return { messageId: String(resp.message_id ?? '') };
      if (THROTTLED.has(resp.command_status) && attempt < 3) {
        this.log.debug({ reference: msg.reference, status: statusName(resp.command_status) }, 'SMSC throttles; trying again');
        await sleep(500 * attempt);
        continue;
      }
      throw new SmsGatewayError(`the SMSC refused the message: ${statusName(resp.command_status)}`);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const session = this.session;
    if (!session) return;
    if (this.bound) await this.request(session, 'unbind', {}, 1000).catch(() => undefined);
    if (!session.socket.destroyed) await new Promise<void>((resolve) => session.destroy(() => resolve()));
  }

  private connect(): void {
    this.reconnectTimer = null;
    if (this.closing) return;
    const session = smpp.connect(this.target);
    this.session = session;
    // a host that swallows the connection attempt, or an SMSC that never answers the bind
    const bindDeadline = setTimeout(() => {
      this.lastError = `no bind within ${this.timeoutMs} ms`;
      session.destroy();
    }, this.timeoutMs);
    session.on(this.target.tls ? 'secureConnect' : 'connect', () => void this.bind(session).finally(() => clearTimeout(bindDeadline)));
    session.on('error', (err: NodeJS.ErrnoException) => {
      this.lastError = err.code ?? err.message;
      // a PDU the library cannot parse leaves the session stuck: start over
      session.destroy();
    });
    session.on('close', () => {
      clearTimeout(bindDeadline);
      this.dropped(session);
    });
    session.on('deliver_sm', (pdu: Pdu) => void this.delivered(session, pdu));
    session.on('enquire_link', (pdu: Pdu) => session.send(pdu.response()));
    // an operation the library does not know: generic_nack, so the SMSC does not wait for an answer
    session.on('unknown', (pdu: Pdu) => session.send(pdu.response()));
    session.on('unbind', (pdu: Pdu) => {
      this.lastError = 'the SMSC unbound';
      session.send(pdu.response());
      session.close();
    });
  }

  private async bind(session: Session): Promise<void> {
    let resp: Pdu;
    try {
      resp = await this.request(session, 'bind_transceiver', { system_id: this.opts.systemId, password: this.opts.password, interface_version: 0x34 });
    } catch (err) {
      this.lastError = (err as Error).message;
      session.destroy();
      return;
    }
    if (resp.command_status !== 0) {
      this.lastError = `the SMSC refused to bind SMPP_SYSTEM_ID "${this.opts.systemId}": ${statusName(resp.command_status)}`;
      session.destroy();
      return;
    }
    if (this.session !== session) return;
    this.bound = true;
    this.lastError = '';
    this.lastLogged = '';
    this.backoffMs = this.opts.minBackoffMs ?? 1000;
    this.log.info({ url: this.opts.url, systemId: this.opts.systemId }, 'SMSC bound');
    this.keepalive = setInterval(() => {
      this.request(session, 'enquire_link', {}).catch(() => {
        this.lastError = `no answer to enquire_link within ${this.timeoutMs} ms`;
        session.destroy();
      });
    }, this.opts.enquireLinkMs ?? 30_000).unref();
  }

  /** the link is gone: fail what waits, and bind again after the backoff */
  private dropped(session: Session): void {
    if (this.session !== session) return;
    const wasBound = this.bound;
    this.lastError ||= 'the connection closed';
    this.session = null;
    this.bound = false;
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = null;
    const gone = new SmsGatewayError(`the SMSC connection dropped: ${this.lastError}`);
    for (const fail of [...this.waiting]) fail(gone);
    if (this.closing) return;
    if (this.lastError !== this.lastLogged || wasBound) {
      // once per distinct reason: a development machine without an SMSC does not log every retry
      this.log.warn({ url: this.opts.url, reason: this.lastError, retryInMs: this.backoffMs }, 'no SMSC session; SMS sends fail until it is bound again');
      this.lastLogged = this.lastError;
    }
    // unref'd: a gateway left behind (start-up failed after it began) never keeps the process alive
    this.reconnectTimer = setTimeout(() => this.connect(), this.backoffMs).unref();
    this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs ?? 30_000);
  }

  /** one request and its answer: within the timeout, and failed at once when the link drops */
  private request(session: Session, operation: string, params: Record<string, unknown>, timeoutMs = this.timeoutMs): Promise<Pdu> {
    let fail: (err: Error) => void = () => undefined;
    const answer = new Promise<Pdu>((resolve, reject) => {
      fail = reject;
      this.waiting.add(fail);
      if (!session.send(new smpp.PDU(operation, params), resolve)) reject(new SmsGatewayError(`the SMSC connection dropped: ${this.lastError || 'closed'}`));
    });
    return withTimeout(answer, timeoutMs, () => new SmsGatewayError(`the SMSC did not answer ${operation} within ${timeoutMs} ms`)).finally(() => this.waiting.delete(fail));
  }

  /** stored first, then acknowledged; a store that fails asks the SMSC to deliver it again later */
  private async delivered(session: Session, pdu: Pdu): Promise<void> {
    const d = readDeliverSm(pdu, new Date());
    let status = 0;
    try {
      if (d.kind === 'inbound') {
        for (const h of this.inboundHandlers) await h(d.message);
      } else if (d.receipt) {
        for (const h of this.receiptHandlers) await h(d.receipt);
      } else {
        this.log.warn({ esmClass: pdu.esm_class }, 'a delivery receipt that names no message: ignored');
      }
    } catch (err) {
      status = smpp.errors.ESME_RX_T_APPN!;
      this.log.warn({ err: (err as Error).message, kind: d.kind }, 'what the SMSC delivered was not stored; it will deliver it again');
    }
    session.send(pdu.response({ command_status: status }));
  }
}
