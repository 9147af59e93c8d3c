/**
 * Who may read the wallboard. A video wall must not need a person to sign in every morning, so besides a
 * bearer token of a supervisor, admin or auditor (header, or `?token=` in the page's address) it accepts a
 * long-lived read-only key (`WALLBOARD_KEY`, when set) as `?key=`. The key reads the wallboard snapshot
 * (GET /api/v1/wallboard) and the events socket as an auditor would (queue.stats, agent.board), and
 * nothing else: no other route accepts it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { AuthService, Principal } from '../auth/auth.service.js';
import { forbidden, unauthorized } from '../shared/errors.js';

/** the roles whose token opens the wallboard */
export const WALLBOARD_ROLES = ['supervisor', 'admin', 'auditor'] as const;

/** the principal of a request that came with the wallboard key: reads like an auditor, owns no session */
export const WALLBOARD_PRINCIPAL: Readonly<Principal> = Object.freeze({ userId: 'wallboard-key', username: 'wallboard-key', role: 'auditor', agentId: null });

/**
 * What the events hub keeps as the "token" of a socket opened with the key: never a real token (those are
 * base64url), and always valid while this process runs with the key (changing WALLBOARD_KEY restarts it).
 */
export const WALLBOARD_KEY_TOKEN = '\u0000wallboard-key';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** constant-time comparison of a given key with the configured one; false when none is configured */
export function wallboardKeyMatches(given: string | undefined, configured: string | null | undefined): boolean {
  if (!configured || given === undefined || given === '') return false;
  return timingSafeEqual(digest(given), digest(configured));
}

/**
 * preHandler of the wallboard's routes: `?key=` (the wallboard key), else a bearer token in the
 * `Authorization` header or `?token=`, whose user is a supervisor, admin or auditor.
 */
export function wallboardGuard(auth: Pick<AuthService, 'authenticate'>, key: string | null) {
  return async (req: FastifyRequest): Promise<void> => {
    const q = (req.query ?? {}) as { key?: string; token?: string };
    if (q.key !== undefined) {
      if (!wallboardKeyMatches(q.key, key)) throw unauthorized(key ? 'the wallboard key is wrong' : 'no wallboard key is configured on this service (WALLBOARD_KEY)');
      req.principal = { ...WALLBOARD_PRINCIPAL };
      return;
    }
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const token = m?.[1] ?? q.token;
    if (!token) throw unauthorized('missing token: Authorization: Bearer <token>, ?token=<token> or ?key=<wallboard key>');
    req.principal = await auth.authenticate(token);
    if (!(WALLBOARD_ROLES as readonly string[]).includes(req.principal.role)) throw forbidden('the wallboard is for supervisors, admins and auditors');
  };
}
