/**
 * Recent invalidations of this process, so a fill whose upstream request was already in flight when an
 * invalidation matching its key happened is not stored (the classic cache race; Varnish applies its bans to
 * objects being fetched the same way). The answer is still served to whoever asked: it was correct when the
 * request started. It just must not outlive the invalidation in any tier.
 *
 * Each invalidation (an event's patterns, a purge, from this worker, another worker or another pod) is recorded
 * with this process's monotonic clock when it reaches this process. A store asks `blocks(key, startedAt)` with
 * the monotonic time its upstream request started: blocked when an invalidation matching the key was recorded
 * at or after that time.
 *
 * Bounded: entries older than the window (the longest an upstream request can take) and entries past the count
 * bound are folded into `barrier`, "everything started at or before this time is blocked". Folding never lets a
 * stale answer through, it only refuses to store the rare fill older than the folded entry. The hot path (no
 * invalidation since the fill started) is one comparison.
 *
 * Copies made elsewhere (`storedBefore`): an entry read from L2 or L3, or a sibling worker's replica, was stored
 * by another process, whose background write may land after this process applied the invalidation (another
 * worker's or pod's write-behind of the old answer reaching Redis after the removal; a replica held up in a
 * busy primary). Its own fill start is on another clock, so it is judged by when its answer arrived (its
 * `storedAt`, epoch ms) against when the invalidation was raised (epoch ms, in the pod that raised it): an
 * answer that arrived before the invalidation was raised may predate the write, and is not used.
 */
import { matcherOf } from './invalidation/patterns';

/** Default bound on the number of remembered invalidations. */
export const MAX_RECENT = 1024;
/** Default window: connect + read timeout of the default policy (5 s + 30 s), plus a margin. */
export const DEFAULT_WINDOW_MS = 40_000;

export class RecentInvalidations {
  /** Times (monotonic ms) and matchers of the remembered invalidations, oldest first, in a ring. */
  private readonly times: Float64Array;
  /** When each was raised (epoch ms, the raising pod's clock; a margin added for another pod's clock). */
  private readonly raised: Float64Array;
  /** The latest of `raised` ever recorded (a stored copy newer than it needs no scan). */
  private latestRaised = -Infinity;
  private readonly matchers: Array<((key: string) => boolean) | null>;
  private head = 0;
  private count = 0;
  /** Time of the most recent invalidation or barrier (-Infinity: none yet). */
  private latest = -Infinity;
  /** Everything started at or before this is blocked (folded entries, resyncs). */
  private barrier = -Infinity;

  constructor(
    private windowMs = DEFAULT_WINDOW_MS,
    readonly capacity = MAX_RECENT,
    /** The clock (tests may step it); monotonic, milliseconds. */
    readonly now: () => number = () => performance.now(),
  ) {
    this.times = new Float64Array(capacity);
    this.raised = new Float64Array(capacity);
    this.matchers = new Array<((key: string) => boolean) | null>(capacity).fill(null);
  }

  /** The longest an upstream request can take (policy: connect + read timeout); older entries are folded. */
  setWindow(ms: number): void {
    this.windowMs = Math.max(1000, ms);
  }

  /**
   * An invalidation of these key globs (patterns or exact keys) reached this process now. `raisedAt`: when it
   * was raised (epoch ms; default now, for one raised in this pod).
   */
  record(patterns: readonly string[], raisedAt: number = Date.now()): void {
    if (patterns.length === 0) return;
    const at = this.now();
    this.fold(at);
    if (this.count === this.capacity) this.foldOldest();
    const i = (this.head + this.count) % this.capacity;
    this.times[i] = at;
    this.raised[i] = raisedAt;
    if (raisedAt > this.latestRaised) this.latestRaised = raisedAt;
    this.matchers[i] = matcherOf(patterns);
    this.count++;
    if (at > this.latest) this.latest = at;
  }

  /** Every fill started at or before `at` (default: now) is blocked, whatever its key (e.g. invalidations were missed). */
  blockStartedBefore(at = this.now()): void {
    if (at > this.barrier) this.barrier = at;
    if (at > this.latest) this.latest = at;
  }

  /** Whether a fill of `key` whose upstream request started at `startedAt` (this.now() time) must not be stored. */
  blocks(key: string, startedAt: number): boolean {
    if (startedAt > this.latest) return false; // the hot path: nothing happened since the fill started
    if (startedAt <= this.barrier) return true;
    // newest first; stop at the first invalidation older than the fill
    for (let n = this.count - 1; n >= 0; n--) {
      const i = (this.head + n) % this.capacity;
      if (this.times[i] < startedAt) return false;
      if (this.matchers[i]!(key)) return true;
    }
    return false;
  }

  /**
   * Whether a copy of `key` whose answer arrived at `storedAt` (epoch ms) predates a remembered invalidation
   * of it (arrived at or before it was raised). Only remembered ones count: a copy older than the window is
   * judged by the tiers' own removals alone.
   */
  storedBefore(key: string, storedAt: number): boolean {
    if (storedAt > this.latestRaised) return false; // the hot path: stored after every remembered invalidation
    for (let n = this.count - 1; n >= 0; n--) {
      const i = (this.head + n) % this.capacity;
      if (storedAt <= this.raised[i] && this.matchers[i]!(key)) return true;
    }
    return false;
  }

  /** Remembered invalidations (not counting the barrier): for tests and figures. */
  get size(): number {
    return this.count;
  }

  private fold(now: number): void {
    const oldest = now - this.windowMs;
    while (this.count > 0 && this.times[this.head] < oldest) this.foldOldest();
  }

  private foldOldest(): void {
    const t = this.times[this.head];
    if (t > this.barrier) this.barrier = t;
    this.matchers[this.head] = null;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
  }
}
