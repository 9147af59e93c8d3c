/**
 * The console's recordings tab: search by time range, caller, agent and line (GET /api/v1/recordings, newest
 * first, 50 a page) and play in the <audio> player through a short-lived ticket URL
 * (POST /api/v1/recordings/{id}/audio-ticket): the player cannot send the bearer header.
 */
import { byId, h, setText } from './lib/dom.js';
import { dateTime, duration } from './lib/format.js';
import type { TEXT } from './console-text.js';

interface Recording {
  id: string;
  caller: string | null;
  line: string | null;
  agents: string[];
  startedAt: string;
  durationSeconds: number | null;
  status: string;
}

type Key = keyof (typeof TEXT)['zh'];
interface Deps {
  call: <T>(path: string, opts?: { method?: 'GET' | 'POST'; query?: Record<string, string> }) => Promise<T>;
  t: (key: Key, params?: Record<string, string | number>) => string;
  toast: (text: string, bad?: boolean) => void;
}

const search = { query: {} as Record<string, string>, cursor: null as string | null };
let deps: Deps;
const t = (key: Key, params?: Record<string, string | number>) => deps.t(key, params);
const call = <T>(path: string, opts?: Parameters<Deps['call']>[1]) => deps.call<T>(path, opts);

async function searchRecordings(more = false): Promise<void> {
  const body = byId('rec-rows');
  const query = { ...search.query, limit: '50', ...(more && search.cursor ? { cursor: search.cursor } : {}) };
  const page = await call<{ items: Recording[]; nextCursor: string | null }>('/api/v1/recordings', { query });
  search.cursor = page.nextCursor;
  byId('rec-more').hidden = !page.nextCursor;
  const trs = page.items.map((r) =>
    h(
      'tr',
      { 'data-testid': `rec-${r.id}` },
      h('td', {}, dateTime(r.startedAt)),
      h('td', {}, r.caller ?? '—'),
      h('td', {}, r.line ?? '—'),
      h('td', {}, r.agents.join(', ') || '—'),
      h('td', { className: 'num' }, duration(r.durationSeconds)),
      h('td', {}, r.status),
      h('td', {}, h('button', { type: 'button', className: 'primary', disabled: r.status !== 'saved', 'data-testid': `play-${r.id}`, onclick: () => void play(r) }, t('play'))),
    ),
  );
  if (more) body.append(...trs);
  else body.replaceChildren(...(trs.length ? trs : [h('tr', {}, h('td', { colspan: 7, className: 'muted' }, t('noRecordings')))]));
}

async function play(r: Recording): Promise<void> {
  try {
    const { url } = await call<{ url: string }>(`/api/v1/recordings/${r.id}/audio-ticket`, { method: 'POST' });
    const player = byId<HTMLAudioElement>('player');
    player.src = url;
    setText(byId('playing'), t('playing', { what: `${dateTime(r.startedAt)} ${r.caller ?? ''}` }));
    await player.play().catch(() => undefined); // autoplay may be refused: the controls are there
  } catch (err) {
    deps.toast(t('failed', { what: t('play'), msg: (err as Error).message }), true);
  }
}

function readRecordingForm(): void {
  const f = new FormData(byId<HTMLFormElement>('rec-form'));
  const q: Record<string, string> = {};
  for (const name of ['from', 'to']) {
    const v = String(f.get(name) ?? '');
    if (v) q[name] = new Date(v).toISOString();
  }
  for (const name of ['caller', 'agent', 'line']) {
    const v = String(f.get(name) ?? '').trim();
    if (v) q[name] = v;
  }
  search.query = q;
  search.cursor = null;
}


export function setupRecordings(d: Deps): void {
  deps = d;
  byId<HTMLFormElement>('rec-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    readRecordingForm();
    void searchRecordings().catch((e: Error) => deps.toast(t('failed', { what: t('search'), msg: e.message }), true));
  });
  byId('rec-more').addEventListener('click', () => void searchRecordings(true).catch((e: Error) => deps.toast(t('failed', { what: t('more'), msg: e.message }), true)));
}
