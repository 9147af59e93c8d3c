/**
 * Agents: who they are (employee number, name, skills, phone) and their sign-in account.
 * PostgreSQL first, in one transaction with the account; then the phone is synced to Asterisk
 * (agents.provisioning.ts), whose failure leaves the agent stored with `provisioned: false`.
 * Passwords are hashed (account) or kept for Asterisk (SIP) and never returned or logged.
 */
import type { Logger } from 'pino';
import { hashPassword } from '../auth/passwords.js';
import type { Db } from '../db/db.js';
import type { AgentSkill } from '../db/database.js';
import { AppError, badRequest, notFound } from '../shared/errors.js';
import type { AgentProvisioning } from './agents.provisioning.js';
import { dialString } from './agents.provisioning.js';
import {
  endAgentSessions,
  findAgent,
  getActiveAgent,
  insertAgent,
  insertAgentUser,
  listActiveAgents,
  lockActiveAgent,
  markAgentDeleted,
  updateAgent,
  updateAgentUser,
  usernameTaken,
  type AgentChanges,
  type AgentWithRole,
  type NewAgentRow,
} from './agents.repo.js';
import type { AgentDto, AgentLiveStateViewDto, CreateAgentInput, PatchAgentInput, PhoneInputDto } from './agents.schemas.js';

/** what the ACD needs of an agent */
export interface ActiveAgent {
  id: string;
  endpoint: string;
  skills: AgentSkill[];
  wrapUpSeconds: number | null;
}

export type AgentChange = { type: 'created' | 'updated' | 'deleted'; agentId: string };

export interface AgentsServiceDeps {
  db: Db;
  provisioning: Pick<AgentProvisioning, 'sync' | 'isProvisioned'>;
  log: Logger;
  /**
   * The ACD's live state of an agent. When given, every agent representation carries `state`
   * ({state, reason, since} or null when the ACD does not know the agent).
   */
  liveState?: (agentId: string) => Promise<AgentLiveStateViewDto | null> | AgentLiveStateViewDto | null;
}

export const agentExists = (employeeNo: string, deleted: boolean) =>
  new AppError(
    409,
    'agent-exists',
    deleted
      ? `employee number ${employeeNo} belonged to an agent that was deleted; employee numbers are not reused (call records point at them)`
      : `agent ${employeeNo} already exists`,
  );
export const noSuchAgent = (employeeNo: string) => notFound('no-such-agent', `no agent ${employeeNo}`);

function checkSkills(skills: AgentSkill[]): void {
  const seen = new Set<string>();
  for (const s of skills) {
    if (seen.has(s.skill)) throw badRequest('invalid-skill', `skill "${s.skill}" is listed twice`);
    seen.add(s.skill);
  }
}

function phoneColumns(phone: PhoneInputDto): Pick<NewAgentRow, 'phone_kind' | 'phone_uri' | 'sip_password'> {
  return 'uri' in phone
    ? { phone_kind: 'uri', phone_uri: phone.uri, sip_password: null }
    : { phone_kind: 'softphone', phone_uri: null, sip_password: phone.sipPassword };
}

const isUniqueViolation = (err: unknown): err is { code: string; constraint?: string } => (err as { code?: string })?.code === '23505';

