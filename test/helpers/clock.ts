/**
 * A wall clock (lib/core/clock.ts) that a test moves by hand, injected through Runtime.clock: a test that needs
 * an entry to go stale advances it instead of sleeping past the TTL. It starts at the real time rounded down to
 * a whole second, so an HTTP Date made from it (second resolution) is exact and ages computed from it are too.
 */
import type { Clock } from '../../lib/core/clock';

export class ManualClock implements Clock {
  private t: number;

  constructor(start: number = Math.floor(Date.now() / 1000) * 1000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  advance(ms: number): void {
    this.t += ms;
  }

  /** This clock's time as an HTTP Date header value. */
  httpDate(): string {
    return new Date(this.t).toUTCString();
  }
}
