/**
 * The floor's video wall. Address: /wallboard?key=<WALLBOARD_KEY> (a screen nobody signs in to) or
 * /wallboard?token=<supervisor, admin or auditor token>; optional lang=en, amber=<s>, red=<s> (longest-wait
 * colours; default from the service), queues=a,b (only these queues), top=<n> (waiting callers listed).
 *
 * Data: GET /api/v1/wallboard at start, after every reconnection, every 30 s, and shortly after the queues
 * change; between reads the events socket's queue.stats (queues) and agent.board (agents) keep it live,
 * and the wait clocks tick here every second.
 */
import './wallboard.css';
import { api, ApiError } from './lib/api.js';
import { callsChart } from './lib/chart.js';
import { byId, h, setOneOf, setText } from './lib/dom.js';
import { clock, duration, percent, seconds } from './lib/format.js';
import { TEXT } from './wallboard-text.js';
import { createI18n, STATE_TEXT, STATES } from './lib/i18n.js';
import { LiveSocket, socketUrl, type LiveMessage } from './lib/live.js';

interface QueueRow {
  name: string;
  title: string;
  waiting: number;
  longestWaitSeconds: number;
  agents: Record<string, number>;
  offeredToday: number;
  answeredToday: number;
  serviceLevelToday: number | null;
}
interface Snapshot {
  at: string;
  thresholds: { amberSeconds: number; redSeconds: number };
  targets: { answerRate: number; avgWaitSeconds: number; satisfaction: number; serviceLevelSeconds: number };
  queues: QueueRow[];
  agents: { total: number; byState: Record<string, number> };
  kpi: {
    offered: number;
    answered: number;
    ivrCompleted: number;
    shortAbandoned: number;
    ratings: number;
    answerRate: number | null;
    avgWaitSeconds: number | null;
    serviceLevel: number | null;
    satisfaction: number | null;
    targetsMet: { answerRate: boolean | null; avgWaitSeconds: boolean | null; satisfaction: boolean | null };
  };
  series: { slotMinutes: number; slots: Array<{ start: string; startLocal: string; calls: number; forecast: number }> };
  waiting: Array<{ queue: string; queueTitle: string; caller: string | null; kind: 'call' | 'callback'; enqueuedAt: string; waitSeconds: number }>;
}

const i18n = createI18n(TEXT);
const t = i18n.t;

const params = new URLSearchParams(location.search);
const key = params.get('key');
const token = params.get('token');
const onlyQueues = params.get('queues')?.split(',').map((x) => x.trim()).filter(Boolean) ?? null;
const top = Math.min(50, Math.max(0, Number(params.get('top') ?? 10) || 10));
const numParam = (name: string) => {
  const v = Number(params.get(name));
  return params.has(name) && Number.isFinite(v) && v > 0 ? v : null;
};
const auth: Record<string, string> = key ? { key } : token ? { token } : {};

const state = {
  snap: null as Snapshot | null,
  /** server clock minus this clock, ms */
  skew: 0,
  queues: [] as QueueRow[],
  /** server time the queue rows were computed, ms */
  queuesAt: 0,
  byState: {} as Record<string, number>,
  agentsTotal: 0,
};
const serverNow = () => Date.now() + state.skew;

const thresholds = () => ({
  amber: numParam('amber') ?? state.snap?.thresholds.amberSeconds ?? 30,
  red: numParam('red') ?? state.snap?.thresholds.redSeconds ?? 60,
});
const waitClass = (s: number) => {
  const th = thresholds();
  return s >= th.red ? 'red' : s >= th.amber ? 'amber' : 'calm';
};
/** a queue worth a row: callers waiting, calls today, or agents signed in who serve it */
const active = (q: QueueRow) => q.waiting > 0 || q.offeredToday > 0 || Object.entries(q.agents).some(([st, n]) => st !== 'logged_out' && n > 0);
/** ?queues= picks the queues (in the config's order); otherwise the active ones, those with callers waiting first */
const shownQueues = () => {
  if (onlyQueues) return state.queues.filter((q) => onlyQueues.includes(q.name));
  const rows = state.queues.filter(active);
  return [...rows.filter((q) => q.waiting > 0), ...rows.filter((q) => q.waiting === 0)];
};
/** a queue row's longest wait now: the pushed value plus the time since it was computed */
const longestNow = (q: QueueRow) => (q.waiting > 0 ? q.longestWaitSeconds + Math.max(0, (serverNow() - state.queuesAt) / 1000) : 0);

