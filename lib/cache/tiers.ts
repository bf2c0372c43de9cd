/**
 * The three tiers behind one interface: lookup L1 -> L2 -> L3 (a lower hit fills the upper tiers), store to L1
 * at once and to L2/L3 through the background writer, purge by glob in every tier.
 */
import { startChildSpan, traceRedis, type Traceable } from '../observe/tracing';
import type { CounterCell, FastCounter } from '../observe/fast-metrics';
import type { Built } from './admission';
import type { CacheEntry, EntryMeta } from './entry';
import { retentionMs } from './entry';
import { systemClock, type Clock } from '../core/clock';
import type { L1Cache } from './l1';
import type { L2Cache } from './l2';
import type { L3Cache, L3Hit } from './l3';
import type { BackgroundWriter } from './write-queue';
import { patternMatcher } from './keys';
import { RecentInvalidations } from './recent-invalidations';
import { UriIndex, uriOf } from './uri-index';

export type Layer = 'l1' | 'l2' | 'l3';

export interface Found {
  readonly layer: Layer;
  readonly meta: EntryMeta;
  /** Whole entry, or null when the body must be streamed from L3 (`stream`). */
  readonly entry: CacheEntry | null;
  readonly stream: Extract<L3Hit, { kind: 'stream' }> | null;
}

export interface TierTtls {
  l1: number;
  l2: number;
  l3: number;
}

/** Metric cells by layer and result, resolved once. */
class LookupCounters {
  /** layer -> result -> cell: two property lookups per count, no string built on the hot path. */
  private children: Record<string, Record<string, CounterCell>> = Object.create(null) as Record<string, Record<string, CounterCell>>;
  constructor(private readonly counter: FastCounter) {}
  inc(layer: string, result: string): void {
    const byResult = (this.children[layer] ??= Object.create(null) as Record<string, CounterCell>);
    (byResult[result] ??= this.counter.cell([layer, result])).inc();
  }
}

/** How far two processes' Date.now() may disagree about one moment (whole milliseconds, read at different times). */
const REPLICA_CLOCK_MARGIN_MS = 2;

export class Tiers {
  readonly counters: LookupCounters;
  /**
   * Invalidations that reached this process recently: a fill whose upstream request (or lower-tier read) started
   * before one that matches its key is not stored anywhere (see recent-invalidations.ts).
   */
  readonly recent = new RecentInvalidations();
  /** Target URI -> keys this process stored or read, for RFC 9111 §4.4 invalidation without a scan. */
  readonly uris = new UriIndex();
  /** Called with every entry this process stores in its L1 from an answer (not from a replica): see replicate. */
  onL1Store: ((key: string, entry: CacheEntry, ttlMs: number, startedAt: number | null) => void) | null = null;
  /** Called once per entry not stored (or whose queued L2/L3 write was dropped) because of `recent`. */
  onStoreSkipped: (() => void) | null = null;

  constructor(
    public l1: L1Cache | null,
    public l2: L2Cache | null,
    public l3: L3Cache | null,
    public ttls: TierTtls,
    public writer: BackgroundWriter,
    requests: FastCounter,
    /** Bodies larger than this live in L3 only (streamed), never in L1/L2. */
    public largeBodyThreshold: number,
    /**
     * The clock an entry's freshness was computed with (Runtime's): how long a tier keeps an entry is measured
     * on it too. Date.now() here gave a test's hand-driven clock a retention short by up to its lag (a flake).
     */
    private readonly clock: Clock = systemClock,
  ) {
    this.counters = new LookupCounters(requests);
  }

  /**
   * L1 only, synchronously (the hot path). Counts the L1 result. With a traced request (`ctx`), each tier looked
   * up is a child span of the request; untraced, that costs one null check.
   */
  getL1(key: string, ctx?: Traceable): Found | null {
    if (this.l1 === null) return null;
    const e = this.l1.get(key);
    if (ctx !== undefined && ctx.traceId !== null) startChildSpan(ctx, 'cache.lookup l1', { 'cache.layer': 'l1' }).end(null, { 'cache.result': e === undefined ? 'miss' : 'hit' });
    if (e === undefined) {
      this.counters.inc('l1', 'miss');
      return null;
    }
    // a Vary marker is half a lookup: the entry it points to is looked up next and counted then (one hit, once)
    if (e.meta.kind === 'response') this.counters.inc('l1', 'hit');
    return { layer: 'l1', meta: e.meta, entry: e, stream: null };
  }

