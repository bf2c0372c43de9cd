/**
 * The response cache stage (lookup, stale-if-error) and its store filter, over the three tiers of lib/cache.
 *
 *   lookup:   route has `cache` -> key -> L1 (sync) -> L2 -> L3 -> fresh? serve : stale within
 *             stale-while-revalidate? serve + one background refresh : coalesce (wait for the in-flight leader)
 *             or become the leader (conditional request upstream when the stale entry has validators)
 *   filter:   upstream head -> storable? -> pass the body through while collecting it -> store (L1 now, L2/L3
 *             in the background) and hand the entry to coalesced waiters; 304 to our revalidation -> refresh the
 *             entry and answer with it; 5xx with a stale entry allowed by stale-if-error -> serve that instead
 *   onFailure: upstream unreachable / timed out / request shed -> stale-if-error
 *
 * Nothing is stored (in any tier) for a fill whose upstream request started before an invalidation of its key
 * reached this process (Tiers.recent): the answer is still served, and handed to the waiters that joined before.
 *
 * State (tiers, in-flight fills, refreshes) lives in CacheComponent for the life of the process; each policy
 * gets an immutable CacheView (compiled key templates and rules per route) that is the cache Stage of
 * that policy's pipeline (lookup on the request, stale-if-error on failure, store on the response).
 */
import { join } from 'node:path';
import { Transform } from 'node:stream';
import type { Counter, Registry } from 'prom-client';
import type { Component, Runtime } from '../core/component';
import { StageSlot, type FailureKind, type ResponseHead, type Stage } from '../core/stage';
import type { RequestContext } from '../core/context';
import type { CachePolicy, LoadedPolicy, Policy, UpstreamPolicy } from '../policy/types';
import type { RedisConnection } from '../redis/client';
import { L1Cache } from '../cache/l1';
import { L2Cache } from '../cache/l2';
import { L3Cache, type LargeWriter } from '../cache/l3';
import { Tiers, type Found } from '../cache/tiers';
import { CacheWriteQueue, type BackgroundWriter } from '../cache/write-queue';
import { writeBehindOptions } from '../cache/write-behind';
import { FillRegistry, type Fill } from '../cache/coalesce';
import { varyKey } from '../cache/keys';
import { compileCacheRoute, planLookup, type CacheRouteView } from './cache-plan';
import type { RequestDirectives } from '../cache/http-semantics';
import { conditionalMatches } from '../cache/http-semantics';
import type { StoreRequest } from '../cache/admission';
import { buildEntry, buildMeta, headNotStorable, markerFor, refreshWith304, storeIfPasses } from '../cache/admission';
import type { CacheEntry } from '../cache/entry';
import { decodeEntry, encodeEntry, retentionMs } from '../cache/entry';
import { CACHE_NAME, headFor, isConditional, satisfiesConditional, sendEntry, ttlSeconds } from '../cache/respond';
import { fetchUpstream } from '../cache/refresh';
import { rawId } from '../cache/jsonrpc';
import { replayBody } from '../cache/jsonrpc-replay';
import { PREFIX, registeredCounter } from '../observe/metrics';
import type { Clock } from '../core/clock';

