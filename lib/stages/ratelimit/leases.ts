/**
 * A worker's token leases. The exact counters live elsewhere (the primary, or Redis); a worker asks for a small
 * batch of tokens for one limit, spends them locally with no round trip, and gives back what it did not spend
 * within `leaseMs`. Admitted requests are always <= tokens granted <= what the counters allow, so the pod (or
 * the cluster) never admits more than its limit; tokens parked in an idle worker's lease are the only slack,
 * and they go back within leaseMs.
 *
 * When the counters say "empty, next token in X ms" the worker remembers that (deniedUntil) and refuses
 * locally until then, so an overloaded worker also makes no round trip per refused request.
 *
 * Batch size follows the worker's recent demand for that limit: what it would spend until its next batch can
 * arrive, i.e. over one lease period or one round trip to the counters, whichever is longer. A busy limit
 * (batches of 8 or more while the counters still have tokens) asks for its next batch in the background when a
 * quarter of the current one is left, so its requests do not wait for the round trip.
 *
 * Why the round trip, and why the cap is not simply a quarter of the burst: a worker has one request in flight
 * per limit, so it can take at most one batch per round trip. When batches were sized for 50 ms of demand and
 * capped at a quarter of the burst, the pod could take at most workers x burst/4 tokens per round trip. On a
 * loaded machine the round trip (IPC to a CPU-starved primary, answered by a CPU-starved worker) grows to tens or
 * hundreds of ms; the counters then refill faster than the workers can take, fill up to the burst, and the
 * refill beyond it is lost for good: the pod admitted less than burst + rate x time while refusing requests.
 * So a batch may be as large as the limit's refill over one round
 * trip (never more than the burst), requests already waiting are never cut by the cap (they spend their tokens
 * at once, nothing is parked), and a lease lasts at least one round trip so a batch sized for it is not given
 * back before it can be spent.
 *
 * Per-user limits are the exception: one client's requests land on any worker, and the `RateLimit` field it
 * reads must go down by exactly one per request it sends. A token parked in another worker's lease would make
 * the count jump (9, 8, 6) as requests move between workers, so a per-user lease is exactly what the requests
 * waiting for it need, never more, and its count is the counters' own answer. One user's admitted requests are
 * few (its limit), so the round trip per request is cheap; refusals stay local (deniedUntil).
 */
import { LRUCache } from 'lru-cache';
import type { Clock } from './clock';
import type { LimitSpec } from './limits';
import type { GiveItem, TakeItem } from './protocol';
import type { TokenSource } from './sources';

export const DEFAULT_LEASE_MS = 50;
const MAX_BATCH = 256;
/** Smoothing of the round-trip estimate, and its bound (the source's own timeout is 1 s). */
const RTT_WEIGHT = 0.25;
const MAX_RTT_MS = 1000;

export class LeaseEntry {
  /** Leased tokens not yet spent. */
  tokens = 0;
  /** When unspent tokens go back. */
  expiresAt = 0;
  /** Recent round trip to the counters (ms, smoothed): how long a batch must last until the next one can come. */
  rttMs = 0;
  /** The counters were empty: refuse locally until then. */
  deniedUntil = 0;
  /** Tokens left in the counters at the last answer (for the RateLimit field). */
  avail: number;
  /** Tokens spent since the last fetch, and when that was: the demand estimate. */
  used = 0;
  fetchedAt = -1e12;
  pending: Promise<void> | null = null;
  /** Checks waiting on `pending`: the next batch covers them too. */
  waiting = 0;
  /** Ask for the next batch in the background when this few tokens are left (0: no prefetch). */
  prefetchAt = 0;
  /** These tokens came from the pod fallback, not Redis: give them back there. */
  fromFallback = false;
  /** A per-user limit: leased exactly while the source allows it (see the file comment). */
  readonly perUser: boolean;
  /** This entry's fetch in flight leases exactly. */
  exact = false;
  /** The request of the fetch in flight: checks that join it before it leaves (PodSource sends at the end of
   *  the event-loop turn) raise its size, so a burst is asked for as a whole, not one round per arrival. */
  unsent: TakeItem | null = null;
  /** Cached admitted-response headers for (r, t). */
  hdrR = -1;
  hdrT = -1;
  hdr: ReadonlyArray<readonly [string, string]> | null = null;

