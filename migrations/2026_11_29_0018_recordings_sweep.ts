import { sql, type Kysely } from 'kysely';

// Frozen: never import src/ from a migration; add a new file instead of editing this one.
// The recordings sweep (src/recordings/sweep.ts) looks for rows still 'recording' every few seconds: they are the
// calls in progress and the few left unfinished, a handful among months of recordings, so a partial index of
// them alone keeps that look cheap.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createIndex('recordings_unfinished_idx')
    .on('recordings')
    .columns(['started_at', 'id'])
    .where(sql.ref('status'), '=', 'recording')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('recordings_unfinished_idx').ifExists().execute();
}
