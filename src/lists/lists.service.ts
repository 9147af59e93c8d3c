/**
 * Black and white list management: single entries, bulk imports (direct, or staged then applied with one
 * click, optionally replacing the whole list) and exports. Every change and every export is audited.
 */
import { Readable } from 'node:stream';
import type { AuditEntry, AuditLog } from '../audit/audit.js';
import type { Db } from '../db/db.js';
import type { ListEntryRow, ListImportLine, ListImportMode, ListImportRow } from '../db/database.js';
import { AppError, badRequest, notFound } from '../shared/errors.js';
import { normalizePhone } from '../shared/phone.js';
import {
  ImportFileError,
  looksLikeFormula,
  MAX_REPORTED_DUPLICATES,
  MAX_REPORTED_INVALID,
  parseExpiry,
  parseImport,
  protectedReason,
  validateTreatment,
  type ParsedImport,
} from './list-import.js';
import {
  addEntry,
  analyzeEntries,
  countEntries,
  dropStagedRows,
  entryPages,
  getEntry,
  getImport,
  insertImport,
  liveNumbers,
  lockList,
  removeEntry,
  stagedRows,
  stageRows,
  updateImport,
  writeRows,
  type EntryTreatment,
  type ListKind,
  type NewListRow,
} from './lists.repo.js';

export type Actor = Pick<AuditEntry, 'actor' | 'actorRole' | 'address'>;

export interface EntryDto {
  number: string;
  reason: string;
  treatment: EntryTreatment | null;
  expiresAt: string | null;
  createdAt: string;
  createdBy: string | null;
  /** past its expiresAt: the call path ignores it (listed only with includeExpired) */
  expired: boolean;
}

export function entryDto(row: ListEntryRow, now = new Date()): EntryDto {
  return {
    number: row.number,
    reason: row.reason,
    treatment: row.treatment,
    expiresAt: row.expires_at ? row.expires_at.toISOString() : null,
    createdAt: row.created_at.toISOString(),
    createdBy: row.created_by,
    expired: row.expires_at !== null && row.expires_at.getTime() <= now.getTime(),
  };
}

export interface ImportReport {
  importId: string;
  kind: ListKind;
  status: 'staged' | 'applied' | 'rejected';
  mode: ListImportMode;
  applied: boolean;
  replace: boolean;
  format: string;
  encoding: string;
  header: boolean;
  rows: number;
  added: number;
  duplicates: number;
  removed: number;
  invalidCount: number;
  invalid: ListImportLine[];
  duplicateLines: ListImportLine[];
  createdAt: string;
  createdBy: string;
  appliedAt: string | null;
  appliedBy: string | null;
}

export function reportOf(r: ListImportRow): ImportReport {
  const dup = [...r.report.repeated, ...r.report.listed].sort((a, b) => a.line - b.line).slice(0, MAX_REPORTED_DUPLICATES);
  return {
    importId: r.id,
    kind: r.kind,
    status: r.status,
    mode: r.mode,
    applied: r.status === 'applied',
    replace: r.replace,
    format: r.format,
    encoding: r.encoding,
    header: r.header,
    rows: r.rows,
    added: r.added,
    duplicates: r.duplicates,
    removed: r.removed,
    invalidCount: r.invalid_count,
    invalid: r.report.invalid,
    duplicateLines: dup,
    createdAt: r.created_at.toISOString(),
    createdBy: r.created_by,
    appliedAt: r.applied_at ? r.applied_at.toISOString() : null,
    appliedBy: r.applied_by,
  };
}

const SHANGHAI_DAY = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit' });
/** 2026-03-01, the day in Asia/Shanghai */
export const shanghaiDate = (d: Date): string => SHANGHAI_DAY.format(d);
/** 2026-03-01T10:03:04+08:00 */
export const shanghaiIso = (d: Date): string => `${new Date(d.getTime() + 8 * 3600_000).toISOString().slice(0, 19)}+08:00`;

