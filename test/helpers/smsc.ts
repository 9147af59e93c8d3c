/**
 * A real SMPP server (npm `smpp`, the library the gateway uses as a client) acting as the SMSC in tests, on a
 * free loopback port: accepts bind_transceiver with one system_id/password, answers submit_sm with a message id
 * (or an error status, or not at all), then sends the delivery receipt as deliver_sm; can send a citizen's
 * message. Everything it saw is kept for assertions.
 */
import type { AddressInfo } from 'node:net';
import smpp, { type Pdu, type Server, type Session } from 'smpp';

export interface Submitted {
  to: string;
  destTon: number;
  from: string;
  dataCoding: number;
  /** decoded by the library from short_message or message_payload */
  text: string;
  /** the text came in message_payload (a long message) */
  payload: boolean;
  registeredDelivery: number;
  /** the id answered, or null when refused or unanswered */
  messageId: string | null;
}

/** what the SMSC does with one submit_sm; default: accept, then a DELIVRD receipt in the text form */
export interface Behaviour {
  /** answer with this command_status (an error) */
  status?: number;
  /** never answer */
  silent?: boolean;
  /** the receipt after accepting; null: none */
  receipt?: { stat: string; err?: string; tlv?: boolean } | null;
  /** send the receipt before the submit_sm_resp (an SMSC may: the client cannot know the id yet) */
  receiptFirst?: boolean;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export class TestSmsc {
  readonly submits: Submitted[] = [];
  readonly binds: Array<{ systemId: string; password: string; ok: boolean }> = [];
  /** command_status of every deliver_sm_resp the client sent us */
  readonly deliverResps: number[] = [];
  /** per destination number (as on the wire); a function of the attempt number for that number */
  behaviour: (to: string, attempt: number) => Behaviour = () => ({});
  /** delay before answering a submit_sm, to see how many the client keeps in flight */
  answerDelayMs = 0;
  maxOutstanding = 0;
  private outstanding = 0;
  private nextId = 0x1a2b00;
  private readonly attempts = new Map<string, number>();

  private constructor(
    private readonly server: Server,
    readonly systemId: string,
    readonly password: string,
  ) {}

  static async start(t: Teardown, creds = { systemId: 'hotline', password: 'test-pw' }): Promise<TestSmsc> {
    let smsc: TestSmsc | undefined;
    const server = smpp.createServer((session) => smsc!.accept(session));
    smsc = new TestSmsc(server, creds.systemId, creds.password);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => smsc.stop());
    return smsc;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `smpp://127.0.0.1:${this.port}`;
  }

  /** bound client sessions */
  get sessions(): Session[] {
    return this.server.sessions.filter((s) => (s as Session & { bound?: boolean }).bound);
  }

  /** a citizen's message to the bound client (the last bound session); resolves with the client's command_status */
  deliverInbound(from: string, to: string, text: string): Promise<number> {
    const session = this.sessions.at(-1);
    if (!session) throw new Error('test SMSC: no bound session');
    return new Promise((resolve) => session.deliver_sm({ source_addr: from, destination_addr: to, esm_class: 0, short_message: text }, (resp: Pdu) => resolve(resp.command_status)));
  }

  /** cut every client's link, as a network failure would */
  dropSessions(): void {
    for (const s of [...this.server.sessions]) s.destroy();
  }

  async stop(): Promise<void> {
    this.dropSessions();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(session: Session): void {
    session.on('error', () => undefined);
    session.on('bind_transceiver', (pdu: Pdu) => {
      const ok = pdu.system_id === this.systemId && pdu.password === this.password;
      this.binds.push({ systemId: pdu.system_id, password: pdu.password, ok });
      session.send(pdu.response({ command_status: ok ? 0 : smpp.errors.ESME_RBINDFAIL, system_id: 'test-smsc' }));
      if (ok) (session as Session & { bound?: boolean }).bound = true;
    });
    session.on('enquire_link', (pdu: Pdu) => session.send(pdu.response()));
    session.on('unbind', (pdu: Pdu) => {
      session.send(pdu.response());
      session.close();
    });
    session.on('deliver_sm_resp', (pdu: Pdu) => this.deliverResps.push(pdu.command_status));
    session.on('submit_sm', (pdu: Pdu) => this.submitted(session, pdu));
  }

  private submitted(session: Session, pdu: Pdu): void {
    const payload = !!pdu.message_payload;
    const to = String(pdu.destination_addr);
    const attempt = (this.attempts.get(to) ?? 0) + 1;
    this.attempts.set(to, attempt);
    const b = this.behaviour(to, attempt);
    const record: Submitted = {
      to,
      destTon: pdu.dest_addr_ton,
      from: String(pdu.source_addr),
      dataCoding: pdu.data_coding,
      text: String((payload ? pdu.message_payload : pdu.short_message)?.message ?? ''),
      payload,
      registeredDelivery: pdu.registered_delivery,
      messageId: null,
    };
    this.submits.push(record);
    if (b.silent) return;
    this.outstanding++;
    this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding);
    setTimeout(() => {
      this.outstanding--;
      if (b.status) {
        session.send(pdu.response({ command_status: b.status }));
        return;
      }
      const id = (this.nextId++).toString(16).toUpperCase();
      record.messageId = id;
      const receipt = b.receipt === undefined ? { stat: 'DELIVRD' } : b.receipt;
      if (receipt && b.receiptFirst) this.sendReceipt(session, pdu, id, receipt);
      session.send(pdu.response({ message_id: id }));
      if (receipt && !b.receiptFirst) setImmediate(() => this.sendReceipt(session, pdu, id, receipt));
    }, this.answerDelayMs);
  }

  private sendReceipt(session: Session, submit: Pdu, id: string, r: { stat: string; err?: string; tlv?: boolean }): void {
    const date = '2611291430';
    const text = `id:${id} sub:001 dlvrd:${r.stat === 'DELIVRD' ? '001' : '000'} submit date:${date} done date:${date} stat:${r.stat} err:${r.err ?? '000'} text:`;
    const states: Record<string, number> = smpp.consts.MESSAGE_STATE;
    const state = { DELIVRD: states.DELIVERED, EXPIRED: states.EXPIRED, UNDELIV: states.UNDELIVERABLE, REJECTD: states.REJECTED, ENROUTE: states.ENROUTE }[r.stat];
    session.deliver_sm({
      source_addr: submit.destination_addr,
      destination_addr: submit.source_addr,
      esm_class: smpp.consts.ESM_CLASS.MC_DELIVERY_RECEIPT,
      // the TLV form names the message and its state only in TLVs (the text carries the error code alone)
      ...(r.tlv ? { receipted_message_id: id, message_state: state, short_message: r.err ? `err:${r.err}` : '' } : { short_message: text }),
    });
  }
}
