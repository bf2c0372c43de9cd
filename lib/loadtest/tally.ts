/**
 * Adds engine ticks up: counts, outcomes and merged latency histograms for a step, a soak interval or a
 * progress line.
 */
import { decodeHistogram, newHistogram, summarize, type Histogram, type LatencySummary } from './histogram';
import type { Tick } from './engine';

export class Tally {
  sent = 0;
  completed = 0;
  inWindow = 0;
  errors = 0;
  succeeded = 0;
  inWindowOk = 0;
  refused = 0;
  failed = 0;
  bytes = 0;
  unsent = 0;
  /** the longest window any engine reported (set by final ticks) */
  windowMs = 0;
  readonly outcomes: Record<string, number> = {};
  readonly latency: Histogram = newHistogram();
  readonly uncorrected: Histogram = newHistogram();
  /** successful answers only */
  readonly okLatency: Histogram = newHistogram();
  readonly entryLatency: Histogram[] = [];
  readonly entryErrors: number[] = [];

  add(t: Tick): void {
    this.sent += t.sent;
    this.completed += t.completed;
    this.inWindow += t.inWindow;
    this.errors += t.errors;
    this.succeeded += t.succeeded;
    this.inWindowOk += t.inWindowOk;
    this.refused += t.refused;
    this.failed += t.failed;
    this.bytes += t.bytes;
    this.unsent += t.unsent;
    this.windowMs = Math.max(this.windowMs, t.windowMs);
    for (const [k, v] of Object.entries(t.outcomes)) this.outcomes[k] = (this.outcomes[k] ?? 0) + v;
    addEncoded(this.latency, t.latency);
    addEncoded(this.uncorrected, t.uncorrected);
    addEncoded(this.okLatency, t.okLatency);
    t.perEntry.forEach((e, i) => {
      this.entryLatency[i] ??= newHistogram();
      addEncoded(this.entryLatency[i], e.latency);
      this.entryErrors[i] = (this.entryErrors[i] ?? 0) + e.errors;
    });
  }

  addTally(o: Tally): void {
    this.sent += o.sent;
    this.completed += o.completed;
    this.inWindow += o.inWindow;
    this.errors += o.errors;
    this.succeeded += o.succeeded;
    this.inWindowOk += o.inWindowOk;
    this.refused += o.refused;
    this.failed += o.failed;
    this.bytes += o.bytes;
    this.unsent += o.unsent;
    this.windowMs = Math.max(this.windowMs, o.windowMs);
    for (const [k, v] of Object.entries(o.outcomes)) this.outcomes[k] = (this.outcomes[k] ?? 0) + v;
    this.latency.add(o.latency);
    this.uncorrected.add(o.uncorrected);
    this.okLatency.add(o.okLatency);
    o.entryLatency.forEach((h, i) => {
      this.entryLatency[i] ??= newHistogram();
      this.entryLatency[i].add(h);
      this.entryErrors[i] = (this.entryErrors[i] ?? 0) + o.entryErrors[i];
    });
  }

  summary(): LatencySummary | null {
    return summarize(this.latency);
  }
}

function addEncoded(into: Histogram, encoded: string): void {
  const h = decodeHistogram(encoded);
  if (h.totalCount > 0) into.add(h);
}
