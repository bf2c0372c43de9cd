/**
 * The figures of ONE interval, computed in the primary from the metrics the workers already export: no
 * extra bookkeeping on the request path. A snapshot holds, per process, the counters and histograms that
 * matter; two snapshots and the time between them give the interval's figures:
 *
 *   error_rate            Δhttp_errors_total / Δhttp_requests_total
 *   p99_latency           99th percentile of the Δbuckets of http_request_duration_seconds
 *   connection_wait_time  95th percentile of the Δbuckets of upstream_connection_wait_seconds
 *   queue_length          the queue_length gauges summed, now
 *   cache_hit_ratio       Δhits (any tier) / Δlookups (the results counted by the top tier, which sees them all)
 *   cpu_usage             ΔCPU seconds of all processes / interval / CPUs the container may use
 *   memory_usage          the container's working set / its memory limit (memory_bytes: the working set
 *                         itself); the working set is what the kubelet evicts on, page cache left out (see
 *                         observe/resources.ts). Without a cgroup limit: the RSS of all processes / the RAM.
 *
 * Deltas are taken per process, so a worker that starts, restarts or retires between two snapshots does not
 * make the sums jump: a process seen only now counts from zero, one that is gone counts nothing, and a counter
 * that went down (the process restarted, or a reload replaced the histogram) counts from zero.
 * Percentiles interpolate inside a bucket like Prometheus' histogram_quantile; an interval without a single
 * observation leaves the figure unknown (null), and a trigger that reads an unknown figure does not fire.
 *
 * Everything here is a pure function of its inputs, so tests can build snapshots from real registries.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { PREFIX } from '../observe/metrics';
import type { Figures } from './expr';

/** Cumulative bucket counts by upper bound (the last bound is Infinity). */
export interface Histo {
  readonly bounds: readonly number[];
  readonly counts: readonly number[];
}

/** What one process contributes to a snapshot. */
export interface ProcessSample {
  readonly requests: number;
  readonly errors: number;
  readonly duration: Histo | null;
  readonly wait: Histo | null;
  readonly queueLength: number;
  readonly cacheHits: number;
  readonly cacheLookups: number;
  /** CPU seconds (user + system) since the process started, or null when unknown. */
  readonly cpuSeconds: number | null;
  readonly rssBytes: number | null;
}

export interface Snapshot {
  /** Monotonic milliseconds. */
  readonly at: number;
  /** Keyed by process ("primary", "worker:3", "single"). */
  readonly processes: ReadonlyMap<string, ProcessSample>;
}

/** What the container may use. */
export interface Capacity {
  readonly cpus: number;
  readonly memoryLimitBytes: number;
  /** The container's working set now; null without a cgroup limit (then the processes' RSS stands in). */
  readonly memoryWorkingSetBytes?: number | null;
}

export type MetricJson = MetricObjectWithValues<MetricValue<string>>;

const REQUESTS = PREFIX + 'http_requests_total';
const ERRORS = PREFIX + 'http_errors_total';
const DURATION = PREFIX + 'http_request_duration_seconds';
const WAIT = PREFIX + 'upstream_connection_wait_seconds';
const QUEUE = PREFIX + 'queue_length';
const CACHE = PREFIX + 'cache_requests_total';
const CPU = 'process_cpu_seconds_total';
const RSS = 'process_resident_memory_bytes';

/** One process's sample from its registry's JSON (`registry.getMetricsAsJSON()`). */
export function sampleFromMetrics(metrics: readonly MetricJson[], own: { cpuSeconds?: number; rssBytes?: number } = {}): ProcessSample {
  const byName = new Map<string, MetricJson>();
  for (const m of metrics) byName.set(m.name, m);
  const sum = (name: string): number => {
    let s = 0;
    for (const v of byName.get(name)?.values ?? []) if (Number.isFinite(v.value)) s += v.value;
    return s;
  };
  const single = (name: string): number | null => {
    const v = byName.get(name)?.values[0]?.value;
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  };
  const { hits, lookups } = cacheCounts(byName.get(CACHE));
  return {
    requests: sum(REQUESTS),
    errors: sum(ERRORS),
    duration: histogramOf(byName.get(DURATION)),
    wait: histogramOf(byName.get(WAIT)),
    queueLength: sum(QUEUE),
    cacheHits: hits,
    cacheLookups: lookups,
    cpuSeconds: own.cpuSeconds ?? single(CPU),
    rssBytes: own.rssBytes ?? single(RSS),
  };
}

