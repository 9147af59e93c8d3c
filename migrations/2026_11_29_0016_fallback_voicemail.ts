import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
// A message left in the dialplan's fallback (the control plane was away) is a voicemail of its own kind.
export async function up(db: Kysely<any>): Promise<void> {
  const c = await sql<{ conname: string }>`
    select conname from pg_constraint
    where conrelid = 'voicemails'::regclass and contype = 'c' and pg_get_constraintdef(oid) like '%reason%'`.execute(db);
  for (const r of c.rows) await sql`alter table voicemails drop constraint ${sql.id(r.conname)}`.execute(db);
  await sql`alter table voicemails add constraint voicemails_reason_check check (reason in ('maintenance','ivr','fallback'))`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table voicemails drop constraint voicemails_reason_check`.execute(db);
  await sql`alter table voicemails add constraint voicemails_reason_check check (reason in ('maintenance','ivr'))`.execute(db);
}
