/**
 * The live progress line: one line rewritten in place, only when the output is a terminal (a log file or a
 * pipe gets the per-step and per-interval lines only).
 */
import type { Tally } from './tally';

export interface ProgressState {
  label: string;
  elapsedMs: number;
  durationMs: number;
  tally: Tally;
}

const MIN_REDRAW_MS = 250;

export class ProgressLine {
  private last = 0;
  private shown = false;
  constructor(private readonly out: NodeJS.WriteStream) {}

  static forStdout(): ProgressLine | null {
    return process.stdout.isTTY ? new ProgressLine(process.stdout) : null;
  }

  update(s: ProgressState): void {
    const t = Date.now();
    if (t - this.last < MIN_REDRAW_MS) return;
    this.last = t;
    const secs = Math.min(s.elapsedMs, s.durationMs) / 1000;
    const rate = secs > 0 ? s.tally.completed / secs : 0;
    const p99 = s.tally.latency.totalCount > 0 ? (s.tally.latency.getValueAtPercentile(99) / 1000).toFixed(1) + ' ms' : '-';
    const text = `${s.label}  ${secs.toFixed(0)}/${(s.durationMs / 1000).toFixed(0)} s  sent ${s.tally.sent}  done ${s.tally.completed}` +
      `  ${rate.toFixed(0)} req/s  errors ${s.tally.errors}  p99 ${p99}`;
    this.write(text);
  }

  message(text: string): void {
    this.write(text);
  }

  /** Remove the line before ordinary output is printed. */
  clear(): void {
    if (!this.shown) return;
    this.out.write('\r\x1b[K');
    this.shown = false;
  }

  private write(text: string): void {
    const width = this.out.columns ? this.out.columns - 1 : 120;
    this.out.write('\r\x1b[K' + text.slice(0, width));
    this.shown = true;
  }
}
