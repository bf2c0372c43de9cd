/**
 * What the target process costs while it is loaded: CPU and resident memory from /proc/PID (`--pid`) or from
 * the Prometheus page (`--metrics`: prom-client's process_cpu_seconds_total and process_resident_memory_bytes),
 * plus the sidecar's own cache, shedding and rate-limit counters when that page has them.
 */
import { readFileSync } from 'node:fs';

/** One reading; counters are cumulative, so a step's figures are differences of two readings. */
export interface TargetSample {
  /** epoch ms */
  at: number;
  cpuSeconds: number | null;
  rssBytes: number | null;
  /** bridge_sidecar_cache_requests_total by layer and result */
  cache: Record<string, Record<string, number>>;
  /** bridge_sidecar_shed_total by reason */
  shed: Record<string, number>;
  /** bridge_sidecar_ratelimit_rejected_total by scope */
  rateLimited: Record<string, number>;
  error?: string;
}

export interface TargetProbe {
  metricsUrl: string | null;
  pid: number | null;
}

/** One Prometheus sample line: name, labels, value. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parse the Prometheus text exposition format (comments and timestamps ignored). */
export function parsePrometheusText(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const line of text.split('\n')) {
    if (line.length === 0 || line.startsWith('#')) continue;
    const m = LINE_RE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[3]) for (const l of m[3].matchAll(LABEL_RE)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const value = Number(m[4]);
    if (!Number.isNaN(value)) out.push({ name: m[1], labels, value });
  }
  return out;
}

export function sampleFromPrometheus(text: string, at: number): TargetSample {
  const s: TargetSample = { at, cpuSeconds: null, rssBytes: null, cache: {}, shed: {}, rateLimited: {} };
  for (const p of parsePrometheusText(text)) {
    switch (p.name) {
      case 'process_cpu_seconds_total':
        s.cpuSeconds = (s.cpuSeconds ?? 0) + p.value;
        break;
      case 'process_resident_memory_bytes':
        s.rssBytes = (s.rssBytes ?? 0) + p.value;
        break;
      case 'bridge_sidecar_cache_requests_total': {
        const layer = p.labels.layer ?? '';
        const result = p.labels.result ?? '';
        s.cache[layer] ??= {};
        s.cache[layer][result] = (s.cache[layer][result] ?? 0) + p.value;
        break;
      }
      case 'bridge_sidecar_shed_total':
        s.shed[p.labels.reason ?? ''] = (s.shed[p.labels.reason ?? ''] ?? 0) + p.value;
        break;
      case 'bridge_sidecar_ratelimit_rejected_total':
        s.rateLimited[p.labels.scope ?? ''] = (s.rateLimited[p.labels.scope ?? ''] ?? 0) + p.value;
        break;
    }
  }
  return s;
}

/** VmRSS from /proc/PID/status and utime+stime from /proc/PID/stat (clock ticks, 100 per second on Linux). */
export function sampleFromProc(pid: number, at: number): TargetSample {
  const s: TargetSample = { at, cpuSeconds: null, rssBytes: null, cache: {}, shed: {}, rateLimited: {} };
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (rss) s.rssBytes = Number(rss[1]) * 1024;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // the command name (field 2) may hold spaces and parentheses: count fields from the last ')'
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const CLOCK_TICKS = 100;
  s.cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  return s;
}

/** Read the target; never throws (a failed scrape is recorded, the load test goes on). */
export async function sampleTarget(probe: TargetProbe): Promise<TargetSample | null> {
  if (!probe.metricsUrl && probe.pid === null) return null;
  const at = Date.now();
  let sample: TargetSample = { at, cpuSeconds: null, rssBytes: null, cache: {}, shed: {}, rateLimited: {} };
  const errors: string[] = [];
  if (probe.metricsUrl) {
    try {
      const res = await fetch(probe.metricsUrl, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      sample = sampleFromPrometheus(await res.text(), at);
    } catch (e) {
      errors.push(`${probe.metricsUrl}: ${(e as Error).message}`);
    }
  }
  if (probe.pid !== null) {
    // the process itself is the more direct source for CPU and memory
    try {
      const p = sampleFromProc(probe.pid, at);
      sample.cpuSeconds = p.cpuSeconds;
      sample.rssBytes = p.rssBytes;
    } catch (e) {
      errors.push(`pid ${probe.pid}: ${(e as Error).message}`);
    }
  }
  if (errors.length > 0) sample.error = errors.join('; ');
  return sample;
}

/** What the target did between two readings. */
export interface TargetUsage {
  /** CPU time used per wall second: 1.0 = one core busy */
  cpuCores: number | null;
  /** resident memory at the end (bytes) */
  rssBytes: number | null;
  /** peak resident memory seen during the interval (bytes) */
  peakRssBytes: number | null;
  /** cache hits / lookups per layer during the interval */
  cache: Record<string, { hits: number; lookups: number }>;
  /** all tiers: hits in any layer / lookups at the most consulted layer (every lookup starts at the first tier) */
  cacheHitRatio: number | null;
  shed: Record<string, number>;
  shedTotal: number;
  rateLimited: Record<string, number>;
  rateLimitedTotal: number;
}

const HIT_RESULTS = new Set(['hit', 'stale', 'hit_stale']);

export function usageBetween(a: TargetSample, b: TargetSample, peakRss: number | null = null): TargetUsage {
  const wall = (b.at - a.at) / 1000;
  const cpuCores = a.cpuSeconds !== null && b.cpuSeconds !== null && wall > 0 ? Math.max(0, (b.cpuSeconds - a.cpuSeconds) / wall) : null;
  const cache: TargetUsage['cache'] = {};
  for (const [layer, results] of Object.entries(b.cache)) {
    let hits = 0;
    let lookups = 0;
    for (const [result, v] of Object.entries(results)) {
      const d = v - (a.cache[layer]?.[result] ?? 0);
      lookups += d;
      if (HIT_RESULTS.has(result)) hits += d;
    }
    if (lookups > 0) cache[layer] = { hits, lookups };
  }
  const layers = Object.values(cache);
  const maxLookups = Math.max(0, ...layers.map((l) => l.lookups));
  const cacheHitRatio = maxLookups > 0 ? Math.min(1, layers.reduce((s, l) => s + l.hits, 0) / maxLookups) : null;
  const diff = (x: Record<string, number>, y: Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(y)) {
      const d = v - (x[k] ?? 0);
      if (d > 0) out[k] = d;
    }
    return out;
  };
  const shed = diff(a.shed, b.shed);
  const rateLimited = diff(a.rateLimited, b.rateLimited);
  const sum = (r: Record<string, number>) => Object.values(r).reduce((s, v) => s + v, 0);
  const rss = b.rssBytes;
  return {
    cpuCores,
    rssBytes: rss,
    peakRssBytes: rss === null ? peakRss : Math.max(rss, peakRss ?? 0, a.rssBytes ?? 0),
    cache,
    cacheHitRatio,
    shed,
    shedTotal: sum(shed),
    rateLimited,
    rateLimitedTotal: sum(rateLimited),
  };
}

/** Samples the target every few seconds during a phase to catch its peak memory. */
export class PeakSampler {
  peakRss: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  constructor(private readonly probe: TargetProbe, private readonly everyMs = 5000) {}
  start(): void {
    if (!this.probe.metricsUrl && this.probe.pid === null) return;
    this.timer = setInterval(() => {
      void sampleTarget(this.probe).then((s) => {
        if (s?.rssBytes != null) this.peakRss = Math.max(this.peakRss ?? 0, s.rssBytes);
      });
    }, this.everyMs);
    this.timer.unref();
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
