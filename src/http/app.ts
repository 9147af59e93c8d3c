/** The Fastify application: no listen() here (main.ts owns it), so tests use inject() or a random port. */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import type { AuthService, Principal } from '../auth/auth.service.js';
import { authRoutes } from '../auth/auth.routes.js';
import { callsRoutes } from '../calls/calls.routes.js';
import { callbacksRoutes } from '../callbacks/callbacks.routes.js';
import type { AcdEngine } from '../acd/engine.js';
import type { QueuesConfigStore } from '../acd/queues.config.js';
import { queuesRoutes } from '../acd/queues.routes.js';
import type { QueueStatsService } from '../acd/queues.stats.js';
import { agentStateRoutes } from '../agents/agent-state.routes.js';
import { agentsRoutes } from '../agents/agents.routes.js';
import type { AgentsService } from '../agents/agents.service.js';
import type { AgentStates } from '../agents/agent-states.js';
import websocket from '@fastify/websocket';
import { agentDeskRoutes } from '../agents/agent-desk.routes.js';
import type { AgentDesk } from '../agents/agent-desk.js';
import type { BreaksService } from '../agents/breaks.js';
import type { LoginLimiter } from '../auth/login-limiter.js';
import type { EventBus } from '../events/bus.js';
import { eventsRoutes } from '../events/events.routes.js';
import type { HubOptions } from '../events/hub.js';
import type { Recordings } from '../ari/port.js';
import type { Db } from '../db/db.js';
import type { Role } from '../db/database.js';
import { AppError, forbidden, unauthorized } from '../shared/errors.js';
import type { MaintenanceState } from '../maintenance/maintenance.js';
import { maintenanceRoutes } from '../maintenance/maintenance.routes.js';
import { voicemailsRoutes } from '../voicemail/voicemails.routes.js';
import { healthRoutes, type Readiness } from './health.routes.js';
import { ivrRoutes } from '../ivr/ivr.routes.js';
import { callControlRoutes } from '../calls/call-control.routes.js';
import type { CallRouter } from '../calls/calls.stasis.js';
import type { ClickToCall } from '../calls/click-to-call.js';
import type { IvrStore } from '../ivr/ivr.store.js';
import { smsRoutes } from '../sms/sms.routes.js';
import type { AuditLog } from '../audit/audit.js';
import { auditRoutes } from '../audit/audit.routes.js';
import { listsRoutes } from '../lists/lists.routes.js';
import { recordingsRoutes } from '../recordings/recordings.routes.js';
import type { RecordingsService } from '../recordings/recordings.service.js';
import { callCategoryRoutes } from '../calls/call-category.routes.js';
import type { LiveView } from '../supervision/live-view.js';
import { supervisionRoutes } from '../supervision/supervision.routes.js';
import type { SmsService } from '../sms/sms.service.js';
import { ticketsRoutes } from '../tickets/tickets.routes.js';
import type { TicketsService } from '../tickets/tickets.service.js';
import { staffingRoutes } from '../kpi/staffing.routes.js';
import { kpiRoutes } from '../kpi/kpi.routes.js';
import { reportsRoutes } from '../kpi/reports.routes.js';
import type { JobScheduler } from '../jobs/scheduler.js';
import type { AudioTickets } from '../recordings/audio-tickets.js';
import { wallboardRoutes } from '../wallboard/wallboard.routes.js';
import type { WallboardService } from '../wallboard/wallboard.service.js';
import { webRoutes } from '../web/web.routes.js';
import { checkInput, enforceStrictInput } from './strict-input.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** Fastify's own client errors, under the names our clients see */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid-request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid-json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid-json',
  FST_ERR_CTP_BODY_TOO_LARGE: 'body-too-large',
};

/** a request as logged: the WebSocket's ?token=, the wallboard's ?key= and an audio ?ticket= are never written to the log */
const logRequest = (req: FastifyRequest) => ({
  method: req.method,
  url: req.url.replace(/([?&](?:token|key|ticket)=)[^&]*/gi, '$1***'),
  host: req.host,
  remoteAddress: req.ip,
  remotePort: req.socket?.remotePort,
});

