/**
 * The supervisors' audit trail (listen, barge, force actions, recordings played or downloaded, list changes):
 * one append-only PostgreSQL table, each row chained to the one before by SHA-256, so an edited or removed
 * row is found by `verify()`. Writes are serialised by a transaction-scoped advisory lock (the chain needs
 * the previous hash); two processes may write at once.
 */
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/db.js';
import type { AuditLogRow } from '../db/database.js';

export interface AuditEntry {
  /** who: a user name, or `system` for the service's own jobs */
  actor: string;
  actorRole: string;
  /** what, dotted: `monitor.listen`, `agent.force-state`, `recording.download`, `list.import`, ... */
  action: string;
  /** on what: a call id, an agent id, `black:+8613800000000`, ... */
  target?: string | null;
  details?: Record<string, unknown>;
  /** from which address (the HTTP client's) */
  address?: string | null;
}

export interface AuditRecord extends Required<Omit<AuditEntry, 'details'>> {
  seq: number;
  at: Date;
  details: Record<string, unknown>;
  hash: string;
}

export interface AuditFilter {
  from?: Date;
  to?: Date;
  actor?: string;
  action?: string;
  target?: string;
  /** rows with a seq below this one (paging back in time) */
  before?: number;
  limit: number;
}

const GENESIS = '0'.repeat(64);
/** the advisory lock key of the chain's tail */
const CHAIN_LOCK = 0x12345a;

/** JSON with sorted keys: the same content always hashes the same */
function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .filter((k) => o[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`;
}

export function chainHash(prev: string, r: { at: Date; actor: string; actorRole: string; action: string; target: string | null; details: unknown; address: string | null }): string {
  return createHash('sha256')
    .update(prev)
    .update('\n')
    .update(canonical({ at: r.at.toISOString(), actor: r.actor, actorRole: r.actorRole, action: r.action, target: r.target, details: r.details, address: r.address }))
    .digest('hex');
}

const toRecord = (r: AuditLogRow): AuditRecord => ({
  seq: Number(r.seq),
  at: r.at,
  actor: r.actor,
  actorRole: r.actor_role,
  action: r.action,
  target: r.target,
  details: r.details,
  address: r.address,
  hash: r.hash,
});

export class AuditLog {
  constructor(private readonly db: Db) {}

  /** append one entry; resolves once it is committed */
  async record(e: AuditEntry): Promise<AuditRecord> {
    // microsecond precision is what PostgreSQL keeps; a JS Date has milliseconds, so the hash input round-trips
    const at = new Date();
    const target = e.target ?? null;
    const address = e.address ?? null;
    const details = JSON.parse(JSON.stringify(e.details ?? {})) as Record<string, unknown>;
    return this.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(${CHAIN_LOCK})`.execute(trx);
      const last = await trx.selectFrom('audit_log').select('hash').orderBy('seq', 'desc').limit(1).executeTakeFirst();
      const prev = last?.hash ?? GENESIS;
      const hash = chainHash(prev, { at, actor: e.actor, actorRole: e.actorRole, action: e.action, target, details, address });
      const row = await trx
        .insertInto('audit_log')
        .values({ at, actor: e.actor, actor_role: e.actorRole, action: e.action, target, details: JSON.stringify(details), address, prev_hash: prev, hash })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toRecord(row);
    });
  }

  /** newest first */
  async list(f: AuditFilter): Promise<{ items: AuditRecord[]; nextBefore: number | null }> {
    let q = this.db.selectFrom('audit_log').selectAll();
    if (f.from) q = q.where('at', '>=', f.from);
    if (f.to) q = q.where('at', '<', f.to);
    if (f.actor) q = q.where('actor', '=', f.actor);
    if (f.action) q = f.action.endsWith('.*') ? q.where('action', 'like', `${f.action.slice(0, -1).replace(/[%_\\]/g, '\\$&')}%`) : q.where('action', '=', f.action);
    if (f.target) q = q.where('target', '=', f.target);
    if (f.before !== undefined) q = q.where('seq', '<', String(f.before));
    const rows = await q.orderBy('seq', 'desc').limit(f.limit + 1).execute();
    const items = rows.slice(0, f.limit).map(toRecord);
    return { items, nextBefore: rows.length > f.limit ? items[items.length - 1]!.seq : null };
  }

  /** walk the chain from the start; the first row whose hash or link does not match is where it was tampered with */
  async verify(): Promise<{ ok: boolean; rows: number; brokenAt: number | null }> {
    let prev = GENESIS;
    let rows = 0;
    let after = '0';
    for (;;) {
      const batch = await this.db.selectFrom('audit_log').selectAll().where('seq', '>', after).orderBy('seq').limit(5000).execute();
      if (batch.length === 0) return { ok: true, rows, brokenAt: null };
      for (const r of batch) {
        const expect = chainHash(prev, { at: r.at, actor: r.actor, actorRole: r.actor_role, action: r.action, target: r.target, details: r.details, address: r.address });
        if (r.prev_hash !== prev || r.hash !== expect) return { ok: false, rows, brokenAt: Number(r.seq) };
        prev = r.hash;
        rows += 1;
        after = String(r.seq);
      }
    }
  }
}
