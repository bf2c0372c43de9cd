/**
 * Request coalescing: concurrent misses for one base key send ONE request upstream (the leader's); the others
 * wait for its outcome, bounded by a timeout.
 *
 * Waiters are served from the leader's complete, cacheable response (buffered: bodies up to
 * memory.large_body_threshold, and the draft reads are 5-11 KB), which is also what lets `store_if` be checked
 * before anything is shared. When the leader's response is not cacheable (an error status, no-store, private,
 * store_if refused, Set-Cookie, too large) or the leader fails or times out, each waiter goes upstream itself:
 * an error is never handed out as if it were the answer, and private data is never shared. (A stale entry
 * allowed by stale-if-error is served instead where the rules permit, see lib/stages/cache/lookup.ts.)
 */
import type { CacheEntry } from './entry';

export type FillOutcome = CacheEntry | null;

export class Fill {
  private settled = false;
  private waiters: Array<(e: FillOutcome) => void> = [];
  waiterCount = 0;

  /**
   * `startedAt`: when the leader went looking for the answer (monotonic, Tiers.recent's clock); a request that
   * arrives after an invalidation of the key since then must not wait for this (older) answer.
   */
  constructor(private readonly onSettle: () => void, readonly startedAt = 0) {}

  get done(): boolean {
    return this.settled;
  }

  /** Wait for the leader; resolves null on failure or after timeoutMs. */
  wait(timeoutMs: number): Promise<FillOutcome> {
    this.waiterCount++;
    return new Promise((resolve) => {
      let finished = false;
      const timer = setTimeout(() => { if (!finished) { finished = true; resolve(null); } }, timeoutMs);
      timer.unref();
      this.waiters.push((e) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        resolve(e);
      });
    });
  }

  settle(outcome: FillOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.onSettle();
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn(outcome);
  }
}

export class FillRegistry {
  private readonly fills = new Map<string, Fill>();

  get(key: string): Fill | undefined {
    return this.fills.get(key);
  }

  /**
   * Start a fill for key; the caller is the leader and must settle it. A fill already registered for the key
   * (one an invalidation made unfit to wait for) is replaced; its own leader still settles it.
   */
  start(key: string, startedAt = 0): Fill {
    const f: Fill = new Fill(() => { if (this.fills.get(key) === f) this.fills.delete(key); }, startedAt);
    this.fills.set(key, f);
    return f;
  }

  get size(): number {
    return this.fills.size;
  }
}