export interface AppDeps {
  log: Logger;
  db: Db;
  auth: AuthService;
  engine: AcdEngine;
  agentStates: AgentStates;
  /** the agent desktop: ACD sign-in/out and today (desk), breaks, failed sign-ins, live events (WS /api/v1/events) */
  desk: AgentDesk;
  breaks: BreaksService;
  loginLimiter: LoginLimiter;
  events: Pick<EventBus, 'subscribe'>;
  /** the WebSocket hub's timers and limits (tests shorten them) */
  eventsHub?: HubOptions;
  agents: AgentsService;
  queues: QueuesConfigStore;
  queueStats: QueueStatsService;
  /** Asterisk's stored recordings (voicemail audio) */
  recordings: Pick<Recordings, 'file'>;
  maintenance: MaintenanceState;
  ivr: IvrStore;
  sms: SmsService;
  /** the live calls of this process (call control) */
  calls: Pick<CallRouter, 'get'>;
  clickToCall: ClickToCall;
  /** the supervisors' audit trail (append-only, hash-chained) */
  audit: AuditLog;
  /** call recordings: index, SHA-256 check, retention (src/recordings/) */
  recordingsService: RecordingsService;
  /** the supervisors' live view of queues and agents */
  liveView: LiveView;
  /** the ticket system's webhook (POST /api/v1/tickets/events): left out, the route is not served */
  tickets?: { service: TicketsService; secret: string };
  /** the wallboard's snapshot (GET /api/v1/wallboard) and its read-only key (null: tokens only); left out, the route is not served */
  wallboard?: { service: WallboardService; key: string | null };
  /** short-lived audio URLs for the console's <audio> player (POST /api/v1/recordings/{id}/audio-ticket); left out, not served */
  audioTickets?: AudioTickets;
  /** the built web pages (/wallboard, /console); default dist/web of this checkout */
  webDir?: string;
  /** background jobs (src/jobs): KPI re-rolls and reports are enqueued; left out, those POSTs answer 503 */
  jobs?: Pick<JobScheduler, 'enqueue'>;
  readiness: Readiness;
  metrics: () => string | Promise<string>;
}

export type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>;

