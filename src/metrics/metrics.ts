/**
 * A tiny Prometheus registry (text exposition format 0.0.4), no dependency: counters, gauges and
 * histograms with labels, plus the process-level collectors the service exposes at /metrics.
 *
 * Why not prom-client: the service needs five metric families; this file is smaller than
 * prom-client's default collectors and costs nothing per call beyond a Map lookup and an add.
 *
 * Families (see docs/benchmarks.md for how the benchmark reads them):
 *   hotline_ari_request_duration_seconds{op}   histogram: every ARI REST request (AriClient.call)
 *   hotline_ari_request_errors_total{op}       counter: ARI requests that failed (any error)
 *   hotline_ari_ws_messages_received_total     counter: ARI WebSocket messages (events) received
 *   hotline_ari_ws_bytes_received_total        counter: their payload bytes
 *   hotline_event_loop_delay_seconds{quantile} gauge: event-loop delay p50/p99/max over the last window
 *   hotline_event_loop_delay_max_seconds       gauge: worst event-loop delay since start
 *   (service.ts adds: hotline_ari_connected, hotline_calls_active, hotline_calls{state},
 *    hotline_queue_waiting{queue}, process_* memory and CPU)
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

type Labels = Record<string, string>;

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
function labelText(labels: Labels, extra?: Labels): string {
  const all = { ...labels, ...extra };
  const keys = Object.keys(all);
  if (keys.length === 0) return '';
  return `{${keys.map((k) => `${k}="${escapeLabel(all[k]!)}"`).join(',')}}`;
}
const num = (v: number) => (Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN');
const keyOf = (labels: Labels) => JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));

interface Family {
  render(): string[];
}

export class Counter implements Family {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(by = 1, labels: Labels = {}): void {
    const k = keyOf(labels);
    const cur = this.values.get(k);
    if (cur) cur.value += by;
    else this.values.set(k, { labels, value: by });
  }
  get(labels: Labels = {}): number {
    return this.values.get(keyOf(labels))?.value ?? 0;
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) out.push(`${this.name} 0`);
    for (const { labels, value } of this.values.values()) out.push(`${this.name}${labelText(labels)} ${num(value)}`);
    return out;
  }
}

/** a gauge whose samples are computed at render time */
export class Gauge implements Family {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly collect: () => Array<[Labels, number]> | number,
  ) {}
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    const v = this.collect();
    if (typeof v === 'number') out.push(`${this.name} ${num(v)}`);
    else for (const [labels, value] of v) out.push(`${this.name}${labelText(labels)} ${num(value)}`);
    return out;
  }
}

export class Histogram implements Family {
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[],
  ) {}
  observe(value: number, labels: Labels = {}): void {
    const k = keyOf(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const { labels, counts, sum, count } of this.series.values()) {
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket${labelText(labels, { le: num(b) })} ${counts[i]}`));
      out.push(`${this.name}_bucket${labelText(labels, { le: '+Inf' })} ${count}`);
      out.push(`${this.name}_sum${labelText(labels)} ${sum}`);
      out.push(`${this.name}_count${labelText(labels)} ${count}`);
    }
    return out;
  }
}

export class Registry {
  private readonly families: Family[] = [];
  register<T extends Family>(f: T): T {
    this.families.push(f);
    return f;
  }
  render(): string {
    return `${this.families.flatMap((f) => f.render()).join('\n')}\n`;
  }
}

/** seconds; ARI requests on loopback take ~0.5-5 ms, a slow one 100 ms+ */
const ARI_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** event-loop delay quantiles are computed over windows of this length (then the histogram is reset) */
const LOOP_WINDOW_MS = 10_000;

/**
 * The ARI adapter's numbers. One instance per process (module-level), so the adapter records without
 * being handed a registry; service.ts registers them.
 */
export const ariMetrics = {
  requestSeconds: new Histogram('hotline_ari_request_duration_seconds', 'ARI REST request latency by operation', ARI_BUCKETS),
  requestErrors: new Counter('hotline_ari_request_errors_total', 'ARI REST requests that failed, by operation'),
  wsMessages: new Counter('hotline_ari_ws_messages_received_total', 'ARI WebSocket messages received'),
  wsBytes: new Counter('hotline_ari_ws_bytes_received_total', 'ARI WebSocket payload bytes received'),
};

export interface EventLoopMonitor {
  /** p50/p99/max (ms) of the last complete window, and the worst delay since start */
  snapshot(): { p50: number; p99: number; max: number; worst: number };
  stop(): void;
}

/** perf_hooks event-loop delay, summarised per window so a scrape sees the recent load, not the average since start */
export function startEventLoopMonitor(windowMs = LOOP_WINDOW_MS): EventLoopMonitor {
  const resolutionMs = 10;
  const h: IntervalHistogram = monitorEventLoopDelay({ resolution: resolutionMs });
  h.enable();
  // the histogram holds the whole sampling interval (an idle loop reads ~10.1 ms): report the delay beyond it
  const ms = (ns: number) => Math.max(0, ns / 1e6 - resolutionMs);
  let last = { p50: 0, p99: 0, max: 0 };
  let worst = 0;
  const roll = () => {
    if (h.count > 0) {
      last = { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) };
      worst = Math.max(worst, last.max);
    }
    h.reset();
  };
  const timer = setInterval(roll, windowMs);
  timer.unref();
  return {
    snapshot: () => ({ ...last, worst: Math.max(worst, h.count > 0 ? ms(h.max) : 0) }),
    stop: () => {
      clearInterval(timer);
      h.disable();
    },
  };
}

export function processGauges(): Family[] {
  return [
    new Gauge('process_resident_memory_bytes', 'resident memory', () => process.memoryUsage().rss),
    new Gauge('nodejs_heap_used_bytes', 'V8 heap used', () => process.memoryUsage().heapUsed),
    new Gauge('process_cpu_seconds_total', 'user + system CPU time of the process (a counter, shown as gauge)', () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    }),
  ];
}
