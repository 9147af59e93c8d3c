/**
 * Builds and starts the whole service from a config: the one place that wires modules together
 * (main.ts adds process concerns: signals, exit codes). Tests start it in-process with their own config.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { withTimeout } from './shared/timeout.js';
import { createQueuesConfig, type QueuesConfigStore } from './acd/queues.config.js';
import { createRedisEngine } from './acd/redis-engine.js';
import { createQueueStats } from './acd/queues.stats.js';
import type { AcdEngine } from './acd/engine.js';
import { createAgentStates, type AgentStates } from './agents/agent-states.js';
import { createAgentProvisioning } from './agents/agents.provisioning.js';
import { createAgentsService, type ActiveAgent, type AgentsService } from './agents/agents.service.js';
import { startAgentSweeper } from './agents/agent-sweeper.js';
import { createAgentRestore } from './agents/agent-restore.js';
import { createAgentDesk } from './agents/agent-desk.js';
import { createBreaks } from './agents/breaks.js';
import { createLoginLimiter } from './auth/login-limiter.js';
import { startCallbackDialer } from './callbacks/callback-dialer.js';
import { createAriClient, type AriAdapter } from './ari/index.js';
import { createAuthService } from './auth/auth.service.js';
import { createCallRouter, type CallRouter } from './calls/calls.stasis.js';
import { ListedNumbers } from './lists/listed-numbers.js';
import type { Config } from './config/env.js';
import { createDb, ensureDatabase, type Db } from './db/db.js';
import { migrateToLatest } from './db/migrator.js';
import { buildApp, type App } from './http/app.js';
import type { ReadinessReport } from './http/health.routes.js';
import { MaintenanceState } from './maintenance/maintenance.js';
import { AuditLog } from './audit/audit.js';
import { RecordingsService } from './recordings/recordings.service.js';
import { createRecordingRetention } from './recordings/retention.js';
import { createRecordingsSweep } from './recordings/sweep.js';
import { LiveView } from './supervision/live-view.js';
import { WallboardService } from './wallboard/wallboard.service.js';
import { AudioTickets } from './recordings/audio-tickets.js';
import { createIvrStore } from './ivr/ivr.store.js';
import { createEventBus } from './events/bus.js';
import { createClickToCall } from './calls/click-to-call.js';
import { connectRedis, createRedis } from './redis/client.js';
import { createKeys, type Keys } from './redis/keys.js';
import { Gauge, Registry, ariMetrics, processGauges, startEventLoopMonitor } from './metrics/metrics.js';
import { SmppGateway } from './sms/smpp-gateway.js';
import { createSmsTemplates } from './sms/sms-templates.js';
import { createSmsService } from './sms/sms.service.js';
import { JobScheduler } from './jobs/scheduler.js';
import { registerKpiJobs } from './kpi/kpi.jobs.js';
import { registerTicketCallbacks } from './callbacks/ticket-callbacks.js';
import { startFallback } from './calls/fallback.js';
import { createTicketsService } from './tickets/tickets.service.js';
import { createLeadership, type Leadership } from './ha/leadership.js';
import { AriUnavailable } from './ari/port.js';
import { startRecordOutbox, installedRecordOutbox } from './db/record-ops.js';
import { outboxMetrics } from './db/outbox.js';

export interface Service {
  app: App;
  db: Db;
  redis: Redis;
  ari: AriAdapter;
  calls: CallRouter;
  engine: AcdEngine;
  agentStates: AgentStates;
  agents: AgentsService;
  queues: QueuesConfigStore;
  /** the address the HTTP API listens on */
  url: string;
  /** active-standby: only the leader holds ARI and takes calls */
  leadership: Leadership;
  readiness(): Promise<ReadinessReport>;
  stop(): Promise<void>;
}

/** true when `p` succeeds within `ms` */
const probe = (p: Promise<unknown>, ms = 1500): Promise<boolean> =>
  withTimeout(p, ms, () => new Error('timeout')).then(
    () => true,
    () => false,
  );

export interface ServiceOptions {
  /**
   * Another process took the ARI application (ApplicationReplaced, or this one handed over): this process has
   * stopped acting on calls and its records are flushed. main.ts stops and exits (a supervisor restarts it as
   * a standby); in-process tests leave it to their teardown.
   */
  onSteppedDown?: () => void;
}

