import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type TSchema } from '@sinclair/typebox';
import type { Db } from '../db/db.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import type { JobScheduler } from '../jobs/scheduler.js';
import { AppError, badRequest } from '../shared/errors.js';
import { localDayStart, parseLocalDate } from '../shared/zoned-time.js';
import { SUM_KEYS, TARGET_KEYS, TARGETS } from './definitions.js';
import { GRANULARITIES, kpiSeries, type Dimension, type Granularity } from './kpi.service.js';
import { localDayOf, mergeRanges } from './rollup.js';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

const Ratio = (description: string) => Nullable(Type.Number({ description }));

const Counts = Object.fromEntries(SUM_KEYS.map((k) => [k, Type.Number()])) as Record<(typeof SUM_KEYS)[number], ReturnType<typeof Type.Number>>;

export const KpiRowSchema = Type.Object(
  {
    start: Type.String({ format: 'date-time', description: 'the bucket start, UTC' }),
    end: Type.String({ format: 'date-time' }),
    label: Type.String({ description: 'the bucket on the hotline clock (Asia/Shanghai): YYYY-MM-DD HH:mm, YYYY-MM-DD or YYYY-MM' }),
    ...Counts,
    answerRate: Ratio('(answered + ivrCompleted) / (offered - shortAbandoned)'),
    avgWaitSeconds: Ratio('arrival to first answer (agent, or the end of self-service), answered calls'),
    p90WaitSeconds: Ratio('nearest-rank 90th percentile of the same waits'),
    serviceLevel: Ratio('answered (agent or IVR) within 15 s / (offered - shortAbandoned)'),
    avgTalkSeconds: Ratio('agent-answered calls'),
    avgWrapUpSeconds: Ratio('wrap-up spells started in the bucket'),
    satisfaction: Ratio('satisfied ratings / ratings'),
    fcr: Ratio('tickets resolved on first contact / tickets opened'),
    fcrCalls: Ratio('first-call consultations not repeated within FCR_REPEAT_DAYS / first-call consultations'),
    callbackRate24h: Ratio('closed tickets called back within 24 h / closed tickets'),
    dispatchAccuracy: Ratio('dispatched tickets never returned / dispatched tickets'),
    targetsMet: Type.Object(Object.fromEntries(TARGET_KEYS.map((k) => [k, Nullable(Type.Boolean())])), { additionalProperties: false }),
  },
  { additionalProperties: false },
);

const KpiResponse = Type.Object({
  from: Type.String({ format: 'date-time' }),
  to: Type.String({ format: 'date-time' }),
  granularity: Type.String(),
  dimension: Type.Object({ kind: Type.String(), key: Nullable(Type.String()) }),
  targets: Type.Object(Object.fromEntries(TARGET_KEYS.map((k) => [k, Type.Number()]))),
  items: Type.Array(KpiRowSchema),
});

const DATE_OR_TIME = '^\\d{4}-\\d{2}-\\d{2}([T ]\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:?\\d{2})?)?$';
const Key = Type.String({ minLength: 1, maxLength: 64, pattern: '^[0-9A-Za-z_.+-]+$' });

/** an ISO instant, or a bare YYYY-MM-DD meaning 00:00 on the hotline clock (Asia/Shanghai) */
function instant(s: string, name: string): Date {
  const day = /^\d{4}-\d{2}-\d{2}$/.test(s) ? parseLocalDate(s) : null;
  if (day) return localDayStart(...day);
  const d = new Date(s);
  if (Number.isNaN(d.getTime()) || !/(Z|[+-]\d{2}:?\d{2})$/.test(s)) {
    throw badRequest('invalid-time', `${name} must be YYYY-MM-DD or an ISO time with a zone (Z or +08:00), got "${s}"`);
  }
  return d;
}

/** at most this many days in one re-roll request (one job per day) */
export const MAX_ROLLUP_DAYS = 400;

/**
 * GET /api/v1/kpi: KPI rows from the rollups; POST /api/v1/kpi/rollup: re-roll a range now (one job per local day).
 * `jobs` left out: the POST answers 503.
 */
