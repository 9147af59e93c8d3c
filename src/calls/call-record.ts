/**
 * The writes of one call's record, in order: each is retried (retryWrite) and a failure never stops the
 * call; `flushed()` resolves once everything written so far has been tried. Used by every kind of call.
 */
import type { Logger } from 'pino';
import type { Db } from '../db/db.js';
import type { CallUpdate } from '../db/database.js';
import { retryWrite } from '../shared/retry.js';
import { appendCallEvent, updateCall } from './calls.repo.js';

export class CallRecordWriter {
  private writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly callId: string,
    private readonly log: Logger,
  ) {}

  /** any write about this call, queued behind the ones before it */
  write(what: string, fn: (db: Db) => Promise<unknown>): void {
    this.writes = this.writes.then(() => retryWrite(() => fn(this.db), (err) => this.log.error({ err, what }, 'call record write lost after retries')));
  }

  update(patch: CallUpdate): void {
    this.write('update call', (db) => updateCall(db, this.callId, patch));
  }

  /** a timestamped step on the call's event log (taken now, written in order) */
  event(type: string, data: Record<string, unknown> = {}): void {
    const at = new Date();
    this.write(`event ${type}`, (db) => appendCallEvent(db, this.callId, at, type, data));
  }

  flushed(): Promise<void> {
    return this.writes;
  }
}