export async function startService(config: Readonly<Config>, log: Logger, options: ServiceOptions = {}): Promise<Service> {
  const started = Date.now();
  await ensureDatabase(config.databaseUrl);
  const db = createDb(config.databaseUrl, { queryTimeoutMs: config.dbQueryTimeoutMs });
  const applied = await migrateToLatest(db);
  if (applied.length) log.info({ applied }, 'migrations applied');
  // record writes of calls and agent states: straight to PostgreSQL, or through the local outbox while it is away;
  // what a crashed process left there is replayed now
  const outbox = await startRecordOutbox({ db, dir: config.outbox.dir, databaseUrl: config.databaseUrl, directTimeoutMs: config.outbox.directTimeoutMs, batchMs: config.outbox.batchMs, log });
  // SMS: a broken templates file stops start-up here; the SMSC session binds in the background (none needed to start)
  const sms = createSmsService({ db, gateway: new SmppGateway({ ...config.smpp, log }), templates: createSmsTemplates(config.sms.templatesFile, log), bulkMax: config.sms.bulkMax, log });
  await sms.start();

  const redis = createRedis(config.redisUrl);
  await connectRedis(redis, config.redisUrl);
  // pub/sub needs a connection of its own (a subscribed connection cannot run commands)
  const subscriber = createRedis(config.redisUrl);
  await connectRedis(subscriber, config.redisUrl);
  const keys = createKeys(config.redisPrefix);
  const leadership = createLeadership({ redis, subscriber, keys, processId: `${hostname()}-${process.pid}-${randomUUID().slice(0, 6)}`, ttlMs: config.haLeaseMs, log });
  // background jobs (BullMQ) and cron schedules (src/jobs): modules register their jobs on it; started before the API
  const jobs = new JobScheduler({ redisUrl: config.redisUrl, prefix: keys.jobs(), log });
  const queues = createQueuesConfig(config.queuesFile, log);
  // the operators' IVR files: a broken set stops start-up here with every problem (file:line)
  const ivr = createIvrStore(config.ivrDir, queues, log);
  const engine = createRedisEngine({ redis, subscriber, keys, log });
  // live events for desktops and supervisors (WS /api/v1/events), across every process
  const events = await createEventBus({ redis, subscriber, keys, log });
  // supervisors see an IVR reload (the last error, if any, is in GET /api/v1/ivr/status)
  ivr.onReload((version) => events.publish('ivr.reload', { version }, { supervisors: true }));
  // maintenance switches: PostgreSQL rows (the API) combined with lines.yaml, kept in memory for every call
  const maintenance = new MaintenanceState({
    db,
    redis,
    subscriber,
    keys,
    log,
    configFlags: () => ivr.maintenanceFlags(),
    promptExists: (id) => ivr.promptExists(id),
  });
  await maintenance.start();
  const agentStates = createAgentStates({ engine, db, log, events });
  // the agent desktop: breaks (one approved during a call waits on the agent's live record; the engine starts it at release), ACD sign-in
  const breaks = createBreaks({ db, engine, agentStates, events, log });
  const desk = createAgentDesk({ db, engine, agentStates, queues });

  const auth = createAuthService(db, { tokenTtlHours: config.tokenTtlHours });
  const loginLimiter = createLoginLimiter({
    redis,
    keys,
    maxFailuresPerUser: config.loginMaxFailures,
    maxFailuresPerAddress: config.loginMaxFailuresPerAddress,
    windowSeconds: config.loginFailureWindowSeconds,
  });
  await auth.ensureAdmin(config.admin.user, config.admin.password);

  const ari = await createAriClient({ ...config.ari, kind: config.ari.client, log });
  // agents: accounts, skills, phones; the phones are pushed to Asterisk on every ARI (re)connection
  const agentPhones = createAgentProvisioning({ db, ari, log });
  ari.onConnection((state) => agentPhones.connectionChanged(state));
  const agents = createAgentsService({
    db,
    provisioning: agentPhones,
    log,
    liveState: async (id) => {
      const a = await engine.getAgent(id);
      return a && { state: a.state, reason: a.reason, since: new Date(a.since).toISOString() };
    },
  });
  // the ACD's live agent records follow PostgreSQL: all of them at start, then every change
  const pushToEngine = (a: ActiveAgent) => engine.upsertAgent(a.id, Object.fromEntries(a.skills.map((s) => [s.skill, s.level])), a.endpoint);
  const toEngine = async (id: string) => {
    const a = (await agents.listActive()).find((x) => x.id === id);
    if (a) await pushToEngine(a);
    else await engine.removeAgent(id);
  };
  if (config.nodeEnv === 'development' && (await agents.listActive()).length === 0) {
    // a fresh development machine can take a call right after `npm run up`: one demo agent whose desk phone
    // is whatever answers at 127.0.0.1:5091 (README: place a test call). Never in production or tests.
    await agents.create({
      employeeNo: '1001',
      name: 'Demo agent 1001',
      password: 'agent1001',
      role: 'agent',
      skills: ['general', 'en', '12333', '12329', '4009513513', '95198', '12367'].map((skill) => ({ skill, level: 5 })),
      phone: { uri: 'sip:agent1001@127.0.0.1:5091' },
    });
    log.warn('development: created demo agent 1001 (password agent1001, phone sip:agent1001@127.0.0.1:5091)');
  }
  for (const a of await agents.listActive()) await pushToEngine(a);
  agents.onChange((c) => toEngine(c.agentId));
  // Redis restarted empty (it keeps nothing on disk): the agents and their states come back from PostgreSQL
  const agentRestore = createAgentRestore({ db, redis, engine, listActive: () => agents.listActive(), markerKey: keys.redisMarker(), log });
  await agentRestore.mark();
  redis.on('ready', () => {
    agentRestore.checkAfterReconnect().catch((err) => log.error({ err: (err as Error).message }, 'could not restore the agents after Redis came back'));
  });
  const audit = new AuditLog(db);
  // call recordings: the index and SHA-256 check (the call session reports started, the router finished), the
  // leader's sweep of what those missed, and the daily retention run
  const recordingsService = new RecordingsService({ db, ari: ari.recordings, audit, log, retentionDays: config.recordingRetentionDays });
  // the black/white-listed numbers in memory, kept true by PostgreSQL's notifications: an unlisted caller is routed
  // without a database round trip
  const listed = new ListedNumbers({ db, databaseUrl: config.databaseUrl, log });
  await listed.start();
  const calls = createCallRouter({
    callRecordings: recordingsService,
    lists: listed,
    ari,
    db,
    redis,
    keys,
    engine,
    agentStates,
    queues,
    ivr,
    maintenance,
    dialTemplate: config.callback.dial,
    voicemailMaxSeconds: config.voicemailMaxSeconds,
    events,
    repeatCallerDays: config.repeatCallerDays,
    defaultHandleSeconds: config.defaultHandleSeconds,
    log,
  });
  ari.onEvent((e) => calls.handle(e));
  // the dialplan's fallback while no process is connected: the ring group it uses, and the calls it took
  const fallback = startFallback({ ari, db, engine, skill: config.fallbackSkill, log });
  // on every connection, the first included: take over what Asterisk still holds (a process that died, ARI away)
  ari.onConnection((state) => {
    if (state !== 'up') return;
    // a process that took over from one handing over reconciles once the other's last records are written
    leadership
      .predecessorReleased(3000)
      .then(() => calls.resync())
      .catch((err) => log.warn({ err: (err as Error).message }, 'reconciliation with Asterisk failed'));
    void fallback.sync();
  });
  // Another process took the application (Asterisk gives its events to the newcomer): the ARI adapter froze
  // (no request reaches Asterisk any more, no reconnect); flush what is written, say released, step down.
  let steppedDown: Promise<void> | null = null;
  const replaced = new Promise<void>((resolve) =>
    ari.onEvent((e) => {
      if (e.type === 'ApplicationReplaced') resolve();
    }),
  );
  const stepDown = () =>
    (steppedDown ??= (async () => {
      ari.freeze();
      await calls.drain(3000);
      await leadership.released();
      log.warn({ calls: calls.active }, 'stepped down: the calls are the new leader\'s');
    })());
  void replaced.then(() => stepDown().then(() => options.onSteppedDown?.()));

  // active-standby: the leader holds ARI and runs what acts on calls (sweepers, dialer, jobs); a standby
  // answers HTTP (readyz 503: a load balancer sends nothing to it) and takes over when the leader goes
  const stopActive: Array<() => unknown> = [];
  let activated: Promise<void> | null = null;
  const activate = (firstStart: boolean) =>
    (activated ??= (async () => {
      if (firstStart) await ari.start();
      else {
        // taking over: ARI may be away right now (that may be why the leader went); keep trying
        for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
          if (stopping) return;
          try {
            await ari.start();
            break;
          } catch (err) {
            log.warn({ err: (err as Error).message }, 'taking over: ARI not reachable yet');
            await new Promise((r) => setTimeout(r, delay));
          }
        }
      }
      await agentPhones.idle(); // the first push of agents' phones (started by 'up') is done before the API answers
      const stopSweeper = startAgentSweeper({ engine, agentStates, queues, redis, keys, log });
      const stopBreaks = breaks.startSweeper(config.breakSweepSeconds * 1000);
      const stopDialer = startCallbackDialer({ engine, agentStates, queues, db, router: calls, session: outboundSession, log });
      recordingsRetention.start();
      recordingsSweep.start();
      liveView.start();
      await jobs.start();
      stopActive.push(stopSweeper, stopBreaks, stopDialer);
      log.info({ processId: leadership.processId }, 'leading: ARI connected, sweepers, dialer and jobs running');
    })());
  let stopping: Promise<void> | null = null;
  try {
    await ari.check();
  } catch (err) {
    if (!(err instanceof AriUnavailable)) throw err; // wrong URL or password: start-up stops here, leader or not
  }
  // agent-first outbound calls (callbacks, click-to-call) dial citizens through the trunk, showing the hotline's number
  const outboundSession = { ari, dialTemplate: config.callback.dial, callerId: config.callback.callerId, citizenRingSeconds: config.callback.ringSeconds, maxAttempts: config.callback.maxAttempts, callRecordings: recordingsService };
  const clickToCall = createClickToCall({ engine, router: calls, session: { ...outboundSession, engine, agentStates, db, log }, ringSeconds: 20 });

  const readiness = async (): Promise<ReadinessReport> => {
    const [redisUp, pgUp] = await Promise.all([probe(redis.ping()), probe(sql`select 1`.execute(db))]);
    return { ari: ari.connected, redis: redisUp, postgres: pgUp, role: leadership.role };
  };
  const metrics = createServiceMetrics({ ari, calls, engine, queues, redis, keys });

  const queueStats = createQueueStats({ db, engine, queues, defaultHandleSeconds: config.defaultHandleSeconds });
  const recordingsRetention = createRecordingRetention({ purge: (now) => recordingsService.purgeExpired(now), redis, lockKey: keys.recordingsRetentionLock(), log });
  const recordingsSweep = createRecordingsSweep({
    db,
    finish: (name, r, opts) => recordingsService.finished(name, r, opts),
    redis,
    lockKey: keys.recordingsSweepLock(),
    log,
    intervalMs: config.recordingsSweepSeconds * 1000,
  });
  const liveView = new LiveView({ db, engine, queueStats, redis, keys, events, log: log.child({ module: 'live-view' }), intervalMs: config.liveViewPushMs });
  // the floor's video wall (GET /api/v1/wallboard, /wallboard) and the console's audio URLs
  const wallboard = new WallboardService({ db, engine, queues, queueStats, redis, keys, thresholds: { amberSeconds: config.wallboard.amberSeconds, redSeconds: config.wallboard.redSeconds } });
  const audioTickets = new AudioTickets({ redis, keys, db });
  // the ticket system's webhook (POST /api/v1/tickets/events): a closed ticket owes the citizen a callback within 24 h
  const tickets = createTicketsService({ db, log, callingHours: config.callback.hours, callbackQueue: config.tickets.callbackQueue, deadlineMs: config.callback.deadlineSeconds * 1000 });
  // ...and the jobs that call citizens back about closed tickets (automated, or through an agent of the queue)
  registerTicketCallbacks({
    db,
    jobs,
    router: calls,
    engine,
    queues,
    events,
    log,
    session: { ari, ivr, dialTemplate: config.callback.dial, callerId: config.callback.callerId, ringSeconds: config.callback.ringSeconds, callRecordings: recordingsService },
    callingHours: config.callback.hours,
    retrySeconds: config.callback.retrySeconds,
    overdueAlertSeconds: config.callback.overdueAlertSeconds,
    sweepSeconds: config.callback.sweepSeconds,
  });
  // KPI rollups (every 15 min, nightly, monthly) and reports (src/kpi/kpi.jobs.ts)
  registerKpiJobs(jobs, { db, log, fcrRepeatDays: config.fcrRepeatDays, reconcileHours: config.kpiReconcileHours });
  await leadership.start();
  if (leadership.role === 'leader') await activate(true);
  else log.info('another process leads: standing by');
  leadership.onChange((role) => {
    if (role === 'leader') activate(false).catch((err) => log.error({ err }, 'taking over failed'));
  });
  const app = await buildApp({ audit, liveView, log, db, auth, engine, agentStates, agents, queues, queueStats, readiness, metrics: metrics.render, recordings: ari.recordings, recordingsService, maintenance, ivr, calls, clickToCall, sms, events, breaks, desk, loginLimiter, tickets: { service: tickets, secret: config.tickets.webhookSecret }, wallboard: { service: wallboard, key: config.wallboard.key }, audioTickets, jobs });
  const url = await app.listen({ host: config.host, port: config.port });
  log.info({ url, ariApp: config.ari.app, role: leadership.role, startupMs: Date.now() - started }, 'hotline control plane ready');

  /**
   * SIGTERM. A leader with a live standby hands over: background work stops, then the standby takes the
   * application (ApplicationReplaced here) and the calls in place; this process flushes its records and
   * says released. A leader alone drains: new calls go to the dialplan fallback, the calls it has may finish
   * for DRAIN_SECONDS; what is left stays up in Asterisk for the next process to take over.
   */
  const stop = () =>
    (stopping ??= (async () => {
      log.info({ role: leadership.role }, 'stopping');
      metrics.stop();
      fallback.stop();
      liveView.stop();
      for (const s of stopActive.splice(0)) s();
      await recordingsRetention.stop();
      await recordingsSweep.stop();
      await jobs.close();
      if (leadership.role === 'leader' && !steppedDown && ari.connected) {
        if (await leadership.standbyAvailable()) {
          log.info('handing over to a standby');
          // calls keep coming to this process until the standby has the application: no gap for new callers
          await leadership.handOver();
          const took = await Promise.race([replaced.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000).unref())]);
          if (!took) log.warn('no standby took over within 5 s; stepping down anyway');
          await stepDown();
        } else {
          await calls.drain(1000);
          const idle = await calls.idle(config.drainSeconds * 1000);
          if (!idle) log.warn({ calls: calls.active }, 'drain time over: calls left in Asterisk for the next process');
          await leadership.handOver();
          await stepDown();
        }
      }
      await leadership.stop();
      await app.close().catch((err) => log.warn({ err }, 'http close failed'));
      await sms.close();
      await calls.drain(5000);
      await ari.close();
      queues.close();
      ivr.close();
      await maintenance.stop();
      await engine.close().catch(() => undefined);
      await events.close();
      subscriber.disconnect();
      redis.disconnect();
      await listed.close();
      await outbox.close(5000);
      await db.destroy().catch(() => undefined);
      log.info('stopped');
    })());

  return { app, db, redis, ari, calls, engine, agentStates, agents, queues, url, leadership, readiness, stop };
}

