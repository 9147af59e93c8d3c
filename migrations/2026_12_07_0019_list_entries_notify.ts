import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
// Every change to the black/white lists tells the listening services (src/lists/listed-numbers.ts) on channel
// `list_entries_changed`, once per statement (an import of 200 000 rows is a few statements, not 200 000
// notifications), at commit. They keep the set of listed numbers in memory and ask PostgreSQL only for those.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create or replace function list_entries_changed() returns trigger language plpgsql as $$
    begin
      perform pg_notify('list_entries_changed', '');
      return null;
    end
    $$`.execute(db);
  await sql`
    create trigger list_entries_changed after insert or update or delete or truncate on list_entries
    for each statement execute function list_entries_changed()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger if exists list_entries_changed on list_entries`.execute(db);
  await sql`drop function if exists list_entries_changed()`.execute(db);
}
