/**
 * The supervisors' console (/console): sign in (the token stays in this tab's sessionStorage), the agent
 * grid live over the events socket with the supervisor API one click away (listen, barge, force ready /
 * not ready / sign-out, hang up the agent's call; the last two ask for a second click), pending breaks to
 * approve or reject, and the recordings search with a player. The player gets its audio through a
 * short-lived ticket URL (POST /api/v1/recordings/{id}/audio-ticket): an <audio> element cannot send the
 * bearer header, and the token itself never goes into a URL.
 */
import './console.css';
import { api, ApiError } from './lib/api.js';
import { byId, h, setText } from './lib/dom.js';
import { clock, duration } from './lib/format.js';
import { TEXT } from './console-text.js';
import { createI18n, STATE_TEXT } from './lib/i18n.js';
import { LiveSocket, socketUrl, type LiveMessage } from './lib/live.js';
import { setupRecordings } from './console-recordings.js';

interface Agent {
  agentId: string;
  name: string | null;
  state: string;
  reason: string | null;
  since: string;
  callId: string | null;
  answeredToday: number;
  deskExtension: string | null;
}
interface Break {
  id: string;
  agentId: string;
  reason: string;
  minutes: number;
  requestedAt: string;
}

const i18n = createI18n(TEXT);
const t = i18n.t;
type Key = Parameters<typeof t>[0];

const STORE = { token: 'hotline.console.token', user: 'hotline.console.user' };
const EXT_STORE = 'hotline.console.extension';

const session = {
  get token(): string | null {
    return sessionStorage.getItem(STORE.token);
  },
  get user(): string {
    return sessionStorage.getItem(STORE.user) ?? '';
  },
  save(token: string, user: string) {
    sessionStorage.setItem(STORE.token, token);
    sessionStorage.setItem(STORE.user, user);
  },
  clear() {
    sessionStorage.removeItem(STORE.token);
    sessionStorage.removeItem(STORE.user);
  },
};

const state = {
  agents: new Map<string, Agent>(),
  skew: 0,
  /** calls this supervisor is monitoring: callId -> mode */
  monitoring: new Map<string, string>(),
  /** destructive buttons waiting for their second click: "action:agentId" -> until (ms) */
  armed: new Map<string, number>(),
};
let live: LiveSocket | null = null;
const serverNow = () => Date.now() + state.skew;

// ---------------------------------------------------------------- small helpers

let toastTimer: number | null = null;
function toast(text: string, bad = false): void {
  const el = byId('toast');
  setText(el, text);
  el.classList.toggle('bad', bad);
  el.hidden = false;
  if (toastTimer !== null) clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => (el.hidden = true), 4000);
}

/** an API call on behalf of the signed-in supervisor; 401 ends the session here too */
async function call<T>(path: string, opts: Parameters<typeof api>[1] = {}): Promise<T> {
  try {
    return await api<T>(path, { ...opts, token: session.token });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) signedOut(t('sessionEnded'));
    throw err;
  }
}

/** run an action and say how it went */
async function act(label: string, fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    toast(t('done', { what: label }));
    return true;
  } catch (err) {
    toast(t('failed', { what: label, msg: (err as Error).message }), true);
    return false;
  }
}

function extension(): string | null {
  try {
    return localStorage.getItem(EXT_STORE);
  } catch {
    return null;
  }
}

/** the supervisor's extension: asked once, then remembered on this computer */
function askExtension(force = false): Promise<string | null> {
  const known = extension();
  if (known && !force) return Promise.resolve(known);
  const dialog = byId<HTMLDialogElement>('ext-dialog');
  const input = byId<HTMLInputElement>('ext-input');
  input.value = known ?? '';
  return new Promise((resolve) => {
    const done = (v: string | null) => {
      dialog.removeEventListener('close', onClose);
      byId('ext-cancel').removeEventListener('click', onCancel);
      resolve(v);
    };
    const onClose = () => {
      if (dialog.returnValue === 'ok' && /^[0-9]{2,16}$/.test(input.value)) {
        localStorage.setItem(EXT_STORE, input.value);
        renderHeader();
        done(input.value);
      } else done(null);
    };
    const onCancel = () => {
      dialog.close('cancel');
    };
    dialog.addEventListener('close', onClose);
    byId('ext-cancel').addEventListener('click', onCancel);
    dialog.returnValue = '';
    dialog.showModal();
    input.focus();
  });
}

// ---------------------------------------------------------------- agent grid

