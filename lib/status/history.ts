/**
 * The last ~5 minutes of Samples, kept in the primary for the status page's sparklines.
 *
 * A reading is one pass over the registries /metrics exports (an IPC round trip to each worker, like a scrape),
 * never work on the request path. It is taken every `everyMs` in the background (a scrape-like cadence), and on
 * demand while someone watches the page, at most once per `minGapMs`; concurrent requests share one reading.
 */
import { sampleFrom, type MetricsJson, type Sample } from './sample';

export interface HistoryOptions {
  /** How far back the history reaches. */
  spanMs?: number;
  /** Background reading interval. */
  everyMs?: number;
  /** A request for fresh figures reuses a reading younger than this. */
  minGapMs?: number;
  now?: () => number;
}

export class SampleHistory {
  private readonly samples: Sample[] = [];
  private pending: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly spanMs: number;
  private readonly everyMs: number;
  private readonly minGapMs: number;
  private readonly now: () => number;

  constructor(private readonly read: () => Promise<MetricsJson>, opts: HistoryOptions = {}) {
    this.spanMs = opts.spanMs ?? 5 * 60_000;
    this.everyMs = opts.everyMs ?? 5_000;
    this.minGapMs = opts.minGapMs ?? 900;
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    if (this.timer !== null) return;
    void this.take();
    this.timer = setInterval(() => void this.take(), this.everyMs);
    this.timer.unref();
  }

  /** The history, oldest first, with a reading at most minGapMs old at its end. */
  async fresh(): Promise<readonly Sample[]> {
    const newest = this.samples[this.samples.length - 1];
    if (newest === undefined || this.now() - newest.at >= this.minGapMs) await this.take();
    return this.samples;
  }

  private take(): Promise<void> {
    this.pending ??= this.read().then(
      (json) => {
        const at = this.now();
        this.samples.push(sampleFrom(json, at));
        // keep one reading older than the span, so the oldest window still has a start
        while (this.samples.length > 2 && at - this.samples[1].at > this.spanMs) this.samples.shift();
      },
      () => { /* a worker did not answer: the next reading will */ },
    ).finally(() => { this.pending = null; });
    return this.pending;
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