  constructor(readonly code: number, readonly key: string, public spec: LimitSpec) {
    this.avail = spec.capacity;
    this.perUser = spec.scope === 'per_user';
  }
}

export class Leases {
  private globalEntry: LeaseEntry | null = null;
  private readonly endpoints = new Map<string, LeaseEntry>();
  private readonly users: LRUCache<string, LeaseEntry>;
  /** Entries that hold tokens: the sweep looks only at these. */
  private readonly holders = new Set<LeaseEntry>();
  /** The sweep's timer: runs only while some entry holds tokens (an idle worker wakes for nothing). */
  private timer: NodeJS.Timeout | null = null;
  /** Tokens granted to this worker and given back, by scope code: what was spent is the admitted count. */
  private readonly granted = [0, 0, 0];
  private readonly returned = [0, 0, 0];

  constructor(
    private source: TokenSource,
    private fallback: TokenSource,
    private readonly clock: Clock,
    readonly leaseMs = DEFAULT_LEASE_MS,
    maxUsers = 10_000,
  ) {
    this.users = new LRUCache<string, LeaseEntry>({
      max: maxUsers,
      dispose: (e, _k, reason) => {
        if (reason === 'evict' && e.tokens > 0) this.giveBack([e]);
      },
    });
  }

  /** `e` holds tokens now: the sweep gives them back once they expire. */
  private hold(e: LeaseEntry): void {
    this.holders.add(e);
    if (this.timer === null) {
      this.timer = setInterval(() => this.sweep(), Math.max(5, this.leaseMs));
      this.timer.unref();
    }
  }

  /** Switch where tokens come from (scope pod <-> cluster, new Redis link): every lease goes back first. */
  setSources(source: TokenSource, fallback: TokenSource): void {
    if (source === this.source && fallback === this.fallback) return;
    this.returnAll();
    this.source = source;
    this.fallback = fallback;
    for (const e of this.allEntries()) e.deniedUntil = 0;
  }

  private adopt(e: LeaseEntry, spec: LimitSpec): LeaseEntry {
    if (e.spec !== spec) {
      // a reload: same numbers keep everything; new numbers forget a denial computed under the old ones
      if (e.spec.signature !== spec.signature) e.deniedUntil = 0;
      e.spec = spec;
    }
    return e;
  }

  global(spec: LimitSpec): LeaseEntry {
    const e = this.globalEntry;
    if (e !== null) return e.spec === spec ? e : this.adopt(e, spec);
    return (this.globalEntry = new LeaseEntry(spec.code, '', spec));
  }

  endpoint(key: string, spec: LimitSpec): LeaseEntry {
    let e = this.endpoints.get(key);
    if (e === undefined) this.endpoints.set(key, (e = new LeaseEntry(spec.code, key, spec)));
    return e.spec === spec ? e : this.adopt(e, spec);
  }

  user(identity: string, spec: LimitSpec): LeaseEntry {
    let e = this.users.get(identity);
    if (e === undefined) this.users.set(identity, (e = new LeaseEntry(spec.code, identity, spec)));
    return e.spec === spec ? e : this.adopt(e, spec);
  }

  /** 1: a token was spent; -1: refused (counters empty until deniedUntil); 0: must ask the counters. */
  tryLocal(e: LeaseEntry, now: number): 1 | 0 | -1 {
    if (e.tokens > 0) {
      e.tokens--;
      e.used++;
      // a busy limit gets its next batch before this one runs out, so its requests never wait for it
      if (e.tokens === e.prefetchAt && e.pending === null && e.prefetchAt > 0) void this.fetch(e);
      return 1;
    }
    return now < e.deniedUntil ? -1 : 0;
  }

  /** Put back a token spent by a request that another scope then refused. */
  unspend(e: LeaseEntry): void {
    e.tokens++;
    if (e.used > 0) e.used--;
    if (!this.holders.has(e)) {
      e.expiresAt = this.clock() + this.leaseMs;
      this.hold(e);
    }
  }