/** Every lookup is counted once by the top tier present; a hit is counted once by the tier that had it. */
function cacheCounts(m: MetricJson | undefined): { hits: number; lookups: number } {
  const perLayer = new Map<string, number>();
  let hits = 0;
  for (const v of m?.values ?? []) {
    if (!Number.isFinite(v.value)) continue;
    const layer = String(v.labels.layer ?? '');
    perLayer.set(layer, (perLayer.get(layer) ?? 0) + v.value);
    if (v.labels.result === 'hit') hits += v.value;
  }
  let lookups = 0;
  for (const n of perLayer.values()) lookups = Math.max(lookups, n);
  return { hits, lookups };
}

/** A histogram's buckets summed over all its label sets. */
export function histogramOf(m: MetricJson | undefined): Histo | null {
  if (!m) return null;
  const byBound = new Map<number, number>();
  for (const v of m.values as ReadonlyArray<MetricValue<string> & { metricName?: string }>) {
    if (!v.metricName?.endsWith('_bucket') || !Number.isFinite(v.value)) continue;
    const le = v.labels.le;
    const bound = le === '+Inf' ? Infinity : Number(le);
    if (Number.isNaN(bound)) continue;
    byBound.set(bound, (byBound.get(bound) ?? 0) + v.value);
  }
  if (byBound.size === 0) return null;
  const bounds = [...byBound.keys()].sort((a, b) => a - b);
  return { bounds, counts: bounds.map((b) => byBound.get(b)!) };
}

const counterDelta = (now: number, before: number | undefined): number =>
  before === undefined || now < before ? now : now - before;

function sameBounds(a: Histo, b: Histo): boolean {
  return a.bounds.length === b.bounds.length && a.bounds.every((x, i) => x === b.bounds[i]);
}

/** The observations between two samples of one histogram (all of `now` when it was reset in between). */
export function histoDelta(now: Histo | null, before: Histo | null): Histo | null {
  if (now === null) return null;
  if (before === null || !sameBounds(now, before)) return now;
  const total = now.counts[now.counts.length - 1];
  const totalBefore = before.counts[before.counts.length - 1];
  if (total < totalBefore) return now;
  return { bounds: now.bounds, counts: now.counts.map((c, i) => Math.max(0, c - before.counts[i])) };
}

/**
 * Sum histograms. They normally share bounds (the policy's); during a reload that changes the buckets the
 * workers may briefly disagree, and then the bounds holding the most observations win (the rest are left out
 * rather than mixed into a wrong percentile).
 */
export function mergeHistos(list: readonly Histo[]): Histo | null {
  const groups = new Map<string, { bounds: readonly number[]; counts: number[] }>();
  for (const h of list) {
    const key = h.bounds.join(',');
    const g = groups.get(key);
    if (!g) groups.set(key, { bounds: h.bounds, counts: [...h.counts] });
    else h.counts.forEach((c, i) => (g.counts[i] += c));
  }
  let best: Histo | null = null;
  for (const g of groups.values()) {
    if (best === null || g.counts[g.counts.length - 1] > best.counts[best.counts.length - 1]) best = g;
  }
  return best;
}

/**
 * The q-quantile (0..1) of a cumulative histogram, interpolated linearly inside its bucket (Prometheus'
 * histogram_quantile). In the +Inf bucket the highest finite bound is the answer. null: no observations.
 */
