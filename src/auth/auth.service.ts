import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '../db/db.js';
import type { Role } from '../db/database.js';
import { AppError, unauthorized } from '../shared/errors.js';
import { hashPassword, verifyPassword } from './passwords.js';

export interface Principal {
  userId: string;
  username: string;
  role: Role;
  agentId: string | null;
}

const tokenHash = (token: string) => createHash('sha256').update(token).digest('hex');

// a fixed hash to compare against when the user does not exist, so timing does not tell who exists
let dummyHash: Promise<string> | null = null;

export function createAuthService(db: Db, opts: { tokenTtlHours: number }) {
  return {
    /** the first admin comes from the environment; its password follows the environment on every start */
    async ensureAdmin(username: string, password: string): Promise<void> {
      const existing = await db.selectFrom('users').select(['id', 'password_hash']).where('username', '=', username).executeTakeFirst();
      if (existing && (await verifyPassword(password, existing.password_hash))) return;
      const password_hash = await hashPassword(password);
      await db
        .insertInto('users')
        .values({ username, password_hash, role: 'admin', agent_id: null })
        .onConflict((oc) => oc.column('username').doUpdateSet({ password_hash, role: 'admin', disabled: false, updated_at: new Date() }))
        .execute();
    },

    async login(username: string, password: string): Promise<{ token: string; role: Role; agentId: string | null; expiresAt: Date }> {
      const user = await db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
      if (!user || user.disabled) {
        dummyHash ??= hashPassword('not-a-password');
        await verifyPassword(password, await dummyHash);
        throw new AppError(401, 'invalid-credentials', 'wrong user name or password');
      }
      if (!(await verifyPassword(password, user.password_hash))) throw new AppError(401, 'invalid-credentials', 'wrong user name or password');
      const token = randomBytes(32).toString('base64url');
      const expiresAt = new Date(Date.now() + opts.tokenTtlHours * 3600 * 1000);
      await db.insertInto('auth_sessions').values({ token_hash: tokenHash(token), user_id: user.id, expires_at: expiresAt }).execute();
      await db.deleteFrom('auth_sessions').where('expires_at', '<', new Date()).execute();
      return { token, role: user.role, agentId: user.agent_id, expiresAt };
    },

    async authenticate(token: string): Promise<Principal> {
      const row = await db
        .selectFrom('auth_sessions')
        .innerJoin('users', 'users.id', 'auth_sessions.user_id')
        .select(['users.id as userId', 'users.username', 'users.role', 'users.agent_id as agentId', 'users.disabled', 'auth_sessions.expires_at'])
        .where('auth_sessions.token_hash', '=', tokenHash(token))
        .executeTakeFirst();
      if (!row || row.disabled) throw unauthorized('the token is not valid; sign in again');
      if (row.expires_at.getTime() <= Date.now()) throw new AppError(401, 'token-expired', 'the token has expired; sign in again');
      return { userId: row.userId, username: row.username, role: row.role, agentId: row.agentId };
    },

    /** the tokens among these that are still valid (not expired, not signed out, user not disabled): one query for many */
    async stillValid(tokens: string[]): Promise<Set<string>> {
      if (tokens.length === 0) return new Set();
      const byHash = new Map(tokens.map((t) => [tokenHash(t), t]));
      const rows = await db
        .selectFrom('auth_sessions')
        .innerJoin('users', 'users.id', 'auth_sessions.user_id')
        .select('auth_sessions.token_hash')
        .where('auth_sessions.token_hash', 'in', [...byHash.keys()])
        .where('auth_sessions.expires_at', '>', new Date())
        .where('users.disabled', '=', false)
        .execute();
      return new Set(rows.map((r) => byHash.get(r.token_hash)!));
    },

    async logout(token: string): Promise<void> {
      await db.deleteFrom('auth_sessions').where('token_hash', '=', tokenHash(token)).execute();
    },
  };
}
export type AuthService = ReturnType<typeof createAuthService>;
