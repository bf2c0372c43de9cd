/**
 * The cache stage's long-lived part (CacheComponent): the three tiers of lib/cache set up (and resized) from
 * each policy's `cache` section, in-flight fills, background refreshes, L1 replication across the pod's
 * workers, purges, and the size/eviction metrics. Each policy gets an immutable CacheView (lookup.ts) built
 * here, with the policy's cache routes compiled once (plan.ts).
 */
import { join } from 'node:path';
import type { Counter, Registry } from 'prom-client';
import type { Component, Runtime } from '../../core/component';
import type { CachePolicy, LoadedPolicy } from '../../policy/types';
import type { RedisConnection } from '../../redis/client';
import type { Clock } from '../../core/clock';
import { L1Cache } from '../../cache/l1';
import { L2Cache } from '../../cache/l2';
import { L3Cache } from '../../cache/l3';
import { Tiers } from '../../cache/tiers';
import { CacheWriteQueue, type BackgroundWriter } from '../../cache/write-queue';
import { writeBehindOptions } from '../../cache/write-behind';
import { FillRegistry } from '../../cache/coalesce';
import { decodeEntry, encodeEntry } from '../../cache/entry';
import { PREFIX, registeredCounter } from '../../observe/metrics';
import { compileCacheRoute } from './plan';
import { CacheView } from './lookup';
import type { CacheCore, CachedRoute } from './state';

const DEFAULT_LARGE_BODY = 10 * 1024 * 1024;

export interface CacheComponentOptions {
  /** fsync L3 files before renaming (default false: the digests already keep torn files from being served). */
  fsync?: boolean;
  /** Replace the background writer (the pod's write-behind queue). */
  writer?: BackgroundWriter;
}

/** Responses not stored because an invalidation of their key happened while their upstream request was in flight. */
function storeSkippedCounter(registry: Registry): Counter<'reason'> {
  return registeredCounter(registry, PREFIX + 'cache_store_skipped_total', 'Responses not stored in the cache, by reason (invalidated_in_flight: an invalidation of the key happened while its upstream request was in flight).', ['reason']);
}

function evictionCounter(registry: Registry): Counter<'layer'> {
  return registeredCounter(registry, PREFIX + 'cache_evictions_total', 'Cache entries evicted to stay within a tier\'s size budget, by tier.', ['layer']);
}

/** The L3 directory of this process: the configured path, or a per-worker subdirectory with several workers. */
export function l3DirFor(path: string, workers: number, workerIndex: number | null): string {
  if (workerIndex === null || workers <= 1) return path;
  return join(path, `w${workerIndex}`);
}

export class CacheComponent implements Component<CacheView>, CacheCore {
  readonly tiers: Tiers;
  readonly fills = new FillRegistry();
  readonly refreshing = new Set<string>();
  private readonly views = new WeakMap<LoadedPolicy, CacheView | null>();
  private l2Conn: RedisConnection | null = null;
  private l3Dir: string | null = null;
  private readonly evictions: Counter<'layer'>;
  private l2SizeTimer: NodeJS.Timeout | null = null;
  /** Redis's used_memory as last read (null: not read yet, or the read failed). */
  private l2Bytes: number | null = null;
  private warnedNoRedis = false;
  private unreplicate: () => void = () => {};
  private unsubscribe: (() => void) | null = null;

  /** The wall clock every freshness decision of this process's cache uses (Runtime's, injectable in tests). */
  readonly clock: Clock;

  constructor(private readonly rt: Runtime, private readonly opts: CacheComponentOptions = {}) {
    this.clock = rt.clock;
    this.evictions = evictionCounter(rt.metrics.registry);
    const writer = opts.writer ?? new CacheWriteQueue({ batchSize: 10, batchTimeoutMs: 100, maxPending: 1000, log: rt.log, metrics: rt.metrics });
    this.tiers = new Tiers(null, null, null, { l1: 0, l2: 0, l3: 0 }, writer, rt.metrics.cacheRequests, DEFAULT_LARGE_BODY, rt.clock);
    const skippedCounter = storeSkippedCounter(rt.metrics.registry);
    skippedCounter.inc({ reason: 'invalidated_in_flight' }, 0); // at 0 from the start (observe/label-values.ts)
    const skipped = skippedCounter.labels('invalidated_in_flight');
    this.tiers.onStoreSkipped = () => skipped.inc();
    rt.metrics.cacheSizes = this.sizes;
    this.unreplicate = this.replicateAcrossWorkers();
    this.unsubscribe = rt.coordinator.on('bridge-sidecar:cache-purge', (pattern: unknown) => {
      if (typeof pattern === 'string') void this.purgeLocal(pattern);
    });
  }