type Action = 'listen' | 'barge' | 'stop' | 'ready' | 'not-ready' | 'sign-out' | 'hangup';
const ACTIONS: Action[] = ['listen', 'barge', 'stop', 'ready', 'not-ready', 'sign-out', 'hangup'];
const LABEL: Record<Action, Key> = { listen: 'listen', barge: 'barge', stop: 'stop', ready: 'ready', 'not-ready': 'notReady', 'sign-out': 'signOutAgent', hangup: 'hangup' };
const CONFIRM: Partial<Record<Action, Key>> = { hangup: 'confirmHangup', 'sign-out': 'confirmSignOut' };

/** whether an action makes sense for the agent now (the API has the last word) */
function possible(a: Agent, action: Action): boolean {
  const talking = a.callId !== null && (a.state === 'on_call' || a.state === 'reserved');
  switch (action) {
    case 'listen':
    case 'barge':
      return talking && a.state === 'on_call' && !state.monitoring.has(a.callId!);
    case 'stop':
      return a.callId !== null && state.monitoring.has(a.callId);
    case 'hangup':
      return talking;
    case 'ready':
      return ['not_ready', 'on_break', 'outbound', 'wrap_up', 'logged_out'].includes(a.state);
    case 'not-ready':
      return ['ready', 'on_break', 'outbound', 'wrap_up', 'logged_out'].includes(a.state);
    case 'sign-out':
      return a.state !== 'logged_out';
  }
}

async function run(agentId: string, action: Action): Promise<void> {
  const a = state.agents.get(agentId);
  if (!a) return;
  const confirm = CONFIRM[action];
  const armKey = `${action}:${agentId}`;
  if (confirm && (state.armed.get(armKey) ?? 0) < Date.now()) {
    state.armed.set(armKey, Date.now() + 4000);
    renderRow(a);
    window.setTimeout(() => {
      const now = state.agents.get(agentId);
      if (now) renderRow(now);
    }, 4100);
    return;
  }
  state.armed.delete(armKey);
  const label = `${t(LABEL[action])} ${agentId}`;
  const setState = (to: string, reason?: string) => call(`/api/v1/agents/${encodeURIComponent(agentId)}/state`, { method: 'PUT', body: { state: to, ...(reason ? { reason } : {}) } });
  switch (action) {
    case 'listen':
    case 'barge': {
      const ext = await askExtension();
      if (!ext || !a.callId) return;
      const callId = a.callId;
      if (await act(label, () => call(`/api/v1/calls/${callId}/${action}`, { method: 'POST', body: { extension: ext } }))) state.monitoring.set(callId, action);
      break;
    }
    case 'stop': {
      const callId = a.callId!;
      await act(label, () => call(`/api/v1/calls/${callId}/monitor/stop`, { method: 'POST' }));
      state.monitoring.delete(callId);
      break;
    }
    case 'hangup':
      if (a.callId) await act(label, () => call(`/api/v1/calls/${a.callId}/hangup`, { method: 'POST' }));
      break;
    case 'ready':
      await act(label, () => setState('ready'));
      break;
    case 'not-ready':
      await act(label, () => setState('not_ready', 'supervisor'));
      break;
    case 'sign-out':
      await act(label, () => setState('logged_out'));
      break;
  }
  const now = state.agents.get(agentId);
  if (now) renderRow(now);
}

const rows = new Map<string, HTMLTableRowElement>();

function newRow(agentId: string): HTMLTableRowElement {
  const buttons = ACTIONS.map((action) => h('button', { type: 'button', className: `act act-${action}`, 'data-action': action, 'data-testid': `act-${action}-${agentId}`, onclick: () => void run(agentId, action) }));
  return h(
    'tr',
    { 'data-testid': `agent-${agentId}`, 'data-agent': agentId },
    h('td', { className: 'who' }, h('strong', {}, agentId), ' ', h('span', { className: 'name muted' })),
    h('td', {}, h('span', { className: 'chip', 'data-testid': `state-${agentId}` }), ' ', h('span', { className: 'reason muted' })),
    h('td', { className: 'num since' }),
    h('td', { className: 'call' }),
    h('td', { className: 'num today' }),
    h('td', { className: 'actions' }, ...buttons),
  );
}

