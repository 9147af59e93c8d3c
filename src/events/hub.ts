/**
 * This process's WebSocket clients of the live events (`WS /api/v1/events`): every bus event goes to the sockets
 * whose principal may see it, as `{type, at, data}` (the audience stays on the server).
 *   agent              events for itself ({agentId}) and for everyone
 *   supervisor, admin  every event
 *   auditor            events for everyone and for supervisors
 * Sockets are pinged (a socket that missed a pong is dropped), their tokens re-checked on a timer (expired or
 * signed out: closed with 4001), and a socket that cannot keep up (more than maxBufferedBytes queued) is
 * dropped rather than let a slow wallboard hold the process's memory.
 */
import type { Logger } from 'pino';
import type { Principal } from '../auth/auth.service.js';
import type { Audience, EventBus, LiveEvent } from './bus.js';

/** what the hub needs of a socket (ws's WebSocket has it) */
export interface HubSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  ping(): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: 'pong' | 'close', listener: () => void): unknown;
}

export interface HubOptions {
  /** ping period; a socket that has not answered the previous ping by then is dropped (default 20 s) */
  pingMs?: number;
  /** how often the tokens of open sockets are checked (default 15 s) */
  tokenCheckMs?: number;
  /** a socket with more than this queued is dropped (default 1 MB) */
  maxBufferedBytes?: number;
}

/** close codes the desktop can act on */
export const CLOSE_TOKEN_ENDED = 4001;
export const CLOSE_TOO_SLOW = 4008;
const OPEN = 1;

export function mayReceive(p: Pick<Principal, 'role' | 'agentId'>, a: Audience): boolean {
  if ('everyone' in a) return true;
  if (p.role === 'supervisor' || p.role === 'admin') return true;
  if ('supervisors' in a) return p.role === 'auditor';
  return p.role === 'agent' && p.agentId !== null && a.agentId === p.agentId;
}

interface Client {
  principal: Principal;
  token: string;
  alive: boolean;
}

export interface EventHub {
  /** an authenticated socket: it gets the hello message, then its events */
  add(socket: HubSocket, principal: Principal, token: string): void;
  readonly size: number;
  /** stop the timers and close every socket (1001, going away) */
  close(): void;
}

export function createEventHub(deps: {
  bus: Pick<EventBus, 'subscribe'>;
  /** the subset of tokens still valid (AuthService.stillValid) */
  stillValid: (tokens: string[]) => Promise<Set<string>>;
  log: Logger;
  options?: HubOptions;
}): EventHub {
  const log = deps.log.child({ module: 'events-hub' });
  const maxBuffered = deps.options?.maxBufferedBytes ?? 1024 * 1024;
  const clients = new Map<HubSocket, Client>();

  function drop(socket: HubSocket, why: string): void {
    const c = clients.get(socket);
    clients.delete(socket);
    log.warn({ user: c?.principal.username, why }, 'event socket dropped');
    socket.terminate();
  }

  /** false when the socket was dropped for being too slow */
  function send(socket: HubSocket, text: string): boolean {
    if (socket.readyState !== OPEN) return true;
    if (socket.bufferedAmount > maxBuffered) {
      // a close frame would queue behind the backlog: cut it off (the client sees 1006 and reconnects)
      drop(socket, `too slow: ${socket.bufferedAmount} bytes queued`);
      return false;
    }
    socket.send(text);
    return true;
  }

  const unsubscribe = deps.bus.subscribe((e: LiveEvent) => {
    if (clients.size === 0) return;
    const text = JSON.stringify({ type: e.type, at: e.at, data: e.data });
    for (const [socket, c] of clients) if (mayReceive(c.principal, e.audience)) send(socket, text);
  });

  const ping = setInterval(() => {
    for (const [socket, c] of clients) {
      if (!c.alive) {
        drop(socket, 'no pong');
        continue;
      }
      c.alive = false;
      if (socket.readyState === OPEN) socket.ping();
    }
  }, deps.options?.pingMs ?? 20_000);
  ping.unref();

  let checking = false;
  const tokenCheck = setInterval(() => {
    if (checking || clients.size === 0) return;
    checking = true;
    const tokens = [...new Set([...clients.values()].map((c) => c.token))];
    deps
      .stillValid(tokens)
      .then((valid) => {
        for (const [socket, c] of clients) {
          if (valid.has(c.token)) continue;
          clients.delete(socket);
          log.info({ user: c.principal.username }, 'event socket closed: its token expired or was signed out');
          socket.close(CLOSE_TOKEN_ENDED, 'token expired or signed out; sign in again');
        }
      })
      .catch((err: Error) => log.warn({ err: err.message }, 'token check of event sockets failed; trying again later'))
      .finally(() => (checking = false));
  }, deps.options?.tokenCheckMs ?? 15_000);
  tokenCheck.unref();

  return {
    add(socket, principal, token) {
      const c: Client = { principal, token, alive: true };
      clients.set(socket, c);
      socket.on('pong', () => (c.alive = true));
      socket.on('close', () => clients.delete(socket));
      send(socket, JSON.stringify({ type: 'hello', at: new Date().toISOString(), data: { role: principal.role, agentId: principal.agentId } }));
      log.info({ user: principal.username, role: principal.role, sockets: clients.size }, 'event socket open');
    },
    get size() {
      return clients.size;
    },
    close() {
      clearInterval(ping);
      clearInterval(tokenCheck);
      unsubscribe();
      for (const socket of clients.keys()) socket.close(1001, 'server shutting down');
      clients.clear();
    },
  };
}
