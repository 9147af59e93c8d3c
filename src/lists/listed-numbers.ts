/**
 * The numbers on the black or white list, held in memory, so that a call from a number on neither list (nearly
 * every call) needs no PostgreSQL round trip to be routed. PostgreSQL stays the truth: a number in the set is
 * looked up there (its entry may have expired, and only the row has the reason and the treatment), and so is
 * every number while the set is not known for sure.
 *
 * The set is kept true by PostgreSQL itself: a statement trigger on `list_entries` (migration 0019) notifies
 * channel `list_entries_changed` at commit, whoever wrote (this API, another process, an import, psql). This
 * class LISTENs on a connection of its own before it reads the set, so no change can fall between the read and
 * the listen. On a notification the set is dropped at once (calls ask PostgreSQL) and read again shortly after,
 * once for a burst of changes. While the listening connection is down the set is dropped too, and read again
 * when it is back. A heartbeat on that connection finds a link that died silently.
 *
 * What it cannot see: a change in the few milliseconds between its commit and the notification's arrival. A call
 * routed in that window is routed as if it had come just before the change.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import type { Db } from '../db/db.js';
import { standingOf, type CallerStanding } from './lists.repo.js';

export const LIST_CHANNEL = 'list_entries_changed';
/** the listening connection's name in pg_stat_activity */
export const APPLICATION_NAME = 'hotline listed-numbers';

export interface ListedNumbersOptions {
  db: Db;
  databaseUrl: string;
  log: Logger;
  /** a burst of changes (an import's statements) is read back once, this long after the last one (default 200 ms) */
  reloadDelayMs?: number;
  /** with more numbers than this on the lists, none are held: every call asks PostgreSQL (default 2 000 000) */
  maxNumbers?: number;
  /** the first wait before the listening connection is made again; it doubles up to 30 s (default 1 s) */
  retryMs?: number;
  /** how often the listening connection is checked with a query (default 30 s) */
  heartbeatMs?: number;
}

export class ListedNumbers {
  /** null: not known for sure right now (not read yet, a change not read back yet, not listening): PostgreSQL decides */
  private numbers: Set<string> | null = null;
  /** bumped by every change: a read that overlapped one is not kept */
  private generation = 0;
  private client: pg.Client | null = null;
  private closed = false;
  private reloadTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private retryMs: number;
  private tooMany = false;
  private readonly log: Logger;
  private readonly o: Required<Omit<ListedNumbersOptions, 'db' | 'databaseUrl' | 'log'>>;

  constructor(private readonly deps: ListedNumbersOptions) {
    this.log = deps.log.child({ module: 'listed-numbers' });
    this.o = { reloadDelayMs: deps.reloadDelayMs ?? 200, maxNumbers: deps.maxNumbers ?? 2_000_000, retryMs: deps.retryMs ?? 1000, heartbeatMs: deps.heartbeatMs ?? 30_000 };
    this.retryMs = this.o.retryMs;
  }

  /** listen, then read the set; never throws (until it works, PostgreSQL answers every lookup) */
  async start(): Promise<void> {
    await this.connect();
  }

  /** what the lists say about a normalised number: from memory when it is on neither list, from PostgreSQL otherwise */
  standingOf(number: string): Promise<CallerStanding> {
    if (this.numbers !== null && !this.numbers.has(number)) return Promise.resolve({ black: null, white: null });
    return standingOf(this.deps.db, number);
  }

  /** how many numbers are held, or null while PostgreSQL answers every lookup */
  get size(): number | null {
    return this.numbers?.size ?? null;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of [this.reloadTimer, this.retryTimer]) if (t) clearTimeout(t);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.numbers = null;
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    this.retryTimer = null;
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.deps.databaseUrl, application_name: APPLICATION_NAME, keepAlive: true, connectionTimeoutMillis: 5000, query_timeout: 5000 });
    this.client = client;
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    client.on('notification', (msg) => {
      if (this.client === client && msg.channel === LIST_CHANNEL) this.changed(this.o.reloadDelayMs);
    });
    try {
      await client.connect();
      await client.query(`listen ${LIST_CHANNEL}`);
    } catch (err) {
      this.lost(client, err as Error); // ends the client and sets off the next try
      return;
    }
    if (this.client !== client) return; // lost or closed meanwhile
    this.retryMs = this.o.retryMs;
    this.heartbeat = setInterval(() => {
      client.query('select 1').catch((err: Error) => this.lost(client, err));
    }, this.o.heartbeatMs);
    this.heartbeat.unref();
    this.invalidate();
    await this.reload();
  }

  /** the listening connection failed: every lookup goes to PostgreSQL until it is back and the set read again */
  private lost(client: pg.Client, err: Error): void {
    if (this.client !== client) return;
    this.client = null;
    this.invalidate();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (this.closed) return;
    client.end().catch(() => undefined);
    this.log.warn({ err: err.message, retryMs: this.retryMs }, 'not listening for list changes; every call asks PostgreSQL until it is back');
    this.retryTimer = setTimeout(() => void this.connect(), this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, 30_000);
  }

  private invalidate(): void {
    this.numbers = null;
    this.generation++;
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
    this.reloadTimer = null;
  }

  /** a change: forget the set now, read it again after `delay` (one read for a burst) */
  private changed(delay: number): void {
    this.invalidate();
    this.reloadTimer = setTimeout(() => void this.reload(), delay);
    this.reloadTimer.unref();
  }

  private async reload(): Promise<void> {
    this.reloadTimer = null;
    const generation = this.generation;
    const client = this.client;
    if (!client || this.closed) return;
    let rows: Array<{ number: string }>;
    try {
      rows = await this.deps.db.selectFrom('list_entries').select('number').limit(this.o.maxNumbers + 1).execute();
    } catch (err) {
      if (generation !== this.generation || this.client !== client) return;
      this.log.warn({ err: (err as Error).message }, 'listed numbers not read; every call asks PostgreSQL, trying again in 5 s');
      this.reloadTimer = setTimeout(() => void this.reload(), 5000);
      this.reloadTimer.unref();
      return;
    }
    // a change, or a lost connection, while reading: this read may be stale; the next one (already set off) decides
    if (generation !== this.generation || this.client !== client || this.closed) return;
    if (rows.length > this.o.maxNumbers) {
      if (!this.tooMany) this.log.warn({ maxNumbers: this.o.maxNumbers }, 'more listed numbers than are held in memory; every call asks PostgreSQL');
      this.tooMany = true;
      return;
    }
    this.tooMany = false;
    this.numbers = new Set(rows.map((r) => r.number));
    this.log.debug({ numbers: this.numbers.size }, 'listed numbers read');
  }
}