  /** Ask the counters for a batch for this entry (one request in flight per entry). */
  fetch(e: LeaseEntry): Promise<void> {
    if (e.pending !== null) {
      // too late once the request has left (Redis sends at once); the caller then asks again after the answer
      if (e.unsent !== null && e.waiting > e.unsent[2]) e.unsent[2] = e.waiting;
      return e.pending;
    }
    const now = this.clock();
    const elapsed = now - e.fetchedAt;
    e.exact = e.perUser && this.source.exactPerUser();
    // the checks waiting now spend their tokens at once: they are asked for whole, never cut by the cap
    let want = Math.max(1, e.waiting);
    if (!e.exact && e.used > 0 && elapsed < 1000) {
      const demand = Math.ceil((e.used * this.horizon(e)) / Math.max(elapsed, 1));
      want = Math.max(want, Math.min(demand, this.batchCap(e)));
    }
    e.used = 0;
    e.fetchedAt = now;
    const item: TakeItem = [e.code, e.key, want, e.spec.ratePerSec, e.spec.capacity];
    e.unsent = item;
    const p = this.source.take(item).then(
      (r) => {
        e.pending = null;
        e.unsent = null;
        const t = this.clock();
        const rtt = Math.min(MAX_RTT_MS, Math.max(0, t - now));
        e.rttMs = e.rttMs === 0 ? rtt : e.rttMs + (rtt - e.rttMs) * RTT_WEIGHT;
        const fromFallback = r[4] === 1;
        if (e.tokens > 0 && fromFallback !== e.fromFallback) this.giveBack([e]);
        e.fromFallback = fromFallback;
        e.avail = r[1];
        e.deniedUntil = r[1] === 0 ? t + Math.max(1, r[2]) : 0;
        e.prefetchAt = !e.exact && r[0] >= 8 && r[1] > 0 ? r[0] >> 2 : 0;
        if (r[0] > 0) {
          this.granted[e.code] += r[0];
          e.tokens += r[0];
          e.expiresAt = t + this.horizon(e);
          this.hold(e);
        }
      },
      () => {
        // sources do not reject (they fall back); if one ever does, the caller's retry decides
        e.pending = null;
        e.unsent = null;
      },
    );
    e.pending = p;
    return p;
  }

  /** How long a batch must last: one lease period, or one round trip to the counters when that is longer. */
  private horizon(e: LeaseEntry): number {
    return Math.max(this.leaseMs, e.rttMs);
  }

  /**
   * The most one batch may take for expected demand: a quarter of the burst (so a worker does not hoard a quiet
   * limit), or the limit's refill over one round trip when that is more (else slow round trips cap what the
   * workers can take below the refill, see the file comment); never more than the burst.
   */
  private batchCap(e: LeaseEntry): number {
    const quarter = Math.min(MAX_BATCH, Math.floor(e.spec.capacity / 4));
    const refill = Math.ceil((e.spec.ratePerSec * e.rttMs) / 1000);
    return Math.max(1, Math.min(e.spec.capacity, Math.max(quarter, refill)));
  }

  /** Give back the unspent tokens of leases that are past their time. */
  sweep(now = this.clock()): void {
    let expired: LeaseEntry[] | null = null;
    for (const e of this.holders) {
      if (e.tokens === 0) this.holders.delete(e);
      else if (now >= e.expiresAt) (expired ??= []).push(e);
    }
    if (expired) this.giveBack(expired);
    if (this.holders.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private giveBack(entries: LeaseEntry[]): void {
    const toSource: GiveItem[] = [];
    const toFallback: GiveItem[] = [];
    for (const e of entries) {
      if (e.tokens <= 0) continue;
      (e.fromFallback ? toFallback : toSource).push([e.code, e.key, e.tokens, e.spec.ratePerSec, e.spec.capacity]);
      this.returned[e.code] += e.tokens;
      e.tokens = 0;
      this.holders.delete(e);
    }
    if (toSource.length) this.source.give(toSource);
    if (toFallback.length) this.fallback.give(toFallback);
  }

  private *allEntries(): Iterable<LeaseEntry> {
    if (this.globalEntry) yield this.globalEntry;
    yield* this.endpoints.values();
    yield* this.users.values();
  }

  /**
   * Requests admitted by each scope (by scope code): tokens granted, less those given back or still leased.
   * Counted per batch, never per request; read at scrape time.
   */
  admitted(): number[] {
    const out = this.granted.map((g, code) => g - this.returned[code]);
    for (const e of this.holders) out[e.code] -= e.tokens;
    return out;
  }

  returnAll(): void {
    this.giveBack([...this.holders]);
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.returnAll();
  }
}
