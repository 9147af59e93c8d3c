/**
 * The writes of one call's record, in order, through the record outbox (src/db/outbox.ts): each is applied to
 * PostgreSQL, or durably queued and replayed exactly once when PostgreSQL answers again; a failure never stops
 * the call. `flushed()` resolves once everything written so far is applied or safe in the outbox. Used by every
 * kind of call. The stream is the call id: the call's writes (its callbacks, voicemail, survey credits too) keep
 * their order.
 */
import type { Logger } from 'pino';
import type { Db } from '../db/db.js';
import type { CallUpdate } from '../db/database.js';
import { recordOutbox, type RecordOp, type RecordOpArgs, type RecordOutbox } from '../db/record-ops.js';

export class CallRecordWriter {
  private last: Promise<void> = Promise.resolve();
  private readonly outbox: RecordOutbox;

  constructor(
    db: Db,
    private readonly callId: string,
    private readonly log: Logger,
    /** default: the process's record outbox (setRecordOutbox), or a private one for this Db */
    outbox?: RecordOutbox,
  ) {
    this.outbox = outbox ?? recordOutbox(db, log);
  }

  /** a named record write about this call (an op of src/db/record-ops.ts), queued behind the ones before it */
  write<K extends RecordOp>(op: K, args: RecordOpArgs[K]): void {
    this.last = this.outbox.write(this.callId, op, args, this.log);
  }

  update(patch: CallUpdate): void {
    this.write('call.update', { id: this.callId, patch });
  }

  /** a timestamped step on the call's event log (taken now, written in order) */
  event(type: string, data: Record<string, unknown> = {}): void {
    // stored as JSON, as it always was: what JSON cannot carry (Infinity, undefined) becomes null / is left out
    this.write('call.event', { callId: this.callId, at: new Date(), type, data: JSON.parse(JSON.stringify(data)) as Record<string, unknown> });
  }

  flushed(): Promise<void> {
    return this.last;
  }
}