export const kpiRoutes: FastifyPluginAsyncTypebox<{ db: Db; guard: Guard; jobs?: Pick<JobScheduler, 'enqueue'> | undefined }> = async (app, { db, guard, jobs }) => {
  app.get(
    '/',
    {
      preHandler: guard('supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['kpi'],
        summary: 'KPI rows per 15 minutes, hour, day or month (Asia/Shanghai), for everything or one line, queue or agent',
        description:
          'Read from the rollups (docs/kpi.md). A row per bucket whose start is in [from, to), whole; buckets without data have zero ' +
          'counts and null ratios. `targetsMet` per contract KPI: true, false, or null when there is nothing to measure.',
        security: [{ bearer: [] }],
        querystring: Type.Object(
          {
            from: Type.String({ pattern: DATE_OR_TIME, description: 'ISO time with zone, or YYYY-MM-DD (00:00 Asia/Shanghai)' }),
            to: Type.String({ pattern: DATE_OR_TIME, description: 'exclusive' }),
            granularity: Type.Union(GRANULARITIES.map((g) => Type.Literal(g)), { default: 'day' }),
            line: Type.Optional(Key),
            queue: Type.Optional(Key),
            agent: Type.Optional(Key),
          },
          { additionalProperties: false },
        ),
        response: { 200: KpiResponse, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query;
      const from = instant(q.from, 'from');
      const to = instant(q.to, 'to');
      if (!(to > from)) throw badRequest('invalid-range', 'to must be after from');
      const given = (['line', 'queue', 'agent'] as const).filter((k) => q[k] !== undefined);
      if (given.length > 1) throw badRequest('one-dimension', 'give at most one of line, queue, agent');
      const kind = given[0];
      const dim: Dimension = kind ? { kind, key: q[kind]! } : { kind: 'all', key: null };
      const items = await kpiSeries(db, { from, to, granularity: q.granularity as Granularity, dim });
      return { from: from.toISOString(), to: to.toISOString(), granularity: q.granularity, dimension: dim, targets: { ...TARGETS }, items };
    },
  );

  app.post(
    '/rollup',
    {
      preHandler: guard('admin'),
      schema: {
        tags: ['kpi'],
        summary: 're-roll the KPI rollups of a range now (rounded out to whole 15-minute intervals; one job per local day)',
        security: [{ bearer: [] }],
        body: Type.Object(
          {
            from: Type.String({ pattern: DATE_OR_TIME }),
            to: Type.String({ pattern: DATE_OR_TIME }),
          },
          { additionalProperties: false },
        ),
        response: {
          202: Type.Object({ jobs: Type.Array(Type.String()), from: Type.String({ format: 'date-time' }), to: Type.String({ format: 'date-time' }) }),
          400: ErrorBody,
          401: ErrorBody,
          403: ErrorBody,
          503: ErrorBody,
        },
      },
    },
    async (req, reply) => {
      const from = instant(req.body.from, 'from');
      const to = instant(req.body.to, 'to');
      if (!(to > from)) throw badRequest('invalid-range', 'to must be after from');
      const [range] = mergeRanges([{ from, to }]);
      if (!range) throw badRequest('invalid-range', 'the range is empty');
      if (range.to.getTime() - range.from.getTime() > MAX_ROLLUP_DAYS * 86_400_000) throw badRequest('range-too-large', `at most ${MAX_ROLLUP_DAYS} days at once`);
      if (!jobs) throw new AppError(503, 'jobs-unavailable', 'background jobs are not running in this process');
      // one job per local day: each is a short transaction, and they run one after the other
      const chunks: Array<{ from: Date; to: Date }> = [];
      for (let t = range.from; t < range.to; ) {
        const end = new Date(Math.min(localDayOf(t).to.getTime(), range.to.getTime()));
        chunks.push({ from: t, to: end });
        t = end;
      }
      const ids: string[] = [];
      for (const c of chunks) ids.push(await jobs.enqueue('kpi-rollup-range', { from: c.from.toISOString(), to: c.to.toISOString() }));
      req.log.info({ from: range.from, to: range.to, jobs: ids.length, by: req.principal?.username }, 'kpi re-roll requested');
      return reply.status(202).send({ jobs: ids, from: range.from.toISOString(), to: range.to.toISOString() });
    },
  );
};

