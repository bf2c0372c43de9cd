/**
 * GET /stats: the status page's JSON. Every figure comes from the metrics registry (through SampleHistory) or
 * from state the primary already holds (the policy, its reloads, auto-tuning, the rate-limit counters); nothing
 * here counts requests. Rates and percentiles cover the last `windowMs` (10 s); `series` cover the history
 * (~5 minutes) for the sparklines; `total` values are the cumulative counters as /metrics shows them.
 */
import type { LoadedPolicy } from '../policy/types';
import { redactSecrets } from '../util/redact';
import type { BucketState } from '../stages/ratelimit/store';
import type { Counts, Sample } from './sample';
import { countsDelta, gaugeSeries, histogramDelta, quantile, round, series, sumCounts, windowStart, type Point } from './figures';

export interface StatusSources {
  policy(): LoadedPolicy;
  /** Newest first: { at, why, result, version, diff?, errors? }. */
  reloads(): readonly unknown[];
  /** restart_pending and which worker runs which version (the reloader's status). */
  reloadStatus(): Record<string, unknown>;
  /** Auto-tuning's status and the settings in force, or null before it runs. */
  tuning(): { status: Record<string, unknown>; effective: unknown } | null;
  /** The limits closest to their limit (the pod's counters; Redis's with scope: cluster), or null when not available. */
  closestLimits(n: number): BucketState[] | null;
}

const WINDOW_MS = 10_000;
const CLOSEST = 8;

const ms = (seconds: number | null): number | null => (seconds === null ? null : round(seconds * 1000, 2));
const perSecond = (n: number, secs: number): number => (secs > 0 ? round(n / secs) : 0);

export function buildStats(samples: readonly Sample[], src: StatusSources): Record<string, unknown> {
  const now = samples[samples.length - 1];
  const start = windowStart(samples, WINDOW_MS);
  const secs = start === null || now === undefined ? 0 : (now.at - start.at) / 1000;
  const loaded = src.policy();
  const p = loaded.policy;
  return {
    at: now === undefined ? null : new Date(now.at).toISOString(),
    window_seconds: round(secs, 1),
    history_seconds: now === undefined || samples.length < 2 ? 0 : round((now.at - samples[0].at) / 1000, 1),
    routes: now === undefined ? [] : routes(samples, start, now, secs, loaded),
    cache: now === undefined ? null : cache(samples, start, now),
    limits: now === undefined ? null : limits(start, now, secs, loaded, src),
    queues: now === undefined ? null : queues(samples, start, now, secs, loaded),
    upstream_pool: now?.pool === null || now === undefined ? null : {
      ...now.pool,
      max_per_host: p.upstream.pool.max_connections_per_host,
      series: { in_use: gaugeSeries(samples, (s) => s.pool?.in_use ?? null), waiting: gaugeSeries(samples, (s) => s.pool?.waiting ?? null) },
    },
    memory: now === undefined ? null : memory(samples, now),
    errors: now === undefined ? {} : countsDelta(start?.errors, now.errors),
    policy: {
      version: loaded.version,
      file: loaded.file,
      ...src.reloadStatus(),
      reload_counts: now?.reloads ?? {},
      reloads: src.reloads(),
    },
    auto_tuning: (() => {
      const t = src.tuning();
      return { actions: now?.autotune ?? {}, ...(t === null ? {} : { ...t.status, effective: t.effective }) };
    })(),
    redis: {
      configured: p.redis !== null,
      up: now?.redisUp ?? null,
      endpoint: p.redis === null ? null : redactSecrets(p.redis.url ?? (p.redis.cluster ?? []).map((h) => `${h.host}:${h.port}`).join(',')),
    },
  };
}

function routes(samples: readonly Sample[], start: Sample | null, now: Sample, secs: number, loaded: LoadedPolicy): unknown[] {
  // routes in policy order first, then the per-endpoint paths and "other" as they appear
  const names = [...new Set([...loaded.policy.routes.map((r) => r.name), ...Object.keys(now.routes)])];
  return names.map((name) => {
    const r = now.routes[name];
    const before = start?.routes[name];
    const d = r === undefined ? null : histogramDelta(before?.duration, r.duration);
    const requests = r === undefined ? 0 : r.requests - (before?.requests ?? 0);
    return {
      name,
      total: r?.requests ?? 0,
      rps: perSecond(Math.max(0, requests), secs),
      p50_ms: d === null ? null : ms(quantile(0.5, d)),
      p99_ms: d === null ? null : ms(quantile(0.99, d)),
      status: r === undefined ? {} : countsDelta(before?.statusClasses, r.statusClasses),
      status_total: r?.statusClasses ?? {},
      cache: routeCache(samples, start, now, name),
      series: {
        rps: series(samples, (a, b, s) => ((b.routes[name]?.requests ?? 0) - (a.routes[name]?.requests ?? 0)) / s),
        p99_ms: series(samples, (a, b) => {
          const h = b.routes[name];
          return h === undefined ? null : ms(quantile(0.99, histogramDelta(a.routes[name]?.duration, h.duration)));
        }),
      },
    };
  });
}

/**
 * A cached route's share of requests answered from the cache (hit or stale) among all its requests at the cache
 * stage (hit, stale, miss, bypass), in the window; null for a route without a cache section.
 */
