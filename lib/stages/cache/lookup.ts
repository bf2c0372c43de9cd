/**
 * One policy's cache stage (CacheView): the lookup on the request, stale-if-error on failure, and the store
 * filter on the response (store-filter.ts).
 *
 *   lookup:   route has `cache` -> plan (plan.ts: key, or why not) -> L1 (sync) -> L2 -> L3 -> fresh? serve :
 *             stale within stale-while-revalidate? serve + one background refresh (stale-while-revalidate.ts) :
 *             coalesce (wait for the in-flight leader) or become the leader (conditional request upstream
 *             when the stale entry has validators)
 *   onFailure: upstream unreachable / timed out / request shed -> stale-if-error
 */
import type { Transform } from 'node:stream';
import type { FailureKind, ResponseHead, Stage } from '../../core/stage';
import type { RequestContext } from '../../core/context';
import type { Policy, UpstreamPolicy } from '../../policy/types';
import type { Found } from '../../cache/tiers';
import type { Fill } from '../../cache/coalesce';
import { varyKey } from '../../cache/keys';
import type { RequestDirectives } from '../../cache/http-semantics';
import { CACHE_NAME, ttlSeconds } from '../../cache/respond';
import { planLookup } from './plan';
import { bypass } from './cache-status';
import { serve } from './replay';
import { refreshInBackground } from './stale-while-revalidate';
import { storeFilter } from './store-filter';
import { countResult, newRequestState, requestState, staleIfErrorAllowed, type CacheCore, type CachedRoute, type RequestState } from './state';

/** An entry stored more than this far in our future was stored before a clock step back. */
const CLOCK_STEP_TOLERANCE_MS = 60_000;

export class CacheView implements Stage {
  readonly name = 'cache';
  readonly span = 'cache.lookup';
  private readonly honourClient: boolean;
  private readonly coalesceTimeout: number;
  private readonly upstream: UpstreamPolicy;
  private readonly readTimeout: number;

