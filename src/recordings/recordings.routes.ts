import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { AriGone, AriUnavailable } from '../ari/port.js';
import type { AuditLog } from '../audit/audit.js';
import { auditActor } from '../audit/audit.routes.js';
import type { Principal } from '../auth/auth.service.js';
import { Disposition } from '../calls/calls.schemas.js';
import type { Db } from '../db/db.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { AppError, badRequest, forbidden, notFound, unauthorized } from '../shared/errors.js';
import { TICKET_TTL_SECONDS, type AudioTickets } from './audio-tickets.js';
import { parseRange, sliceStream, StreamMismatch } from './range.js';
import { getRecording, listRecordings, type RecordingView } from './recordings.repo.js';
import type { RecordingsService } from './recordings.service.js';

const CallType = Type.Union([Type.Literal('inbound'), Type.Literal('outbound'), Type.Literal('callback'), Type.Literal('click')]);
const Status = Type.Union([Type.Literal('recording'), Type.Literal('saved'), Type.Literal('failed'), Type.Literal('purged')]);
const NullableString = Type.Union([Type.String(), Type.Null()]);

const RecordingItem = Type.Object({
  id: Type.String({ format: 'uuid' }),
  callId: Type.String({ format: 'uuid' }),
  /** the call's fields; null while the call's own row is not written yet */
  caller: NullableString,
  dialed: NullableString,
  line: NullableString,
  queue: NullableString,
  agents: Type.Array(Type.String()),
  callType: CallType,
  category: NullableString,
  disposition: Type.Union([Disposition, Type.Null()]),
  startedAt: Type.String({ format: 'date-time' }),
  endedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  durationSeconds: Type.Union([Type.Number(), Type.Null()]),
  sizeBytes: Type.Union([Type.Integer(), Type.Null()]),
  /** hex SHA-256 of the file, taken when the recording ended */
  sha256: NullableString,
  status: Status,
  /** where the audio is served (GET, same bearer token) */
  audioUrl: Type.String(),
});
type RecordingDto = Static<typeof RecordingItem>;

const ListQuery = Type.Object(
  {
    from: Type.Optional(Type.String({ format: 'date-time', description: 'started at or after' })),
    to: Type.Optional(Type.String({ format: 'date-time', description: 'started before' })),
    caller: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    line: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    queue: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    agent: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    disposition: Type.Optional(Disposition),
    direction: Type.Optional(Type.Union([CallType], { description: 'the call type: inbound, outbound, callback or click (click-to-call)' })),
    category: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
const IdParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });
const AudioQuery = Type.Object(
  {
    download: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('true'), Type.Literal('0'), Type.Literal('false')], { description: '1: save as a file' })),
    ticket: Type.Optional(Type.String({ minLength: 10, maxLength: 100, description: 'an audio ticket (POST .../audio-ticket) instead of the bearer header, for an <audio> element' })),
  },
  { additionalProperties: false },
);
const Wav = { content: { 'audio/wav': { schema: Type.Unsafe<Readable>({ type: 'string', format: 'binary' }) } } };

function toDto(r: RecordingView): RecordingDto {
  return {
    id: r.id,
    callId: r.call_id,
    caller: r.caller,
    dialed: r.dialed,
    line: r.line,
    queue: r.queue,
    agents: r.agents ?? [],
    callType: r.call_type,
    category: r.category,
    disposition: r.disposition,
    startedAt: r.started_at.toISOString(),
    endedAt: r.ended_at ? r.ended_at.toISOString() : null,
    durationSeconds: r.duration_seconds === null ? null : Number(r.duration_seconds),
    sizeBytes: r.size_bytes === null ? null : Number(r.size_bytes),
    sha256: r.sha256,
    status: r.status,
    audioUrl: `/api/v1/recordings/${r.id}/audio`,
  };
}

const SHANGHAI = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Asia/Shanghai',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
});

/** recording-<line>-<caller>-<YYYYMMDD-HHmmss, Beijing time>.wav: what a browser saves */
export function recordingFileName(r: { line: string | null; caller: string | null; startedAt: Date }): string {
  const p = Object.fromEntries(SHANGHAI.formatToParts(r.startedAt).map((x) => [x.type, x.value]));
  const safe = (s: string | null) => (s ?? '').replace(/[^0-9A-Za-z+]/g, '_') || 'unknown';
  return `recording-${safe(r.line)}-${safe(r.caller)}-${p.year}${p.month}${p.day}-${p.hour}${p.minute}${p.second}.wav`;
}

/** an agent reads the recordings of calls it took part in; supervisors, admins and auditors read all */
const mayRead = (p: Principal, r: RecordingView) => p.role !== 'agent' || (p.agentId !== null && (r.agents ?? []).includes(p.agentId));

const noSuchRecording = (id: string) => notFound('not-found', `no recording ${id}`);

/**
 * Call recordings: the index in PostgreSQL, the audio streamed from Asterisk after its SHA-256 is checked.
 * Every audio access is audited before a byte is sent (no audit entry, no audio): `recording.download` for each
 * download request, `recording.play` for a request from the first byte (no Range, or Range starting at 0).
 * A player's further Range requests while seeking are the same listening and are not audited one by one.
 */
