/**
 * Agents and their sign-in accounts in PostgreSQL. Plain functions taking the database or a
 * transaction first (Kysely's example layout). An agent's account is the users row whose
 * agent_id (and username) is the employee number.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Db } from '../db/db.js';
import type { AgentRow, AgentSkill, Database, Role } from '../db/database.js';

type Q = Db | Transaction<Database> | Kysely<Database>;

/** an agent row with the role of its account */
export type AgentWithRole = AgentRow & { role: Role };

export interface NewAgentRow {
  employee_no: string;
  name: string;
  skills: AgentSkill[];
  phone_kind: 'softphone' | 'uri';
  phone_uri: string | null;
  sip_password: string | null;
  endpoint: string;
  wrap_up_seconds: number | null;
}

export type AgentChanges = Partial<Omit<NewAgentRow, 'employee_no' | 'endpoint'>>;

function selectAgents(q: Q) {
  return q
    .selectFrom('agents')
    // the agent's own account: user name and agent id are both the employee number
    .leftJoin('users', (j) => j.onRef('users.agent_id', '=', 'agents.employee_no').onRef('users.username', '=', 'agents.employee_no'))
    .selectAll('agents')
    .select('users.role');
}

function withRole(row: AgentRow & { role: Role | null }): AgentWithRole {
  // an agent row always has its account (they are created in one transaction); 'agent' is the safe reading otherwise
  return { ...row, role: row.role ?? 'agent' };
}

/** any agent with this employee number, deleted ones included */
export async function findAgent(q: Q, employeeNo: string): Promise<AgentWithRole | undefined> {
  const row = await selectAgents(q).where('agents.employee_no', '=', employeeNo).executeTakeFirst();
  return row ? withRole(row) : undefined;
}

/** the agent unless it is deleted */
export async function getActiveAgent(q: Q, employeeNo: string): Promise<AgentWithRole | undefined> {
  const row = await selectAgents(q).where('agents.employee_no', '=', employeeNo).where('agents.deleted_at', 'is', null).executeTakeFirst();
  return row ? withRole(row) : undefined;
}

/** lock the agent's row for the rest of the transaction (PATCH and DELETE go one at a time) */
export async function lockActiveAgent(trx: Transaction<Database>, employeeNo: string): Promise<boolean> {
  const row = await trx
    .selectFrom('agents')
    .select('employee_no')
    .where('employee_no', '=', employeeNo)
    .where('deleted_at', 'is', null)
    .forUpdate()
    .executeTakeFirst();
  return row !== undefined;
}

export async function listActiveAgents(q: Q, filter: { skill?: string } = {}): Promise<AgentWithRole[]> {
  let query = selectAgents(q).where('agents.deleted_at', 'is', null);
  if (filter.skill) {
    // jsonb containment: the skills array holds an element {skill: <name>}
    query = query.where(sql<boolean>`agents.skills @> ${JSON.stringify([{ skill: filter.skill }])}::jsonb`);
  }
  const rows = await query.orderBy('agents.employee_no').execute();
  return rows.map(withRole);
}

/** employee numbers of deleted agents (their phones must not be in Asterisk) */
export async function listDeletedAgentIds(q: Q): Promise<string[]> {
  const rows = await q.selectFrom('agents').select('employee_no').where('deleted_at', 'is not', null).execute();
  return rows.map((r) => r.employee_no);
}

export async function usernameTaken(q: Q, username: string): Promise<boolean> {
  const row = await q.selectFrom('users').select('id').where('username', '=', username).executeTakeFirst();
  return row !== undefined;
}

export async function insertAgent(trx: Transaction<Database>, row: NewAgentRow): Promise<void> {
  await trx
    .insertInto('agents')
    .values({ ...row, skills: JSON.stringify(row.skills) })
    .execute();
}

export async function updateAgent(trx: Transaction<Database>, employeeNo: string, changes: AgentChanges): Promise<void> {
  const { skills, ...rest } = changes;
  await trx
    .updateTable('agents')
    .set({ ...rest, ...(skills ? { skills: JSON.stringify(skills) } : {}), updated_at: new Date() })
    .where('employee_no', '=', employeeNo)
    .execute();
}

export async function markAgentDeleted(trx: Transaction<Database>, employeeNo: string): Promise<void> {
  const now = new Date();
  await trx.updateTable('agents').set({ deleted_at: now, updated_at: now }).where('employee_no', '=', employeeNo).execute();
}

export async function insertAgentUser(trx: Transaction<Database>, user: { employeeNo: string; passwordHash: string; role: Role }): Promise<void> {
  await trx
    .insertInto('users')
    .values({ username: user.employeeNo, password_hash: user.passwordHash, role: user.role, agent_id: user.employeeNo })
    .execute();
}

export async function updateAgentUser(
  trx: Transaction<Database>,
  employeeNo: string,
  changes: { passwordHash?: string; role?: Role; disabled?: boolean },
): Promise<void> {
  await trx
    .updateTable('users')
    .set({
      ...(changes.passwordHash !== undefined ? { password_hash: changes.passwordHash } : {}),
      ...(changes.role !== undefined ? { role: changes.role } : {}),
      ...(changes.disabled !== undefined ? { disabled: changes.disabled } : {}),
      updated_at: new Date(),
    })
    .where('agent_id', '=', employeeNo)
    .where('username', '=', employeeNo)
    .execute();
}

/** end every token of the agent's account (after a password change or deletion) */
export async function endAgentSessions(trx: Transaction<Database>, employeeNo: string): Promise<void> {
  await trx
    .deleteFrom('auth_sessions')
    .where('user_id', 'in', (eb) => eb.selectFrom('users').select('id').where('agent_id', '=', employeeNo).where('username', '=', employeeNo))
    .execute();
}
