/**
 * What the lease server, the local fallback and the tests need from a rate-limit algorithm. Tokens are whole
 * requests; `take` may grant fewer than asked (a lease of a batch takes what is there).
 * All times are milliseconds on one monotonic clock passed in by the caller: the classes hold no clock.
 */
export interface Limiter {
  /** Take up to `want` tokens; returns how many were granted (0..want). */
  take(want: number, now: number): number;
  /** Give back `n` tokens taken earlier and not spent (unused leases). Never above capacity. */
  refund(n: number, now: number): void;
  /** Whole tokens available now. */
  available(now: number): number;
  /** Milliseconds until `n` tokens are available (0 if they are now; Infinity if n > capacity). */
  msUntil(n: number, now: number): number;
  /** Milliseconds until the limiter is full again (the RateLimit field's reset). */
  msUntilFull(now: number): number;
  /**
   * Set the state to "full again in `msUntilFull` ms": the state as another process's clock-free snapshot
   * (msUntilFull) describes it, when the pod's counters move between processes.
   */
  restore(msUntilFull: number, now: number): void;
  /** New limits; the state carries over (clamped), so a reload does not hand out a fresh burst. */
  reconfigure(ratePerSec: number, capacity: number, now: number): void;
  readonly ratePerSec: number;
  readonly capacity: number;
}
