import { sql, type Insertable, type Updateable } from 'kysely';
import type { Db } from '../db/db.js';
import type { ListEntryRow, ListImportRow, ListImportsTable } from '../db/database.js';
import { badRequest } from '../shared/errors.js';

/** `line`: the entry names no treatment, the line's configuration (lines.yaml `blacklist`) decides */
export type BlackTreatment = 'restrict' | 'queue' | 'line';
export type WhiteTreatment = 'priority' | 'skip-menu';

export interface CallerStanding {
  black: { reason: string; treatment: BlackTreatment } | null;
  white: { reason: string; treatment: WhiteTreatment } | null;
}

/** what the lists say about a (normalised) number; expired entries count as absent */
export async function standingOf(db: Db, number: string): Promise<CallerStanding> {
  const rows = await db
    .selectFrom('list_entries')
    .select(['kind', 'reason', 'treatment'])
    .where('number', '=', number)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', new Date())]))
    .execute();
  const black = rows.find((r) => r.kind === 'black');
  const white = rows.find((r) => r.kind === 'white');
  return {
    black: black ? { reason: black.reason, treatment: black.treatment === 'queue' ? 'queue' : black.treatment === 'restrict' ? 'restrict' : 'line' } : null,
    white: white ? { reason: white.reason, treatment: white.treatment === 'skip-menu' ? 'skip-menu' : 'priority' } : null,
  };
}

// ---------------------------------------------------------------- the lists API (lists.routes.ts)

export type ListKind = 'black' | 'white';
export type EntryTreatment = 'restrict' | 'queue' | 'priority' | 'skip-menu';

/** a row as the bulk writers take it (list-import.ts validates them) */
export interface NewListRow {
  line: number;
  number: string;
  reason: string;
  treatment: EntryTreatment | null;
  expiresAt: Date | null;
}

export interface EntryFilter {
  /** exact, normalised */
  number?: string;
  /** a part of the number or the reason */
  q?: string;
  includeExpired: boolean;
  limit: number;
  cursor?: string;
}

