/**
 * The exact counters of one pod. Lives in the primary (served over IPC to the workers, see service.ts), in the
 * single process when server.workers is 0, and as the last-resort fallback inside a worker that lost its primary.
 *
 * Global and per-endpoint limits are token buckets in a Map (their keys come from the policy: bounded).
 * Per-user limits are sliding windows (GCRA) in an LRU bounded in entries. A window that is full again is the
 * same as none, so nothing is ever deleted from that LRU (no TTL either): it only evicts its least recent user
 * when full. Why: lru-cache clears itself when its last entry is deleted, and clearing fills its arrays for every
 * one of the `max` slots (~0.5 ms at 100,000); a pod with one active user would pay that on each request.
 */
import { LRUCache } from 'lru-cache';
import type { Clock } from './clock';
import type { Limiter } from './limiter';
import { SlidingWindow } from './sliding-window';
import { TokenBucket } from './token-bucket';
import { grantSize, type GiveItem, type LimitSnapshot, type TakeItem, type TakeResult } from './protocol';
import { SCOPE_CODES, SCOPE_NAMES, type ScopeName } from './limits';

/** One limit's state as the status page and `explain` show it. */
export interface BucketState {
  scope: ScopeName;
  /** The per_endpoint key or the user's identity key; '' for global. */
  key: string;
  available: number;
  capacity: number;
  /** 0 when full, 1 when empty. */
  used: number;
  msUntilFull: number;
}

/**
 * The order of the status page's "closest to their limit": most used first; among equally used ones (often many
 * at 100 %: every client that spent its burst), the one that takes longest to refill first, i.e. the one deepest
 * past its limit, which a client that keeps sending is. Negative when `a` comes first.
 */
export function closerToLimit(a: BucketState, b: BucketState): number {
  return b.used - a.used || b.msUntilFull - a.msUntilFull;
}

export const DEFAULT_MAX_USERS = 100_000;

export class LocalStore {
  private readonly buckets = new Map<string, Limiter>();
  private readonly users: LRUCache<string, SlidingWindow>;
  /** Limits changed since the last `changes()` (code + '\0' + key), when someone tracks them. */
  private dirty: Set<string> | null = null;
  /** Called when a limit changes while nothing was pending (`trackChanges`). */
  private onDirty: (() => void) | null = null;

  constructor(private readonly clock: Clock, maxUsers = DEFAULT_MAX_USERS) {
    this.users = new LRUCache<string, SlidingWindow>({ max: maxUsers });
  }

  get userCount(): number {
    return this.users.size;
  }

  private limiter(code: number, key: string, rate: number, cap: number, now: number): Limiter {
    if (code === SCOPE_CODES.per_user) {
      let w = this.users.get(key);
      if (w === undefined) {
        w = new SlidingWindow(rate, cap, now);
        this.users.set(key, w);
      } else if (w.ratePerSec !== rate || w.capacity !== cap) {
        w.reconfigure(rate, cap, now);
      }
      return w;
    }
    const id = code + '\0' + key;
    let b = this.buckets.get(id);
    if (b === undefined) {
      b = new TokenBucket(rate, cap, now);
      this.buckets.set(id, b);
    } else if (b.ratePerSec !== rate || b.capacity !== cap) {
      b.reconfigure(rate, cap, now);
    }
    return b;
  }

  /**
   * The `n` limits closest to their limit (closerToLimit's order). Reads state without touching it (no refill is
   * stored, no LRU recency changes); walks every known user, so it is for the status page's once-a-second poll,
   * never for the request path.
   */
  closest(n: number, now = this.clock()): BucketState[] {
    const out: BucketState[] = [];
    if (n <= 0) return out;
    const consider = (scope: ScopeName, key: string, l: Limiter): void => {
      const available = l.available(now);
      const used = l.capacity > 0 ? 1 - Math.min(available, l.capacity) / l.capacity : 0;
      // less used than the last kept one: out, before building its state (this walks every known user)
      if (out.length === n && used < out[out.length - 1].used) return;
      const state = { scope, key, available, capacity: l.capacity, used, msUntilFull: Math.ceil(l.msUntilFull(now)) };
      if (out.length === n && closerToLimit(state, out[out.length - 1]) >= 0) return;
      out.push(state);
      out.sort(closerToLimit);
      if (out.length > n) out.pop();
    };
    for (const [id, b] of this.buckets) {
      const sep = id.indexOf('\0');
      consider(SCOPE_NAMES[Number(id.slice(0, sep))], id.slice(sep + 1), b);
    }
    for (const [key, w] of this.users.entries()) if (w.msUntilFull(now) > 0) consider('per_user', key, w);
    return out;
  }