  configure(next: LoadedPolicy): CacheView | null {
    if (this.views.has(next)) return this.views.get(next) ?? null;
    const view = this.setup(next);
    this.views.set(next, view);
    return view;
  }

  private setup(next: LoadedPolicy): CacheView | null {
    const p = next.policy;
    const c = p.cache;
    const t = this.tiers;
    t.largeBodyThreshold = p.memory?.large_body_threshold ?? DEFAULT_LARGE_BODY;
    // invalidations are remembered for as long as an upstream request can take (older ones are folded into a
    // conservative "started before" barrier, see recent-invalidations.ts)
    t.recent.setWindow(p.upstream.pool.connect_timeout + p.upstream.pool.read_timeout + 5000);
    t.writer.reconfigure?.(writeBehindOptions(p));
    if (c === null || (c.l1 === null && c.l2 === null && c.l3 === null)) {
      t.l1 = null; t.l2 = null; t.l3 = null;
      return null;
    }
    for (const [tier, want] of [['l1', 'lru'], ['l3', 'fifo']] as const) {
      const got = c[tier]?.strategy;
      if (got !== undefined && got !== want) this.rt.log.warn({ tier, strategy: got }, `cache.${tier}.strategy ${got} is not supported: ${tier} evicts ${want}`);
    }
    this.setupL1(c);
    this.setupL2(c);
    this.setupL3(c, p.server.workers);
    t.ttls = { l1: c.l1?.ttl ?? 0, l2: c.l2?.ttl ?? 0, l3: c.l3?.ttl ?? 0 };
    const routes = new Map<number, CachedRoute>();
    const results = this.rt.metrics.routeCacheRequests;
    p.routes.forEach((r, i) => {
      if (r.cache === null) return;
      // the cells exist (at 0) from the policy's start; the endpoint label of a matched route is its name
      const cell = (result: string) => results.cell([r.name, result]);
      routes.set(i, { ...compileCacheRoute(r, r.cache), results: { hit: cell('hit'), stale: cell('stale'), miss: cell('miss'), bypass: cell('bypass') } });
    });
    return new CacheView(this, p, routes);
  }

  private setupL1(c: CachePolicy): void {
    const t = this.tiers;
    if (c.l1 === null) { t.l1 = null; return; }
    this.evictions.inc({ layer: 'l1' }, 0);
    if (t.l1 === null) t.l1 = new L1Cache(c.l1.size, { onEvict: (n) => this.evictions.inc({ layer: 'l1' }, n) });
    else t.l1.resize(c.l1.size);
  }

  private setupL2(c: CachePolicy): void {
    const t = this.tiers;
    const conn = this.rt.redis();
    if (c.l2 === null || conn === null) {
      if (c.l2 !== null && !this.warnedNoRedis) {
        this.warnedNoRedis = true;
        this.rt.log.warn('cache.l2 is configured but there is no `redis` section: L2 is off');
      }
      t.l2 = null;
      this.l2Conn = null;
      return;
    }
    if (t.l2 === null || this.l2Conn !== conn) {
      t.l2 = new L2Cache(conn, c.l2.ttl);
      this.l2Conn = conn;
      // INFO is a round trip to Redis (and to every master of a cluster): read on a timer, not at scrape time, so
      // a slow Redis cannot hold a scrape; read once at once so an early scrape has the figure
      this.l2Bytes = null;
      this.readL2Size();
      if (this.l2SizeTimer === null) {
        this.l2SizeTimer = setInterval(() => this.readL2Size(), 30_000);
        this.l2SizeTimer.unref();
      }
    }
  }

  private setupL3(c: CachePolicy, workers: number): void {
    const t = this.tiers;
    if (c.l3 === null) { t.l3 = null; this.l3Dir = null; return; }
    const dir = l3DirFor(c.l3.path, workers, this.rt.workerIndex);
    const budget = Math.floor(c.l3.size / Math.max(1, this.rt.workerIndex !== null ? workers : 1));
    this.evictions.inc({ layer: 'l3' }, 0);
    if (t.l3 === null || this.l3Dir !== dir) {
      t.l3 = new L3Cache({
        dir,
        maxBytes: budget,
        ttl: c.l3.ttl,
        fsync: this.opts.fsync ?? false,
        onEvict: (n) => this.evictions.inc({ layer: 'l3' }, n),
        onCorrupt: (file, why) => this.rt.log.warn({ file, why }, 'discarded a corrupt L3 cache file'),
        // entries stored before a restart: an unsafe request to their URI must find them (RFC 9111 §4.4)
        onLoaded: (key, meta) => this.tiers.index(key, meta),
      });
      this.l3Dir = dir;
      t.l3.ready.catch((err: unknown) => this.rt.log.error({ err, dir }, 'L3 cache directory could not be opened'));
    } else void t.l3.resize(budget);
  }