const DEFAULT_LARGE_BODY = 10 * 1024 * 1024;
const HOP_BY_HOP_REQ = new Set(['connection', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length']);

type RouteView = CacheRouteView;

interface RequestState {
  readonly view: CacheView;
  readonly route: RouteView;
  readonly base: string;
  readonly directives: RequestDirectives;
  requestTime: number;
  /**
   * When the answer's upstream request started (Tiers.recent's monotonic clock): the lookup's time, then the
   * proxy's dispatch time once the head arrives. An invalidation of the key after this means the answer is
   * served but not stored.
   */
  upstreamStart: number;
  /** A stale entry found by the lookup: revalidated, or served by stale-if-error. */
  stale: Found | null;
  /** Set when this request leads the fill of `base`. */
  fill: Fill | null;
  /** We made the upstream request conditional with the stale entry's validators. */
  revalidating: boolean;
  /** The client's own If-None-Match / If-Modified-Since, removed from the upstream request and answered here. */
  clientConditional: Record<string, string> | null;
}


/** reliability (issue 13): an entry stored more than this far in our future was stored before a clock step back. */
const CLOCK_STEP_TOLERANCE_MS = 60_000;
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

export class CacheComponent implements Component<CacheView> {
  readonly tiers: Tiers;
  readonly fills = new FillRegistry();
  readonly refreshing = new Set<string>();
  private readonly views = new WeakMap<LoadedPolicy, CacheView | null>();
  private l2Conn: RedisConnection | null = null;
  private l3Dir: string | null = null;
  private readonly evictions: Counter<'layer'>;
  private gaugeTimer: NodeJS.Timeout;
  private l2SizeTimer: NodeJS.Timeout | null = null;
  private warnedNoRedis = false;
  private unreplicate: () => void = () => {};
  private unsubscribe: (() => void) | null = null;

  /** The wall clock every freshness decision of this process's cache uses (Runtime's, injectable in tests). */
  readonly clock: Clock;

  constructor(private readonly rt: Runtime, private readonly opts: CacheComponentOptions = {}) {
    this.clock = rt.clock;
    this.evictions = evictionCounter(rt.metrics.registry);
    const writer = opts.writer ?? new CacheWriteQueue({ batchSize: 10, batchTimeoutMs: 100, maxPending: 1000, log: rt.log, metrics: rt.metrics });
    this.tiers = new Tiers(null, null, null, { l1: 0, l2: 0, l3: 0 }, writer, rt.metrics.cacheRequests, rt.metrics.cacheSize, DEFAULT_LARGE_BODY);
    const skippedCounter = storeSkippedCounter(rt.metrics.registry);
    skippedCounter.inc({ reason: 'invalidated_in_flight' }, 0); // at 0 from the start (observe/label-values.ts)
    const skipped = skippedCounter.labels('invalidated_in_flight');
    this.tiers.onStoreSkipped = () => skipped.inc();
    this.gaugeTimer = setInterval(() => this.tiers.updateSizeGauges(), 5000);
    this.gaugeTimer.unref();
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
    const routes = new Map<number, RouteView>();
    p.routes.forEach((r, i) => {
      if (r.cache === null) return;
      routes.set(i, compileCacheRoute(r, r.cache));
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
      if (this.l2SizeTimer === null) {
        this.l2SizeTimer = setInterval(() => {
          void this.tiers.l2?.usedMemory().then((b) => { if (b !== null) this.rt.metrics.cacheSize.set({ layer: 'l2' }, b); });
        }, 30_000);
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
    tiers.onL1Store = (key, entry, ttl, startedAt) => {
      if (entry.body === null) return;
      const ageMs = startedAt === null ? 0 : Math.max(0, tiers.recent.now() - startedAt);
      this.rt.coordinator.broadcast('cache:replicate', { from: self, key, entry: encodeEntry(entry).toString('base64'), ttl, ageMs });
    };
    return this.rt.coordinator.on('cache:replicate', (m) => {
      if (m.from === self) return;
      try {
        tiers.replicate(m.key, decodeEntry(Buffer.from(m.entry, 'base64')), m.ttl, m.ageMs);
      } catch (err) {
        this.rt.log.warn({ err: (err as Error).message }, 'a replicated cache entry was corrupt: dropped');
      }
    });
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
    clearInterval(this.gaugeTimer);
    if (this.l2SizeTimer) clearInterval(this.l2SizeTimer);
    this.unsubscribe?.();
    this.unreplicate();
    await this.tiers.writer.close();
  }
}

/** A request's cache state (its key, the stale copy, the fill it leads), from lookup to store. */
const requestState = new StageSlot<RequestState>();

/** One policy's cache stage: lookup on the request, stale-if-error on failure, store on the response. */
export class CacheView implements Stage {
  readonly name = 'cache';
  readonly span = 'cache.lookup';
  private readonly honourClient: boolean;
  private readonly coalesceTimeout: number;
  private readonly upstream: UpstreamPolicy;
  private readonly readTimeout: number;

  constructor(
    private readonly comp: CacheComponent,
    readonly policy: Policy,
    private readonly routes: ReadonlyMap<number, RouteView>,
  ) {
    this.honourClient = policy.cache?.honor_client_no_cache ?? false;
    this.upstream = policy.upstream;
    this.readTimeout = policy.upstream.pool.read_timeout;
    this.coalesceTimeout = policy.upstream.pool.connect_timeout + policy.upstream.pool.read_timeout;
  }

  // ---- lookup --------------------------------------------------------------------------------------------

  onRequest(ctx: RequestContext): boolean | Promise<boolean> {
    const route = ctx.route;
    if (route === null) return false;
    const rv = this.routes.get(route.index);
    if (rv === undefined) return false;
    const plan = planLookup(route, rv, this.honourClient, ctx);
    if (!plan.lookup) {
      this.bypass(ctx, plan.status);
      return false;
    }
    const { base, directives } = plan;
    if (directives.noCache) {
      requestState.set(ctx, this.state(rv, base, directives));
      this.bypass(ctx, 'fwd=request');
      return false;
    }
    const tiers = this.comp.tiers;
    const first = tiers.getL1(base, ctx);
    // the hot path: a fresh L1 hit is served without allocating any per-request state
    if (first !== null && first.meta.kind === 'response' && this.serveIfFresh(ctx, first)) return true;
    const st = this.state(rv, base, directives);
    if (first !== null && first.meta.kind === 'response' && this.useFound(ctx, st, first)) return true;
    if (first === null && tiers.l2 === null && tiers.l3 === null) return this.miss(ctx, st);
    return this.slowLookup(ctx, st, first);
  }

  private state(route: RouteView, base: string, directives: RequestDirectives): RequestState {
    return { view: this, route, base, directives, requestTime: this.comp.clock.now(), upstreamStart: this.comp.tiers.recent.now(), stale: null, fill: null, revalidating: false, clientConditional: null };
  }

  private serveIfFresh(ctx: RequestContext, found: Found): boolean {
    const now = this.comp.clock.now();
    if (now >= found.meta.freshUntil) return false;
    if (found.entry === null && this.isJsonRpc(ctx)) return false; // a streamed (large) body cannot take another id
    // reliability (issue 13): stored "in the future" means the wall clock stepped back since (NTP, VM resume):
    // its freshUntil is then up to that step too far ahead (a 5 m entry stayed fresh for hours). Treat it as
    // stale, so it is refreshed; the tolerance absorbs ordinary clock skew between pods sharing L2.
    if (found.meta.storedAt - now > CLOCK_STEP_TOLERANCE_MS) return false;
    this.serve(ctx, found, `hit; ttl=${ttlSeconds(found.meta, now)}; detail=${found.layer}`, now);
    return true;
  }

  private bypass(ctx: RequestContext, status: string): void {
    ctx.cacheStatus = status;
    ctx.addHeader('cache-status', `${CACHE_NAME}; ${status}`);
  }

  private async slowLookup(ctx: RequestContext, st: RequestState, first: Found | null): Promise<boolean> {
    const tiers = this.comp.tiers;
    let found = first;
    if (found === null) found = await tiers.getLower(st.base, ctx);
    if (found !== null && found.meta.kind === 'vary') {
      const vk = varyKey(st.base, found.meta.vary, ctx.req.headers);
      found = tiers.getL1(vk, ctx) ?? (await tiers.getLower(vk, ctx));
      if (found !== null && found.meta.kind !== 'response') found = null;
    }
    if (ctx.res.destroyed) return true;
    if (found !== null && found !== st.stale && this.useFound(ctx, st, found)) return true;
    return this.miss(ctx, st);
  }

  /** Serve `found` when fresh (or within stale-while-revalidate); otherwise remember it as the stale copy. */
  private useFound(ctx: RequestContext, st: RequestState, found: Found): boolean {
    if (this.serveIfFresh(ctx, found)) return true;
    const now = this.comp.clock.now();
    const meta = found.meta;
    if (!meta.mustRevalidate && now < meta.swrUntil && ctx.method !== 'HEAD') {
      this.serve(ctx, found, `hit; ttl=${ttlSeconds(meta, now)}; detail=stale-while-revalidate`, now);
      this.comp.tiers.counters.inc(found.layer, 'stale');
      this.refreshInBackground(ctx, st, found);
      return true;
    }
    st.stale = found;
    return false;
  }

  private isJsonRpc(ctx: RequestContext): boolean {
    return ctx.route !== null && this.routes.get(ctx.route.index)?.jsonrpc === true;
  }

  /** The stored body to send for this request: a JSON-RPC answer gets the request's own id. */
  private bodyFor(ctx: RequestContext, entry: CacheEntry | null): Buffer | null {
    if (entry === null || !this.isJsonRpc(ctx)) return entry?.body ?? null;
    const id = rawId(ctx.body);
    return id === null ? null : replayBody(entry, id);
  }

  private serve(ctx: RequestContext, found: Found, status: string, now: number): void {
    const cond = satisfiesConditional(ctx.method, ctx.req.headers, found.meta);
    const body = this.bodyFor(ctx, found.entry);
    const head = headFor(found.meta, ctx.extraHeaders, `${CACHE_NAME}; ${status}`, now, cond, body?.length);
    sendEntry(ctx.res, ctx.method, head, body, found.stream ? found.stream.open : null);
    ctx.responded = true;
    ctx.cacheStatus = status;
  }

  private miss(ctx: RequestContext, st: RequestState): boolean | Promise<boolean> {
    requestState.set(ctx, st);
    if (st.directives.onlyIfCached) {
      ctx.res.writeHead(504, { 'cache-status': `${CACHE_NAME}; fwd=miss; detail=only-if-cached`, 'content-length': '0' });
      ctx.res.end();
      ctx.responded = true;
      ctx.cacheStatus = 'fwd=miss; detail=only-if-cached';
      return true;
    }
    if (ctx.method === 'HEAD') return false; // answered by the upstream, never stored, never leads a fill
    const inflight = this.comp.fills.get(st.base);
    // a fill started before an invalidation of this key would hand us the older answer: lead a new one instead
    if (inflight !== undefined && !inflight.done && !this.comp.tiers.recent.blocks(st.base, inflight.startedAt)) return this.waitForLeader(ctx, st, inflight);
    this.lead(ctx, st);
    return false;
  }

  private lead(ctx: RequestContext, st: RequestState): void {
    const fill = this.comp.fills.start(st.base, st.upstreamStart);
    st.fill = fill;
    ctx.res.once('close', () => fill.settle(null));
    this.prepareUpstreamRequest(ctx, st);
  }

  /** Make the upstream request conditional on our stale copy, or strip the client's conditional headers. */
  private prepareUpstreamRequest(ctx: RequestContext, st: RequestState): void {
    const h = ctx.req.headers;
    if (ctx.method === 'GET' && st.clientConditional === null) {
      // from here on the client's conditionals are answered by us, against whatever the upstream returns
      const saved: Record<string, string> = {};
      const inm = h['if-none-match'];
      const ims = h['if-modified-since'];
      if (inm !== undefined) saved['if-none-match'] = inm;
      if (ims !== undefined) saved['if-modified-since'] = ims;
      st.clientConditional = saved;
      delete h['if-none-match'];
      delete h['if-modified-since'];
    }
    const stale = st.stale;
    if (stale !== null && stale.entry !== null && (stale.meta.etag !== null || stale.meta.lastModified !== null)) {
      if (stale.meta.etag !== null) h['if-none-match'] = stale.meta.etag;
      if (stale.meta.lastModified !== null) h['if-modified-since'] = stale.meta.lastModified;
      st.revalidating = true;
    }
  }

  private async waitForLeader(ctx: RequestContext, st: RequestState, fill: Fill): Promise<boolean> {
    const entry = await fill.wait(this.coalesceTimeout);
    if (ctx.res.destroyed) return true;
    const now = this.comp.clock.now();
    if (entry !== null && (entry.meta.vary.length === 0 || varyKey(st.base, entry.meta.vary, ctx.req.headers) === entry.meta.key)) {
      this.comp.tiers.counters.inc('coalesce', 'hit');
      this.serve(ctx, { layer: 'l1', meta: entry.meta, entry, stream: null }, `hit; ttl=${ttlSeconds(entry.meta, now)}; detail=coalesced`, now);
      return true;
    }
    this.comp.tiers.counters.inc('coalesce', 'miss');
    if (st.stale !== null && this.staleIfErrorAllowed(st.stale, now)) {
      this.serve(ctx, st.stale, `hit; ttl=${ttlSeconds(st.stale.meta, now)}; detail=stale-if-error`, now);
      return true;
    }
    // the leader's answer was not shareable (or it failed): go upstream ourselves, without leading a new fill
    this.prepareUpstreamRequest(ctx, st);
    return false;
  }

  private staleIfErrorAllowed(found: Found, now: number): boolean {
    return !found.meta.mustRevalidate && now < found.meta.sieUntil;
  }

  // ---- failure ---------------------------------------------------------------------------------------------

  onFailure(ctx: RequestContext, kind: FailureKind): boolean {
    const st = requestState.get(ctx);
    if (st === null) return false;
    st.fill?.settle(null);
    const now = this.comp.clock.now();
    if (st.stale === null || !this.staleIfErrorAllowed(st.stale, now) || ctx.res.headersSent) return false;
    const forwarded = kind === 'shed' ? 'hit' : `fwd=stale; fwd-status=${kind === 'timeout' ? 504 : 502}`;
    this.comp.tiers.counters.inc(st.stale.layer, 'stale');
    this.serve(ctx, st.stale, `${forwarded}; ttl=${ttlSeconds(st.stale.meta, now)}; detail=stale-if-error`, now);
    return true;
  }

  // ---- store filter ----------------------------------------------------------------------------------------

  onResponse(ctx: RequestContext, head: ResponseHead): Transform | null {
    const st = requestState.get(ctx);
    if (st === null) return null;
    const now = this.comp.clock.now();
    const status = head.status;
    // RFC 9111 request_time is when the request went upstream, not when it arrived (it may have queued)
    if (ctx.upstreamMs >= 0) {
      st.requestTime = Math.max(st.requestTime, now - Math.ceil(ctx.upstreamMs));
      // upstreamMs is measured from the proxy's dispatch on the same monotonic clock, synchronously before this
      st.upstreamStart = Math.max(st.upstreamStart, this.comp.tiers.recent.now() - ctx.upstreamMs);
    }
    const sr = this.storeRequest(ctx, st);

    if (status === 304 && st.revalidating && st.stale !== null && st.stale.entry !== null) {
      return this.revalidated(ctx, st, st.stale.entry, sr, head, now);
    }
    if (status >= 500 && st.stale !== null && st.stale.entry !== null && this.staleIfErrorAllowed(st.stale, now)) {
      st.fill?.settle(null);
      this.comp.tiers.counters.inc(st.stale.layer, 'stale');
      return this.replaceWith(ctx, head, st.stale.entry, `fwd=stale; fwd-status=${status}; ttl=${ttlSeconds(st.stale.meta, now)}; detail=stale-if-error`, now);
    }
    const fwd = st.stale !== null ? `fwd=stale; fwd-status=${status}` : (st.directives.noCache ? 'fwd=request' : 'fwd=miss');
    const reason = ctx.method === 'HEAD' ? 'method' : headNotStorable(status, head.headers, sr);
    if (reason !== null) {
      st.fill?.settle(null);
      this.setStatus(ctx, head, `${fwd}; detail=${reason}`);
      return null;
    }
    // what is stored is the head as the upstream (and compressor) made it, before this filter edits it
    const storedHeaders = { ...head.headers };
    // invalidated while the request was in flight: served (and handed to coalesced waiters), never stored
    const invalidated = this.comp.tiers.recent.blocks(st.base, st.upstreamStart);
    // with a store_if (or a JSON-RPC route: result answers only) the body decides, after the head has gone out
    const decidedByBody = st.route.storeIf !== null || st.route.jsonrpc;
    this.setStatus(ctx, head, invalidated ? `${fwd}; detail=invalidated` : decidedByBody ? fwd : `${fwd}; stored`);
    let suppressBody = false;
    if (st.clientConditional !== null && status === 200) {
      const etag = first(head.headers['etag']) ?? null;
      const lm = first(head.headers['last-modified']) ?? null;
      const date = first(head.headers['date']) ?? null;
      if (ctx.method === 'GET' && isConditional(st.clientConditional) && conditionalMatches(st.clientConditional, etag, lm, date)) {
        head.status = 304;
        for (const k of ['content-length', 'content-encoding', 'transfer-encoding']) delete head.headers[k];
        suppressBody = true;
      }
    }
    return new StoreTransform(this.comp, st, sr, status, storedHeaders, suppressBody, ctx);
  }

  private setStatus(ctx: RequestContext, head: ResponseHead, status: string): void {
    ctx.cacheStatus = status;
    head.headers['cache-status'] = `${CACHE_NAME}; ${status}`;
  }

  storeRequest(ctx: RequestContext, st: RequestState): StoreRequest {
    // the variant key is computed from the client's request headers (the ones Vary names)
    return {
      method: ctx.method,
      path: ctx.path,
      query: ctx.query,
      headers: ctx.req.headers,
      body: ctx.body,
      params: ctx.params,
      baseKey: st.base,
      requestTime: st.requestTime,
      rules: st.route.rules,
      storeIf: st.route.storeIf,
      noStore: st.directives.noStore,
      jsonrpc: st.route.jsonrpc,
    };
  }

  /** The upstream answered our conditional request with 304: refresh the entry and answer with it. */
  private revalidated(ctx: RequestContext, st: RequestState, old: CacheEntry, sr: StoreRequest, head: ResponseHead, now: number): Transform {
    const built = refreshWith304(old, sr, head.headers, now);
    const stored = built !== null && this.comp.tiers.storeBuilt(built, st.upstreamStart);
    const entry = built?.entry ?? old;
    st.fill?.settle(built?.entry ?? null);
    this.comp.tiers.counters.inc(st.stale!.layer, 'revalidated');
    const detail = stored ? '; stored' : built !== null ? '; detail=invalidated' : '';
    return this.replaceWith(ctx, head, entry, `fwd=stale; fwd-status=304${detail}`, now);
  }

  /** Replace the upstream's head and body with a stored entry (answering the client's own conditional). */
  private replaceWith(ctx: RequestContext, head: ResponseHead, entry: CacheEntry, status: string, now: number): Transform {
    const cond = st304(ctx, requestState.get(ctx)?.clientConditional ?? null, entry);
    const replayed = this.bodyFor(ctx, entry);
    const h = headFor(entry.meta, ctx.extraHeaders, `${CACHE_NAME}; ${status}`, now, cond, replayed?.length);
    for (const k of Object.keys(head.headers)) delete head.headers[k];
    Object.assign(head.headers, h.headers);
    head.status = h.status;
    ctx.cacheStatus = status;
    const body = ctx.method === 'HEAD' || cond ? null : replayed;
    return new Transform({
      transform(_chunk, _enc, cb) { cb(); },
      flush(cb) { if (body !== null && body.length) this.push(body); cb(); },
    });
  }

  // ---- stale-while-revalidate ------------------------------------------------------------------------------

  private refreshInBackground(ctx: RequestContext, st: RequestState, found: Found): void {
    const key = found.meta.key;
    const comp = this.comp;
    if (comp.refreshing.has(key)) return;
    comp.refreshing.add(key);
    const src = ctx.req.headers;
    const headers: Record<string, string> = {};
    for (const name in src) {
      const v = src[name];
      if (v === undefined || HOP_BY_HOP_REQ.has(name) || name === 'if-none-match' || name === 'if-modified-since') continue;
      headers[name] = Array.isArray(v) ? v.join(', ') : v;
    }
    const conditional = found.entry !== null && (found.meta.etag !== null || found.meta.lastModified !== null);
    if (conditional) {
      if (found.meta.etag !== null) headers['if-none-match'] = found.meta.etag;
      if (found.meta.lastModified !== null) headers['if-modified-since'] = found.meta.lastModified;
    }
    const sr: StoreRequest = { ...this.storeRequest(ctx, st), headers: { ...src } };
    const path = ctx.query ? `${ctx.path}?${ctx.query}` : ctx.path;
    const large = comp.tiers.largeBodyThreshold;
    const started = comp.tiers.recent.now();
    fetchUpstream(this.upstream, ctx.method, path, headers, ctx.body, this.readTimeout, large)
      .then((r) => {
        const rsr = { ...sr, requestTime: r.requestTime };
        if (r.status === 304 && conditional && found.entry !== null) {
          const built = refreshWith304(found.entry, rsr, r.headers, r.responseTime);
          if (built !== null) comp.tiers.storeBuilt(built, started);
          return;
        }
        if (r.status >= 500) return; // keep serving the stale copy within its windows
        const reason = headNotStorable(r.status, r.headers, rsr);
        if (reason === null && storeIfPasses(rsr.storeIf, r.headers, r.body, rsr.jsonrpc)) {
          const built = buildEntry(rsr, r.status, r.headers, r.body, r.responseTime);
          if (built !== null) comp.tiers.storeBuilt(built, started);
        } else if (reason !== null) {
          void comp.tiers.delete(key); // the upstream no longer lets this be cached
        }
      })
      .catch(() => { /* the stale copy stays; stale-if-error rules apply to later requests */ })
      .finally(() => comp.refreshing.delete(key));
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function st304(ctx: RequestContext, clientConditional: Record<string, string> | null, entry: CacheEntry): boolean {
  const h = clientConditional ?? ctx.req.headers;
  return satisfiesConditional(ctx.method, h, entry.meta);
}


/**
 * Passes the upstream body to the client while collecting it; at the end checks store_if, stores the entry
 * and hands it to coalesced waiters. A body over memory.large_body_threshold is streamed to L3 instead (never
 * held whole), or not stored when there is no L3.
 */
class StoreTransform extends Transform {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private mode: 'buffer' | 'large' | 'skip' = 'buffer';
  private writer: LargeWriter | null = null;
  private finished = false;

  constructor(
    private readonly comp: CacheComponent,
    private readonly st: RequestState,
    private readonly sr: StoreRequest,
    private readonly status: number,
    private readonly headers: Record<string, string | string[]>,
    private readonly suppressBody: boolean,
    private readonly ctx: RequestContext,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (!this.suppressBody) this.push(chunk);
    if (this.mode === 'skip') { cb(); return; }
    if (this.mode === 'large') { this.writer!.write(chunk, () => cb()); return; }
    this.bytes += chunk.length;
    this.chunks.push(chunk);
    if (this.bytes <= this.comp.tiers.largeBodyThreshold) { cb(); return; }
    // too large to keep in memory: waiters go upstream themselves, the body goes to disk if there is an L3
    this.st.fill?.settle(null);
    const l3 = this.comp.tiers.l3;
    if (l3 === null || this.st.route.storeIf !== null) {
      this.mode = 'skip';
      this.chunks = [];
      cb();
      return;
    }
    this.mode = 'large';
    l3.openLargeWriter().then((w) => {
      this.writer = w;
      const pending = this.chunks;
      this.chunks = [];
      let i = 0;
      const next = (): void => { if (i < pending.length) w.write(pending[i++], next); else cb(); };
      next();
    }, () => {
      this.mode = 'skip';
      this.chunks = [];
      cb();
    });
  }

  override _flush(cb: (err?: Error | null) => void): void {
    this.finished = true;
    cb();
    try {
      this.complete();
    } catch (err) {
      this.st.fill?.settle(null);
      this.comp.logError(err);
    }
  }

  private complete(): void {
    const now = this.comp.clock.now();
    if (this.mode === 'skip') return;
    if (this.mode === 'large') {
      const w = this.writer!;
      // the key of a large entry is computed like any other; its vary marker (if any) is stored normally
      const meta = buildMeta(this.sr, this.status, this.headers, 0, '', now);
      if (meta === null) { void w.abort(); return; }
      const l3 = this.comp.tiers.l3;
      if (l3 === null) { void w.abort(); return; }
      if (this.comp.tiers.refuses(meta.key, this.st.upstreamStart)) {
        void w.abort();
        this.markInvalidated();
        return;
      }
      const marker = markerFor(this.sr.baseKey, meta);
      if (marker !== null) this.comp.tiers.store(marker.meta.key, marker, this.st.upstreamStart);
      const { bodyLength: _l, bodySha256: _s, ...rest } = meta;
      void _l; void _s;
      const ttl = retentionMs(meta, now, this.comp.tiers.ttls.l3);
      // the file lands a moment later: an invalidation that came in between (and found nothing to remove yet)
      // takes it out again
      const tiers = this.comp.tiers;
      const start = this.st.upstreamStart;
      w.finish({ ...rest, key: meta.key }, ttl).then(() => {
        if (tiers.recent.blocks(meta.key, start)) return l3.delete(meta.key);
      }).catch(() => {});
      this.ctx.cacheStatus = (this.ctx.cacheStatus ?? '') + '; detail=l3-stream';
      return;
    }
    const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = [];
    if (!storeIfPasses(this.sr.storeIf, this.headers, body, this.sr.jsonrpc)) {
      this.st.fill?.settle(null);
      this.ctx.cacheStatus = (this.ctx.cacheStatus ?? '') + '; detail=store_if';
      return;
    }
    const built = buildEntry(this.sr, this.status, this.headers, body, now);
    if (built === null) {
      this.st.fill?.settle(null);
      return;
    }
    // waiters get the answer either way (their requests were in flight with this one)
    if (!this.comp.tiers.storeBuilt(built, this.st.upstreamStart)) this.markInvalidated();
    else if (this.sr.storeIf !== null || this.sr.jsonrpc === true) this.ctx.cacheStatus = (this.ctx.cacheStatus ?? '') + '; stored';
    this.st.fill?.settle(built.entry);
  }

  /** The log's cache status says why nothing was stored (the head may have gone out before we knew). */
  private markInvalidated(): void {
    const s = this.ctx.cacheStatus ?? '';
    if (!s.includes('detail=invalidated')) this.ctx.cacheStatus = s + '; detail=invalidated';
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.finished) {
      this.st.fill?.settle(null);
      if (this.writer) void this.writer.abort();
    }
    cb(err);
  }
}