export function createAgentsService(deps: AgentsServiceDeps) {
  const { db, provisioning } = deps;
  const log = deps.log.child({ module: 'agents' });
  const listeners: Array<(c: AgentChange) => void | Promise<void>> = [];

  /** listeners are awaited: when the API answers, the ACD already knows the change */
  async function announce(change: AgentChange): Promise<void> {
    for (const fn of listeners) {
      try {
        await fn(change);
      } catch (err) {
        log.error({ err, change }, 'agent change listener failed');
      }
    }
  }

  async function toDto(row: AgentWithRole, opts: { provisioned?: boolean } = {}): Promise<AgentDto> {
    const dto: AgentDto = {
      id: row.employee_no,
      employeeNo: row.employee_no,
      name: row.name,
      // the API never gives an agent's account the auditor role (an auditor has no phone)
      role: row.role === 'auditor' ? 'agent' : row.role,
      skills: row.skills.map((s) => ({ skill: s.skill, level: s.level })),
      phone: row.phone_kind === 'uri' ? { kind: 'uri', uri: row.phone_uri ?? '' } : { kind: 'softphone' },
      endpoint: row.endpoint,
      wrapUpSeconds: row.wrap_up_seconds,
      provisioned: opts.provisioned ?? provisioning.isProvisioned(row.employee_no),
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
    };
    if (deps.liveState) {
      try {
        dto.state = (await deps.liveState(row.employee_no)) ?? null;
      } catch (err) {
        log.warn({ agentId: row.employee_no, err: (err as Error).message }, 'live state not available');
        dto.state = null;
      }
    }
    return dto;
  }

  async function mustGet(employeeNo: string): Promise<AgentWithRole> {
    const row = await getActiveAgent(db, employeeNo);
    if (!row) throw noSuchAgent(employeeNo);
    return row;
  }

  return {
    async create(input: CreateAgentInput, actor?: string): Promise<AgentDto> {
      checkSkills(input.skills);
      const no = input.employeeNo;
      const existing = await findAgent(db, no);
      if (existing) throw agentExists(no, existing.deleted_at !== null);
      if (await usernameTaken(db, no)) throw new AppError(409, 'username-taken', `the user name ${no} is already taken by another account`);
      const passwordHash = await hashPassword(input.password);
      try {
        await db.transaction().execute(async (trx) => {
          await insertAgent(trx, {
            employee_no: no,
            name: input.name,
            skills: input.skills,
            ...phoneColumns(input.phone),
            endpoint: dialString(no),
            wrap_up_seconds: input.wrapUpSeconds ?? null,
          });
          await insertAgentUser(trx, { employeeNo: no, passwordHash, role: input.role });
        });
      } catch (err) {
        // a concurrent create of the same employee number or user name
        if (isUniqueViolation(err)) {
          if (err.constraint === 'users_username_key') throw new AppError(409, 'username-taken', `the user name ${no} is already taken by another account`);
          throw agentExists(no, false);
        }
        throw err;
      }
      log.info({ agentId: no, role: input.role, phone: 'uri' in input.phone ? 'uri' : 'softphone', actor }, 'agent created');
      const isProvisioned = await provisioning.sync(no);
      await announce({ type: 'created', agentId: no });
      return toDto(await mustGet(no), { provisioned: isProvisioned });
    },

    async get(employeeNo: string): Promise<AgentDto> {
      return toDto(await mustGet(employeeNo));
    },

    async list(filter: { skill?: string } = {}): Promise<AgentDto[]> {
      const rows = await listActiveAgents(db, filter);
      return Promise.all(rows.map((r) => toDto(r)));
    },

    async update(employeeNo: string, patch: PatchAgentInput, actor?: string): Promise<AgentDto> {
      if (patch.skills) checkSkills(patch.skills);
      const passwordHash = patch.password !== undefined ? await hashPassword(patch.password) : undefined;
      await db.transaction().execute(async (trx) => {
        if (!(await lockActiveAgent(trx, employeeNo))) throw noSuchAgent(employeeNo);
        const changes: AgentChanges = {
          ...(patch.name !== undefined ? { name: patch.name } : {}),
          ...(patch.skills !== undefined ? { skills: patch.skills } : {}),
          ...(patch.phone !== undefined ? phoneColumns(patch.phone) : {}),
          ...(patch.wrapUpSeconds !== undefined ? { wrap_up_seconds: patch.wrapUpSeconds } : {}),
        };
        await updateAgent(trx, employeeNo, changes);
        if (passwordHash !== undefined || patch.role !== undefined) {
          await updateAgentUser(trx, employeeNo, { ...(passwordHash !== undefined ? { passwordHash } : {}), ...(patch.role ? { role: patch.role } : {}) });
        }
        // a new password ends the sessions signed in with the old one
        if (passwordHash !== undefined) await endAgentSessions(trx, employeeNo);
      });
      // field names only: never the values (passwords)
      log.info({ agentId: employeeNo, changed: Object.keys(patch), actor }, 'agent updated');
      const isProvisioned = await provisioning.sync(employeeNo);
      await announce({ type: 'updated', agentId: employeeNo });
      return toDto(await mustGet(employeeNo), { provisioned: isProvisioned });
    },

    /** soft delete: the row stays for call records; the account is disabled and the phone leaves Asterisk */
    async remove(employeeNo: string, actor?: string): Promise<void> {
      await db.transaction().execute(async (trx) => {
        if (!(await lockActiveAgent(trx, employeeNo))) throw noSuchAgent(employeeNo);
        await markAgentDeleted(trx, employeeNo);
        await updateAgentUser(trx, employeeNo, { disabled: true });
        await endAgentSessions(trx, employeeNo);
      });
      log.info({ agentId: employeeNo, actor }, 'agent deleted');
      await provisioning.sync(employeeNo);
      await announce({ type: 'deleted', agentId: employeeNo });
    },

    /** the active agents as the ACD needs them */
    async listActive(): Promise<ActiveAgent[]> {
      const rows = await listActiveAgents(db);
      return rows.map((r) => ({ id: r.employee_no, endpoint: r.endpoint, skills: r.skills, wrapUpSeconds: r.wrap_up_seconds }));
    },

    /** told after every create, update and delete (once PostgreSQL has it and the phone sync was tried) */
    onChange(fn: (c: AgentChange) => void | Promise<void>): void {
      listeners.push(fn);
    },
  };
}

export type AgentsService = ReturnType<typeof createAgentsService>;