/** a cell Excel would not run as a formula: a leading ' before = + - @ TAB CR; quoted when it holds , " or a line end */
export function csvCell(v: string | null): string {
  let s = v ?? '';
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const EXPORT_HEADER = 'number,reason,treatment,expiresAt,createdAt,createdBy';

/** imports per user per minute, in this process */
export class ImportLimiter {
  private readonly seen = new Map<string, number[]>();
  constructor(
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  take(user: string): void {
    const t = this.now();
    for (const [u, times] of this.seen) if (times[times.length - 1]! <= t - 60_000) this.seen.delete(u);
    const times = (this.seen.get(user) ?? []).filter((x) => x > t - 60_000);
    if (times.length >= this.perMinute) {
      const wait = Math.ceil((times[0]! + 60_000 - t) / 1000);
      throw new AppError(429, 'too-many-imports', `at most ${this.perMinute} imports a minute per user; try again in ${wait} s`);
    }
    times.push(t);
    this.seen.set(user, times);
  }
}

export interface ImportOptions {
  mode: ListImportMode;
  stage: boolean;
  replace: boolean;
  /** for rows without one; default `import <date>` */
  reason?: string;
}

export interface ListsDeps {
  db: Db;
  audit: Pick<AuditLog, 'record'>;
  importsPerMinute?: number;
  now?: () => Date;
}

const listName = (kind: ListKind) => `${kind} list`;
/** rows written at once from which the planner's statistics are refreshed */
const ANALYZE_AFTER = 5000;

export function createListsService(deps: ListsDeps) {
  const { db, audit } = deps;
  const now = deps.now ?? (() => new Date());
  const limiter = new ImportLimiter(deps.importsPerMinute ?? 10, () => now().getTime());

  async function refreshStats(row: ListImportRow): Promise<void> {
    if (row.added + row.removed < ANALYZE_AFTER) return;
    // only an optimisation: a failure (say, a role that may not ANALYZE) leaves it to autovacuum
    await analyzeEntries(db).catch(() => undefined);
  }

  function requireNumber(given: string): string {
    const number = normalizePhone(given);
    if (number === null) throw badRequest('invalid-number', `"${given.slice(0, 64)}" is not a phone number (digits, optionally + and a country code)`);
    return number;
  }

  /** the duplicates of a validated file against the list as it is now */
  function splitListed(rows: NewListRow[], live: Set<string>, kind: ListKind): ListImportLine[] {
    return rows.filter((r) => live.has(r.number)).map((r) => ({ line: r.line, value: r.number, reason: `${r.number} is already on the ${listName(kind)}` }));
  }

  function reportJson(p: Pick<ParsedImport, 'invalid' | 'repeated'>, listed: ListImportLine[]) {
    return JSON.stringify({
      invalid: p.invalid.slice(0, MAX_REPORTED_INVALID),
      repeated: p.repeated.slice(0, MAX_REPORTED_DUPLICATES),
      repeatedCount: p.repeated.length,
      listed: listed.slice(0, MAX_REPORTED_DUPLICATES),
    });
  }

  return {
    async add(kind: ListKind, body: { number: string; reason: string; expiresAt?: string; treatment?: string }, who: Actor): Promise<EntryDto> {
      const number = requireNumber(body.number);
      if (kind === 'black') {
        const p = protectedReason(number);
        if (p) throw badRequest('protected-number', p);
      }
      const reason = body.reason.trim();
      if (reason === '') throw badRequest('invalid-reason', 'reason is empty');
      if (looksLikeFormula(reason)) throw badRequest('invalid-reason', 'reason must not start like a spreadsheet formula (=, @, or + / - before text)');
      const tr = validateTreatment(kind, body.treatment ?? '');
      if ('error' in tr) throw badRequest('invalid-treatment', tr.error);
      let expiresAt: Date | null = null;
      if (body.expiresAt !== undefined) {
        expiresAt = parseExpiry(body.expiresAt);
        if (!expiresAt) throw badRequest('invalid-expiry', `expiresAt "${body.expiresAt}" is not a date-time (2027-01-31T18:00:00+08:00, or a date: until its end)`);
        if (expiresAt.getTime() <= now().getTime()) throw badRequest('invalid-expiry', 'expiresAt must be in the future');
      }
      const row = await addEntry(db, kind, { number, reason, treatment: tr.treatment, expiresAt }, who.actor);
      if (!row) {
        const existing = await getEntry(db, kind, number);
        throw new AppError(409, 'duplicate', `${number} is already on the ${listName(kind)}${existing ? ` (since ${existing.created_at.toISOString()}: ${existing.reason})` : ''}; remove it first to change it`);
      }
      await audit.record({ ...who, action: 'list.add', target: `${kind}:${number}`, details: { reason, treatment: tr.treatment, expiresAt: expiresAt?.toISOString() ?? null } });
      return entryDto(row);
    },

    async remove(kind: ListKind, given: string, who: Actor): Promise<void> {
      const number = requireNumber(given);
      const row = await removeEntry(db, kind, number);
      if (!row) throw notFound('not-found', `${number} is not on the ${listName(kind)}`);
      await audit.record({ ...who, action: 'list.remove', target: `${kind}:${number}`, details: { reason: row.reason, treatment: row.treatment } });
    },

    /** read, validate and (unless staged or refused) write a file; status 422 when all-or-nothing refused it */
    async importFile(kind: ListKind, body: Buffer | undefined, contentType: string, o: ImportOptions, who: Actor): Promise<{ status: 200 | 422; report: ImportReport }> {
      limiter.take(who.actor);
      if (!body || body.length === 0) throw badRequest('empty-file', 'the request has no file in its body');
      const at = now();
      let parsed: ParsedImport;
      try {
        parsed = await parseImport(body, contentType, { kind, defaultReason: o.reason?.trim() || `import ${shanghaiDate(at)}`, now: at });
      } catch (err) {
        if (err instanceof ImportFileError) throw badRequest('invalid-file', err.message);
        throw err;
      }
      if (parsed.rows === 0) throw badRequest('empty-file', 'the file holds no numbers');
      const rejected = o.mode === 'all-or-nothing' && parsed.invalid.length > 0;
      if (o.replace && !rejected && parsed.valid.length === 0) throw badRequest('nothing-to-replace', `no valid number in the file: it would empty the ${listName(kind)}`);
      const base = {
        kind,
        mode: o.mode,
        replace: o.replace,
        format: parsed.format,
        encoding: parsed.encoding,
        header: parsed.header,
        rows: parsed.rows,
        invalid_count: parsed.invalid.length,
        created_by: who.actor,
      };

      let row: ListImportRow;
      if (rejected || o.stage) {
        // nothing is written to the list: the counts say what would happen now
        const live = await liveNumbers(db, kind, parsed.valid.map((r) => r.number));
        const listed = splitListed(parsed.valid, live, kind);
        const values = {
          ...base,
          added: parsed.valid.length - listed.length,
          duplicates: parsed.repeated.length + listed.length,
          report: reportJson(parsed, listed),
        };
        row = rejected
          ? await insertImport(db, { ...values, status: 'rejected' })
          : await db.transaction().execute(async (trx) => {
              const r = await insertImport(trx, { ...values, status: 'staged' });
              await stageRows(trx, r.id, parsed.valid);
              return r;
            });
      } else {
        row = await db.transaction().execute(async (trx) => {
          await lockList(trx, kind);
          const { added, removed } = await writeRows(trx, kind, parsed.valid, { replace: o.replace, createdBy: who.actor });
          const listed = parsed.valid.filter((r) => !added.has(r.number)).map((r) => ({ line: r.line, value: r.number, reason: `${r.number} is already on the ${listName(kind)}` }));
          return insertImport(trx, {
            ...base,
            status: 'applied',
            added: added.size,
            duplicates: parsed.repeated.length + listed.length,
            removed,
            report: reportJson(parsed, listed),
            applied_by: who.actor,
            applied_at: new Date(),
          });
        });
      }
      if (row.status === 'applied') await refreshStats(row);
      const report = reportOf(row);
      await audit.record({
        ...who,
        action: 'list.import',
        target: `${kind}:import:${row.id}`,
        details: { mode: o.mode, status: row.status, replace: o.replace, format: row.format, encoding: row.encoding, rows: row.rows, added: row.added, duplicates: row.duplicates, invalid: row.invalid_count, removed: row.removed },
      });
      return { status: rejected ? 422 : 200, report };
    },

    /** make a staged import live in one transaction; rows that became duplicates meanwhile are reported */
    async apply(kind: ListKind, id: string, replaceOverride: boolean | undefined, who: Actor): Promise<ImportReport> {
      const row = await db.transaction().execute(async (trx) => {
        const imp = await getImport(trx, kind, id, true);
        if (!imp) throw notFound('not-found', `no import ${id} of the ${listName(kind)}`);
        if (imp.status !== 'staged') {
          throw new AppError(409, 'not-staged', imp.status === 'applied' ? `import ${id} was applied already (${imp.applied_at?.toISOString()} by ${imp.applied_by})` : `import ${id} was rejected; nothing to apply`);
        }
        const replace = replaceOverride ?? imp.replace;
        const at = new Date();
        const staged = await stagedRows(trx, id);
        // an expiry that passed while the import waited: the row would be dead on arrival
        const isLapsed = (r: NewListRow) => r.expiresAt !== null && r.expiresAt.getTime() <= at.getTime();
        const lapsed = staged.filter(isLapsed);
        const rows = staged.filter((r) => !isLapsed(r));
        if (replace && rows.length === 0) throw badRequest('nothing-to-replace', `import ${id} has no valid number: it would empty the ${listName(kind)}`);
        await lockList(trx, kind);
        const { added, removed } = await writeRows(trx, kind, rows, { replace, createdBy: who.actor });
        await dropStagedRows(trx, id);
        const listed = rows.filter((r) => !added.has(r.number)).map((r) => ({ line: r.line, value: r.number, reason: `${r.number} is already on the ${listName(kind)}` }));
        const invalid = [...imp.report.invalid, ...lapsed.map((r) => ({ line: r.line, value: r.number, reason: `expiresAt ${r.expiresAt!.toISOString()} passed before the import was applied` }))];
        return updateImport(trx, id, {
          status: 'applied',
          replace,
          added: added.size,
          duplicates: imp.report.repeatedCount + listed.length,
          removed,
          invalid_count: imp.invalid_count + lapsed.length,
          report: JSON.stringify({ ...imp.report, invalid: invalid.slice(0, MAX_REPORTED_INVALID), listed: listed.slice(0, MAX_REPORTED_DUPLICATES) }),
          applied_by: who.actor,
          applied_at: at,
        });
      });
      await refreshStats(row);
      await audit.record({
        ...who,
        action: 'list.apply',
        target: `${kind}:import:${id}`,
        details: { mode: row.mode, replace: row.replace, added: row.added, duplicates: row.duplicates, removed: row.removed, invalid: row.invalid_count },
      });
      return reportOf(row);
    },

    async getImport(kind: ListKind, id: string): Promise<ImportReport> {
      const imp = await getImport(db, kind, id);
      if (!imp) throw notFound('not-found', `no import ${id} of the ${listName(kind)}`);
      return reportOf(imp);
    },

    /** the audited export: the file name and a stream that reads the list a page at a time */
    async export(kind: ListKind, format: 'csv' | 'json', includeExpired: boolean, who: Actor): Promise<{ filename: string; contentType: string; rows: number; stream: Readable }> {
      const rows = await countEntries(db, kind, includeExpired);
      await audit.record({ ...who, action: 'list.export', target: `${kind}:export`, details: { format, includeExpired, rows } });
      const at = now();
      const filename = `${kind}list-${shanghaiDate(at).replace(/-/g, '')}.${format}`;
      async function* csv(): AsyncGenerator<Buffer> {
        // the BOM makes Excel read UTF-8 (Chinese reasons)
        yield Buffer.from(`\ufeff${EXPORT_HEADER}\r\n`);
        for await (const page of entryPages(db, kind, includeExpired)) {
          yield Buffer.from(
            page
              .map((r) => [r.number, r.reason, r.treatment, r.expires_at ? shanghaiIso(r.expires_at) : null, shanghaiIso(r.created_at), r.created_by].map(csvCell).join(',') + '\r\n')
              .join(''),
          );
        }
      }
      async function* json(): AsyncGenerator<Buffer> {
        yield Buffer.from('[');
        let first = true;
        for await (const page of entryPages(db, kind, includeExpired)) {
          const nowAt = new Date();
          yield Buffer.from((first ? '' : ',') + page.map((r) => JSON.stringify(entryDto(r, nowAt))).join(','));
          first = false;
        }
        yield Buffer.from(']');
      }
      return {
        filename,
        contentType: format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8',
        rows,
        stream: Readable.from(format === 'csv' ? csv() : json()),
      };
    },
  };
}

export type ListsService = ReturnType<typeof createListsService>;
