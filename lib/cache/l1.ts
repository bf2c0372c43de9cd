/**
 * L1: an in-process LRU bounded by bytes (body + headers + overhead, see entrySize) with a per-entry TTL.
 *
 * One L1 per process: with `server.workers: N` each worker has its own L1 of `cache.l1.size` bytes, so the
 * pod may hold up to N times that in memory (size it accordingly). Purges and invalidations reach every
 * worker's L1 because they are broadcast (lib/server/ipc.ts) by whoever acts on them.
 */
import { LRUCache } from 'lru-cache';
import type { CacheEntry } from './entry';
import { addDerivedBytes, entrySize } from './entry';
import { TagIndex } from './tag-index';

/** Where each entry was last stored in an L1, so bytes derived from it later are charged there. */
const holders = new WeakMap<CacheEntry, { readonly l1: L1Cache; readonly key: string }>();

/**
 * Count `bytes` made from `entry` and kept with it (see entry.ts derivedBytes) in the L1 that holds it: its size
 * there grows, and older entries leave if the budget needs it. An entry held nowhere is only marked, so a later
 * store counts them.
 */
export function chargeDerived(entry: CacheEntry, bytes: number): void {
  addDerivedBytes(entry, bytes);
  const h = holders.get(entry);
  if (h !== undefined) h.l1.recharge(h.key, entry);
}

/** What is left of `key`'s retention in `lru`, as set() takes it (none set: the longest a timer allows). */
function remainingTtl(lru: LRUCache<string, CacheEntry>, key: string): number {
  const ttl = lru.getRemainingTTL(key);
  return ttl === Infinity ? 0x7fffffff : Math.ceil(ttl);
}

export interface L1Events {
  onEvict(count: number): void;
}

export class L1Cache {
  private lru: LRUCache<string, CacheEntry>;
  private maxBytes: number;
  /** The keys by tag, for invalidation (lib/cache/invalidation/local.ts L1Sweeper). */
  private readonly tags = new TagIndex();
  /** False under memory pressure (lib/perf/overload.ts): nothing new is stored, what is held is still served. */
  admitting = true;

  constructor(maxBytes: number, private readonly events: L1Events | null = null) {
    this.maxBytes = maxBytes;
    this.lru = this.make(maxBytes);
  }

  private make(maxBytes: number): LRUCache<string, CacheEntry> {
    const lru: LRUCache<string, CacheEntry> = new LRUCache<string, CacheEntry>({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (e) => Math.max(1, entrySize(e)),
      // TTL is set per entry on set(); expired entries are dropped lazily on get
      ttlAutopurge: false,
      // read the clock on every TTL check. lru-cache's default (1 ms) keeps the last reading and arms a 1 ms
      // timer to forget it, so at a few hundred hits a second nearly every hit wakes the event loop once more
      // a millisecond later, and each wake costs more than the clock read it saves.
      ttlResolution: 0,
      allowStale: false,
      dispose: (_v, key, reason) => {
        // a replaced LRU (resize) is cleared after its entries moved to the new one: they stay indexed
        if (lru !== this.lru) return;
        // 'set': the key was stored again and is still here
        if (reason !== 'set') this.tags.remove(key);
        if (reason === 'evict') this.events?.onEvict(1);
      },
    });
    return lru;
  }

  get size(): number {
    return this.lru.size;
  }

  /** Bytes held (as counted by sizeCalculation). */
  get bytes(): number {
    return this.lru.calculatedSize;
  }

  get capacity(): number {
    return this.maxBytes;
  }

  get(key: string): CacheEntry | undefined {
    return this.lru.get(key);
  }

  /** Held and not expired (without touching its recency). */
  has(key: string): boolean {
    return this.lru.has(key);
  }

  /** Store for ttlMs; an entry larger than the whole budget is simply not kept. */
  set(key: string, entry: CacheEntry, ttlMs: number): void {
    if (ttlMs <= 0 || !this.admitting) return;
    this.put(key, entry, Math.ceil(ttlMs));
  }

  /** `entry`'s size changed (chargeDerived): count it again if this L1 still holds it under `key`. */
  recharge(key: string, entry: CacheEntry): void {
    if (this.lru.peek(key) !== entry) return; // replaced, evicted or expired meanwhile
    const ttl = remainingTtl(this.lru, key);
    // lru-cache counts a size again only when the value changes: the entry is taken out and put back (most
    // recently used, as it was just served; older entries leave if the budget needs it)
    this.lru.delete(key);
    this.put(key, entry, ttl);
  }

  /** Hold `entry` at its size now; one larger than the whole budget is not kept (a request serving it still has it). */
  private put(key: string, entry: CacheEntry, ttl: number): void {
    const size = entrySize(entry);
    if (size > this.maxBytes) return;
    this.lru.set(key, entry, { ttl, size });
    this.tags.add(key);
    holders.set(entry, { l1: this, key });
  }

  delete(key: string): boolean {
    return this.lru.delete(key);
  }

  /** Remove every key for which `match` is true; returns how many. */
  deleteMatching(match: (key: string) => boolean): number {
    let n = 0;
    for (const k of [...this.lru.keys()]) {
      if (match(k) && this.lru.delete(k)) n++;
    }
    return n;
  }

  keys(): IterableIterator<string> {
    return this.lru.keys();
  }

  /** The keys under a tag (keys.ts tagsOf), without walking L1. */
  keysTagged(tag: string): readonly string[] {
    return this.tags.keysUnder(tag);
  }

  /** Tags indexed (for tests: the index follows the entries). */
  get taggedCount(): number {
    return this.tags.tags;
  }

  /** Change the byte budget (auto-tuning); shrinking evicts least recently used entries. */
  resize(maxBytes: number): void {
    if (maxBytes === this.maxBytes) return;
    const old = this.lru;
    this.maxBytes = maxBytes;
    this.lru = this.make(maxBytes);
    // set() indexes what is moved; what is not (expired, or evicted by the smaller budget) must leave the index
    this.tags.clear();
    // re-insert from least to most recently used so recency order survives
    const items = [...old.rentries()] as Array<[string, CacheEntry]>;
    for (const [k, v] of items) {
      const ttl = remainingTtl(old, k);
      if (ttl > 0) this.set(k, v, ttl);
    }
    old.clear();
  }

  clear(): void {
    this.lru.clear();
    this.tags.clear();
  }
}
