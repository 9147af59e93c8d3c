/**
 * Agents' phones in Asterisk, through ARI push configuration (res_pjsip endpoint / aor / auth /
 * identify objects kept by Asterisk's in-memory sorcery wizard: config/asterisk/sorcery.conf).
 *
 * PostgreSQL is the truth. `sync(agentId)` reads the agent's row and makes Asterisk match it:
 * pushes the objects of an active agent, removes those of a deleted one. `provisionAll()` does that
 * for every agent; it runs whenever the ARI connection comes up (start-up, and after Asterisk
 * restarted, which empties the memory wizard). A failure is logged and leaves the agent
 * `provisioned: false` until the next connection; it never fails an API request.
 *
 * Objects of agent <no> (see README.md, "Agents' phones: ARI push configuration"):
 *   endpoint agent<no>   the dial string PJSIP/agent<no>; media settings as pjsip.conf's agents
 *   aor      <no>        desk phone: static contact=<uri>; softphone: one registered contact. Named
 *                        after the employee number because a REGISTER's To user picks the AOR.
 *   auth     agent<no>   softphone only: digest user <no> and its SIP password
 *   identify agent<no>   softphone only: From user <no> -> endpoint agent<no> (the From user is not
 *                        the endpoint's name, so the username identifier cannot find it)
 */
import type { Logger } from 'pino';
import type { Db } from '../db/db.js';
import type { AgentRow } from '../db/database.js';
import { AriGone, type AriPort, type ConnectionState } from '../ari/port.js';
import { findAgent, listActiveAgents, listDeletedAgentIds } from './agents.repo.js';

const PJSIP = 'res_pjsip';
const CONCURRENCY = 8;

export const endpointId = (employeeNo: string) => `agent${employeeNo}`;
/** the dial string stored in agents.endpoint */
export const dialString = (employeeNo: string) => `PJSIP/${endpointId(employeeNo)}`;

type ObjectType = 'endpoint' | 'aor' | 'auth' | 'identify';
interface PjsipObject {
  type: ObjectType;
  id: string;
  fields: Record<string, string>;
}

export interface PhoneObjects {
  auth: PjsipObject | null;
  aor: PjsipObject;
  endpoint: PjsipObject;
  identify: PjsipObject | null;
}

export type PhoneSource = Pick<AgentRow, 'employee_no' | 'phone_kind' | 'phone_uri' | 'sip_password'>;

/** the PJSIP objects an agent's phone needs, in the order they are created (the endpoint after what it names) */
export function phoneObjects(agent: PhoneSource): PhoneObjects {
  const no = agent.employee_no;
  const softphone = agent.phone_kind === 'softphone';
  const auth: PjsipObject | null = softphone
    ? { type: 'auth', id: endpointId(no), fields: { auth_type: 'userpass', username: no, password: agent.sip_password ?? '' } }
    : null;
  const aor: PjsipObject = {
    type: 'aor',
    id: no,
    fields: softphone ? { max_contacts: '1', remove_existing: 'yes', qualify_frequency: '0' } : { contact: agent.phone_uri ?? '', qualify_frequency: '0' },
  };
  const endpoint: PjsipObject = {
    type: 'endpoint',
    id: endpointId(no),
    // the same media settings as [media-defaults] / [agent-endpoint] in pjsip.conf
    fields: {
      context: 'agents',
      disallow: 'all',
      allow: 'alaw,ulaw',
      direct_media: 'no',
      rtp_symmetric: 'yes',
      dtmf_mode: 'rfc4733',
      send_pai: 'no',
      transport: 'transport-udp',
      aors: aor.id,
      // a desk phone is only ever called: never identify a request as it by its From user (no credentials to
      // check); identify_by=ip with no identify object matches nothing (docs/security.md)
      ...(auth ? { auth: auth.id } : { identify_by: 'ip' }),
    },
  };
  const identify: PjsipObject | null = softphone
    ? // POSIX ERE on the printed From value, e.g. <sip:1001@10.0.0.5>;tag=...
      { type: 'identify', id: endpointId(no), fields: { endpoint: endpoint.id, match_header: `From: /(^|[^A-Za-z0-9])sips?:${no}@/` } }
    : null;
  return { auth, aor, endpoint, identify };
}

export interface ProvisionSummary {
  provisioned: number;
  failed: number;
  removed: number;
}

export interface AgentProvisioning {
  /** make Asterisk match the agent's row; true when its phone is in Asterisk afterwards. Never throws. */
  sync(agentId: string): Promise<boolean>;
  /** push every active agent, remove every deleted one; concurrent calls share one run */
  provisionAll(): Promise<ProvisionSummary>;
  /** resolves when no provisionAll run is in progress */
  idle(): Promise<void>;
  /** last known: the agent's endpoint was pushed since ARI last came up */
  isProvisioned(agentId: string): boolean;
  /** feed from ari.onConnection: 'up' provisions everything, 'down' forgets what was pushed */
  connectionChanged(state: ConnectionState): void;
}

