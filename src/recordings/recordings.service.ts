/**
 * Call recordings: Asterisk records and stores the audio (ARI, its recording folder); this service keeps the
 * index in PostgreSQL with the file's SHA-256 taken when the recording ended, checks that hash before the audio
 * is served, and deletes recordings past their retention (Asterisk's file first, then the row is marked purged).
 *
 * The call session drives it (src/calls/call-recorder.ts): `started()` when the agent answers and the ARI recording
 * starts (`startedLater()`, through the record outbox, when PostgreSQL does not take it in time), `finished()` (or
 * `failed()`) when Asterisk reports RecordingFinished (RecordingFailed). What those miss (the row was not in yet,
 * PostgreSQL or Asterisk was away, the process died or handed over) the recordings sweep finishes (sweep.ts).
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { AriGone, AriUnavailable, type Recordings } from '../ari/port.js';
import type { AuditLog } from '../audit/audit.js';
import type { Db } from '../db/db.js';
import type { RecordingCallType, RecordingRow, RecordingStatus } from '../db/database.js';
import { recordOutbox, type RecordOutbox } from '../db/record-ops.js';
import { notFound } from '../shared/errors.js';
import { hashStream } from './range.js';
import { expiredRecordings, finishRecording, insertRecording, markPurged, recordingByName, type NewRecording } from './recordings.repo.js';

export interface Recording {
  id: string;
  callId: string;
  /** Asterisk's stored recording name */
  name: string;
  callType: RecordingCallType;
  status: RecordingStatus;
  startedAt: Date;
  endedAt: Date | null;
  durationSeconds: number | null;
  sizeBytes: number | null;
  /** hex SHA-256 of the stored file, taken when the recording ended */
  sha256: string | null;
  purgedAt: Date | null;
}

export const toRecording = (r: RecordingRow): Recording => ({
  id: r.id,
  callId: r.call_id,
  name: r.name,
  callType: r.call_type,
  status: r.status,
  startedAt: r.started_at,
  endedAt: r.ended_at,
  durationSeconds: r.duration_seconds === null ? null : Number(r.duration_seconds),
  sizeBytes: r.size_bytes === null ? null : Number(r.size_bytes),
  sha256: r.sha256,
  purgedAt: r.purged_at,
});

export interface RecordingsServiceDeps {
  db: Db;
  ari: Pick<Recordings, 'file' | 'delete'>;
  audit: Pick<AuditLog, 'record'>;
  log: Logger;
  /** recordings are deleted this many days after they started */
  retentionDays: number;
  /** waits between attempts to read a just-finished file (Asterisk may still be closing it); 4 retries over ~3.7 s by default */
  finishRetryMs?: readonly number[];
  /** recordings purged per query */
  purgeBatchSize?: number;
  /** where startedLater() writes; default: the process's record outbox for `db` */
  outbox?: RecordOutbox;
}

/** a WAV file of this size or less is its header alone: nothing was recorded */
const WAV_HEADER_BYTES = 44;
const DAY_MS = 86_400_000;

/** the outcome of comparing the stored file with the hash taken when it ended */
export type Verification = { ok: true; size: number } | { ok: false; size: number; sha256: string };

/**
 * Delete the recordings that started more than `retentionDays` before `now`: Asterisk's file (already gone is
 * fine), then the row is marked `purged` and the purge is audited as `system`. Batches, oldest first;
 * idempotent and safe when two processes run it at once (only the one that marks a row audits it).
 * Asterisk unreachable stops the run with that error (what is left is purged by the next run).
 * For a scheduler (a daily job); RecordingsService.purgeExpired is the same.
 */
