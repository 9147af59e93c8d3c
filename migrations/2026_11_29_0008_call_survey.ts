import type { Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
// The satisfaction score the caller keyed in the survey flow (the survey issue defines the scale per line).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('calls').addColumn('survey_score', 'smallint').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('calls').dropColumn('survey_score').execute();
}