export const recordingsRoutes: FastifyPluginAsyncTypebox<{ db: Db; service: RecordingsService; audit: Pick<AuditLog, 'record'>; guard: Guard; tickets?: AudioTickets }> = async (
  app,
  { db, service, audit, guard, tickets },
) => {
  const readers = guard('agent', 'supervisor', 'admin', 'auditor');
  /** the audio route: the bearer header, or an audio ticket for this recording (audio-tickets.ts) */
  const audioReaders = async (req: FastifyRequest, reply: FastifyReply) => {
    const { ticket } = req.query as { ticket?: string };
    if (ticket === undefined) return readers(req, reply);
    if (!tickets) throw unauthorized('audio tickets are not served here; use Authorization: Bearer');
    req.principal = await tickets.redeem(ticket, (req.params as { id: string }).id);
  };

  /** the recording, when this principal may read it; an agent asking for another's is audited and refused */
  const readable = async (req: FastifyRequest, id: string, what: 'item' | 'audio'): Promise<RecordingView> => {
    const row = await getRecording(db, id);
    if (!row) throw noSuchRecording(id);
    if (!mayRead(req.principal!, row)) {
      await audit.record({ ...auditActor(req), action: 'recording.denied', target: row.id, details: { what, agentId: req.principal!.agentId } });
      throw forbidden('an agent may only read recordings of its own calls');
    }
    return row;
  };

  app.get(
    '/',
    {
      preHandler: readers,
      schema: {
        tags: ['recordings'],
        summary: 'call recordings, newest first; an agent sees only recordings of its own calls',
        security: [{ bearer: [] }],
        querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(RecordingItem), nextCursor: Type.Union([Type.String(), Type.Null()]) }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query;
      const p = req.principal!;
      const from = q.from ? new Date(q.from) : undefined;
      const to = q.to ? new Date(q.to) : undefined;
      if (from && to && from >= to) throw badRequest('invalid-range', '`from` must be before `to`');
      // an agent account without an agent id took part in no call (and PostgreSQL text cannot hold a NUL marker)
      if (p.role === 'agent' && !p.agentId) return { items: [], nextCursor: null };
      const page = await listRecordings(db, {
        ...(from ? { from } : {}),
        ...(to ? { to } : {}),
        ...(q.caller !== undefined ? { caller: q.caller } : {}),
        ...(q.line ? { line: q.line } : {}),
        ...(q.queue ? { queue: q.queue } : {}),
        ...(q.agent ? { agent: q.agent } : {}),
        // an agent's own calls only, whatever else it asked for (an agent with no agent id sees none)
        ...(p.role === 'agent' && p.agentId ? { onlyAgent: p.agentId } : {}),
        ...(q.disposition ? { disposition: q.disposition } : {}),
        ...(q.direction ? { direction: q.direction } : {}),
        ...(q.category ? { category: q.category } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
        limit: q.limit,
      });
      return { items: page.items.map(toDto), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/:id',
    {
      preHandler: readers,
      schema: {
        tags: ['recordings'],
        summary: 'one recording',
        security: [{ bearer: [] }],
        params: IdParams,
        response: { 200: RecordingItem, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (req) => toDto(await readable(req, req.params.id, 'item')),
  );

  if (tickets) {
    app.post(
      '/:id/audio-ticket',
      {
        preHandler: readers,
        schema: {
          tags: ['recordings'],
          summary: 'a short-lived URL of the audio for an <audio> element, which cannot send the bearer header',
          description:
            `The URL carries a ticket that opens this recording's audio only, for ${TICKET_TTL_SECONDS / 60} minutes, while the session it was issued under lasts (signing out ends it). ` +
            'Each play is audited as the ticket\'s user, as with the bearer header.',
          security: [{ bearer: [] }],
          params: IdParams,
          response: {
            200: Type.Object({ url: Type.String(), expiresAt: Type.String({ format: 'date-time' }) }),
            400: ErrorBody,
            401: ErrorBody,
            403: ErrorBody,
            404: ErrorBody,
          },
        },
      },
      async (req) => {
        const row = await readable(req, req.params.id, 'audio');
        const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')![1]!;
        const t = await tickets.issue(row.id, req.principal!, bearer);
        return { url: `/api/v1/recordings/${row.id}/audio?ticket=${t.ticket}`, expiresAt: t.expiresAt.toISOString() };
      },
    );
  }

  app.get(
    '/:id/audio',
    {
      preHandler: audioReaders,
      // a HEAD would read the whole file from Asterisk for nothing
      exposeHeadRoute: false,
      schema: {
        tags: ['recordings'],
        summary: 'the recording as audio/wav, streamed from Asterisk after its SHA-256 is checked; honours Range (one range); ?download=1 adds Content-Disposition',
        description:
          'Every access is audited first: recording.download for each download request, recording.play for a request from byte 0 (no Range, or Range starting at 0); ' +
          'a player seeking with further Range requests is not audited again. 409 recording-tampered: the file no longer matches the SHA-256 taken when it ended; ' +
          '409 recording-in-progress; 410 recording-purged (past retention); 416 with Content-Range bytes */size for a range outside the file; several ranges get the whole file (200).',
        security: [{ bearer: [] }],
        params: IdParams,
        querystring: AudioQuery,
        response: {
          200: { description: 'the whole WAV file', ...Wav },
          206: { description: 'the requested byte range (Content-Range)', ...Wav },
          400: ErrorBody,
          401: ErrorBody,
          403: ErrorBody,
          404: ErrorBody,
          409: ErrorBody,
          410: ErrorBody,
          416: ErrorBody,
          503: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      const row = await readable(req, req.params.id, 'audio');
      if (row.status === 'purged') throw new AppError(410, 'recording-purged', `recording ${row.id} was deleted after its retention period`);
      if (row.status === 'recording') throw new AppError(409, 'recording-in-progress', `recording ${row.id} is still being recorded`);
      if (row.status === 'failed' || row.sha256 === null || row.size_bytes === null) throw notFound('recording-failed', `recording ${row.id} failed; there is no audio`);
      const expect = { sha256: row.sha256, size: Number(row.size_bytes) };

      const missing = async () => {
        req.log.error({ recordingId: row.id, name: row.name }, 'a saved recording has no file in Asterisk');
        await audit.record({ ...auditActor(req), action: 'recording.missing', target: row.id, details: { name: row.name } });
        return notFound('recording-missing', `recording ${row.id} has no audio file in Asterisk`);
      };
      const unavailable = () => new AppError(503, 'ari-unavailable', 'Asterisk did not answer; try again');

      // tamper evidence: the whole file once through SHA-256 before a byte of it is sent
      let check;
      try {
        check = await service.verify({ name: row.name, sha256: expect.sha256, sizeBytes: expect.size });
      } catch (err) {
        if (err instanceof AriGone) throw await missing();
        if (err instanceof AriUnavailable) throw unavailable();
        throw err;
      }
      if (!check.ok) {
        req.log.error({ recordingId: row.id, name: row.name, expected: expect, actual: { sha256: check.sha256, size: check.size } }, 'recording file does not match its SHA-256: tampered');
        await audit.record({
          ...auditActor(req),
          action: 'recording.tampered',
          target: row.id,
          details: { name: row.name, expectedSha256: expect.sha256, actualSha256: check.sha256, expectedSize: expect.size, actualSize: check.size },
        });
        throw new AppError(409, 'recording-tampered', `recording ${row.id} does not match the fingerprint taken when it was recorded`);
      }

      reply.header('accept-ranges', 'bytes');
      const etag = `"${expect.sha256}"`;
      // If-Range naming another version of the file (never the case while the hash holds): the whole file
      const ifRange = req.headers['if-range'];
      const rangeHeader = ifRange !== undefined && ifRange !== etag ? undefined : req.headers.range;
      const range = parseRange(rangeHeader, expect.size);
      if (range.kind === 'unsatisfiable') {
        reply.header('content-range', `bytes */${expect.size}`);
        throw new AppError(416, 'range-not-satisfiable', `the file has ${expect.size} bytes; the range ${rangeHeader} is outside it`);
      }
      const start = range.kind === 'partial' ? range.start : 0;
      const end = range.kind === 'partial' ? range.end : expect.size - 1;

      let source: Readable;
      try {
        source = await service.open(row.name);
      } catch (err) {
        if (err instanceof AriGone) throw await missing();
        if (err instanceof AriUnavailable) throw unavailable();
        throw err;
      }
      const download = req.query.download === '1' || req.query.download === 'true';
      if (download || start === 0) {
        try {
          await audit.record({ ...auditActor(req), action: download ? 'recording.download' : 'recording.play', target: row.id, details: { range: rangeHeader ?? null } });
        } catch (err) {
          source.destroy();
          throw err;
        }
      }

      const body = sliceStream(source, start, end, expect);
      body.once('error', (err) => {
        if (!(err instanceof StreamMismatch)) return;
        // changed between the check and the send: the client gets a broken transfer, never the whole changed file
        req.log.error({ recordingId: row.id, name: row.name, err: err.message }, 'recording file changed while it was sent: tampered');
        audit
          .record({ ...auditActor(req), action: 'recording.tampered', target: row.id, details: { name: row.name, during: 'send', reason: err.message } })
          .catch((e: unknown) => req.log.error({ err: (e as Error).message }, 'audit entry recording.tampered not written'));
      });
      reply.header('content-type', 'audio/wav');
      reply.header('etag', etag);
      // citizens' voices: no shared cache keeps a copy
      reply.header('cache-control', 'private, no-store');
      reply.header('content-length', end - start + 1);
      if (range.kind === 'partial') reply.header('content-range', `bytes ${start}-${end}/${expect.size}`);
      if (download) reply.header('content-disposition', `attachment; filename="${recordingFileName({ line: row.line, caller: row.caller, startedAt: row.started_at })}"`);
      return reply.code(range.kind === 'partial' ? 206 : 200).send(body);
    },
  );
};
