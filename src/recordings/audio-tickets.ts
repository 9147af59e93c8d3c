/**
 * Audio tickets: an <audio> element cannot send `Authorization: Bearer`, and a bearer token must not sit
 * in a media URL (it opens every route until it expires). So a signed-in reader asks
 * `POST /api/v1/recordings/{id}/audio-ticket` and gets `/api/v1/recordings/{id}/audio?ticket=<ticket>`:
 * - the ticket is 32 random bytes; Redis keeps only its SHA-256, with the recording id, the principal and
 *   the SHA-256 of the session token it was issued under, for TICKET_TTL_SECONDS;
 * - it opens that one recording's audio and nothing else, for anyone holding it, until it expires
 *   (a player seeks with several Range requests, so it is not single-use);
 * - each use checks that the session it was issued under is still valid (not signed out, not expired, user
 *   not disabled), so signing out ends its tickets too; the access is audited as the ticket's user.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Principal } from '../auth/auth.service.js';
import type { Db } from '../db/db.js';
import type { Keys } from '../redis/keys.js';
import { unauthorized } from '../shared/errors.js';

export const TICKET_TTL_SECONDS = 600;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

interface Stored {
  recordingId: string;
  principal: Principal;
  /** SHA-256 of the bearer token, as auth_sessions.token_hash keeps it */
  session: string;
}

export class AudioTickets {
  constructor(private readonly deps: { redis: Redis; keys: Pick<Keys, 'audioTicket'>; db: Db; ttlSeconds?: number }) {}

  private get ttl(): number {
    return this.deps.ttlSeconds ?? TICKET_TTL_SECONDS;
  }

  /** a new ticket for this recording, for the principal signed in with `bearerToken` */
  async issue(recordingId: string, principal: Principal, bearerToken: string): Promise<{ ticket: string; expiresAt: Date }> {
    const ticket = randomBytes(32).toString('base64url');
    const stored: Stored = { recordingId, principal, session: sha256(bearerToken) };
    await this.deps.redis.set(this.deps.keys.audioTicket(sha256(ticket)), JSON.stringify(stored), 'EX', this.ttl);
    return { ticket, expiresAt: new Date(Date.now() + this.ttl * 1000) };
  }

  /** the principal a ticket was issued to, when it is for this recording and its session still holds; 401 otherwise */
  async redeem(ticket: string, recordingId: string): Promise<Principal> {
    const raw = await this.deps.redis.get(this.deps.keys.audioTicket(sha256(ticket)));
    if (!raw) throw unauthorized('the audio ticket is unknown or has expired; ask for a new one');
    const stored = JSON.parse(raw) as Stored;
    if (stored.recordingId !== recordingId) throw unauthorized('the audio ticket is for another recording');
    const session = await this.deps.db
      .selectFrom('auth_sessions')
      .innerJoin('users', 'users.id', 'auth_sessions.user_id')
      .select(['users.role', 'users.agent_id'])
      .where('auth_sessions.token_hash', '=', stored.session)
      .where('auth_sessions.expires_at', '>', new Date())
      .where('users.disabled', '=', false)
      .executeTakeFirst();
    if (!session) throw unauthorized('the session this audio ticket was issued under has ended; sign in again');
    // the user's role and agent id as they are now
    return { ...stored.principal, role: session.role, agentId: session.agent_id };
  }
}