function renderRow(a: Agent): void {
  let tr = rows.get(a.agentId);
  if (!tr) {
    tr = newRow(a.agentId);
    rows.set(a.agentId, tr);
  }
  setText(tr.querySelector('.name')!, a.name ?? '');
  const chip = tr.querySelector('.chip')!;
  setText(chip, STATE_TEXT[i18n.lang][a.state] ?? a.state);
  chip.className = `chip st-${a.state}`;
  tr.dataset.state = a.state;
  setText(tr.querySelector('.reason')!, a.reason && a.state !== 'ready' ? a.reason : '');
  setText(tr.querySelector('.today')!, String(a.answeredToday));
  for (const b of tr.querySelectorAll<HTMLButtonElement>('button.act')) {
    const action = b.dataset.action as Action;
    const armed = (state.armed.get(`${action}:${a.agentId}`) ?? 0) > Date.now();
    const ok = possible(a, action);
    b.disabled = !ok;
    b.hidden = action === 'stop' ? !ok : false;
    b.classList.toggle('armed', armed);
    setText(b, t(armed ? CONFIRM[action]! : LABEL[action]));
  }
  tickRow(a, tr);
}

function tickRow(a: Agent, tr: HTMLTableRowElement): void {
  const secs = (serverNow() - Date.parse(a.since)) / 1000;
  setText(tr.querySelector('.since')!, duration(secs));
  const talking = a.callId !== null && (a.state === 'on_call' || a.state === 'reserved');
  const mon = a.callId ? state.monitoring.get(a.callId) : undefined;
  setText(tr.querySelector('.call')!, talking ? `${a.callId!.slice(0, 8)} · ${duration(secs)}${mon ? ` · ${t(LABEL[mon as Action])}` : ''}` : '—');
}

function renderAgents(): void {
  const body = byId('agent-rows');
  const sorted = [...state.agents.values()].sort((x, y) => x.agentId.localeCompare(y.agentId));
  for (const a of sorted) renderRow(a);
  for (const id of [...rows.keys()]) if (!state.agents.has(id)) rows.delete(id);
  const want = sorted.map((a) => rows.get(a.agentId)!);
  if (want.length !== body.children.length || want.some((tr, i) => body.children[i] !== tr)) body.replaceChildren(...want);
  const signedIn = sorted.filter((a) => a.state !== 'logged_out').length;
  setText(byId('agent-count'), t('agentCount', { n: signedIn, t: sorted.length }));
}

async function loadFloor(): Promise<void> {
  const started = Date.now();
  const snap = await call<{ at: string; agents: Agent[] }>('/api/v1/live');
  state.skew = Date.parse(snap.at) - (started + Date.now()) / 2;
  state.agents = new Map(snap.agents.map((a) => [a.agentId, a]));
  renderAgents();
}

// ---------------------------------------------------------------- breaks

async function loadBreaks(): Promise<void> {
  const { items } = await call<{ items: Break[] }>('/api/v1/breaks', { query: { status: 'pending' } });
  const list = byId('breaks');
  if (items.length === 0) {
    list.replaceChildren(h('li', { className: 'muted' }, t('noBreaks')));
    return;
  }
  list.replaceChildren(
    ...items.map((b) =>
      h(
        'li',
        { 'data-testid': `break-${b.id}` },
        h('span', {}, t('breakLine', { agent: b.agentId, reason: b.reason, minutes: b.minutes, at: clock(new Date(b.requestedAt)) })),
        h('button', { type: 'button', className: 'primary', 'data-testid': `approve-${b.id}`, onclick: () => void decide(b, 'approve') }, t('approve')),
        h('button', { type: 'button', 'data-testid': `reject-${b.id}`, onclick: () => void decide(b, 'reject') }, t('reject')),
      ),
    ),
  );
}

async function decide(b: Break, decision: 'approve' | 'reject'): Promise<void> {
  await act(`${t(decision)} ${b.agentId}`, () => call(`/api/v1/breaks/${b.id}/${decision}`, { method: 'POST' }));
  await loadBreaks().catch(() => undefined);
}

// ---------------------------------------------------------------- live

function onMessage(msg: LiveMessage): void {
  switch (msg.type) {
    case 'agent.board':
      state.agents = new Map((msg.data.agents as Agent[]).map((a) => [a.agentId, a]));
      renderAgents();
      break;
    case 'agent.state': {
      const d = msg.data as { agentId: string; state: string; reason: string | null; since: string };
      const a = state.agents.get(d.agentId);
      if (!a) return;
      const keepsCall = d.state === 'on_call' || d.state === 'reserved';
      const next = { ...a, state: d.state, reason: d.reason, since: d.since, callId: keepsCall ? a.callId : null };
      state.agents.set(d.agentId, next);
      renderRow(next);
      renderAgents();
      break;
    }
    case 'break.requested':
    case 'break.approved':
    case 'break.rejected':
    case 'break.ended':
      void loadBreaks().catch(() => undefined);
      break;
    case 'call.ended':
      if (msg.data.callId) state.monitoring.delete(msg.data.callId as string);
      break;
  }
}

