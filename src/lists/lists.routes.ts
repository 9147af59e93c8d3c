import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AuditLog } from '../audit/audit.js';
import { auditActor } from '../audit/audit.routes.js';
import type { Db } from '../db/db.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { badRequest } from '../shared/errors.js';
import { normalizePhone } from '../shared/phone.js';
import { IMPORT_CONTENT_TYPES, REASON_MAX } from './list-import.js';
import { listEntries } from './lists.repo.js';
import { createListsService, entryDto } from './lists.service.js';

/** the largest file an import takes */
export const IMPORT_BODY_LIMIT = 8 * 1024 * 1024;

const Kind = Type.Union([Type.Literal('black'), Type.Literal('white')], { description: 'black | white' });
const Treatment = Type.Union([Type.Literal('restrict'), Type.Literal('queue'), Type.Literal('priority'), Type.Literal('skip-menu')], {
  description: 'black: restrict (notice, hang up) | queue (the blacklist queue); white: priority | skip-menu. Omitted: the line decides',
});
const Mode = Type.Union([Type.Literal('all-or-nothing'), Type.Literal('best-effort')]);

const Entry = Type.Object({
  number: Type.String({ description: 'normalised' }),
  reason: Type.String(),
  treatment: Type.Union([Treatment, Type.Null()]),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  createdBy: Type.Union([Type.String(), Type.Null()]),
  expired: Type.Boolean({ description: 'past expiresAt: the call path ignores it' }),
});

const Line = Type.Object({ line: Type.Integer({ description: 'text: the line; JSON: the 1-based array index; xlsx: the row' }), value: Type.String(), reason: Type.String() });
const Report = Type.Object({
  importId: Type.String({ format: 'uuid' }),
  kind: Kind,
  status: Type.Union([Type.Literal('staged'), Type.Literal('applied'), Type.Literal('rejected')]),
  mode: Mode,
  applied: Type.Boolean({ description: 'the list was changed by this import' }),
  replace: Type.Boolean(),
  format: Type.String({ description: 'csv | text | json | xlsx' }),
  encoding: Type.String({ description: 'utf-8, utf-8-bom, utf-16le, utf-16be, gb18030 (bytes that are not UTF-8 are read as GB18030)' }),
  header: Type.Boolean({ description: 'the first row was a header' }),
  rows: Type.Integer({ description: 'data rows read (no header, no empty lines)' }),
  added: Type.Integer({ description: 'rows added, or that would be added (staged, rejected)' }),
  duplicates: Type.Integer({ description: 'rows whose number an earlier line had or the list has' }),
  removed: Type.Integer({ description: 'replace: entries removed' }),
  invalidCount: Type.Integer(),
  invalid: Type.Array(Line, { description: `the invalid lines (at most 10000 listed)` }),
  duplicateLines: Type.Array(Line, { description: 'the duplicate lines (at most 1000 listed)' }),
  createdAt: Type.String({ format: 'date-time' }),
  createdBy: Type.String(),
  appliedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  appliedBy: Type.Union([Type.String(), Type.Null()]),
});

const KindParams = Type.Object({ kind: Kind }, { additionalProperties: false });
// any spelling (normalised), but never a path separator or a control character
const EntryParams = Type.Object(
  { kind: Kind, number: Type.String({ minLength: 1, maxLength: 64, pattern: '^[^/\\\\\\u0000-\\u001f\\u007f]+$', description: 'any spelling: normalised' }) },
  { additionalProperties: false },
);
const ImportParams = Type.Object({ kind: Kind, importId: Type.String({ format: 'uuid' }) }, { additionalProperties: false });