const live = sql<boolean>`(expires_at is null or expires_at > now())`;
/** created_at with its microseconds (a JS Date would drop them and the keyset would skip rows) */
const createdKey = sql<string>`to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

function decodeEntryCursor(cursor: string): { at: string; number: string } {
  const [at, number] = Buffer.from(cursor, 'base64url').toString().split('|');
  if (!at || !number || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/.test(at) || !/^[^|]{1,64}$/.test(number)) {
    throw badRequest('invalid-cursor', 'cursor is not one this API returned');
  }
  return { at, number };
}

/** newest first (created_at, then number, both descending), keyset paged */
export async function listEntries(db: Db, kind: ListKind, f: EntryFilter): Promise<{ items: ListEntryRow[]; nextCursor: string | null }> {
  let q = db.selectFrom('list_entries').selectAll().select(createdKey.as('created_key')).where('kind', '=', kind);
  if (!f.includeExpired) q = q.where(live);
  if (f.number !== undefined) q = q.where('number', '=', f.number);
  if (f.q) {
    const like = `%${f.q.replace(/[%_\\]/g, '\\$&')}%`;
    q = q.where((eb) => eb.or([eb('number', 'like', like), eb('reason', 'ilike', like)]));
  }
  if (f.cursor) {
    const c = decodeEntryCursor(f.cursor);
    // a row comparison: the (kind, created_at, number) index, scanned backwards, starts right at the cursor
    q = q.where(sql<boolean>`(created_at, number) < (${c.at}::timestamptz, ${c.number}::text)`);
  }
  const rows = await q.orderBy('created_at', 'desc').orderBy('number', 'desc').limit(f.limit + 1).execute();
  const page = rows.slice(0, f.limit);
  const last = page[page.length - 1];
  const items = page.map(({ created_key: _k, ...row }) => row);
  return { items, nextCursor: rows.length > f.limit && last ? Buffer.from(`${last.created_key}|${last.number}`).toString('base64url') : null };
}

export async function getEntry(db: Db, kind: ListKind, number: string): Promise<ListEntryRow | undefined> {
  return db.selectFrom('list_entries').selectAll().where('kind', '=', kind).where('number', '=', number).executeTakeFirst();
}

/** add one entry; an expired entry of the number is replaced; null when a live entry is there already */
export async function addEntry(db: Db, kind: ListKind, e: Omit<NewListRow, 'line'>, createdBy: string): Promise<ListEntryRow | null> {
  const row = await db
    .insertInto('list_entries')
    .values({ kind, number: e.number, reason: e.reason, treatment: e.treatment, expires_at: e.expiresAt, created_by: createdBy })
    .onConflict((oc) =>
      oc
        .columns(['kind', 'number'])
        .doUpdateSet({ reason: e.reason, treatment: e.treatment, expires_at: e.expiresAt, created_by: createdBy, created_at: sql`now()` })
        .where('list_entries.expires_at', '<=', sql<Date>`now()`),
    )
    .returningAll()
    .executeTakeFirst();
  return row ?? null;
}

export async function removeEntry(db: Db, kind: ListKind, number: string): Promise<ListEntryRow | undefined> {
  return db.deleteFrom('list_entries').where('kind', '=', kind).where('number', '=', number).returningAll().executeTakeFirst();
}

const CHUNK = 10_000;
function* chunks<T>(xs: T[], size = CHUNK): Generator<T[]> {
  for (let i = 0; i < xs.length; i += size) yield xs.slice(i, i + size);
}

/** which of these numbers are on the list now (expired entries count as absent) */
export async function liveNumbers(db: Db, kind: ListKind, numbers: string[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const part of chunks(numbers)) {
    const r = await sql<{ number: string }>`select number from list_entries where kind = ${kind} and number = any(${part}::text[]) and ${live}`.execute(db);
    for (const row of r.rows) out.add(row.number);
  }
  return out;
}

/** one writer per list at a time: imports, applies and replaces of the same list queue behind each other */
export async function lockList(trx: Db, kind: ListKind): Promise<void> {
  await sql`select pg_advisory_xact_lock(${0x4c49}::int, hashtext(${`list_entries:${kind}`}))`.execute(trx);
}

/**
 * Write validated rows inside the caller's transaction (after lockList). Without replace, a live entry is
 * left as it is (the row is a duplicate) and an expired one is renewed. With replace, every entry not in
 * the rows goes and the rows' values win. Returns the numbers that were not live before, and how many went.
 */
export async function writeRows(trx: Db, kind: ListKind, rows: NewListRow[], o: { replace: boolean; createdBy: string }): Promise<{ added: Set<string>; removed: number }> {
  const before = await liveNumbers(trx, kind, rows.map((r) => r.number));
  let removed = 0;
  if (o.replace) {
    const res = await sql`delete from list_entries where kind = ${kind} and not (number = any(${rows.map((r) => r.number)}::text[]))`.execute(trx);
    removed = Number(res.numAffectedRows ?? 0);
  }
  const todo = o.replace ? rows : rows.filter((r) => !before.has(r.number));
  const added = new Set<string>();
  for (const part of chunks(todo)) {
    const res = await sql<{ number: string }>`
      insert into list_entries (kind, number, reason, treatment, expires_at, created_by)
      select ${kind}::text, u.number, u.reason, u.treatment, u.expires_at, ${o.createdBy}::text
      from unnest(${part.map((r) => r.number)}::text[], ${part.map((r) => r.reason)}::text[], ${part.map((r) => r.treatment)}::text[], ${part.map((r) => r.expiresAt?.toISOString() ?? null)}::timestamptz[])
        as u(number, reason, treatment, expires_at)
      on conflict (kind, number) do update set
        reason = excluded.reason, treatment = excluded.treatment, expires_at = excluded.expires_at,
        created_at = case when list_entries.expires_at <= now() then now() else list_entries.created_at end,
        created_by = case when list_entries.expires_at <= now() then excluded.created_by else list_entries.created_by end
        ${o.replace ? sql`` : sql`where list_entries.expires_at is not null and list_entries.expires_at <= now()`}
      returning number`.execute(trx);
    // a live entry written meanwhile by a single add is not returned (or, replacing, was live before): not added
    for (const r of res.rows) if (!before.has(r.number)) added.add(r.number);
  }
  return { added, removed };
}

/**
 * Fresh planner statistics after a bulk write: until autovacuum gets to it, a list that grew by 100k rows
 * in one go is planned as if it were small (a sort of the whole table for each page instead of an index scan).
 */
export async function analyzeEntries(db: Db): Promise<void> {
  await sql`analyze list_entries`.execute(db);
}

export async function countEntries(db: Db, kind: ListKind, includeExpired: boolean): Promise<number> {
  let q = db.selectFrom('list_entries').select((eb) => eb.fn.countAll<string>().as('n')).where('kind', '=', kind);
  if (!includeExpired) q = q.where(live);
  return Number((await q.executeTakeFirstOrThrow()).n);
}

/** the whole list in number order, a page at a time (an export of 100k rows never sits in memory) */
export async function* entryPages(db: Db, kind: ListKind, includeExpired: boolean, pageSize = 5000): AsyncGenerator<ListEntryRow[]> {
  let after: string | null = null;
  for (;;) {
    let q = db.selectFrom('list_entries').selectAll().where('kind', '=', kind);
    if (!includeExpired) q = q.where(live);
    if (after !== null) q = q.where('number', '>', after);
    const rows = await q.orderBy('number').limit(pageSize).execute();
    if (rows.length) yield rows;
    if (rows.length < pageSize) return;
    after = rows[rows.length - 1]!.number;
  }
}

// ---------------------------------------------------------------- imports

export type NewImport = Omit<Insertable<ListImportsTable>, 'id' | 'created_at'>;

export async function insertImport(db: Db, v: NewImport): Promise<ListImportRow> {
  return db.insertInto('list_imports').values(v).returningAll().executeTakeFirstOrThrow();
}

export async function getImport(db: Db, kind: ListKind, id: string, forUpdate = false): Promise<ListImportRow | undefined> {
  const q = db.selectFrom('list_imports').selectAll().where('id', '=', id).where('kind', '=', kind);
  return (forUpdate ? q.forUpdate() : q).executeTakeFirst();
}

export async function updateImport(db: Db, id: string, v: Updateable<ListImportsTable>): Promise<ListImportRow> {
  return db.updateTable('list_imports').set(v).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
}

export async function stageRows(trx: Db, importId: string, rows: NewListRow[]): Promise<void> {
  for (const part of chunks(rows)) {
    await sql`
      insert into list_import_rows (import_id, line, number, reason, treatment, expires_at)
      select ${importId}::uuid, u.line, u.number, u.reason, u.treatment, u.expires_at
      from unnest(${part.map((r) => r.line)}::int[], ${part.map((r) => r.number)}::text[], ${part.map((r) => r.reason)}::text[], ${part.map((r) => r.treatment)}::text[], ${part.map((r) => r.expiresAt?.toISOString() ?? null)}::timestamptz[])
        as u(line, number, reason, treatment, expires_at)`.execute(trx);
  }
}

export async function stagedRows(db: Db, importId: string): Promise<NewListRow[]> {
  const rows = await db.selectFrom('list_import_rows').selectAll().where('import_id', '=', importId).orderBy('line').execute();
  return rows.map((r) => ({ line: r.line, number: r.number, reason: r.reason, treatment: r.treatment, expiresAt: r.expires_at }));
}

export async function dropStagedRows(db: Db, importId: string): Promise<void> {
  await db.deleteFrom('list_import_rows').where('import_id', '=', importId).execute();
}