function banner(show: boolean): void {
  const el = byId('banner');
  setText(el, t('connectionLost'));
  el.hidden = !show;
}

// ---------------------------------------------------------------- screens

function renderHeader(): void {
  const ext = extension();
  setText(byId('extension'), ext ? t('extension', { ext }) : t('noExtension'));
  setText(byId('whoami'), session.user);
  for (const b of document.querySelectorAll<HTMLElement>('button.lang')) setText(b, i18n.lang === 'zh' ? 'EN' : '中文');
}

let ticker: number | null = null;
let refresher: number | null = null;

function signedOut(message?: string): void {
  session.clear();
  live?.stop();
  live = null;
  if (ticker !== null) clearInterval(ticker);
  if (refresher !== null) clearInterval(refresher);
  ticker = refresher = null;
  banner(false);
  byId('app').hidden = true;
  byId('signin').hidden = false;
  const err = byId('signin-error');
  err.hidden = !message;
  if (message) setText(err, message);
}

async function startApp(): Promise<void> {
  byId('signin').hidden = true;
  byId('app').hidden = false;
  renderHeader();
  await Promise.all([loadFloor(), loadBreaks()]);
  ticker = window.setInterval(() => {
    for (const a of state.agents.values()) {
      const tr = rows.get(a.agentId);
      if (tr) tickRow(a, tr);
    }
  }, 1000);
  // a safety net: the board is pushed as it changes, this re-reads it if a push was missed
  refresher = window.setInterval(() => {
    void loadFloor().catch(() => undefined);
    void loadBreaks().catch(() => undefined);
  }, 30_000);
  live = new LiveSocket({
    url: () => socketUrl('/api/v1/events', { token: session.token ?? '' }),
    onMessage,
    onUp: (again) => {
      banner(false);
      if (again) {
        void loadFloor().catch(() => undefined);
        void loadBreaks().catch(() => undefined);
      }
    },
    onDown: () => banner(true),
    onSessionEnded: () => signedOut(t('sessionEnded')),
    maxDelayMs: 10_000,
  });
  live.start();
}

async function signIn(ev: SubmitEvent): Promise<void> {
  ev.preventDefault();
  const username = byId<HTMLInputElement>('username').value.trim();
  const password = byId<HTMLInputElement>('password').value;
  const err = byId('signin-error');
  err.hidden = true;
  try {
    const r = await api<{ token: string; role: string }>('/api/v1/auth/login', { method: 'POST', body: { username, password } });
    if (r.role !== 'supervisor' && r.role !== 'admin') {
      await api('/api/v1/auth/logout', { method: 'POST', token: r.token }).catch(() => undefined);
      throw new Error(t('onlySupervisors'));
    }
    session.save(r.token, username);
    byId<HTMLInputElement>('password').value = '';
  } catch (e) {
    err.hidden = false;
    setText(err, (e as Error).message);
    return;
  }
  try {
    await startApp();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) signedOut((e as Error).message);
  }
}

function main(): void {
  byId<HTMLFormElement>('signin-form').addEventListener('submit', (ev) => void signIn(ev));
  byId('signout').addEventListener('click', () => {
    const token = session.token;
    signedOut();
    if (token) void api('/api/v1/auth/logout', { method: 'POST', token }).catch(() => undefined);
  });
  byId('extension').addEventListener('click', () => void askExtension(true));
  for (const b of document.querySelectorAll<HTMLElement>('button.lang')) b.addEventListener('click', () => i18n.set(i18n.lang === 'zh' ? 'en' : 'zh'));
  i18n.onChange(() => {
    renderHeader();
    for (const a of state.agents.values()) renderRow(a);
    renderAgents();
    if (!byId('banner').hidden) banner(true);
    if (!byId('app').hidden) void loadBreaks().catch(() => undefined);
  });
  for (const tab of document.querySelectorAll<HTMLButtonElement>('button.tab')) {
    tab.addEventListener('click', () => {
      for (const other of document.querySelectorAll<HTMLButtonElement>('button.tab')) other.classList.toggle('active', other === tab);
      byId('tab-floor').hidden = tab.dataset.tab !== 'floor';
      byId('tab-recordings').hidden = tab.dataset.tab !== 'recordings';
    });
  }
  setupRecordings({ call, t, toast });
  renderHeader();
  if (session.token) {
    void startApp().catch((e: Error) => {
      // a 401 has already signed out with its message
      if (!(e instanceof ApiError && e.status === 401)) signedOut(e.message);
    });
  }
  else signedOut();
}

main();