const ListQuery = Type.Object(
  {
    number: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'exactly this number (any spelling)' })),
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'a part of the number or of the reason' })),
    includeExpired: Type.Boolean({ default: false }),
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
    cursor: Type.Optional(Type.String({ maxLength: 200, description: 'nextCursor of the previous page' })),
  },
  { additionalProperties: false },
);
const AddBody = Type.Object(
  {
    number: Type.String({ minLength: 1, maxLength: 64 }),
    reason: Type.String({ minLength: 1, maxLength: REASON_MAX, pattern: '\\S' }),
    expiresAt: Type.Optional(Type.String({ minLength: 10, maxLength: 40, description: 'ISO 8601 date-time in the future; a date alone means until its end (Asia/Shanghai)' })),
    treatment: Type.Optional(Treatment),
  },
  { additionalProperties: false },
);
const ImportQuery = Type.Object(
  {
    mode: Type.Union([Type.Literal('all-or-nothing'), Type.Literal('best-effort')], { default: 'all-or-nothing' }),
    stage: Type.Boolean({ default: false, description: 'keep the validated rows as a staged import; POST .../imports/{importId}/apply makes it live' }),
    replace: Type.Boolean({ default: false, description: 'the file replaces the whole list (one transaction)' }),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: REASON_MAX, pattern: '\\S', description: 'for rows without a reason (default "import <date>")' })),
  },
  { additionalProperties: false },
);
const ApplyQuery = Type.Object({ replace: Type.Optional(Type.Boolean({ description: 'default: as staged' })) }, { additionalProperties: false });
const ExportQuery = Type.Object(
  {
    format: Type.Union([Type.Literal('csv'), Type.Literal('json')], { default: 'csv' }),
    includeExpired: Type.Boolean({ default: false }),
  },
  { additionalProperties: false },
);

const tags = ['lists'];
const security = [{ bearer: [] }];
/** the raw bytes: nothing to validate here (list-import.ts reads them); the media types are in `consumes` */
const fileSchema = Type.Unsafe<Buffer>({ description: 'the file' });

