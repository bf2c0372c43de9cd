/**
 * L1: an in-process LRU bounded by bytes (body + headers + overhead, see entrySize) with a per-entry TTL.
 *
 * One L1 per process: with `server.workers: N` each worker has its own L1 of `cache.l1.size` bytes, so the
 * pod may hold up to N times that in memory (size it accordingly). Purges and invalidations reach every
 * worker's L1 because they are broadcast (lib/server/ipc.ts) by whoever acts on them.
 */
import { LRUCache } from 'lru-cache';
import type { CacheEntry } from './entry';
import { entrySize } from './entry';

export interface L1Events {
  onEvict(count: number): void;
}

export class L1Cache {
  private lru: LRUCache<string, CacheEntry>;
  private maxBytes: number;
  /** False under memory pressure (lib/perf/overload.ts): nothing new is stored, what is held is still served. */
  admitting = true;

  constructor(maxBytes: number, private readonly events: L1Events | null = null) {
    this.maxBytes = maxBytes;
    this.lru = this.make(maxBytes);
  }

  private make(maxBytes: number): LRUCache<string, CacheEntry> {
    return new LRUCache<string, CacheEntry>({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (e) => Math.max(1, entrySize(e)),
      // TTL is set per entry on set(); expired entries are dropped lazily on get
      ttlAutopurge: false,
      allowStale: false,
      dispose: (_v, _k, reason) => {
        if (reason === 'evict') this.events?.onEvict(1);
      },
    });
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

  /** Store for ttlMs; an entry larger than the whole budget is simply not kept. */
  set(key: string, entry: CacheEntry, ttlMs: number): void {
    if (ttlMs <= 0 || !this.admitting) return;
    const size = entrySize(entry);
    if (size > this.maxBytes) return;
    this.lru.set(key, entry, { ttl: Math.ceil(ttlMs), size });
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

  /** Change the byte budget (auto-tuning); shrinking evicts least recently used entries. */
  resize(maxBytes: number): void {
    if (maxBytes === this.maxBytes) return;
    const old = this.lru;
    this.maxBytes = maxBytes;
    this.lru = this.make(maxBytes);
    // re-insert from least to most recently used so recency order survives
    const items = [...old.rentries()] as Array<[string, CacheEntry]>;
    for (const [k, v] of items) {
      const ttl = old.getRemainingTTL(k);
      if (ttl > 0) this.set(k, v, ttl === Infinity ? 0x7fffffff : ttl);
    }
    old.clear();
  }

  clear(): void {
    this.lru.clear();
  }
}
