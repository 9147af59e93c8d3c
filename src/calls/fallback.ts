/**
 * The dialplan's fallback when the control plane is away (dialplan/extensions.conf [stasis-fallback]):
 * - while the service runs it keeps the global HOTLINE_FALLBACK_DIAL up to date: the phones of every
 *   signed-in agent with the fallback skill, rung all at once by the fallback (Asterisk keeps the last value
 *   when every process is gone, which is exactly when it is used);
 * - when it is back, every call the fallback took becomes a call record, and a message left a voicemail.
 *   The dialplan's `h` extension writes one AstDB key per call in family hotline-fallback, the facts in the
 *   key itself: ARI can list a family's keys (DB_KEYS) but Asterisk refuses DB() reads from outside without
 *   live_dangerously. The record's id is derived from the key, so importing again (every few seconds, two
 *   processes) writes one record. Keys stay in AstDB (a line per call taken during an outage); those older
 *   than a week are skipped; `database deltree hotline-fallback` clears them.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { AcdEngine } from '../acd/engine.js';
import type { AriPort } from '../ari/port.js';
import type { Db } from '../db/db.js';
import { callerOf, normalizePhone } from '../shared/phone.js';

const FAMILY = 'hotline-fallback';
export const FALLBACK_DIAL_VAR = 'HOTLINE_FALLBACK_DIAL';
/** the ring group's dial string stays under this (Asterisk substitutes an application's data into 8 KB) */
export const FALLBACK_DIAL_MAX_CHARS = 7000;
/** the entries of calls handed to the fallback by a stopping process */
const HANDED_VAR = 'HOTLINE_FALLBACK_HANDED';

export interface FallbackEntry {
  key: string;
  caller: string;
  dialed: string;
  startedAt: Date;
  endedAt: Date | null;
  state: 'arrived' | 'ringing' | 'answered' | 'message' | 'voicemail';
  agentEndpoint: string | null;
  answeredSeconds: number | null;
}

/** one AstDB key: id~caller~dialed~start epoch~end epoch~state~agent endpoint id~answered seconds */
export function parseFallbackEntry(entry: string): FallbackEntry | null {
  const [key = '', caller = '', dialed = '', start = '', end = '', state = '', agent = '', answered = ''] = entry.split('~');
  if (!/^[0-9-]{3,60}$/.test(key)) return null;
  const startedAt = new Date(Number(start) * 1000);
  if (!/^\d+$/.test(start) || Number.isNaN(startedAt.getTime())) return null;
  if (!['arrived', 'ringing', 'answered', 'message', 'voicemail'].includes(state)) return null;
  return {
    key,
    caller,
    dialed,
    startedAt,
    endedAt: /^\d+$/.test(end) ? new Date(Number(end) * 1000) : null,
    state: state as FallbackEntry['state'],
    agentEndpoint: agent || null,
    answeredSeconds: /^\d+$/.test(answered) ? Number(answered) : null,
  };
}

