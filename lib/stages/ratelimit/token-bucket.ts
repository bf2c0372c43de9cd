/**
 * Token bucket: `capacity` tokens, refilled continuously at `ratePerSec`. Starts full, so a client that was
 * quiet may send `capacity` requests at once, then `ratePerSec` per second. Over any run of T seconds it admits
 * at most capacity + ratePerSec × T.
 */
import type { Limiter } from './limiter';

export class TokenBucket implements Limiter {
  private tokens: number;
  private last: number;
  /** tokens per millisecond */
  private perMs: number;

  constructor(public ratePerSec: number, public capacity: number, now: number) {
    this.perMs = ratePerSec / 1000;
    this.tokens = capacity;
    this.last = now;
  }

  private refill(now: number): void {
    if (now > this.last) {
      this.tokens = Math.min(this.capacity, this.tokens + (now - this.last) * this.perMs);
      this.last = now;
    }
  }

  take(want: number, now: number): number {
    this.refill(now);
    const granted = Math.max(0, Math.min(want, Math.floor(this.tokens + 1e-9)));
    this.tokens -= granted;
    return granted;
  }

  refund(n: number, now: number): void {
    this.refill(now);
    this.tokens = Math.min(this.capacity, this.tokens + n);
  }

  available(now: number): number {
    this.refill(now);
    return Math.floor(this.tokens + 1e-9);
  }

  msUntil(n: number, now: number): number {
    if (n > this.capacity) return Infinity;
    this.refill(now);
    const missing = n - this.tokens;
    return missing <= 1e-9 ? 0 : missing / this.perMs;
  }

  msUntilFull(now: number): number {
    this.refill(now);
    return (this.capacity - this.tokens) / this.perMs;
  }

  restore(msUntilFull: number, now: number): void {
    this.tokens = Math.max(0, this.capacity - msUntilFull * this.perMs);
    this.last = now;
  }

  reconfigure(ratePerSec: number, capacity: number, now: number): void {
    this.refill(now);
    this.ratePerSec = ratePerSec;
    this.perMs = ratePerSec / 1000;
    this.capacity = capacity;
    this.tokens = Math.min(this.tokens, capacity);
  }
}