export async function purgeExpiredRecordings(deps: Pick<RecordingsServiceDeps, 'db' | 'ari' | 'audit' | 'log' | 'retentionDays' | 'purgeBatchSize'>, now: Date = new Date()): Promise<number> {
  const { db, ari, audit, retentionDays } = deps;
  const log = deps.log.child({ module: 'recordings' });
  const batchSize = deps.purgeBatchSize ?? 200;
  const cutoff = new Date(now.getTime() - retentionDays * DAY_MS);
  let purged = 0;
  let after: { startedAt: Date; id: string } | null = null;
  for (;;) {
    const batch = await expiredRecordings(db, cutoff, after, batchSize);
    for (const r of batch) {
      try {
        await ari.delete(r.name);
      } catch (err) {
        if (!(err instanceof AriGone)) {
          log.warn({ err: (err as Error).message, recordingId: r.id, name: r.name, purged }, 'recording purge stopped: Asterisk did not delete the file');
          throw err;
        }
      }
      const done = await markPurged(db, r.id, new Date());
      if (!done) continue; // another process got there first and audited it
      purged++;
      const entry = { actor: 'system', actorRole: 'system', action: 'recording.purge', target: r.id, details: { callId: r.call_id, name: r.name, startedAt: r.started_at.toISOString(), retentionDays } };
      try {
        await audit.record(entry);
      } catch (err) {
        // the row says purged but the trail has no line: the log keeps what the trail should have said
        log.error({ err: (err as Error).message, audit: entry }, 'recording purged but its audit entry was not written');
        throw err;
      }
    }
    const last = batch[batch.length - 1];
    if (!last || batch.length < batchSize) break;
    after = { startedAt: last.started_at, id: last.id };
  }
  if (purged) log.info({ purged, retentionDays, cutoff: cutoff.toISOString() }, 'recordings past retention purged');
  return purged;
}

/** how many recordings this process indexed and has not seen end, remembered by name (see `indexed`) */
const INDEXED_MAX = 10_000;

export class RecordingsService {
  private readonly log: Logger;
  /**
   * name -> row id of the recordings this process indexed as `recording` (started()) and has not seen end: their
   * end goes straight to the file and the guarded update, without reading the row first (one PostgreSQL round
   * trip per call fewer). An end this process did not index (another process, the outbox, the sweep) reads the
   * row as before. Bounded: past INDEXED_MAX the oldest are forgotten (their end then reads the row).
   */
  private readonly indexed = new Map<string, string>();
  private readonly retryMs: readonly number[];

  constructor(private readonly deps: RecordingsServiceDeps) {
    this.log = deps.log.child({ module: 'recordings' });
    this.retryMs = deps.finishRetryMs ?? [200, 500, 1000, 2000];
  }

  get retentionDays(): number {
    return this.deps.retentionDays;
  }

  /**
   * A call's recording has started (ARI channels.record / bridge record with this `name`): index it as
   * `recording`, straight in PostgreSQL. Idempotent on the call: a second start of the same call returns the
   * first row unchanged. While the record outbox diverts (PostgreSQL is believed away) it fails at once, so the
   * caller goes to startedLater() without waiting on a PostgreSQL that does not answer.
   */
  async started(r: NewRecording): Promise<Recording> {
    if (this.outbox().diverting()) throw new Error('PostgreSQL is away (record writes go to the outbox)');
    const { row, inserted } = await insertRecording(this.deps.db, r);
    if (!inserted && row.name !== r.name) this.log.warn({ callId: r.callId, name: r.name, indexed: row.name }, 'a second recording of this call was not indexed');
    if (row.status === 'recording') {
      this.indexed.set(row.name, row.id);
      if (this.indexed.size > INDEXED_MAX) this.indexed.delete(this.indexed.keys().next().value!);
    }
    return toRecording(row);
  }

  /**
   * The same index row through the record outbox ('recording.start' in the call's stream, after the call's own
   * writes): for when started() failed or did not answer in time. Resolves once the row is in PostgreSQL or
   * durably in the outbox file; never rejects. A row written twice (the direct insert landed after all) is one row.
   */
  startedLater(r: NewRecording): Promise<void> {
    return this.outbox().write(r.callId, 'recording.start', { callId: r.callId, name: r.name, callType: r.callType, startedAt: r.startedAt }, this.log);
  }