export function createAgentProvisioning(deps: { db: Db; ari: Pick<AriPort, 'config' | 'connected'>; log: Logger }): AgentProvisioning {
  const { db, ari } = deps;
  const log = deps.log.child({ module: 'agent-phones' });
  const provisioned = new Set<string>();
  // one Asterisk update at a time per agent, in call order
  const chains = new Map<string, Promise<unknown>>();

  function serial<T>(agentId: string, fn: () => Promise<T>): Promise<T> {
    const prev = chains.get(agentId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    chains.set(agentId, tail);
    void tail.then(() => {
      if (chains.get(agentId) === tail) chains.delete(agentId);
    });
    return next;
  }

  const put = (o: PjsipObject, fields = o.fields) => ari.config.put(PJSIP, o.type, o.id, fields);
  async function remove(type: ObjectType, id: string): Promise<boolean> {
    try {
      await ari.config.delete(PJSIP, type, id);
      return true;
    } catch (err) {
      if (err instanceof AriGone) return false;
      throw err;
    }
  }

  async function push(agent: PhoneSource): Promise<void> {
    const o = phoneObjects(agent);
    if (o.auth) await put(o.auth);

    // An update cannot take a contact away (Asterisk adds the new one next to the old): when the
    // contact must change, the AOR is created afresh. Otherwise it is updated without touching it,
    // which keeps a softphone's registration.
    const aor = await ari.config.get(PJSIP, 'aor', o.aor.id);
    const wantContact = o.aor.fields.contact ?? '';
    if (aor && (aor.contact ?? '') !== wantContact) await remove('aor', o.aor.id);
    if (aor && (aor.contact ?? '') === wantContact) {
      const { contact: _unchanged, ...rest } = o.aor.fields;
      await put(o.aor, rest);
    } else {
      await put(o.aor);
    }

    // likewise an update cannot clear the endpoint's auth (softphone -> desk phone): recreate it
    const endpoint = await ari.config.get(PJSIP, 'endpoint', o.endpoint.id);
    if (endpoint && (endpoint.auth ?? '') !== (o.endpoint.fields.auth ?? '')) await remove('endpoint', o.endpoint.id);
    await put(o.endpoint);

    if (o.identify) await put(o.identify);
    else await remove('identify', endpointId(agent.employee_no));
    if (!o.auth) await remove('auth', endpointId(agent.employee_no));
  }

  /** thorough: delete every object; otherwise only when the endpoint is there (the sweep of deleted agents) */
  async function unprovision(employeeNo: string, thorough: boolean): Promise<boolean> {
    if (!thorough && !(await ari.config.get(PJSIP, 'endpoint', endpointId(employeeNo)))) return false;
    const removed = await remove('endpoint', endpointId(employeeNo));
    await remove('identify', endpointId(employeeNo));
    await remove('aor', employeeNo);
    await remove('auth', endpointId(employeeNo));
    return removed;
  }

  function describe(err: unknown): { err: string; hint?: string } {
    const message = err instanceof Error ? err.message : String(err);
    if (/Cannot (create|update|delete) sorcery objects|Could not delete object/i.test(message)) {
      return {
        err: message,
        hint: 'Asterisk refused to write the object: it is defined in pjsip.conf (read-only, e.g. agent1001..1008), or sorcery.conf does not map it to the memory wizard (restart Asterisk after changing sorcery.conf)',
      };
    }
    return { err: message };
  }

  async function syncNow(agentId: string, thoroughRemoval: boolean): Promise<'provisioned' | 'removed' | 'absent' | 'failed'> {
    try {
      const agent = await findAgent(db, agentId);
      const active = agent !== undefined && agent.deleted_at === null;
      if (!ari.connected) {
        // no waiting for request timeouts while Asterisk is away: the run on reconnection pushes
        // the active agents and sweeps the deleted ones
        provisioned.delete(agentId);
        log.info({ agentId }, `ARI is down: the agent's phone is ${active ? 'pushed to' : 'removed from'} Asterisk when ARI reconnects`);
        return 'failed';
      }
      if (!active) {
        provisioned.delete(agentId);
        const removed = await unprovision(agentId, thoroughRemoval);
        if (removed) log.info({ agentId }, 'agent phone removed from Asterisk');
        return removed ? 'removed' : 'absent';
      }
      await push(agent);
      provisioned.add(agentId);
      log.debug({ agentId, kind: agent.phone_kind }, 'agent phone provisioned');
      return 'provisioned';
    } catch (err) {
      provisioned.delete(agentId);
      log.warn({ agentId, ...describe(err) }, 'agent phone not synced with Asterisk; retried when ARI next connects');
      return 'failed';
    }
  }

  let running: Promise<ProvisionSummary> | null = null;
  let again = false;

  async function runOnce(): Promise<ProvisionSummary> {
    const started = Date.now();
    const summary: ProvisionSummary = { provisioned: 0, failed: 0, removed: 0 };
    let ids: string[];
    try {
      const [active, deleted] = await Promise.all([listActiveAgents(db), listDeletedAgentIds(db)]);
      ids = [...active.map((a) => a.employee_no), ...deleted];
    } catch (err) {
      log.error({ err: (err as Error).message }, 'cannot read the agents to provision; retried when ARI next connects');
      return summary;
    }
    let next = 0;
    const worker = async () => {
      while (next < ids.length) {
        const id = ids[next++]!;
        const r = await serial(id, () => syncNow(id, false));
        if (r === 'provisioned') summary.provisioned++;
        else if (r === 'failed') summary.failed++;
        else if (r === 'removed') summary.removed++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, ids.length) }, worker));
    const level = summary.failed ? 'warn' : 'info';
    log[level]({ ...summary, ms: Date.now() - started }, 'agents\' phones pushed to Asterisk');
    return summary;
  }

  function provisionAll(): Promise<ProvisionSummary> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      let summary: ProvisionSummary;
      do {
        again = false;
        summary = await runOnce();
      } while (again);
      return summary;
    })().finally(() => {
      running = null;
    });
    return running;
  }

  return {
    sync: async (agentId) => (await serial(agentId, () => syncNow(agentId, true))) === 'provisioned',
    provisionAll,
    idle: async () => {
      if (running) await running;
    },
    isProvisioned: (agentId) => provisioned.has(agentId),
    connectionChanged(state) {
      if (state === 'down') {
        // the memory wizard may be gone with Asterisk: nothing counts as provisioned until pushed again
        provisioned.clear();
        return;
      }
      void provisionAll();
    },
  };
}