// ---------------------------------------------------------------- rendering

function renderTiles(): void {
  if (!state.snap) return; // nothing read yet: the dashes stay
  const qs = shownQueues();
  const total = qs.reduce((n, q) => n + q.waiting, 0);
  setText(byId('total-waiting'), String(total));
  setText(byId('total-waiting-sub'), t('queuesWaiting', { n: qs.filter((q) => q.waiting > 0).length }));
  const longest = Math.max(0, ...qs.map(longestNow));
  const lw = byId('longest-wait');
  setText(lw, duration(longest));
  setOneOf(byId('tile-longest'), ['calm', 'amber', 'red'], total > 0 ? waitClass(longest) : 'calm');
  const th = thresholds();
  setText(byId('longest-wait-sub'), t('thresholdsSub', { a: th.amber, r: th.red }));

  const snap = state.snap;
  const k = snap.kpi;
  const tg = snap.targets;
  // green / red as the service judges the targets (src/kpi/definitions.ts, exact at the boundary)
  const met = k.targetsMet;
  kpiTile('answer-rate', percent(k.answerRate), met.answerRate, `${t('target', { v: `≥ ${percent(tg.answerRate, 0)}` })} · ${t('answeredOf', { a: k.answered + k.ivrCompleted, o: k.offered - k.shortAbandoned })}`);
  kpiTile('avg-wait', seconds(k.avgWaitSeconds, ''), met.avgWaitSeconds, t('target', { v: `≤ ${tg.avgWaitSeconds}${t('sec')}` }), k.avgWaitSeconds === null ? '' : t('sec'));
  kpiTile('service-level', percent(k.serviceLevel), null, t('slSub', { s: tg.serviceLevelSeconds, n: k.offered - k.shortAbandoned }));
  kpiTile('satisfaction', percent(k.satisfaction), met.satisfaction, `${t('target', { v: `≥ ${percent(tg.satisfaction, 0)}` })} · ${t('rated', { n: k.ratings })}`);
}

/** a KPI tile: green when the target is met, red when not, plain when there is nothing to judge */
function kpiTile(id: string, value: string, met: boolean | null, sub: string, unit = ''): void {
  const el = byId(`kpi-${id}`);
  if (el.textContent !== value + unit) el.replaceChildren(value, ...(unit ? [h('span', { className: 'unit' }, unit)] : []));
  setText(byId(`kpi-${id}-sub`), sub);
  setOneOf(byId(`tile-${id}`), ['good', 'bad'], met === null ? null : met ? 'good' : 'bad');
}