  /**
   * The recording ended (RecordingFinished): read the stored file from Asterisk once through SHA-256 (streamed,
   * never held whole) and keep its length and hash: `saved`; no file or an empty one (header only): `failed`.
   * Asterisk may need a moment to close the file, so a missing or empty file is read again a few times.
   * When Asterisk cannot be reached the row stays `recording` (with its end time), and calling this again
   * later finishes it. Only a row still `recording` changes: the hash taken first is never replaced.
   * `opts.retryMs` replaces the waits between reads (the sweep reads once: its recordings ended long ago).
   */
  async finished(name: string, r: { endedAt: Date; durationSeconds: number | null }, opts: { retryMs?: readonly number[] } = {}): Promise<Recording> {
    const retryMs = opts.retryMs ?? this.retryMs;
    const row = await this.recordingRow(name);
    if (row.ended) return toRecording(row.ended);
    let outcome: 'gone' | 'empty' | 'unavailable' = 'gone';
    let read: { sha256: string; size: number } | null = null;
    for (let attempt = 0; ; attempt++) {
      try {
        const file = await this.deps.ari.file(name);
        try {
          read = await hashStream(file.stream);
        } catch (err) {
          // the connection broke while the file streamed: read it again
          read = null;
          throw new AriUnavailable(`recording file ${name}: ${(err as Error).message}`);
        }
        if (read.size > WAV_HEADER_BYTES) break;
        outcome = 'empty';
      } catch (err) {
        if (err instanceof AriGone) outcome = 'gone';
        else if (err instanceof AriUnavailable) outcome = 'unavailable';
        else throw err;
      }
      const wait = retryMs[attempt];
      if (wait === undefined) break;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const durationSeconds = r.durationSeconds;
    if (read && read.size > WAV_HEADER_BYTES) {
      const done = await finishRecording(this.deps.db, row.id, { status: 'saved', endedAt: r.endedAt, durationSeconds, sizeBytes: read.size, sha256: read.sha256 });
      return this.settled(row.id, done);
    }
    if (outcome === 'unavailable') {
      this.log.error({ recordingId: row.id, name }, 'recording ended but Asterisk did not hand over the file; it stays "recording" until finished() succeeds');
      const kept = await finishRecording(this.deps.db, row.id, { status: 'recording', endedAt: r.endedAt, durationSeconds, sizeBytes: null, sha256: null });
      return this.settled(row.id, kept);
    }
    this.log.warn({ recordingId: row.id, name, outcome }, outcome === 'empty' ? 'recording is empty' : 'recording has no file in Asterisk');
    const failed = await finishRecording(this.deps.db, row.id, {
      status: 'failed',
      endedAt: r.endedAt,
      durationSeconds,
      sizeBytes: read?.size ?? null,
      sha256: read?.sha256 ?? null,
    });
    return this.settled(row.id, failed);
  }

  /** the recording failed in Asterisk (RecordingFailed): no file to keep */
  async failed(name: string, r: { endedAt: Date; cause?: string }): Promise<Recording> {
    const row = await this.recordingRow(name);
    this.log.warn({ recordingId: row.id, name, cause: r.cause }, 'recording failed');
    const done = await finishRecording(this.deps.db, row.id, { status: 'failed', endedAt: r.endedAt, durationSeconds: null, sizeBytes: null, sha256: null });
    return this.settled(row.id, done);
  }

  /** see purgeExpiredRecordings */
  purgeExpired(now: Date = new Date()): Promise<number> {
    return purgeExpiredRecordings(this.deps, now);
  }

  /**
   * Read the stored file once through SHA-256 and compare with the hash taken when it ended.
   * AriGone: Asterisk has no such file; AriUnavailable: Asterisk did not answer or the stream broke.
   */
  async verify(rec: Pick<Recording, 'name' | 'sha256' | 'sizeBytes'>): Promise<Verification> {
    const file = await this.deps.ari.file(rec.name);
    let read: { sha256: string; size: number };
    try {
      read = await hashStream(file.stream);
    } catch (err) {
      throw new AriUnavailable(`recording file ${rec.name}: ${(err as Error).message}`);
    }
    return read.sha256 === rec.sha256 && read.size === rec.sizeBytes ? { ok: true, size: read.size } : { ok: false, size: read.size, sha256: read.sha256 };
  }

  /** the stored file as a stream from Asterisk (AriGone, AriUnavailable as for verify) */
  async open(name: string): Promise<Readable> {
    return (await this.deps.ari.file(name)).stream;
  }

  private outbox(): RecordOutbox {
    return this.deps.outbox ?? recordOutbox(this.deps.db, this.log);
  }

  /**
   * The row of a recording that ended, for finished() and failed(): its id, and the row itself when it has ended
   * already. One this process indexed and has not seen end is known to be still `recording` (and the end's write
   * is guarded by that status anyway), so it is not read; any other is. 404 when there is no such recording.
   */
  private async recordingRow(name: string): Promise<{ id: string; ended: RecordingRow | null }> {
    const id = this.indexed.get(name);
    if (id !== undefined) {
      this.indexed.delete(name);
      return { id, ended: null };
    }
    const row = await recordingByName(this.deps.db, name);
    if (!row) throw notFound('not-found', `no recording named ${name}`);
    return { id: row.id, ended: row.status === 'recording' ? null : row };
  }

  private async settled(id: string, updated: RecordingRow | undefined): Promise<Recording> {
    if (updated) return toRecording(updated);
    // another caller finished it meanwhile: what it wrote stands
    const row = await this.deps.db.selectFrom('recordings').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    return toRecording(row);
  }
}
