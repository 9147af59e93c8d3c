/**
 * The live events socket (WS /api/v1/events) with reconnection: after a drop it tries again after
 * 1 s, 2 s, 4 s ... up to maxDelayMs (with some jitter, so a wall of screens does not reconnect in step).
 * The page is told when the feed is down and when it is back (after the server's `hello`), and then
 * re-reads its REST snapshot: the socket is a live feed only, it does not replay what was missed.
 */

export interface LiveMessage {
  type: string;
  at: string;
  data: any;
}

export interface LiveOptions {
  /** the socket's address (read at every attempt, so a new token is used) */
  url: () => string;
  onMessage: (msg: LiveMessage) => void;
  /** the feed is up: `again` is true after a drop */
  onUp: (again: boolean) => void;
  onDown: () => void;
  /** the server ended the session (4001: token expired or signed out): no reconnection */
  onSessionEnded?: () => void;
  minDelayMs?: number;
  maxDelayMs?: number;
}

export const CLOSE_TOKEN_ENDED = 4001;

export class LiveSocket {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private everUp = false;
  private down = false;
  private stopped = false;
  private timer: number | null = null;

  constructor(private readonly opts: LiveOptions) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.ws?.close(1000, 'page closed');
    this.ws = null;
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN && !this.down;
  }

  private connect(): void {
    const ws = new WebSocket(this.opts.url());
    this.ws = ws;
    ws.onmessage = (ev) => {
      let msg: LiveMessage;
      try {
        msg = JSON.parse(String(ev.data)) as LiveMessage;
      } catch {
        return;
      }
      if (msg.type === 'hello') {
        const again = this.everUp || this.down;
        this.everUp = true;
        this.down = false;
        this.attempt = 0;
        this.opts.onUp(again);
        return;
      }
      this.opts.onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === CLOSE_TOKEN_ENDED && this.opts.onSessionEnded) {
        this.opts.onSessionEnded();
        return;
      }
      if (!this.down) {
        this.down = true;
        this.opts.onDown();
      }
      const min = this.opts.minDelayMs ?? 1000;
      const max = this.opts.maxDelayMs ?? 15_000;
      const delay = Math.min(max, min * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
      this.attempt++;
      this.timer = window.setTimeout(() => {
        this.timer = null;
        if (!this.stopped) this.connect();
      }, delay);
    };
  }
}

/** ws(s)://this host + path?query */
export function socketUrl(path: string, query: Record<string, string>): string {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  return url.toString();
}