export async function buildApp(deps: AppDeps): Promise<App> {
  const app = Fastify({
    loggerInstance: deps.log.child({ module: 'http' }, { serializers: { req: logRequest } }),
    bodyLimit: 1024 * 1024,
    // a JSON body with __proto__ or constructor.prototype keys is refused by the parser (400 invalid-json)
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorateRequest('principal', null);
  // every /api route: strict input schemas (unknown fields are a 400; checked at build time); no NUL characters,
  // no silent type conversion in JSON bodies (src/http/strict-input.ts)
  app.addHook('onRoute', enforceStrictInput);
  app.addHook('preValidation', checkInput);

  app.setErrorHandler((err: FastifyError | AppError, req, reply) => {
    if (err instanceof AppError) {
      return reply.status(err.status).send({ error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } });
    }
    const fe = err as FastifyError;
    if (fe.validation) {
      return reply.status(400).send({ error: { code: 'invalid-request', message: fe.message } });
    }
    const status = fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
    if (status < 500) {
      const code = FASTIFY_CODES[fe.code ?? ''] ?? (fe.code ?? 'bad-request').replace(/^FST_ERR_/, '').toLowerCase().replace(/_/g, '-');
      return reply.status(status).send({ error: { code, message: fe.message } });
    }
    req.log.error({ err }, 'request failed');
    return reply.status(500).send({ error: { code: 'internal', message: 'internal error; the details are in the service log' } });
  });

  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send({ error: { code: 'not-found', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Hainan 12345 hotline control plane', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  // before the routes: it wraps every route so that an upgrade request reaches its wsHandler
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });

  const guard = createGuard(deps.auth);

  await app.register(healthRoutes, { readiness: deps.readiness, metrics: deps.metrics });
  await app.register(authRoutes, { prefix: '/api/v1/auth', auth: deps.auth, limiter: deps.loginLimiter, desk: deps.desk });
  await app.register(callsRoutes, { prefix: '/api/v1/calls', db: deps.db, guard });
  await app.register(agentsRoutes, { prefix: '/api/v1/agents', agents: deps.agents, guard });
  await app.register(agentStateRoutes, { prefix: '/api/v1/agents', engine: deps.engine, agentStates: deps.agentStates, audit: deps.audit, guard });
  await app.register(agentDeskRoutes, { prefix: '/api/v1', breaks: deps.breaks, desk: deps.desk, guard });
  await app.register(eventsRoutes, { prefix: '/api/v1/events', events: deps.events, auth: deps.auth, log: deps.log, ...(deps.eventsHub ? { options: deps.eventsHub } : {}), wallboardKey: deps.wallboard?.key ?? null });
  await app.register(queuesRoutes, { prefix: '/api/v1', stats: deps.queueStats, queues: deps.queues, guard });
  await app.register(callbacksRoutes, { prefix: '/api/v1/callbacks', db: deps.db, guard });
  await app.register(voicemailsRoutes, { prefix: '/api/v1/voicemails', db: deps.db, recordings: deps.recordings, guard });
  await app.register(callControlRoutes, { prefix: '/api/v1/calls', calls: deps.calls, clickToCall: deps.clickToCall, audit: deps.audit, guard });
  await app.register(supervisionRoutes, { prefix: '/api/v1', calls: deps.calls, db: deps.db, audit: deps.audit, live: deps.liveView, guard });
  await app.register(ivrRoutes, { prefix: '/api/v1/ivr', ivr: deps.ivr, guard });
  await app.register(maintenanceRoutes, { prefix: '/api/v1/maintenance', maintenance: deps.maintenance, guard });
  await app.register(smsRoutes, { prefix: '/api/v1/sms', sms: deps.sms, guard });
  await app.register(auditRoutes, { prefix: '/api/v1/audit', audit: deps.audit, guard });
  await app.register(listsRoutes, { prefix: '/api/v1/lists', db: deps.db, audit: deps.audit, guard });
  await app.register(recordingsRoutes, { prefix: '/api/v1/recordings', db: deps.db, service: deps.recordingsService, audit: deps.audit, guard, ...(deps.audioTickets ? { tickets: deps.audioTickets } : {}) });
  await app.register(callCategoryRoutes, { prefix: '/api/v1/calls', db: deps.db, audit: deps.audit, guard });
  if (deps.tickets) await app.register(ticketsRoutes, { prefix: '/api/v1/tickets', tickets: deps.tickets.service, secret: deps.tickets.secret });
  await app.register(staffingRoutes, { prefix: '/api/v1/staffing', db: deps.db, guard });
  if (deps.wallboard) await app.register(wallboardRoutes, { prefix: '/api/v1/wallboard', service: deps.wallboard.service, auth: deps.auth, key: deps.wallboard.key });
  await app.register(webRoutes, deps.webDir ? { dir: deps.webDir } : {});
  await app.register(kpiRoutes, { prefix: '/api/v1/kpi', db: deps.db, guard, jobs: deps.jobs });
  await app.register(reportsRoutes, { prefix: '/api/v1/reports', db: deps.db, guard, jobs: deps.jobs });
  return app;
}

export type Guard = (...roles: Role[]) => (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** preHandler factory: a valid bearer token whose user has one of these roles */
export function createGuard(auth: AuthService): Guard {
  return (...roles) =>
    async (req) => {
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      if (!m) throw unauthorized('missing Authorization: Bearer <token>');
      req.principal = await auth.authenticate(m[1]!);
      if (!roles.includes(req.principal.role)) throw forbidden();
    };
}