  /** L2 then L3 (after an L1 miss). A hit fills the tiers above it. */
  async getLower(key: string, ctx?: Traceable): Promise<Found | null> {
    const traced = ctx !== undefined && ctx.traceId !== null;
    // what we read may be removed by an invalidation while the read is on its way: then it is still served to
    // this request, but not copied into the tiers above
    const startedAt = this.recent.now();
    if (this.l2 !== null) {
      const span = traced ? startChildSpan(ctx, 'cache.lookup l2', { 'cache.layer': 'l2' }) : null;
      const r = await (traced ? traceRedis(ctx, 'GET', this.l2.get(key)) : this.l2.get(key));
      if (span !== null) span.end(r.entry === null && r.error ? 'redis_error' : null, { 'cache.result': r.entry !== null ? 'hit' : r.error ? 'error' : 'miss' });
      if (r.entry !== null && this.recent.storedBefore(key, r.entry.meta.storedAt)) {
        // written back by another worker's or pod's late write-behind after the invalidation removed it
        void this.l2.delete(key).catch(() => {});
        this.counters.inc('l2', 'miss');
      } else if (r.entry !== null) {
        if (r.entry.meta.kind === 'response') this.counters.inc('l2', 'hit');
        if (!this.recent.blocks(key, startedAt)) this.fillL1(key, r.entry);
        return { layer: 'l2', meta: r.entry.meta, entry: r.entry, stream: null };
      } else this.counters.inc('l2', r.error ? 'error' : 'miss');
    }
    if (this.l3 !== null) {
      const span = traced ? startChildSpan(ctx, 'cache.lookup l3', { 'cache.layer': 'l3' }) : null;
      let h = await this.l3.get(key);
      const meta = h === null ? null : h.kind === 'whole' ? h.entry.meta : h.meta;
      if (meta !== null && this.recent.storedBefore(key, meta.storedAt)) {
        // an old copy's background write landed after the invalidation's removal
        void this.l3.delete(key).catch(() => {});
        h = null;
      }
      span?.end(null, { 'cache.result': h !== null ? 'hit' : 'miss' });
      if (h !== null) {
        if (meta!.kind === 'response') this.counters.inc('l3', 'hit');
        if (h.kind === 'whole') {
          if (!this.recent.blocks(key, startedAt)) this.promoteFromL3(key, h.entry, startedAt);
          return { layer: 'l3', meta: h.entry.meta, entry: h.entry, stream: null };
        }
        return { layer: 'l3', meta: h.meta, entry: null, stream: h };
      }
      this.counters.inc('l3', 'miss');
    }
    return null;
  }

  async get(key: string): Promise<Found | null> {
    return this.getL1(key) ?? (await this.getLower(key));
  }

  /**
   * An L3 hit fills L1 now and L2 in the background (dropped if an invalidation comes first). L3 is per
   * worker, so the L1 fill is also handed to onL1Store like a store: the siblings' L1 gets the entry too, or
   * after a restart a key in one worker's L3 stayed a miss in every other worker.
   */
  private promoteFromL3(key: string, entry: CacheEntry, startedAt: number): void {
    const l1Ttl = this.fillL1(key, entry);
    if (l1Ttl > 0) this.onL1Store?.(key, entry, l1Ttl, startedAt);
    const l2 = this.l2;
    if (l2 === null || entry.body === null || entry.body.length > this.largeBodyThreshold) return;
    const ttl = retentionMs(entry.meta, this.clock.now(), this.ttls.l2);
    this.writer.enqueue(() => lateChecked({ blocked: () => this.recent.blocks(key, startedAt) }, () => l2.set(key, entry, ttl), () => l2.delete(key)));
  }

  /** Copy an entry found below into L1; returns the L1 retention it got (0: not held in L1). */
  private fillL1(key: string, entry: CacheEntry): number {
    this.index(key, entry.meta);
    if (this.l1 === null || entry.body === null || entry.body.length > this.largeBodyThreshold) return 0;
    const ttl = retentionMs(entry.meta, this.clock.now(), this.ttls.l1);
    this.l1.set(key, entry, ttl);
    return ttl;
  }

  /**
   * Store a whole entry: L1 now, L2 and L3 in the background. With `startedAt` (this.recent.now() time when the
   * upstream request that produced it started), nothing is stored when an invalidation matching the key has
   * happened since, and a queued L2/L3 write is dropped when one happens before it runs. Returns false when
   * the entry was refused.
   */
  store(key: string, entry: CacheEntry, startedAt: number | null = null): boolean {
    if (startedAt !== null && this.refuses(key, startedAt)) return false;
    this.write(key, entry, startedAt);
    return true;
  }

  /** A built answer: its Vary marker (if any), then the entry; refused as a whole when the entry's key is. */
  storeBuilt(built: Built, startedAt: number): boolean {
    if (this.refuses(built.key, startedAt)) return false;
    if (built.marker !== null) {
      this.store(built.marker.meta.key, built.marker, startedAt);
      this.index(built.marker.meta.key, built.entry.meta);
    }
    this.write(built.key, built.entry, startedAt);
    return true;
  }