function renderQueues(): void {
  const body = byId('queue-rows');
  const rows = shownQueues();
  // rebuild only when the set of queues changed; otherwise update cells in place
  const ids = rows.map((q) => q.name).join('|');
  if (body.dataset.ids !== ids) {
    body.replaceChildren(
      ...rows.map((q) =>
        h(
          'tr',
          { 'data-testid': `queue-${q.name}`, 'data-queue': q.name },
          h('td', { className: 'qname' }, h('span', { className: 'qtitle' }), h('span', { className: 'qid' })),
          h('td', { className: 'num waiting', 'data-testid': `waiting-${q.name}` }),
          h('td', { className: 'num longest', 'data-testid': `longest-${q.name}` }),
          h('td', { className: 'num ready' }),
          h('td', { className: 'num oncall' }),
          h('td', { className: 'num sl' }),
        ),
      ),
    );
    body.dataset.ids = ids;
  }
  rows.forEach((q, i) => {
    const tr = body.children[i] as HTMLTableRowElement;
    const cell = (sel: string) => tr.querySelector(sel)!;
    setText(cell('.qtitle'), q.title);
    setText(cell('.qid'), q.title === q.name ? '' : q.name);
    setText(cell('.waiting'), String(q.waiting));
    const lw = longestNow(q);
    setText(cell('.longest'), q.waiting > 0 ? duration(lw) : '—');
    setOneOf(cell('.longest'), ['calm', 'amber', 'red'], q.waiting > 0 ? waitClass(lw) : null);
    setText(cell('.ready'), String(q.agents.ready ?? 0));
    setText(cell('.oncall'), String((q.agents.on_call ?? 0) + (q.agents.reserved ?? 0)));
    setText(cell('.sl'), percent(q.serviceLevelToday, 0));
    tr.classList.toggle('busy', q.waiting > 0);
    tr.classList.toggle('idle', !active(q));
  });
}

function renderAgents(): void {
  const box = byId('agent-states');
  const signedIn = state.agentsTotal - (state.byState.logged_out ?? 0);
  box.replaceChildren(
    ...STATES.filter((s) => s !== 'logged_out').map((s) =>
      h('div', { className: `agent-state st-${s}`, 'data-testid': `agents-${s}` }, h('span', { className: 'n' }, state.byState[s] ?? 0), h('span', { className: 'label' }, STATE_TEXT[i18n.lang][s] ?? s)),
    ),
  );
  setText(byId('agent-total'), t('signedIn', { n: signedIn, t: state.agentsTotal }));
}

function renderChart(): void {
  const snap = state.snap;
  if (!snap) return;
  const slots = snap.series.slots;
  const now = serverNow();
  const current = slots.findIndex((s, i) => Date.parse(s.start) <= now && (i === slots.length - 1 || Date.parse(slots[i + 1]!.start) > now));
  const box = byId('chart');
  box.replaceChildren(callsChart(slots, current, { calls: t('calls'), forecast: t('forecast') }, { width: box.clientWidth, height: box.clientHeight }));
}

function renderWaiting(): void {
  const list = byId('waiting-callers');
  const items = state.snap?.waiting ?? [];
  if (items.length === 0) {
    list.replaceChildren(h('li', { className: 'none' }, t('noneWaiting')));
    return;
  }
  list.replaceChildren(
    ...items.map((w) => {
      const secs = Math.max(0, (serverNow() - Date.parse(w.enqueuedAt)) / 1000);
      return h(
        'li',
        { className: `caller ${waitClass(secs)}`, 'data-enqueued': w.enqueuedAt },
        h('span', { className: 'who' }, w.kind === 'callback' ? t('callback') : (w.caller ?? t('unknownCaller'))),
        h('span', { className: 'where' }, w.queueTitle),
        h('span', { className: 'wait' }, duration(secs)),
      );
    }),
  );
}

/** the clocks that move every second without new data */
function tick(): void {
  setText(byId('clock'), clock(new Date(serverNow())));
  renderTiles();
  for (const tr of byId('queue-rows').children) {
    const q = state.queues.find((x) => x.name === (tr as HTMLElement).dataset.queue);
    if (!q || q.waiting === 0) continue;
    const cell = tr.querySelector('.longest')!;
    const lw = longestNow(q);
    setText(cell, duration(lw));
    setOneOf(cell, ['calm', 'amber', 'red'], waitClass(lw));
  }
  for (const li of byId('waiting-callers').children) {
    const at = (li as HTMLElement).dataset.enqueued;
    if (!at) continue;
    const secs = Math.max(0, (serverNow() - Date.parse(at)) / 1000);
    setText(li.querySelector('.wait')!, duration(secs));
    setOneOf(li, ['calm', 'amber', 'red'], waitClass(secs));
  }
}

