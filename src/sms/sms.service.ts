/**
 * SMS to citizens and from them. PostgreSQL is the truth: a message is written `queued` before it is handed to
 * the gateway, then becomes `sent` (with the SMSC's id) or `failed` (with the error), and the SMSC's receipt
 * makes it `delivered`, `failed`, `rejected` or `expired`. Messages citizens send are stored as `received`.
 * Sends go out a few at a time (one queue for the whole process, so two bulk requests share the limit).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Db } from '../db/db.js';
import { badRequest } from '../shared/errors.js';
import { normalizePhone } from '../shared/phone.js';
import { retryWrite } from '../shared/retry.js';
import type { DeliveryReceipt, SmsGateway } from './gateway.js';
import { SMS_MAX_CHARS, type SmsTemplates } from './sms-templates.js';
import { applyReceipt, createOutgoing, failAbandoned, isAgentsCorrespondent, listSms, markFailed, markSent, smsHistoryOf, storeInbound, type SmsFilter } from './sms.repo.js';

export interface SendRequest {
  to: string[];
  template?: string;
  params?: Record<string, string | number>;
  text?: string;
  callId?: string;
}

export interface SendResult {
  accepted: Array<{ number: string; id: string }>;
  rejected: Array<{ number: string; reason: 'invalid-number' | 'duplicate' }>;
}

export interface SmsService {
  /** writes the accepted numbers' messages, then hands them to the gateway in the background */
  send(req: SendRequest, by: { userId: string }): Promise<SendResult>;
  list: (f: SmsFilter) => ReturnType<typeof listSms>;
  /** a caller's last messages, both ways, newest first */
  historyOf(number: string, limit: number): ReturnType<typeof smsHistoryOf>;
  /** the number (normalised) is one of the agent's own calls, or the user messaged it: an agent may list its messages */
  isCorrespondent(number: string, who: { userId: string; agentId: string | null }): Promise<boolean>;
  /** resolves when every message handed over so far has its outcome from the gateway (tests, shutdown) */
  idle(): Promise<void>;
  /** fails what a stopped process left queued, and starts the gateway (which connects in the background) */
  start(): Promise<void>;
  /** the gateway and the templates are closed with it */
  close(): Promise<void>;
}

export interface SmsDeps {
  db: Db;
  gateway: SmsGateway;
  templates: SmsTemplates;
  /** most numbers in one request (SMS_BULK_MAX) */
  bulkMax: number;
  log: Logger;
  /** messages in flight to the gateway at once */
  concurrency?: number;
  /** a receipt that names no row yet is tried again after these pauses (our own write of the id may be late) */
  receiptRetryMs?: number[];
}

/** a message queued longer than this was left by a process that stopped */
const ABANDONED_AFTER_MS = 10 * 60_000;