/** a UUID made from the entry's key: the same entry always gives the same call id */
export function fallbackCallId(key: string): string {
  const h = createHash('sha256').update(`hotline-fallback:${key}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function startFallback(deps: {
  ari: Pick<AriPort, 'globals' | 'connected'>;
  db: Db;
  engine: Pick<AcdEngine, 'listAgents'>;
  /** agents with this skill ring in the fallback */
  skill: string;
  log: Logger;
  intervalMs?: number;
}): { stop(): void; sync(): Promise<void>; importCalls(): Promise<number> } {
  const log = deps.log.child({ module: 'fallback' });
  let last: string | null = null;
  let running = false;
  /** keys stored already (the import re-reads the family every few seconds) */
  const done = new Set<string>();

  async function sync(): Promise<void> {
    const agents = await deps.engine.listAgents();
    const phones = agents
      .filter((a) => a.state !== 'logged_out' && (a.skills[deps.skill] ?? 0) > 0 && a.endpoint)
      .map((a) => a.endpoint)
      .sort();
    // Dial()'s argument must fit Asterisk's 8 KB application data: the first phones that fit ring (a floor of
    // 200+ agents with the skill would not; ringing that many at once is no use anyway)
    let dial = '';
    let kept = 0;
    for (const p of phones) {
      if ((dial ? dial.length + 1 : 0) + p.length > FALLBACK_DIAL_MAX_CHARS) break;
      dial = dial ? `${dial}&${p}` : p;
      kept++;
    }
    if (dial === last) return;
    if (kept < phones.length) log.warn({ phones: phones.length, ringing: kept, skill: deps.skill }, 'fallback ring group: too many phones with the skill for one Dial(); only the first ring');
    await deps.ari.globals.set(FALLBACK_DIAL_VAR, dial);
    last = dial;
    log.info({ phones: dial ? dial.split('&').length : 0 }, 'fallback ring group updated');
  }

  async function importCalls(): Promise<number> {
    // calls a stopping process handed over (HOTLINE_FALLBACK=1) are in a global instead: Asterisk refuses DB()
    // writes on a channel ARI has controlled; same entries, '|' between them (dialplan/extensions.conf)
    const handed = (await deps.ari.globals.get(HANDED_VAR)).split('|');
    const entries = [...(await deps.ari.globals.get(`DB_KEYS(${FAMILY})`)).split(','), ...handed].filter((k) => k && !done.has(k));
    let imported = 0;
    const weekAgo = Date.now() - 7 * 86400_000;
    for (const entry of entries) {
      const e = parseFallbackEntry(entry);
      if (!e || !e.endedAt || e.startedAt.getTime() < weekAgo) {
        if (!e) log.warn({ entry }, 'unreadable fallback entry skipped');
        done.add(entry);
        continue;
      }
      if (await store(e)) imported++;
      done.add(entry);
    }
    if (imported) log.info({ imported }, 'calls taken by the dialplan fallback recorded');
    return imported;
  }

  /** true when the record is new */
  async function store(e: FallbackEntry): Promise<boolean> {
    const id = fallbackCallId(e.key);
    const caller = callerOf(e.caller);
    const dialed = normalizePhone(e.dialed) ?? e.dialed;
    const endedAt = e.endedAt!;
    const agentId = e.agentEndpoint && /^agent(\w+)$/.exec(e.agentEndpoint)?.[1];
    const answered = e.state === 'answered';
    const answeredAt = answered && e.answeredSeconds !== null ? new Date(endedAt.getTime() - e.answeredSeconds * 1000) : null;
    const disposition = answered ? 'answered' : e.state === 'voicemail' ? 'voicemail' : 'abandoned';
    return deps.db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('calls')
        .values({
          id,
          direction: 'inbound',
          caller,
          dialed,
          line: dialed,
          language: 'zh',
          channel_id: `fallback-${e.key}`,
          arrived_at: e.startedAt,
          answered_at: answeredAt,
          ended_at: endedAt,
          agents: agentId ? [agentId] : [],
          ivr_path: ['fallback'],
          disposition,
          end_reason: 'fallback',
          wait_seconds: ((answeredAt ?? endedAt).getTime() - e.startedAt.getTime()) / 1000,
          talk_seconds: answered ? (e.answeredSeconds ?? 0) : null,
        })
        .onConflict((oc) => oc.column('id').doNothing())
        .returning('id')
        .executeTakeFirst();
      if (!inserted) return false; // stored before (another process, or before a restart)
      await trx
        .insertInto('call_events')
        .values([
          { call_id: id, at: e.startedAt, type: 'fallback', data: JSON.stringify({ key: e.key }) },
          { call_id: id, at: endedAt, type: 'ended', data: JSON.stringify({ disposition, by: 'fallback', state: e.state }) },
        ])
        .execute();
      if (e.state === 'voicemail') {
        await trx
          .insertInto('voicemails')
          .values({ call_id: id, caller, line: dialed, language: 'zh', reason: 'fallback', recording_name: `fallback-${e.key}`, started_at: e.startedAt, status: 'saved', duration_seconds: null })
          .execute();
      }
      return true;
    });
  }

  const tick = async () => {
    if (running || !deps.ari.connected) return;
    running = true;
    try {
      await sync();
      await importCalls();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'fallback sync failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), deps.intervalMs ?? 5000);
  timer.unref();
  return {
    stop: () => clearInterval(timer),
    sync: async () => {
      last = null;
      await tick();
    },
    importCalls,
  };
}