function renderAll(): void {
  setText(byId('clock'), clock(new Date(serverNow())));
  renderTiles();
  renderQueues();
  renderAgents();
  renderChart();
  renderWaiting();
  const lang = byId('lang');
  setText(lang, i18n.lang === 'zh' ? 'EN' : '中文');
  if (state.snap) setText(byId('updated'), t('updated', { t: clock(new Date(Date.parse(state.snap.at))) }));
}

// ---------------------------------------------------------------- data

function showAuthError(text: string | null): void {
  const el = byId('auth-error');
  el.hidden = text === null;
  if (text !== null) setText(el, text);
}

let loading: Promise<void> | null = null;
let again = false;
/** read the snapshot (one read at a time; a request during a read makes one more read after it) */
function loadSnapshot(): Promise<void> {
  if (loading) {
    again = true;
    return loading;
  }
  loading = (async () => {
    try {
      const started = Date.now();
      const snap = await api<Snapshot>('/api/v1/wallboard', { query: { ...auth, top } });
      state.skew = Date.parse(snap.at) - (started + Date.now()) / 2;
      state.snap = snap;
      state.queues = snap.queues;
      state.queuesAt = Date.parse(snap.at);
      state.byState = snap.agents.byState;
      state.agentsTotal = snap.agents.total;
      showAuthError(null);
      renderAll();
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) showAuthError(t('authRefused', { msg: err.message }));
      // a network error: keep what is shown; the banner tells when the feed is down
    } finally {
      loading = null;
      if (again) {
        again = false;
        void loadSnapshot();
      }
    }
  })();
  return loading;
}

let pending: number | null = null;
/** read the snapshot soon (the list of waiting callers and today's counts follow a change in the queues) */
function loadSoon(ms = 250): void {
  if (pending !== null) return;
  pending = window.setTimeout(() => {
    pending = null;
    void loadSnapshot();
  }, ms);
}

function onMessage(msg: LiveMessage): void {
  if (msg.type === 'queue.stats') {
    const before = state.queues.map((q) => `${q.name}:${q.waiting}:${q.offeredToday}`).join();
    state.queues = msg.data.queues as QueueRow[];
    state.queuesAt = Date.parse(msg.data.at ?? msg.at);
    renderQueues();
    renderTiles();
    // (before the first snapshot, that snapshot is on its way)
    if (state.snap && state.queues.map((q) => `${q.name}:${q.waiting}:${q.offeredToday}`).join() !== before) loadSoon();
  } else if (msg.type === 'agent.board') {
    const byState: Record<string, number> = {};
    for (const a of msg.data.agents as Array<{ state: string }>) byState[a.state] = (byState[a.state] ?? 0) + 1;
    state.byState = byState;
    state.agentsTotal = (msg.data.agents as unknown[]).length;
    renderAgents();
  } else if (msg.type === 'agent.state') {
    loadSoon();
  }
}

function banner(show: boolean): void {
  const el = byId('banner');
  setText(el, t('connectionLost'));
  el.hidden = !show;
  document.body.classList.toggle('offline', show);
}

function main(): void {
  byId('lang').addEventListener('click', () => i18n.set(i18n.lang === 'zh' ? 'en' : 'zh'));
  i18n.onChange(() => {
    renderAll();
    if (!byId('banner').hidden) banner(true);
    if (!byId('auth-error').hidden && !key && !token) showAuthError(t('needAuth'));
  });
  renderAll();
  window.setInterval(tick, 1000);
  let resized: number | null = null;
  window.addEventListener('resize', () => {
    if (resized !== null) clearTimeout(resized);
    resized = window.setTimeout(renderChart, 200);
  });
  if (!key && !token) {
    showAuthError(t('needAuth'));
    return;
  }
  void loadSnapshot();
  window.setInterval(() => void loadSnapshot(), 30_000);
  const live = new LiveSocket({
    url: () => socketUrl('/api/v1/events', auth),
    onMessage,
    onUp: (reconnected) => {
      banner(false);
      if (reconnected) void loadSnapshot();
    },
    onDown: () => banner(true),
    maxDelayMs: 10_000,
  });
  live.start();
}

main();
