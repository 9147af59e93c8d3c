import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
// Bulk list imports: every import's report (list_imports), the validated rows of a staged import waiting for
// its one-click apply (list_import_rows, removed once applied), and the index the entries page reads by.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('list_imports')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('black','white')`))
    // staged: rows kept, list untouched; applied: written to the list; rejected: all-or-nothing with invalid lines
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('staged','applied','rejected')`))
    .addColumn('mode', 'text', (c) => c.notNull().check(sql`mode in ('all-or-nothing','best-effort')`))
    .addColumn('replace', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('format', 'text', (c) => c.notNull())
    .addColumn('encoding', 'text', (c) => c.notNull())
    .addColumn('header', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('rows', 'integer', (c) => c.notNull())
    .addColumn('added', 'integer', (c) => c.notNull())
    .addColumn('duplicates', 'integer', (c) => c.notNull())
    .addColumn('removed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('invalid_count', 'integer', (c) => c.notNull())
    // {invalid: [{line, value, reason}], duplicateLines: [...]}, capped lists
    .addColumn('report', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('applied_by', 'text')
    .addColumn('applied_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('list_imports_kind_created_idx').on('list_imports').columns(['kind', 'created_at']).execute();

  await db.schema
    .createTable('list_import_rows')
    .addColumn('import_id', 'uuid', (c) => c.notNull().references('list_imports.id').onDelete('cascade'))
    .addColumn('line', 'integer', (c) => c.notNull())
    .addColumn('number', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('treatment', 'text', (c) => c.check(sql`treatment in ('restrict','queue','priority','skip-menu')`))
    .addColumn('expires_at', 'timestamptz')
    .addPrimaryKeyConstraint('list_import_rows_pk', ['import_id', 'number'])
    .execute();

  // GET /lists/{kind}/entries: newest first, keyset (created_at, number) < (cursor), the index read backwards
  await db.schema.createIndex('list_entries_kind_created_idx').on('list_entries').columns(['kind', 'created_at', 'number']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists list_entries_kind_created_idx`.execute(db);
  await db.schema.dropTable('list_import_rows').execute();
  await db.schema.dropTable('list_imports').execute();
}