function routeHitRatio(c: Counts): number | null {
  const all = (c.hit ?? 0) + (c.stale ?? 0) + (c.miss ?? 0) + (c.bypass ?? 0);
  return all > 0 ? round(((c.hit ?? 0) + (c.stale ?? 0)) / all) : null;
}

function routeCache(samples: readonly Sample[], start: Sample | null, now: Sample, name: string): unknown {
  const total = now.routeCache[name];
  if (total === undefined) return null;
  const window = countsDelta(start?.routeCache[name], total);
  return {
    hit_ratio: routeHitRatio(window),
    window,
    total,
    series: { hit_ratio: series(samples, (a, b) => routeHitRatio(countsDelta(a.routeCache[name], b.routeCache[name] ?? {}))) },
  };
}

/** Hit ratio of a tier: hits over lookups that reached it (hit + miss + error), in the window. */
function hitRatio(c: Counts | undefined): number | null {
  if (c === undefined) return null;
  const lookups = (c.hit ?? 0) + (c.miss ?? 0) + (c.error ?? 0);
  return lookups > 0 ? round((c.hit ?? 0) / lookups) : null;
}

function cache(samples: readonly Sample[], start: Sample | null, now: Sample): unknown {
  const layers = Object.keys(now.cache).sort();
  return {
    tiers: layers.map((layer) => {
      const d = countsDelta(start?.cache[layer], now.cache[layer]);
      return {
        layer,
        hit_ratio: hitRatio(d),
        window: d,
        total: now.cache[layer],
        bytes: now.cacheBytes[layer] ?? null,
        series: { hit_ratio: series(samples, (a, b) => hitRatio(countsDelta(a.cache[layer], b.cache[layer] ?? {}))) },
      };
    }),
  };
}

function limits(start: Sample | null, now: Sample, secs: number, loaded: LoadedPolicy, src: StatusSources): unknown {
  const rl = loaded.policy.rate_limiting;
  if (rl === null) return null;
  const scopes = [
    ...(rl.per_user ? [['per_user', `${rl.per_user.requests_per_minute}/min, burst ${rl.per_user.burst_size}`]] : []),
    ...Object.entries(rl.per_endpoint).map(([k, e]) => ['per_endpoint', `${k}: ${e.rps}/s, burst ${e.burst}`]),
    ...(rl.global ? [['global', `${rl.global.requests_per_second}/s, burst ${rl.global.burst_size}`]] : []),
  ];
  const closest = src.closestLimits(CLOSEST);
  const admitted = countsDelta(start?.limits.admitted, now.limits.admitted);
  const rejected = countsDelta(start?.limits.rejected, now.limits.rejected);
  return {
    scope: rl.scope,
    limits: scopes.map(([scope, what]) => ({ scope, limit: what })),
    scopes: [...new Set(scopes.map(([s]) => s))].map((scope) => ({
      scope,
      admitted_per_s: perSecond(admitted[scope] ?? 0, secs),
      rejected_per_s: perSecond(rejected[scope] ?? 0, secs),
      admitted_total: now.limits.admitted[scope] ?? 0,
      rejected_total: now.limits.rejected[scope] ?? 0,
      dry_run_total: now.limits.dryRun[scope] ?? 0,
    })),
    closest,
    closest_note: rl.scope === 'pod' ? null : closest === null ? 'cluster scope: the counters live in Redis, which cannot be read now'
      : 'cluster scope: the whole cluster\'s counters, read from Redis; per-scope totals above are this pod\'s',
  };
}

function queues(samples: readonly Sample[], start: Sample | null, now: Sample, secs: number, loaded: LoadedPolicy): unknown {
  const q = loaded.policy.queues;
  if (q === null) return null;
  const shed = countsDelta(start?.queues.shed, now.queues.shed);
  return {
    in_flight_limit: { configured: q.max_in_flight, current: now.queues.concurrencyLimit },
    classes: (['high', 'medium', 'low'] as const).map((priority) => {
      const h = now.queues.wait[priority];
      const d = h === undefined ? null : histogramDelta(start?.queues.wait[priority], h);
      return {
        priority,
        length: now.queues.length[priority] ?? 0,
        max_size: q.priority_queues[priority]?.max_size ?? null,
        admitted_per_s: d === null ? 0 : perSecond(d.count, secs),
        wait_p99_ms: d === null ? null : ms(quantile(0.99, d)),
        wait_mean_ms: d === null || d.count === 0 ? null : ms(d.sum / d.count),
        series: { length: gaugeSeries(samples, (s) => s.queues.length[priority] ?? 0) },
      };
    }),
    shed_per_s: perSecond(sumCounts(shed), secs),
    shed_window: shed,
    shed_total: now.queues.shed,
    series: { shed_per_s: series(samples, (a, b, s) => sumCounts(countsDelta(a.queues.shed, b.queues.shed)) / s) },
  };
}

function memory(samples: readonly Sample[], now: Sample): unknown {
  const m = now.memory;
  return {
    limit_bytes: m.limitBytes,
    used_bytes: m.limitBytes !== null && m.usageRatio !== null ? Math.round(m.limitBytes * m.usageRatio) : null,
    usage_ratio: m.usageRatio === null ? null : round(m.usageRatio, 4),
    rss_bytes: m.rssBytes,
    series: { usage_ratio: gaugeSeries(samples, (s) => s.memory.usageRatio) },
  };
}

export type { Point };
