/**
 * The part of npm `smpp` (0.5, no types of its own) that this project uses: src/sms/smpp-gateway.ts (the only
 * importer in src/) and the test SMSC (test/helpers/smsc.ts). Field names are the SMPP specification's.
 */
declare module 'smpp' {
  import type { EventEmitter } from 'node:events';
  import type { Server as NetServer, Socket } from 'node:net';

  /** a request or response; its parameters and TLVs are plain fields (`pdu.message_id`, `pdu.receipted_message_id`) */
  export interface Pdu {
    command: string;
    command_id: number;
    command_status: number;
    sequence_number: number;
    isResponse(): boolean;
    response(options?: Record<string, unknown>): Pdu;
    [field: string]: any;
  }

  export interface Session extends EventEmitter {
    socket: Socket;
    /** false when the socket is not writable (nothing sent, the callback never runs) */
    send(pdu: Pdu, onResponse?: (resp: Pdu) => void, onSent?: (pdu: Pdu) => void): boolean;
    close(callback?: () => void): void;
    destroy(callback?: () => void): void;
    pause(): void;
    resume(): void;
    /** one shortcut per SMPP operation: bind_transceiver, submit_sm, deliver_sm, enquire_link, unbind, ... */
    [operation: string]: any;
  }

  export interface Server extends NetServer {
    sessions: Session[];
  }

  interface Smpp {
    connect(options: { host: string; port: number; tls?: boolean }): Session;
    createServer(listener: (session: Session) => void): Server;
    PDU: new (command: string, options?: Record<string, unknown>) => Pdu;
    /** ESME_ROK, ESME_RINVDSTADR, ... by name */
    errors: Record<string, number>;
    consts: {
      ESM_CLASS: Record<string, number>;
      MESSAGE_STATE: Record<string, number>;
      ENCODING: Record<string, number>;
    };
  }
  const smpp: Smpp;
  export default smpp;
}
