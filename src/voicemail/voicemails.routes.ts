import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import { AriGone, AriUnavailable, type Recordings } from '../ari/port.js';
import type { Db } from '../db/db.js';
import type { VoicemailRow } from '../db/database.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { AppError, notFound } from '../shared/errors.js';
import { getVoicemail, listVoicemails } from './voicemails.repo.js';

const Status = Type.Union([Type.Literal('recording'), Type.Literal('saved'), Type.Literal('empty'), Type.Literal('failed')]);

const Voicemail = Type.Object({
  id: Type.String({ format: 'uuid' }),
  callId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
  caller: Type.String(),
  line: Type.String(),
  language: Type.String(),
  reason: Type.Union([Type.Literal('maintenance'), Type.Literal('ivr'), Type.Literal('fallback')]),
  status: Status,
  startedAt: Type.String({ format: 'date-time' }),
  durationSeconds: Type.Union([Type.Number(), Type.Null()]),
  /** where the audio is served (GET, same bearer token) */
  audioUrl: Type.String(),
});
type VoicemailDto = Static<typeof Voicemail>;

const ListQuery = Type.Object(
  {
    from: Type.Optional(Type.String({ format: 'date-time' })),
    to: Type.Optional(Type.String({ format: 'date-time' })),
    line: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    caller: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    status: Type.Optional(Status),
    limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
const IdParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });
const AudioQuery = Type.Object(
  { download: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('true'), Type.Literal('0'), Type.Literal('false')], { description: '1: save as a file' })) },
  { additionalProperties: false },
);

function toDto(row: VoicemailRow): VoicemailDto {
  return {
    id: row.id,
    callId: row.call_id,
    caller: row.caller,
    line: row.line,
    language: row.language,
    reason: row.reason,
    status: row.status,
    startedAt: row.started_at.toISOString(),
    durationSeconds: row.duration_seconds,
    audioUrl: `/api/v1/voicemails/${row.id}/audio`,
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

/** voicemail-<line>-<caller>-<YYYYMMDD-HHmmss, Beijing time>.wav: what a supervisor's browser saves */
export function voicemailFileName(row: Pick<VoicemailRow, 'line' | 'caller' | 'started_at'>): string {
  const p = Object.fromEntries(SHANGHAI.formatToParts(row.started_at).map((x) => [x.type, x.value]));
  const safe = (s: string) => s.replace(/[^0-9A-Za-z+]/g, '_') || 'unknown';
  return `voicemail-${safe(row.line)}-${safe(row.caller)}-${p.year}${p.month}${p.day}-${p.hour}${p.minute}${p.second}.wav`;
}

const noSuchVoicemail = (id: string) => notFound('not-found', `no voicemail ${id}`);

/** callers' messages (maintenance and IVR voicemail): the index in PostgreSQL, the audio from Asterisk */
export const voicemailsRoutes: FastifyPluginAsyncTypebox<{ db: Db; recordings: Pick<Recordings, 'file'>; guard: Guard }> = async (app, { db, recordings, guard }) => {
  const readers = guard('supervisor', 'admin', 'auditor');

  app.get(
    '/',
    {
      preHandler: readers,
      schema: {
        tags: ['voicemails'],
        summary: 'voicemails, newest first',
        security: [{ bearer: [] }],
        querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(Voicemail), nextCursor: Type.Union([Type.String(), Type.Null()]) }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query;
      const page = await listVoicemails(db, {
        ...(q.from ? { from: new Date(q.from) } : {}),
        ...(q.to ? { to: new Date(q.to) } : {}),
        ...(q.line ? { line: q.line } : {}),
        ...(q.caller !== undefined ? { caller: q.caller } : {}),
        ...(q.status ? { status: q.status } : {}),
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
        tags: ['voicemails'],
        summary: 'one voicemail',
        security: [{ bearer: [] }],
        params: IdParams,
        response: { 200: Voicemail, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (req) => {
      const row = await getVoicemail(db, req.params.id);
      if (!row) throw noSuchVoicemail(req.params.id);
      return toDto(row);
    },
  );

  app.get(
    '/:id/audio',
    {
      preHandler: readers,
      schema: {
        tags: ['voicemails'],
        summary: 'the message as audio/wav, streamed from Asterisk; ?download=1 adds Content-Disposition',
        security: [{ bearer: [] }],
        params: IdParams,
        querystring: AudioQuery,
        response: {
          200: { description: 'the WAV file', content: { 'audio/wav': { schema: Type.Unsafe<Readable>({ type: 'string', format: 'binary' }) } } },
          400: ErrorBody,
          401: ErrorBody,
          403: ErrorBody,
          404: ErrorBody,
          503: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      const row = await getVoicemail(db, req.params.id);
      if (!row) throw noSuchVoicemail(req.params.id);
      let file: Awaited<ReturnType<Recordings['file']>>;
      try {
        file = await recordings.file(row.recording_name);
      } catch (err) {
        if (err instanceof AriGone) throw notFound('not-found', `voicemail ${row.id} has no audio file in Asterisk`);
        if (err instanceof AriUnavailable) throw new AppError(503, 'ari-unavailable', 'Asterisk did not answer; try again');
        throw err;
      }
      reply.header('content-type', 'audio/wav');
      if (file.size !== null) reply.header('content-length', file.size);
      if (req.query.download === '1' || req.query.download === 'true') reply.header('content-disposition', `attachment; filename="${voicemailFileName(row)}"`);
      // streamed as it arrives from Asterisk, never held whole in memory; Fastify destroys it if the client goes away
      return reply.send(file.stream);
    },
  );
};
