/**
 * What the cache stage's files share: the long-lived part they act on (CacheCore, which CacheComponent is),
 * one request's cache state from lookup to store (RequestState, kept in the request's StageSlot), and the
 * store request the admission rules read.
 */
import { StageSlot } from '../../core/stage';
import type { RequestContext } from '../../core/context';
import type { Clock } from '../../core/clock';
import type { Tiers, Found } from '../../cache/tiers';
import type { FillRegistry, Fill } from '../../cache/coalesce';
import type { RequestDirectives } from '../../cache/http-semantics';
import type { StoreRequest } from '../../cache/admission';
import type { CounterCell } from '../../observe/fast-metrics';
import type { CacheRouteView } from './plan';

/** The process-long cache state every policy's view uses (implemented by CacheComponent). */
export interface CacheCore {
  readonly tiers: Tiers;
  /** In-flight fills by base key: the leader's answer is handed to the requests that wait on it. */
  readonly fills: FillRegistry;
  /** Keys being refreshed in the background (stale-while-revalidate): at most one refresh per key. */
  readonly refreshing: Set<string>;
  /** The wall clock every freshness decision of this process's cache uses (Runtime's, injectable in tests). */
  readonly clock: Clock;
  logError(err: unknown): void;
}

/**
 * A cached route's cells of route_cache_requests_total{endpoint,result}, one increment per request: hit (a fresh
 * entry, coalesced included), stale (a stale entry: stale-while-revalidate, stale-if-error), miss (the upstream
 * answered, a 304 to our revalidation included), bypass (not looked up: method, missing param, JSON-RPC
 * notification or batch, client no-cache).
 */
export interface RouteResults {
  readonly hit: CounterCell;
  readonly stale: CounterCell;
  readonly miss: CounterCell;
  readonly bypass: CounterCell;
}

/** A cached route as one policy's cache stage holds it: its compiled rules and its result counters. */
export interface CachedRoute extends CacheRouteView {
  readonly results: RouteResults;
}

export interface RequestState {
  readonly route: CachedRoute;
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
  /** This request's route_cache_requests_total result is counted (it is counted once). */
  counted: boolean;
}

/** Count the request's result once (the first outcome decided wins). */
export function countResult(st: RequestState, result: keyof RouteResults): void {
  if (st.counted) return;
  st.counted = true;
  st.route.results[result].inc();
}

/** A request's cache state (its key, the stale copy, the fill it leads), from lookup to store. */
export const requestState = new StageSlot<RequestState>();

export function newRequestState(core: CacheCore, route: CachedRoute, base: string, directives: RequestDirectives): RequestState {
  return { route, base, directives, requestTime: core.clock.now(), upstreamStart: core.tiers.recent.now(), stale: null, fill: null, revalidating: false, clientConditional: null, counted: false };
}

/** stale-if-error may serve `found` now (the entry allows it and its window is open). */
export function staleIfErrorAllowed(found: Found, now: number): boolean {
  return !found.meta.mustRevalidate && now < found.meta.sieUntil;
}

/** What the admission rules (lib/cache/admission.ts) read of this request to decide whether and how to store. */
export function storeRequest(ctx: RequestContext, st: RequestState): StoreRequest {
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