/** /metrics: the ARI adapter's numbers, event-loop delay, calls by state, queue waits, process memory and CPU */
function createServiceMetrics(deps: { ari: AriAdapter; calls: CallRouter; engine: AcdEngine; queues: QueuesConfigStore; redis: Redis; keys: Keys }) {
  const { ari, calls, engine, queues, redis, keys } = deps;
  const loop = startEventLoopMonitor();
  const registry = new Registry();
  registry.register(new Gauge('hotline_ari_connected', '1 while the ARI event socket is open', () => (ari.connected ? 1 : 0)));
  registry.register(new Gauge('hotline_calls_active', 'calls this process is handling', () => calls.active));
  for (const f of Object.values(ariMetrics)) registry.register(f);
  registry.register(
    new Gauge('hotline_event_loop_delay_seconds', 'event-loop delay over the last 10 s window', () => {
      const s = loop.snapshot();
      return [
        [{ quantile: '0.5' }, s.p50 / 1000],
        [{ quantile: '0.99' }, s.p99 / 1000],
        [{ quantile: '1' }, s.max / 1000],
      ];
    }),
  );
  registry.register(new Gauge('hotline_event_loop_delay_max_seconds', 'worst event-loop delay since start', () => loop.snapshot().worst / 1000));
  for (const f of processGauges()) registry.register(f);
  for (const f of outboxMetrics(installedRecordOutbox)) registry.register(f);
  // calls by state and queue waits come from Redis (live state shared by every process on that Redis)
  let byState: Array<[Record<string, string>, number]> = [];
  let waiting: Array<[Record<string, string>, number]> = [];
  registry.register(new Gauge('hotline_calls', 'live calls by state (every process sharing the Redis)', () => byState));
  registry.register(new Gauge('hotline_queue_waiting', 'calls waiting, by queue', () => waiting));
  const refresh = async () => {
    const ids = await redis.smembers(keys.liveCalls());
    const pipe = redis.pipeline();
    for (const id of ids) pipe.hget(keys.call(id), 'state');
    const counts = new Map<string, number>();
    for (const [, state] of (await pipe.exec()) ?? []) if (typeof state === 'string') counts.set(state, (counts.get(state) ?? 0) + 1);
    byState = [...counts].map(([state, n]) => [{ state }, n]);
    const inLine = await engine.waitingIds(queues.all().map((q) => q.id));
    waiting = queues.all().map((q): [Record<string, string>, number] => [{ queue: q.id }, inLine.get(q.id)?.length ?? 0]);
  };
  return {
    render: async () => {
      await refresh().catch(() => undefined); // Redis down: the last numbers stay, /metrics still answers
      return registry.render();
    },
    stop: () => loop.stop(),
  };
}
