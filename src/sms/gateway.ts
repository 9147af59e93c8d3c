/**
 * The SMS gateway port: what the SMS service needs from an SMSC, whatever the protocol. The SMPP adapter
 * (smpp-gateway.ts) implements it; nothing else in the service knows SMPP.
 */

export interface OutgoingSms {
  /** a normalised number (src/shared/phone.ts) */
  to: string;
  text: string;
  /** our id for the message (the sms_messages row): for logs only, the SMSC has no field for it */
  reference: string;
}

export type ReceiptStatus = 'delivered' | 'failed' | 'expired' | 'rejected' | 'unknown';

export interface DeliveryReceipt {
  /** the SMSC's id, as `send` returned it */
  messageId: string;
  /** `unknown`: not final (en route, accepted) or a state the SMSC did not name */
  status: ReceiptStatus;
  at: Date;
  /** the SMSC's own words for a failure (`UNDELIV err:012`) */
  error?: string;
}

export interface IncomingSms {
  /** the sender as the SMSC gave it (not normalised) */
  from: string;
  to: string;
  text: string;
  at: Date;
}

/**
 * A handler may return a promise: the gateway acknowledges the SMSC only when it resolves, and asks the SMSC
 * to deliver again later when it rejects (nothing is lost when PostgreSQL is briefly down).
 */
export type GatewayHandler<T> = (item: T) => void | Promise<void>;

export interface SmsGateway {
  /** begins connecting, in the background (the service starts and serves calls without an SMSC) */
  start(): void;
  /**
   * Hands one message to the SMSC. Resolves with the SMSC's message id once the SMSC has accepted it; rejects
   * with SmsGatewayError when it is not connected, refused the message, or did not answer in time.
   */
  send(msg: OutgoingSms): Promise<{ messageId: string }>;
  onDeliveryReceipt(handler: GatewayHandler<DeliveryReceipt>): void;
  onInbound(handler: GatewayHandler<IncomingSms>): void;
  /** true while a session is bound: a send now has a chance */
  readonly connected: boolean;
  close(): Promise<void>;
}

/** why a message did not reach the SMSC; the message is what the row's `error` keeps */
export class SmsGatewayError extends Error {
  override name = 'SmsGatewayError';
}