export function createSmsService(deps: SmsDeps): SmsService {
  const { db, gateway, templates, bulkMax } = deps;
  const log = deps.log.child({ module: 'sms' });
  const concurrency = deps.concurrency ?? 10;
  const receiptRetryMs = deps.receiptRetryMs ?? [200, 500, 1000, 2000, 5000];
  const queue: Array<{ id: string; number: string; text: string }> = [];
  let inFlight = 0;
  let idleWaiters: Array<() => void> = [];
  const retryTimers = new Set<NodeJS.Timeout>();
  let closing = false;

  function pump(): void {
    while (inFlight < concurrency && queue.length > 0) {
      const m = queue.shift()!;
      inFlight++;
      void handOver(m).finally(() => {
        inFlight--;
        pump();
        if (inFlight === 0 && queue.length === 0) for (const w of idleWaiters.splice(0)) w();
      });
    }
  }

  /** never throws: the outcome is written to the row, or logged when even that fails */
  async function handOver(m: { id: string; number: string; text: string }): Promise<void> {
    const lost = (what: string) => (err: unknown) => log.error({ err, id: m.id, number: m.number, what }, 'SMS outcome not recorded');
    try {
      const { messageId } = await gateway.send({ to: m.number, text: m.text, reference: m.id });
      await retryWrite(() => markSent(db, m.id, messageId, new Date()), lost(`sent as ${messageId}`));
    } catch (err) {
      const error = (err as Error).message;
      log.warn({ id: m.id, number: m.number, error }, 'SMS not sent');
      await retryWrite(() => markFailed(db, m.id, error), lost(`failed: ${error}`));
    }
  }

  async function receipt(r: DeliveryReceipt, attempt = 0): Promise<void> {
    if (r.status === 'unknown') return; // not final (en route, accepted): the final receipt follows
    const outcome = await applyReceipt(db, { ...r, status: r.status });
    if (outcome === 'done') return;
    const wait = receiptRetryMs[attempt];
    if (wait === undefined || closing) {
      log.warn({ messageId: r.messageId, status: r.status }, 'delivery receipt for a message we have no record of: ignored');
      return;
    }
    // acknowledged to the SMSC now; tried again in the background
    const timer = setTimeout(() => {
      retryTimers.delete(timer);
      receipt(r, attempt + 1).catch((err) => log.warn({ err, messageId: r.messageId }, 'delivery receipt not stored'));
    }, wait);
    retryTimers.add(timer);
  }

  gateway.onDeliveryReceipt((r) => receipt(r));
  gateway.onInbound(async (m) => {
    const id = await storeInbound(db, m);
    log.info({ id, from: m.from }, 'SMS received');
  });

  const idle = () => (inFlight === 0 && queue.length === 0 ? Promise.resolve() : new Promise<void>((r) => idleWaiters.push(r)));

  return {
    async send(req, by) {
      if (req.to.length > bulkMax) throw badRequest('too-many-numbers', `at most ${bulkMax} numbers in one request (SMS_BULK_MAX), got ${req.to.length}`);
      const text = compose(req, templates);
      const numbers = new Set<string>();
      const rejected: SendResult['rejected'] = [];
      for (const input of req.to) {
        const n = normalizePhone(input);
        if (n === null) rejected.push({ number: input, reason: 'invalid-number' });
        else if (numbers.has(n)) rejected.push({ number: input, reason: 'duplicate' });
        else numbers.add(n);
      }
      if (numbers.size === 0) return { accepted: [], rejected };
      const rows = await createOutgoing(db, { numbers: [...numbers], text, template: req.template ?? null, sentBy: by.userId, callId: req.callId ?? null, batchId: randomUUID() });
      queue.push(...rows);
      pump();
      return { accepted: rows.map((r) => ({ number: r.number, id: r.id })), rejected };
    },
    list: (f) => listSms(db, f),
    historyOf: (number, limit) => smsHistoryOf(db, number, limit),
    isCorrespondent: (number, who) => isAgentsCorrespondent(db, number, who),
    idle,
    async start() {
      const failed = await failAbandoned(db, ABANDONED_AFTER_MS);
      if (failed) log.warn({ failed }, 'SMS left queued by a stopped process marked failed');
      gateway.start();
    },
    async close() {
      closing = true;
      // what is queued has a few seconds to go out; then the gateway closes and anything still waiting fails
      await Promise.race([idle(), new Promise((r) => setTimeout(r, 5000).unref())]);
      for (const m of queue.splice(0)) await retryWrite(() => markFailed(db, m.id, 'not sent: the service stopped'), () => undefined);
      for (const t of retryTimers) clearTimeout(t);
      retryTimers.clear();
      await gateway.close();
      await Promise.race([idle(), new Promise((r) => setTimeout(r, 2000).unref())]);
      templates.close();
    },
  };
}

/** the text to send: a template rendered with its params, or the text as given; exactly one of them */
function compose(req: SendRequest, templates: SmsTemplates): string {
  if ((req.template === undefined) === (req.text === undefined)) throw badRequest('invalid-request', 'give either template (with params) or text, not both');
  if (req.text !== undefined) {
    if (req.params !== undefined) throw badRequest('invalid-request', 'params go with a template, not with text');
    return req.text;
  }
  const text = templates.render(req.template!, req.params ?? {});
  if (text.length > SMS_MAX_CHARS) throw badRequest('text-too-long', `template "${req.template}" with these params has ${text.length} characters, at most ${SMS_MAX_CHARS}`);
  return text;
}
