import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Db } from '../db/db.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { badRequest } from '../shared/errors.js';
import { parseLocalDate } from '../shared/zoned-time.js';
import { DEFAULT_WEEKS, forecastStaffing } from './staffing.js';

const Item = Type.Object({
  start: Type.String({ format: 'date-time', description: 'the half-hour start, UTC' }),
  startLocal: Type.String({ description: 'the half-hour start on the hotline clock (Asia/Shanghai), HH:mm' }),
  forecastCalls: Type.Number(),
  ahtSeconds: Type.Number(),
  agentsNeeded: Type.Integer(),
  expectedServiceLevel: Type.Number({ description: 'expected answer rate with agentsNeeded agents (Erlang A)' }),
  expectedAsaSeconds: Type.Number(),
});

const Forecast = Type.Object({
  date: Type.String(),
  line: Type.Union([Type.String(), Type.Null()]),
  weeksOfHistory: Type.Integer(),
  patienceSeconds: Type.Number(),
  patienceSource: Type.Union([Type.Literal('history'), Type.Literal('default')]),
  items: Type.Array(Item),
});

/** GET /api/v1/staffing?date&line&weeks: agents needed per half-hour of a day (Asia/Shanghai) */
export const staffingRoutes: FastifyPluginAsyncTypebox<{ db: Db; guard: Guard }> = async (app, { db, guard }) => {
  app.get(
    '/',
    {
      preHandler: guard('supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['kpi'],
        summary: 'staffing forecast: calls, handle time and agents needed per half-hour (Erlang A, answer rate >= 95 %, average wait <= 15 s)',
        security: [{ bearer: [] }],
        querystring: Type.Object(
          {
            date: Type.String({ description: 'YYYY-MM-DD, a day on the hotline clock (Asia/Shanghai)' }),
            line: Type.Optional(Type.String({ minLength: 1, maxLength: 32, pattern: '^[0-9A-Za-z_+-]+$' })),
            weeks: Type.Integer({ minimum: 1, maximum: 12, default: DEFAULT_WEEKS, description: 'weeks of history (same weekday)' }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Forecast, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const date = parseLocalDate(req.query.date);
      if (!date) throw badRequest('invalid-date', `date must be a calendar day as YYYY-MM-DD, got "${req.query.date}"`);
      return forecastStaffing(db, { date, dateText: req.query.date, line: req.query.line ?? null, weeks: req.query.weeks });
    },
  );
};
