import type { Db } from '../db/db.js';

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
