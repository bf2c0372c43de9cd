/**
 * Rates and percentiles from two cumulative Samples, computed the way PromQL does (rate() = difference over
 * time; histogram_quantile() = linear interpolation inside the bucket that holds the rank), so the page and a
 * Grafana panel over the same window agree.
 */
import type { Counts, HistogramCounts, Sample } from './sample';

/** The difference b - a of two readings of one histogram (a counter reset, e.g. new buckets, gives b). */
export function histogramDelta(a: HistogramCounts | undefined, b: HistogramCounts): HistogramCounts {
  if (a === undefined || a.counts.length !== b.counts.length || a.count > b.count) return b;
  return { bounds: b.bounds, counts: b.counts.map((c, i) => c - a.counts[i]), sum: b.sum - a.sum, count: b.count - a.count };
}

/**
 * The q-quantile (0..1) of a histogram, in the histogram's unit; null with no observations. Like
 * histogram_quantile: linear within the bucket; a rank in the +Inf bucket gives the highest finite bound.
 */
export function quantile(q: number, h: HistogramCounts): number | null {
  const total = h.counts.length > 0 ? h.counts[h.counts.length - 1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < h.counts.length; i++) {
    if (h.counts[i] < rank) continue;
    if (i >= h.bounds.length) return h.bounds.length > 0 ? h.bounds[h.bounds.length - 1] : null;
    const lower = i === 0 ? 0 : h.bounds[i - 1];
    const below = i === 0 ? 0 : h.counts[i - 1];
    const inBucket = h.counts[i] - below;
    if (inBucket <= 0) return h.bounds[i];
    return lower + (h.bounds[i] - lower) * ((rank - below) / inBucket);
  }
  return h.bounds.length > 0 ? h.bounds[h.bounds.length - 1] : null;
}

/** Per-key difference b - a (never negative: a reset restarts from b). */
export function countsDelta(a: Counts | undefined, b: Counts): Counts {
  const out: Counts = {};
  for (const [k, v] of Object.entries(b)) {
    const before = a?.[k] ?? 0;
    out[k] = v >= before ? v - before : v;
  }
  return out;
}

/** The sample to measure a window of `windowMs` back from the newest one: the newest that is at least that old. */
export function windowStart(samples: readonly Sample[], windowMs: number): Sample | null {
  if (samples.length < 2) return null;
  const newest = samples[samples.length - 1];
  let start = samples[0];
  for (let i = samples.length - 2; i >= 0; i--) {
    if (newest.at - samples[i].at >= windowMs) {
      start = samples[i];
      break;
    }
    start = samples[i];
  }
  return start;
}

export type Point = [number, number];

/** A series over the history: `f(previous, current, seconds between)` for each consecutive pair. */
export function series(samples: readonly Sample[], f: (a: Sample, b: Sample, seconds: number) => number | null): Point[] {
  const out: Point[] = [];
  for (let i = 1; i < samples.length; i++) {
    const secs = (samples[i].at - samples[i - 1].at) / 1000;
    if (secs <= 0) continue;
    const v = f(samples[i - 1], samples[i], secs);
    if (v !== null && Number.isFinite(v)) out.push([samples[i].at, round(v)]);
  }
  return out;
}

/** A gauge's value at each sample. */
export function gaugeSeries(samples: readonly Sample[], f: (s: Sample) => number | null): Point[] {
  const out: Point[] = [];
  for (const s of samples) {
    const v = f(s);
    if (v !== null && Number.isFinite(v)) out.push([s.at, round(v)]);
  }
  return out;
}

export function round(v: number, digits = 3): number {
  const p = 10 ** digits;
  return Math.round(v * p) / p;
}

export function sumCounts(c: Counts): number {
  let n = 0;
  for (const v of Object.values(c)) n += v;
  return n;
}
