/**
 * One reading of the pod's figures, taken from the SAME registry /metrics exports (the workers' registries summed
 * by prom-client's aggregator, plus the primary's): the status page keeps no counters of its own, so what it
 * shows is what Prometheus scrapes. A Sample holds cumulative values; rates and percentiles are differences
 * between two samples (see figures.ts), as PromQL's rate() and histogram_quantile() compute them.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { PREFIX } from '../observe/metrics';

export type MetricsJson = ReadonlyArray<MetricObjectWithValues<MetricValue<string>>>;

/** A histogram's cumulative bucket counts (le order; the last is +Inf), sum and count. */
export interface HistogramCounts {
  bounds: number[];
  counts: number[];
  sum: number;
  count: number;
}

export interface RouteCounts {
  requests: number;
  duration: HistogramCounts;
  /** Finished requests by status class: "2xx", "4xx", ... */
  statusClasses: Record<string, number>;
}

export type Counts = Record<string, number>;

export interface Sample {
  /** Wall-clock time of the reading (ms). */
  at: number;
  /** By `endpoint` label (route name, per-endpoint path, or "other"). */
  routes: Record<string, RouteCounts>;
  /** cache_requests_total by layer, then result. */
  cache: Record<string, Counts>;
  /** route_cache_requests_total by endpoint, then result (hit, stale, miss, bypass). */
  routeCache: Record<string, Counts>;
  cacheBytes: Counts;
  limits: { admitted: Counts; rejected: Counts; dryRun: Counts };
  queues: { length: Counts; wait: Record<string, HistogramCounts>; shed: Counts; concurrencyLimit: number | null };
  pool: { in_use: number; idle: number; waiting: number } | null;
  memory: { limitBytes: number | null; usageRatio: number | null; rssBytes: number | null };
  redisUp: number | null;
  autotune: Counts;
  reloads: Counts;
  errors: Counts;
}

type Value = MetricValue<string> & { metricName?: string };

function byName(metrics: MetricsJson): Map<string, Value[]> {
  const m = new Map<string, Value[]>();
  for (const f of metrics) m.set(f.name, f.values as Value[]);
  return m;
}

function sumBy(values: readonly Value[] | undefined, label: string, series?: string): Counts {
  const out: Counts = {};
  for (const v of values ?? []) {
    if (series !== undefined && v.metricName !== series) continue;
    const k = String(v.labels[label] ?? '');
    out[k] = (out[k] ?? 0) + v.value;
  }
  return out;
}

/** Values grouped by one label, then summed by another. */
function countsBy(values: readonly Value[] | undefined, outer: string, inner: string): Record<string, Counts> {
  const out: Record<string, Counts> = {};
  for (const v of values ?? []) {
    const c = (out[String(v.labels[outer])] ??= {});
    const k = String(v.labels[inner]);
    c[k] = (c[k] ?? 0) + v.value;
  }
  return out;
}

function single(values: readonly Value[] | undefined): number | null {
  if (values === undefined || values.length === 0) return null;
  return values.reduce((a, v) => a + v.value, 0);
}

/** Histograms of one metric grouped by `label` (summing every other label), or one group '' when label is null. */
function histograms(name: string, values: readonly Value[] | undefined, label: string | null): Record<string, HistogramCounts> {
  const out: Record<string, { buckets: Map<number, number>; sum: number; count: number }> = {};
  for (const v of values ?? []) {
    const k = label === null ? '' : String(v.labels[label] ?? '');
    const h = (out[k] ??= { buckets: new Map(), sum: 0, count: 0 });
    if (v.metricName === name + '_bucket') {
      const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
      h.buckets.set(le, (h.buckets.get(le) ?? 0) + v.value);
    } else if (v.metricName === name + '_sum') h.sum += v.value;
    else if (v.metricName === name + '_count') h.count += v.value;
  }
  const result: Record<string, HistogramCounts> = {};
  for (const [k, h] of Object.entries(out)) {
    const les = [...h.buckets.keys()].sort((a, b) => a - b);
    result[k] = { bounds: les.filter(Number.isFinite), counts: les.map((le) => h.buckets.get(le)!), sum: h.sum, count: h.count };
  }
  return result;
}

function statusClassesBy(values: readonly Value[] | undefined, series: string): Record<string, Counts> {
  const out: Record<string, Counts> = {};
  for (const v of values ?? []) {
    if (v.metricName !== series) continue;
    const route = String(v.labels.endpoint ?? '');
    const cls = String(v.labels.status ?? '0')[0] + 'xx';
    const c = (out[route] ??= {});
    c[cls] = (c[cls] ?? 0) + v.value;
  }
  return out;
}

/** Reads a Sample out of an (aggregated) registry's getMetricsAsJSON(). */
export function sampleFrom(metrics: MetricsJson, at: number): Sample {
  const m = byName(metrics);
  const get = (n: string) => m.get(PREFIX + n);
  const durationName = PREFIX + 'http_request_duration_seconds';
  const durations = histograms(durationName, m.get(durationName), 'endpoint');
  const classes = statusClassesBy(m.get(durationName), durationName + '_count');
  const requests = sumBy(get('http_requests_total'), 'endpoint');
  const routes: Record<string, RouteCounts> = {};
  for (const name of new Set([...Object.keys(requests), ...Object.keys(durations)])) {
    routes[name] = {
      requests: requests[name] ?? 0,
      duration: durations[name] ?? { bounds: [], counts: [], sum: 0, count: 0 },
      statusClasses: classes[name] ?? {},
    };
  }
  const cache = countsBy(get('cache_requests_total'), 'layer', 'result');
  const routeCache = countsBy(get('route_cache_requests_total'), 'endpoint', 'result');
  const pool = sumBy(get('upstream_connections'), 'state');
  return {
    at,
    routes,
    cache,
    routeCache,
    cacheBytes: sumBy(get('cache_size_bytes'), 'layer'),
    limits: {
      admitted: sumBy(get('ratelimit_admitted_total'), 'scope'),
      rejected: sumBy(get('ratelimit_rejected_total'), 'scope'),
      dryRun: sumBy(get('ratelimit_dry_run_total'), 'scope'),
    },
    queues: {
      length: sumBy(get('queue_length'), 'priority'),
      wait: histograms(PREFIX + 'queue_wait_seconds', get('queue_wait_seconds'), 'priority'),
      shed: sumBy(get('shed_total'), 'reason'),
      concurrencyLimit: single(get('concurrency_limit')),
    },
    pool: 'in_use' in pool ? { in_use: pool.in_use, idle: pool.idle ?? 0, waiting: pool.waiting ?? 0 } : null,
    memory: {
      limitBytes: single(get('memory_limit_bytes')),
      usageRatio: single(get('memory_usage_ratio')),
      rssBytes: single(m.get('process_resident_memory_bytes')),
    },
    redisUp: single(get('redis_up')),
    autotune: sumBy(get('autotune_actions_total'), 'strategy'),
    reloads: sumBy(get('policy_reloads_total'), 'result'),
    errors: sumBy(get('http_errors_total'), 'error_type'),
  };
}