export function quantile(h: Histo | null, q: number): number | null {
  if (h === null || h.counts.length === 0) return null;
  const total = h.counts[h.counts.length - 1];
  if (!(total > 0)) return null;
  const rank = q * total;
  for (let i = 0; i < h.bounds.length; i++) {
    if (h.counts[i] >= rank) {
      const upper = h.bounds[i];
      if (upper === Infinity) {
        const finite = h.bounds.filter((b) => Number.isFinite(b));
        return finite.length ? finite[finite.length - 1] : null;
      }
      const lower = i === 0 ? 0 : h.bounds[i - 1];
      const below = i === 0 ? 0 : h.counts[i - 1];
      const inBucket = h.counts[i] - below;
      if (inBucket <= 0) return upper;
      return lower + (upper - lower) * ((rank - below) / inBucket);
    }
  }
  return null;
}

/** The figures of the interval between two snapshots. */
export function computeFigures(before: Snapshot, now: Snapshot, cap: Capacity): Figures {
  let requests = 0;
  let errors = 0;
  let hits = 0;
  let lookups = 0;
  let queue = 0;
  let cpu = 0;
  let cpuKnown = false;
  let rss = 0;
  let rssKnown = false;
  const durations: Histo[] = [];
  const waits: Histo[] = [];
  for (const [key, p] of now.processes) {
    const b = before.processes.get(key);
    requests += counterDelta(p.requests, b?.requests);
    errors += counterDelta(p.errors, b?.errors);
    // a lookup counter and its hit counter restart together: take both from zero when either went down
    const cacheReset = b !== undefined && (p.cacheLookups < b.cacheLookups || p.cacheHits < b.cacheHits);
    hits += cacheReset ? p.cacheHits : counterDelta(p.cacheHits, b?.cacheHits);
    lookups += cacheReset ? p.cacheLookups : counterDelta(p.cacheLookups, b?.cacheLookups);
    queue += p.queueLength;
    const d = histoDelta(p.duration, b?.duration ?? null);
    if (d) durations.push(d);
    const w = histoDelta(p.wait, b?.wait ?? null);
    if (w) waits.push(w);
    if (p.cpuSeconds !== null) {
      cpu += counterDelta(p.cpuSeconds, b?.cpuSeconds ?? undefined);
      cpuKnown = true;
    }
    if (p.rssBytes !== null) {
      rss += p.rssBytes;
      rssKnown = true;
    }
  }
  const elapsedS = (now.at - before.at) / 1000;
  const p99 = quantile(mergeHistos(durations), 0.99);
  const p95wait = quantile(mergeHistos(waits), 0.95);
  const memory = cap.memoryWorkingSetBytes ?? (rssKnown ? rss : null);
  return {
    memory_usage: memory !== null && cap.memoryLimitBytes > 0 ? memory / cap.memoryLimitBytes : null,
    memory_bytes: memory,
    cpu_usage: cpuKnown && elapsedS > 0 && cap.cpus > 0 ? cpu / elapsedS / cap.cpus : null,
    connection_wait_time: p95wait === null ? null : p95wait * 1000,
    queue_length: queue,
    error_rate: requests > 0 ? Math.min(1, errors / requests) : null,
    p99_latency: p99 === null ? null : p99 * 1000,
    cache_hit_ratio: lookups > 0 ? Math.min(1, hits / lookups) : null,
  };
}

/** Figures as an operator reads them in a log line: 87.5%, 153ms, 12. */
export function formatFigure(name: keyof Figures, v: number | null): string {
  if (v === null) return 'unknown';
  switch (name) {
    case 'connection_wait_time': case 'p99_latency':
      return v >= 1000 ? `${round(v / 1000, 3)}s` : `${round(v, 1)}ms`;
    case 'queue_length':
      return String(round(v, 0));
    case 'memory_bytes':
      return `${round(v / 1024 ** 2, 1)}MB`;
    default:
      return `${round(v * 100, 1)}%`;
  }
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