  /** One limit's state now, or null when this store does not hold it (never seen, or evicted: it is full). */
  peek(code: number, key: string, now = this.clock()): BucketState | null {
    const l = code === SCOPE_CODES.per_user ? this.users.peek(key) : this.buckets.get(code + '\0' + key);
    if (l === undefined) return null;
    const available = l.available(now);
    return { scope: SCOPE_NAMES[code], key, available, capacity: l.capacity, used: 1 - Math.min(available, l.capacity) / l.capacity, msUntilFull: Math.ceil(l.msUntilFull(now)) };
  }

  /** Remember which limits change, and call `onDirty` when the first one changes after `changes()`. */
  trackChanges(onDirty: () => void): void {
    this.dirty = new Set();
    this.onDirty = onDirty;
  }

  private touched(code: number, key: string): void {
    const d = this.dirty;
    if (d === null) return;
    const first = d.size === 0;
    d.add(code + '\0' + key);
    if (first) this.onDirty!();
  }

  /** The limits changed since the last call (and forget them). */
  changes(now = this.clock()): LimitSnapshot[] {
    const d = this.dirty;
    if (d === null || d.size === 0) return [];
    const out: LimitSnapshot[] = [];
    for (const id of d) {
      const sep = id.indexOf('\0');
      const code = Number(id.slice(0, sep));
      const key = id.slice(sep + 1);
      const l = code === SCOPE_CODES.per_user ? this.users.peek(key) : this.buckets.get(id);
      // a window this store no longer holds (evicted) is full: the receiver refills its copy too
      out.push(l === undefined ? [code, key, 0, 0, 0] : [code, key, l.ratePerSec, l.capacity, l.msUntilFull(now)]);
    }
    d.clear();
    return out;
  }

  /** Every limit that is not full. */
  snapshot(now = this.clock()): LimitSnapshot[] {
    const out: LimitSnapshot[] = [];
    for (const [id, b] of this.buckets) {
      const ms = b.msUntilFull(now);
      if (ms > 0) {
        const sep = id.indexOf('\0');
        out.push([Number(id.slice(0, sep)), id.slice(sep + 1), b.ratePerSec, b.capacity, ms]);
      }
    }
    for (const [key, w] of this.users.entries()) {
      const ms = w.msUntilFull(now);
      if (ms > 0) out.push([SCOPE_CODES.per_user, key, w.ratePerSec, w.capacity, ms]);
    }
    return out;
  }

  /** Take these limits' states as they are (`replace`: and forget every other limit first). */
  restore(items: readonly LimitSnapshot[], replace: boolean, now = this.clock()): void {
    if (replace) {
      this.buckets.clear();
      this.users.clear();
    }
    for (const [code, key, rate, cap, ms] of items) {
      if (code === SCOPE_CODES.per_user && ms <= 0) {
        // a full window is the same as none: refill one this store holds, take no slot for one it does not
        this.users.peek(key)?.restore(0, now);
        continue;
      }
      if (rate <= 0) continue;
      this.limiter(code, key, rate, cap, now).restore(ms, now);
    }
  }

  takeOne(item: TakeItem, now = this.clock()): TakeResult {
    const [code, key, want, rate, cap] = item;
    this.touched(code, key);
    const l = this.limiter(code, key, rate, cap, now);
    const granted = l.take(grantSize(want, l.available(now)), now);
    return [granted, l.available(now), Math.ceil(l.msUntil(1, now)), Math.ceil(l.msUntilFull(now))];
  }

  take(items: readonly TakeItem[]): TakeResult[] {
    const now = this.clock();
    const out = new Array<TakeResult>(items.length);
    for (let i = 0; i < items.length; i++) out[i] = this.takeOne(items[i]!, now);
    return out;
  }

  give(items: readonly GiveItem[]): void {
    const now = this.clock();
    for (const [code, key, n, rate, cap] of items) {
      this.touched(code, key);
      if (code === SCOPE_CODES.per_user) {
        const w = this.users.get(key);
        // an evicted window is already full: nothing to give back to
        if (w === undefined) continue;
        if (w.ratePerSec !== rate || w.capacity !== cap) w.reconfigure(rate, cap, now);
        w.refund(n, now);
      } else {
        this.limiter(code, key, rate, cap, now).refund(n, now);
      }
    }
  }
}
