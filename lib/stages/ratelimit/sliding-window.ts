/**
 * Per-user sliding window, kept as GCRA (the generic cell rate algorithm, what NGINX's limit_req does): one
 * number per user, the "theoretical arrival time" (TAT). `requests_per_minute` = L spaces requests
 * T = 60 000 / L ms apart on average; `burst_size` = B lets up to B of them arrive together.
 *
 * Why this is a sliding window and not a fixed one: the allowance is measured from the user's own last
 * requests, never from a clock boundary. A client that spends its budget at 0:59 has, at 1:01, only what
 * accrued in those 2 s (2 requests at 60/min), not a fresh budget as a fixed per-minute counter would give.
 * Over ANY span of W seconds it admits at most B + L × W / 60; a user who keeps sending gets exactly L per
 * minute; a user who was quiet for B × T gets B at once.
 *
 * The state is one float per user, so an LRU of many users stays small, and un-spending (refund) is exact.
 */
import type { Limiter } from './limiter';

export class SlidingWindow implements Limiter {
  /** Theoretical arrival time: the instant the user's allowance is back to full is tat; never below now - … */
  private tat: number;
  /** ms per request */
  private interval: number;
  /** B × T: how far ahead of now TAT may run */
  private tolerance: number;

  constructor(public ratePerSec: number, public capacity: number, now: number) {
    this.interval = 1000 / ratePerSec;
    this.tolerance = capacity * this.interval;
    this.tat = now;
  }

  /** Build from the policy's per-minute figure. */
  static perMinute(requestsPerMinute: number, burst: number, now: number): SlidingWindow {
    return new SlidingWindow(requestsPerMinute / 60, burst, now);
  }

  private tokensAt(now: number): number {
    const debt = this.tat > now ? this.tat - now : 0;
    return (this.tolerance - debt) / this.interval;
  }

  take(want: number, now: number): number {
    const granted = Math.max(0, Math.min(want, Math.floor(this.tokensAt(now) + 1e-9)));
    if (granted > 0) this.tat = Math.max(this.tat, now) + granted * this.interval;
    return granted;
  }

  refund(n: number, now: number): void {
    this.tat = Math.max(now, this.tat - n * this.interval);
  }

  available(now: number): number {
    return Math.floor(this.tokensAt(now) + 1e-9);
  }

  msUntil(n: number, now: number): number {
    if (n > this.capacity) return Infinity;
    const missing = n - this.tokensAt(now);
    return missing <= 1e-9 ? 0 : missing * this.interval;
  }

  msUntilFull(now: number): number {
    return this.tat > now ? this.tat - now : 0;
  }

  restore(msUntilFull: number, now: number): void {
    this.tat = now + Math.max(0, msUntilFull);
  }

  reconfigure(ratePerSec: number, capacity: number, now: number): void {
    // keep the user's used share: the debt in requests is the same before and after
    const usedRequests = (this.tat > now ? this.tat - now : 0) / this.interval;
    this.ratePerSec = ratePerSec;
    this.capacity = capacity;
    this.interval = 1000 / ratePerSec;
    this.tolerance = capacity * this.interval;
    this.tat = now + Math.min(usedRequests, capacity) * this.interval;
  }
}