  /** Index `key` under the target URI of the request that `meta`'s answer is for. */
  index(key: string, meta: EntryMeta): void {
    const r = meta.request;
    if (r !== null) this.uris.add(uriOf(r.path, r.query), key);
  }

  private write(key: string, entry: CacheEntry, startedAt: number | null): void {
    this.index(key, entry.meta);
    const now = this.clock.now();
    const small = entry.body !== null && entry.body.length <= this.largeBodyThreshold;
    if (small && this.l1 !== null) {
      const ttl = retentionMs(entry.meta, now, this.ttls.l1);
      this.l1.set(key, entry, ttl);
      this.onL1Store?.(key, entry, ttl, startedAt);
    }
    const late = startedAt === null ? null : new LateInvalidationCheck(this, key, startedAt);
    if (small && this.l2 !== null) {
      const l2 = this.l2;
      const ttl = retentionMs(entry.meta, now, this.ttls.l2);
      if (ttl > 0) this.writer.enqueue(() => lateChecked(late, () => l2.set(key, entry, ttl), () => l2.delete(key)));
    }
    if (this.l3 !== null) {
      const l3 = this.l3;
      const ttl = retentionMs(entry.meta, now, this.ttls.l3);
      if (ttl > 0) this.writer.enqueue(() => lateChecked(late, () => l3.set(key, entry, ttl), () => l3.delete(key)));
    }
  }

  /**
   * A sibling worker's L1 store: held here too, unless an invalidation of the key reached this process after
   * the sibling's upstream request started (`ageMs` before now, transit through the primary included). The
   * sibling's clock and this one agree only to the millisecond (Date.now() across processes): the margin
   * refuses a replica that started within it of an invalidation rather than keep one that may predate it.
   */
  replicate(key: string, entry: CacheEntry, ttlMs: number, ageMs: number): void {
    if (this.l1 === null || this.recent.blocks(key, this.recent.now() - ageMs - REPLICA_CLOCK_MARGIN_MS)) return;
    if (this.recent.storedBefore(key, entry.meta.storedAt)) return;
    this.index(key, entry.meta);
    this.l1.set(key, entry, ttlMs);
  }

  /** Whether a store of `key` for a fill started at `startedAt` would be refused (counts it when it would). */
  refuses(key: string, startedAt: number): boolean {
    if (!this.recent.blocks(key, startedAt)) return false;
    this.onStoreSkipped?.();
    return true;
  }

  /** Remove one key everywhere (e.g. a corrupt or superseded entry). */
  async delete(key: string): Promise<void> {
    this.l1?.delete(key);
    await Promise.all([this.l2?.delete(key).catch(() => {}), this.l3?.delete(key)]);
  }

  /** Remove every key matching a glob from this process's tiers (and L2, shared, unless told not to). Returns the count. */
  async purge(pattern: string, includeShared = true): Promise<number> {
    this.recent.record([pattern]); // a fill in flight now must not put the purged data back
    const match = patternMatcher(pattern);
    let n = this.l1?.deleteMatching(match) ?? 0;
    if (this.l3 !== null) n += await this.l3.deleteMatching(match);
    if (includeShared && this.l2 !== null) n += await this.l2.deleteMatching(pattern).catch(() => 0);
    return n;
  }

  /** Bytes this process holds in its own tiers now (L2's figure is the Redis server's: see l2.usedMemory). */
  localSizes(): { l1: number | null; l3: number | null } {
    return { l1: this.l1?.bytes ?? null, l3: this.l3?.bytes ?? null };
  }
}

/**
 * A background write of an entry, checked against invalidations twice: when it runs (a queued write the event
 * overtook is dropped) and when it has landed (one that was already on its way when the event came is
 * removed again: the event's own removal may have run before it landed, and nothing else would find it).
 */
async function lateChecked(check: { blocked(): boolean } | null, write: () => Promise<void>, undo: () => Promise<unknown>): Promise<void> {
  if (check !== null && check.blocked()) return;
  await write();
  if (check !== null && check.blocked()) await undo();
}

/** The re-check of a queued L2/L3 write when it runs; counts one skipped store per entry, however many tiers. */
class LateInvalidationCheck {
  private counted = false;
  constructor(private readonly tiers: Tiers, private readonly key: string, private readonly startedAt: number) {}
  blocked(): boolean {
    if (!this.tiers.recent.blocks(this.key, this.startedAt)) return false;
    if (!this.counted) {
      this.counted = true;
      this.tiers.onStoreSkipped?.();
    }
    return true;
  }
}
