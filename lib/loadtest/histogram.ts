/**
 * Latency histograms (HdrHistogram, microseconds) and the small summary the report prints.
 *
 * The pure-JS build is used on purpose: the WebAssembly one must be initialised asynchronously in every
 * worker thread and its memory is not released by GC, which is a poor trade for a few thousand records/s.
 */
import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

/** 1 µs .. 1 hour at 3 significant digits; auto-resizes above that rather than dropping values. */
export function newHistogram(): Histogram {
  return hdr.build({
    bitBucketSize: 32,
    autoResize: true,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
}

/** Compact text form for passing between threads and keeping in the JSON report. */
export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHistogram(s: string): Histogram {
  return hdr.decodeFromCompressedBase64(s, 32, false);
}

/** Latency percentiles in milliseconds (null when nothing was recorded). */
export interface LatencySummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
}

const US_PER_MS = 1000;

export function summarize(h: Histogram): LatencySummary | null {
  if (h.totalCount === 0) return null;
  const ms = (us: number) => Math.round((us / US_PER_MS) * 1000) / 1000;
  return {
    count: h.totalCount,
    min: ms(h.minNonZeroValue),
    mean: ms(h.mean),
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p95: ms(h.getValueAtPercentile(95)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
  };
}

/** Record a latency given in milliseconds (fractional) as whole microseconds, at least 1. */
export function recordMs(h: Histogram, ms: number): void {
  const us = Math.ceil(ms * US_PER_MS);
  h.recordValue(us > 0 ? us : 1);
}
