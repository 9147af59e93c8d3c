import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('list_entries')
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('black','white')`))
    .addColumn('number', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    // black: restrict (notice, hang up) | queue (the blacklist queue); white: priority | skip-menu
    .addColumn('treatment', 'text', (c) => c.check(sql`treatment in ('restrict','queue','priority','skip-menu')`))
    .addColumn('expires_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('created_by', 'text')
    .addPrimaryKeyConstraint('list_entries_pk', ['kind', 'number'])
    .execute();
  await db.schema.createIndex('list_entries_number_idx').on('list_entries').column('number').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('list_entries').execute();
}