  /**
   * One cache per pod: with several workers, what one worker stores in its L1 is sent (through the primary) to
   * every other worker's L1, so a request hits whichever worker its connection reached, with no extra hop on
   * the hit path. Removals already reach every worker (purges, invalidations). The cost is memory: each worker
   * holds the pod's L1 (see docs/cache.md).
   */
  private replicateAcrossWorkers(): () => void {
    const self = this.rt.workerIndex;
    if (self === null) return () => {};
    const tiers = this.tiers;
    const channel = this.rt.coordinator;
    tiers.onL1Store = (key, entry, ttl, startedAt) => {
      // the pod's only worker has no one to send it to: a copy through the primary would be work for nothing
      // (the body encoded, sent, parsed and dropped; at start-up, a fill per request). A worker forked later
      // starts with what it fills itself, as after any restart.
      if (entry.body === null || (channel.role === 'worker' && channel.sole === true)) return;
      const ageMs = startedAt === null ? 0 : Math.max(0, tiers.recent.now() - startedAt);
      channel.broadcast('cache:replicate', { from: self, key, entry: encodeEntry(entry).toString('base64'), ttl, startedAt: Date.now() - ageMs });
    };
    return channel.on('cache:replicate', (m) => {
      if (m.from === self) return; // a channel that echoes to its sender (in one process)
      try {
        // the message may have waited in the primary (busy, or descheduled on a loaded node) while an
        // invalidation of its key reached this worker straight from Redis: its age includes that wait
        tiers.replicate(m.key, decodeEntry(Buffer.from(m.entry, 'base64')), m.ttl, Math.max(0, Date.now() - m.startedAt));
      } catch (err) {
        this.rt.log.warn({ err: (err as Error).message }, 'a replicated cache entry was corrupt: dropped');
      }
    });
  }

  /** cache_size_bytes, at scrape time: L1 and L3 as they are now, L2 as last read. A tier that is off has no sample. */
  private readonly sizes = (): Array<readonly [string, number]> => {
    const out: Array<readonly [string, number]> = [];
    const { l1, l3 } = this.tiers.localSizes();
    if (l1 !== null) out.push(['l1', l1]);
    if (this.tiers.l2 !== null && this.l2Bytes !== null) out.push(['l2', this.l2Bytes]);
    if (l3 !== null) out.push(['l3', l3]);
    return out;
  };

  private readL2Size(): void {
    void this.tiers.l2?.usedMemory().then((b) => { if (b !== null) this.l2Bytes = b; });
  }

  /** Admin purge: remove every key matching the glob from every tier (all workers' L1/L3, and L2). */
  async purge(pattern: string): Promise<number> {
    const n = await this.tiers.purge(pattern);
    // the other workers drop their own L1/L3 copies (this process's listener finds nothing left)
    this.rt.coordinator.broadcast('bridge-sidecar:cache-purge', pattern);
    return n;
  }

  private async purgeLocal(pattern: string): Promise<void> {
    await this.tiers.purge(pattern, false).catch((err: unknown) => this.logError(err));
  }

  /** Resolves when queued background writes (L2/L3) have finished: for tests and shutdown. */
  flush(): Promise<void> {
    return this.tiers.writer.drain();
  }

  logError(err: unknown): void {
    this.rt.log.error({ err }, 'cache store failed');
  }

  /** Change L1's byte budget (auto-tuning, memory pressure). */
  resizeL1(bytes: number): void {
    this.tiers.l1?.resize(bytes);
  }

  /** Memory pressure: L1 stops (false) or resumes (true) storing new entries. */
  admitL1(on: boolean): void {
    if (this.tiers.l1 !== null) this.tiers.l1.admitting = on;
  }

  async close(): Promise<void> {
    if (this.rt.metrics.cacheSizes === this.sizes) this.rt.metrics.cacheSizes = null;
    if (this.l2SizeTimer) clearInterval(this.l2SizeTimer);
    this.unsubscribe?.();
    this.unreplicate();
    await this.tiers.writer.close();
  }
}
