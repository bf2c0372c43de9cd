/** Shared by the auto-tuning tests: figures with defaults, a logger whose lines the test reads, a test clock. */
import pino from 'pino';
import type { Logger } from '../../lib/observe/logger';
import type { Figures } from '../../lib/tuning/expr';
import type { Clock } from '../../lib/tuning/service';

/** Figures of a calm interval (everything measured, nothing high), with `over` applied. */
export function figures(over: Partial<Figures>): Figures {
  return {
    memory_usage: 0.2, memory_bytes: 100 * 1024 * 1024, cpu_usage: 0.1, connection_wait_time: 0, queue_length: 0,
    error_rate: 0, p99_latency: 10, cache_hit_ratio: 0.5, ...over,
  };
}

export function captureLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

/** A clock that moves only when the test says so; timers fire in due order. */
export class TestClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }

  pending(): number {
    return this.timers.size;
  }

  /** Move time forward by `ms`, firing every timer that falls due (bounded). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let guard = 0; guard < 10_000; guard++) {
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const e of this.timers) if (e[1].at <= end && (next === null || e[1].at < next[1].at)) next = e;
      if (next === null) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}