/** black and white lists (API.md "Lists"): entries, bulk import (direct or staged), export; all changes audited */
export const listsRoutes: FastifyPluginAsyncTypebox<{ db: Db; audit: AuditLog; guard: Guard }> = async (app, { db, audit, guard }) => {
  const lists = createListsService({ db, audit });
  const readers = guard('supervisor', 'admin', 'auditor');
  const editors = guard('supervisor', 'admin');

  app.get(
    '/:kind/entries',
    {
      preHandler: readers,
      schema: {
        tags,
        summary: 'entries of a list, newest first (expired ones only with includeExpired)',
        security,
        params: KindParams,
        querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(Entry), nextCursor: Type.Union([Type.String(), Type.Null()]) }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query;
      let number: string | undefined;
      if (q.number !== undefined) {
        number = normalizePhone(q.number) ?? undefined;
        if (number === undefined) throw badRequest('invalid-number', `"${q.number}" is not a phone number`);
      }
      const page = await listEntries(db, req.params.kind, { ...(number ? { number } : {}), ...(q.q ? { q: q.q } : {}), ...(q.cursor ? { cursor: q.cursor } : {}), includeExpired: q.includeExpired, limit: q.limit });
      const now = new Date();
      return { items: page.items.map((r) => entryDto(r, now)), nextCursor: page.nextCursor };
    },
  );

  app.post(
    '/:kind/entries',
    {
      preHandler: editors,
      schema: {
        tags,
        summary: 'add a number; 409 duplicate when it is on the list already (remove it first to change it; an expired entry is replaced)',
        description:
          'The number is normalised. Emergency and public service numbers (110, 119, 120, 122, 12345, 12333, 12329, 12367, 95198, 4009513513) are refused on the black list (400 protected-number).',
        security,
        params: KindParams,
        body: AddBody,
        response: { 201: Entry, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 409: ErrorBody },
      },
    },
    async (req, reply) => reply.status(201).send(await lists.add(req.params.kind, req.body, auditActor(req))),
  );

  app.delete(
    '/:kind/entries/:number',
    {
      preHandler: editors,
      schema: {
        tags,
        summary: 'remove a number (any spelling); 404 when it is not on the list',
        security,
        params: EntryParams,
        response: { 204: Type.Null(), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      await lists.remove(req.params.kind, req.params.number, auditActor(req));
      return reply.status(204).send(null);
    },
  );

  // the import takes the file itself as its body: raw bytes (encoding detected by us), in this context only
  await app.register(async (child) => {
    const files = child.withTypeProvider<TypeBoxTypeProvider>();
    files.removeAllContentTypeParsers();
    files.addContentTypeParser(IMPORT_CONTENT_TYPES, { parseAs: 'buffer', bodyLimit: IMPORT_BODY_LIMIT }, (_req, body, done) => done(null, body));
    files.post(
      '/:kind/import',
      {
        preHandler: editors,
        bodyLimit: IMPORT_BODY_LIMIT,
        schema: {
          tags,
          summary: 'bulk import a file (CSV, plain lines, JSON or xlsx); 422 with the report when all-or-nothing finds invalid lines',
          description: [
            'Body: the file, at most 8 MB. `text/csv` (`,` `;` or TAB, quoted fields; columns number[,reason[,expiresAt[,treatment]]]; a header row is recognised by a first cell that is no number and may name the columns),',
            '`text/plain` (one number per line), `application/json` (an array of numbers as strings, or of objects {number, reason?, expiresAt?, treatment?}), or an xlsx workbook (first sheet, columns as CSV).',
            'UTF-8 with or without BOM; bytes that are not UTF-8 are read as GB18030. Empty lines are skipped. Cells that look like spreadsheet formulas, bad numbers, protected numbers (black list),',
            'treatments of the other list, past expiries and wrong column counts are invalid lines; numbers repeated in the file or already on the list are duplicates (never an error).',
            'all-or-nothing (default): any invalid line and nothing is written (422). best-effort: the valid rows are written. stage=true: nothing is written; apply it later. replace=true: the file becomes the whole list.',
            'At most 10 imports a minute per user (429).',
          ].join(' '),
          security,
          params: KindParams,
          querystring: ImportQuery,
          consumes: IMPORT_CONTENT_TYPES,
          body: fileSchema,
          response: { 200: Report, 422: Report, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 413: ErrorBody, 415: ErrorBody, 429: ErrorBody },
        },
      },
      async (req, reply) => {
        const q = req.query;
        const { status, report } = await lists.importFile(
          req.params.kind,
          req.body as Buffer | undefined,
          req.headers['content-type'] ?? '',
          { mode: q.mode, stage: q.stage, replace: q.replace, ...(q.reason ? { reason: q.reason } : {}) },
          auditActor(req),
        );
        return reply.status(status).send(report);
      },
    );
  });

  app.get(
    '/:kind/imports/:importId',
    {
      preHandler: readers,
      schema: { tags, summary: 'the report of an import (staged, applied or rejected)', security, params: ImportParams, response: { 200: Report, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody } },
    },
    async (req) => lists.getImport(req.params.kind, req.params.importId),
  );

  app.post(
    '/:kind/imports/:importId/apply',
    {
      preHandler: editors,
      schema: {
        tags,
        summary: 'make a staged import live in one transaction; rows that became duplicates meanwhile are reported; replace=true replaces the whole list',
        security,
        params: ImportParams,
        querystring: ApplyQuery,
        response: { 200: Report, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (req) => lists.apply(req.params.kind, req.params.importId, req.query.replace, auditActor(req)),
  );

  app.get(
    '/:kind/export',
    {
      preHandler: readers,
      schema: {
        tags,
        summary: 'download the list: CSV (UTF-8 with BOM, formula-safe cells, times in Asia/Shanghai) or JSON',
        security,
        params: KindParams,
        querystring: ExportQuery,
        response: {
          200: {
            description: 'the list as a file (Content-Disposition: attachment; blacklist-YYYYMMDD.csv)',
            content: {
              'text/csv': { schema: Type.Unsafe<Readable>({ type: 'string', format: 'binary' }) },
              'application/json': { schema: Type.Unsafe<Readable>({ type: 'array', items: Entry }) },
            },
          },
          400: ErrorBody,
          401: ErrorBody,
          403: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      const file = await lists.export(req.params.kind, req.query.format, req.query.includeExpired, auditActor(req));
      reply.header('content-type', file.contentType);
      reply.header('content-disposition', `attachment; filename="${file.filename}"`);
      reply.header('x-total-count', String(file.rows));
      return reply.send(file.stream);
    },
  );
};
