import { decodeCursor, encodeCursor } from '../http/cursor.js';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Db } from '../db/db.js';
import type { CallEventRow, CallRow } from '../db/database.js';
import type { Guard } from '../http/app.js';
import { ErrorBody } from '../http/schemas.js';
import { badRequest, notFound } from '../shared/errors.js';
import { normalizePhone } from '../shared/phone.js';
import { eventsOfCalls, getCall, listCalls } from './calls.repo.js';
import { Call, CallIdParams, CallList, CallListQuery, type CallDto } from './calls.schemas.js';

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const num = (v: string | null) => (v === null ? null : Number(v));

export function toCallDto(row: CallRow, events: CallEventRow[]): CallDto {
  return {
    id: row.id,
    direction: row.direction,
    caller: row.caller,
    dialed: row.dialed,
    line: row.line,
    language: row.language,
    ivrPath: row.ivr_path,
    queue: row.queue,
    agents: row.agents,
    arrivedAt: row.arrived_at.toISOString(),
    queuedAt: iso(row.queued_at),
    answeredAt: iso(row.answered_at),
    endedAt: iso(row.ended_at),
    waitSeconds: num(row.wait_seconds),
    talkSeconds: num(row.talk_seconds),
    disposition: row.disposition,
    recordingId: null,
    survey: row.survey_score === null ? null : { score: row.survey_score },
    events: events.map((e) => ({ at: e.at.toISOString(), type: e.type, data: e.data })),
  };
}


export const callsRoutes: FastifyPluginAsyncTypebox<{ db: Db; guard: Guard }> = async (app, { db, guard }) => {
  app.get(
    '/',
    {
      preHandler: guard('agent', 'supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['calls'],
        summary: 'call records, newest first; an agent sees only its own calls',
        security: [{ bearer: [] }],
        querystring: CallListQuery,
        response: { 200: CallList, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query;
      const p = req.principal!;
      const caller = q.caller === undefined ? undefined : normalizePhone(q.caller);
      if (caller === null) throw badRequest('invalid-number', `caller "${q.caller}" is not a phone number`);
      // an agent account without an agent id has no calls of its own
      if (p.role === 'agent' && !p.agentId) return { items: [], nextCursor: null };
      const rows = await listCalls(db, {
        ...(q.from ? { from: new Date(q.from) } : {}),
        ...(q.to ? { to: new Date(q.to) } : {}),
        ...(caller ? { caller } : {}),
        ...(q.line ? { line: q.line } : {}),
        ...(q.queue ? { queue: q.queue } : {}),
        // an agent's own calls only, whatever it asked for
        ...(p.role === 'agent' ? { agent: p.agentId! } : q.agent ? { agent: q.agent } : {}),
        ...(q.disposition ? { disposition: q.disposition } : {}),
        ...(q.cursor ? { before: ((c) => ({ arrivedAt: c.at, id: c.id }))(decodeCursor(q.cursor)) } : {}),
        limit: q.limit,
      });
      const events = await eventsOfCalls(
        db,
        rows.map((r) => r.id),
      );
      const byCall = new Map<string, CallEventRow[]>();
      for (const e of events) byCall.set(e.call_id, [...(byCall.get(e.call_id) ?? []), e]);
      return {
        items: rows.map((r) => toCallDto(r, byCall.get(r.id) ?? [])),
        nextCursor: rows.length === q.limit ? encodeCursor(rows[rows.length - 1]!.arrived_at, rows[rows.length - 1]!.id) : null,
      };
    },
  );

  app.get(
    '/:id',
    {
      preHandler: guard('agent', 'supervisor', 'admin', 'auditor'),
      schema: {
        tags: ['calls'],
        summary: 'one call record with its events',
        security: [{ bearer: [] }],
        params: CallIdParams,
        response: { 200: Call, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
      },
    },
    async (req) => {
      const row = await getCall(db, req.params.id);
      const p = req.principal!;
      // an agent asking for someone else's call gets the same answer as for a call that does not exist
      if (!row || (p.role === 'agent' && !row.agents.includes(p.agentId ?? ''))) throw notFound('no-such-call', `no call ${req.params.id}`);
      return toCallDto(row, await eventsOfCalls(db, [row.id]));
    },
  );
};
