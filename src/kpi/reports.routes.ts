import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Db } from '../db/db.js';
import type { KpiReportKind } from '../db/database.js';
import { decodeCursor, encodeCursor } from '../http/cursor.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import type { JobScheduler } from '../jobs/scheduler.js';
import { AppError, badRequest, notFound } from '../shared/errors.js';
import { REPORT_JOB } from './kpi.jobs.js';
import { parsePeriod } from './reports.js';

const Kind = Type.Union([Type.Literal('monthly'), Type.Literal('quarterly'), Type.Literal('half-yearly'), Type.Literal('annual')]);
const Status = Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('done'), Type.Literal('failed')]);
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

const Report = Type.Object({
  id: Type.String(),
  kind: Kind,
  period: Type.String(),
  status: Status,
  createdBy: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  startedAt: Nullable(Type.String({ format: 'date-time' })),
  finishedAt: Nullable(Type.String({ format: 'date-time' })),
  error: Nullable(Type.String()),
  /** where the files are, once done */
  files: Type.Union([Type.Object({ html: Type.String(), csv: Type.String() }), Type.Null()]),
});

const Id = Type.Object({ id: Type.String({ pattern: '^[0-9A-Za-z-]{1,64}$', description: 'the report id (a uuid)' }) }, { additionalProperties: false });

interface ReportMeta {
  id: string;
  kind: KpiReportKind;
  period: string;
  status: 'queued' | 'running' | 'done' | 'failed';
  created_by: string;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  error: string | null;
}

const META = ['id', 'kind', 'period', 'status', 'created_by', 'created_at', 'started_at', 'finished_at', 'error'] as const;

const toReport = (r: ReportMeta, prefix: string) => ({
  id: r.id,
  kind: r.kind,
  period: r.period,
  status: r.status,
  createdBy: r.created_by,
  createdAt: r.created_at.toISOString(),
  startedAt: r.started_at?.toISOString() ?? null,
  finishedAt: r.finished_at?.toISOString() ?? null,
  error: r.error,
  files: r.status === 'done' ? { html: `${prefix}/${r.id}/file?format=html`, csv: `${prefix}/${r.id}/file?format=csv` } : null,
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** the periodic reports: request (a job builds it), list, read, download. `jobs` left out: POST answers 503 */
export const reportsRoutes: FastifyPluginAsyncTypebox<{ db: Db; guard: Guard; jobs?: Pick<JobScheduler, 'enqueue'> | undefined }> = async (app, { db, guard, jobs }) => {
  const prefix = app.prefix;
  const find = async (id: string): Promise<ReportMeta> => {
    const r = UUID.test(id) ? await db.selectFrom('kpi_reports').select(META).where('id', '=', id.toLowerCase()).executeTakeFirst() : undefined;
    if (!r) throw notFound('no-such-report', `no report ${id}`);
    return r;
  };

  app.post(
    '/',
    {
      preHandler: guard('supervisor', 'admin'),
      schema: {
        tags: ['reports'],
        summary: 'request a report: monthly (2026-11), quarterly (2026-Q4), half-yearly (2026-H2) or annual (2026); a job builds it',
        security: [{ bearer: [] }],
        body: Type.Object({ kind: Kind, period: Type.String({ maxLength: 16 }) }, { additionalProperties: false }),
        response: { 202: Type.Object({ id: Type.String(), status: Status }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 503: ErrorBody },
      },
    },
    async (req, reply) => {
      const { kind, period } = req.body;
      if (!parsePeriod(kind, period)) {
        const example = { monthly: '2026-11', quarterly: '2026-Q4', 'half-yearly': '2026-H2', annual: '2026' }[kind];
        throw badRequest('invalid-period', `a ${kind} period reads like ${example} (years 2000-2099), got "${period}"`);
      }
      if (!jobs) throw new AppError(503, 'jobs-unavailable', 'background jobs are not running in this process');
      const row = await db.insertInto('kpi_reports').values({ kind, period, created_by: req.principal!.username }).returning(['id', 'status']).executeTakeFirstOrThrow();
      try {
        await jobs.enqueue(REPORT_JOB, { reportId: row.id }, { jobId: `${REPORT_JOB}-${row.id}` });
      } catch (err) {
        await db.updateTable('kpi_reports').set({ status: 'failed', error: 'could not be queued', finished_at: new Date() }).where('id', '=', row.id).execute();
        req.log.error({ err: (err as Error).message, reportId: row.id }, 'report: enqueue failed');
        throw new AppError(503, 'jobs-unavailable', 'the report could not be queued; try again');
      }
      req.log.info({ reportId: row.id, kind, period, by: req.principal!.username }, 'report requested');
      return reply.status(202).send({ id: row.id, status: row.status });
    },
  );

  app.get(
    '/',
    {
      preHandler: guard('supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['reports'],
        summary: 'reports, newest first',
        security: [{ bearer: [] }],
        querystring: Type.Object(
          {
            kind: Type.Optional(Kind),
            status: Type.Optional(Status),
            limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(Report), nextCursor: Type.Union([Type.String(), Type.Null()]) }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query;
      let sel = db.selectFrom('kpi_reports').select(META);
      if (q.kind) sel = sel.where('kind', '=', q.kind);
      if (q.status) sel = sel.where('status', '=', q.status);
      if (q.cursor) {
        const c = decodeCursor(q.cursor);
        sel = sel.where((eb) => eb.or([eb('created_at', '<', c.at), eb.and([eb('created_at', '=', c.at), eb('id', '<', c.id)])]));
      }
      const rows = await sel.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(q.limit + 1).execute();
      const page = rows.slice(0, q.limit);
      const last = page[page.length - 1];
      return { items: page.map((r) => toReport(r, prefix)), nextCursor: rows.length > q.limit && last ? encodeCursor(last.created_at, last.id) : null };
    },
  );

  app.get(
    '/:id',
    {
      preHandler: guard('supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['reports'],
        summary: 'one report: its status (queued, running, done, failed) and, once done, where its files are',
        security: [{ bearer: [] }],
        params: Id,
        response: { 200: Report, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (req) => toReport(await find(req.params.id), prefix),
  );

  app.get(
    '/:id/file',
    {
      preHandler: guard('supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['reports'],
        summary: 'the report as one self-contained HTML file (inline CSS and SVG) or as CSV (UTF-8 with BOM)',
        security: [{ bearer: [] }],
        params: Id,
        querystring: Type.Object(
          { format: Type.Union([Type.Literal('html'), Type.Literal('csv')], { default: 'html' }), download: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
        response: {
          200: { description: 'the report file', content: { 'text/html': { schema: Type.String() }, 'text/csv': { schema: Type.String() } } },
          401: ErrorBody,
          403: ErrorBody,
          404: ErrorBody,
          409: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      const meta = await find(req.params.id);
      if (meta.status !== 'done') throw new AppError(409, 'report-not-ready', `report ${meta.id} is ${meta.status}`, { status: meta.status });
      const format = req.query.format;
      const file = await db.selectFrom('kpi_reports').select(format === 'csv' ? 'csv as body' : 'html as body').where('id', '=', meta.id).executeTakeFirstOrThrow();
      const name = `hotline-${meta.kind}-report-${meta.period}.${format}`;
      const inline = format === 'html' && !req.query.download;
      reply
        .header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'text/html; charset=utf-8')
        .header('content-disposition', `${inline ? 'inline' : 'attachment'}; filename="${name}"`)
        .header('x-content-type-options', 'nosniff');
      // the report has no script and loads nothing: a browser opening it from the API may run nothing either
      if (format === 'html') reply.header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox");
      return reply.send(file.body ?? '');
    },
  );
};