  constructor(
    private readonly comp: CacheCore,
    readonly policy: Policy,
    private readonly routes: ReadonlyMap<number, CachedRoute>,
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
      rv.results.bypass.inc();
      bypass(ctx, plan.status);
      return false;
    }
    const { base, directives } = plan;
    if (directives.noCache) {
      const st = this.state(rv, base, directives);
      countResult(st, 'bypass');
      requestState.set(ctx, st);
      bypass(ctx, 'fwd=request');
      return false;
    }
    const tiers = this.comp.tiers;
    const first = tiers.getL1(base, ctx);
    // the hot path: a fresh L1 hit is served without allocating any per-request state
    if (first !== null && first.meta.kind === 'response' && this.serveIfFresh(ctx, rv, first)) return true;
    const st = this.state(rv, base, directives);
    if (first !== null && first.meta.kind === 'response' && this.useFound(ctx, st, first)) return true;
    if (first === null && tiers.l2 === null && tiers.l3 === null) return this.miss(ctx, st);
    return this.slowLookup(ctx, st, first);
  }

  private state(route: CachedRoute, base: string, directives: RequestDirectives): RequestState {
    return newRequestState(this.comp, route, base, directives);
  }

  /** Serve `found` when fresh: a hit, counted. The hot path: no per-request state. */
  private serveIfFresh(ctx: RequestContext, rv: CachedRoute, found: Found): boolean {
    const now = this.comp.clock.now();
    if (now >= found.meta.freshUntil) return false;
    if (found.entry === null && rv.jsonrpc) return false; // a streamed (large) body cannot take another id
    // stored "in the future" means the wall clock stepped back since (NTP, VM resume): its freshUntil is then
    // up to that step too far ahead (a 5 m entry stayed fresh for hours). Treat it as stale, so it is
    // refreshed; the tolerance absorbs ordinary clock skew between pods sharing L2.
    if (found.meta.storedAt - now > CLOCK_STEP_TOLERANCE_MS) return false;
    serve(ctx, found, `hit; ttl=${ttlSeconds(found.meta, now)}; detail=${found.layer}`, now, rv.jsonrpc);
    rv.results.hit.inc();
    return true;
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
    if (this.serveIfFresh(ctx, st.route, found)) return true;
    const now = this.comp.clock.now();
    const meta = found.meta;
    if (!meta.mustRevalidate && now < meta.swrUntil && ctx.method !== 'HEAD') {
      serve(ctx, found, `hit; ttl=${ttlSeconds(meta, now)}; detail=stale-while-revalidate`, now, st.route.jsonrpc);
      this.comp.tiers.counters.inc(found.layer, 'stale');
      countResult(st, 'stale');
      refreshInBackground(this.comp, this.upstream, this.readTimeout, ctx, st, found);
      return true;
    }
    st.stale = found;
    return false;
  }

  private miss(ctx: RequestContext, st: RequestState): boolean | Promise<boolean> {
    requestState.set(ctx, st);
    if (st.directives.onlyIfCached) {
      ctx.res.writeHead(504, { 'cache-status': `${CACHE_NAME}; fwd=miss; detail=only-if-cached`, 'content-length': '0' });
      ctx.res.end();
      ctx.responded = true;
      ctx.cacheStatus = 'fwd=miss; detail=only-if-cached';
      countResult(st, 'miss');
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
    prepareUpstreamRequest(ctx, st);
  }

  private async waitForLeader(ctx: RequestContext, st: RequestState, fill: Fill): Promise<boolean> {
    const entry = await fill.wait(this.coalesceTimeout);
    if (ctx.res.destroyed) return true;
    const now = this.comp.clock.now();
    if (entry !== null && (entry.meta.vary.length === 0 || varyKey(st.base, entry.meta.vary, ctx.req.headers) === entry.meta.key)) {
      this.comp.tiers.counters.inc('coalesce', 'hit');
      serve(ctx, { layer: 'l1', meta: entry.meta, entry, stream: null }, `hit; ttl=${ttlSeconds(entry.meta, now)}; detail=coalesced`, now, st.route.jsonrpc);
      countResult(st, 'hit');
      return true;
    }
    this.comp.tiers.counters.inc('coalesce', 'miss');
    if (st.stale !== null && staleIfErrorAllowed(st.stale, now)) {
      serve(ctx, st.stale, `hit; ttl=${ttlSeconds(st.stale.meta, now)}; detail=stale-if-error`, now, st.route.jsonrpc);
      countResult(st, 'stale');
      return true;
    }
    // the leader's answer was not shareable (or it failed): go upstream ourselves, without leading a new fill
    prepareUpstreamRequest(ctx, st);
    return false;
  }

  // ---- failure ---------------------------------------------------------------------------------------------

  onFailure(ctx: RequestContext, kind: FailureKind): boolean {
    const st = requestState.get(ctx);
    if (st === null) return false;
    st.fill?.settle(null);
    const now = this.comp.clock.now();
    if (st.stale === null || !staleIfErrorAllowed(st.stale, now) || ctx.res.headersSent) {
      countResult(st, 'miss');
      return false;
    }
    countResult(st, 'stale');
    const forwarded = kind === 'shed' ? 'hit' : `fwd=stale; fwd-status=${kind === 'timeout' ? 504 : 502}`;
    this.comp.tiers.counters.inc(st.stale.layer, 'stale');
    serve(ctx, st.stale, `${forwarded}; ttl=${ttlSeconds(st.stale.meta, now)}; detail=stale-if-error`, now, st.route.jsonrpc);
    return true;
  }

  // ---- response: the store filter -------------------------------------------------------------------------

  onResponse(ctx: RequestContext, head: ResponseHead): Transform | null {
    return storeFilter(this.comp, ctx, head);
  }
}

/** Make the upstream request conditional on our stale copy, or strip the client's conditional headers. */
function prepareUpstreamRequest(ctx: RequestContext, st: RequestState): void {
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
