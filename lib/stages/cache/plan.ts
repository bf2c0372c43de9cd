/**
 * What the cache does with a request before it reads any tier: whether it looks the answer up at all, under
 * which key, and with which client directives. One pure function, called by the cache stage for every request
 * and by `explain`, so what `explain` prints is what the proxy does.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CompiledRoute } from '../../routes/router';
import type { RouteCachePolicy, RoutePolicy } from '../../policy/types';
import { baseKey, KeyTemplate, type VariantInput } from '../../cache/keys';
import { requestDirectives, type RequestDirectives, type RouteRules } from '../../cache/http-semantics';
import { bodyKeyPart, bodyKeying, isJsonRpcRoute, type BodyKeying } from '../../cache/key-shape';
import { compileStoreIf, type StoreIf } from '../../cache/admission';
import { classifyJsonRpc, rawId, type JsonRpcRequest } from '../../cache/jsonrpc';

/** The request as the plan reads it (a RequestContext is one). */
export interface PlanInput extends Omit<VariantInput, 'bodyPart'> {
  /** The raw body when the proxy read it (a JSON-RPC id, or a whole-body digest key, come from it). */
  readonly body: Buffer | null;
  readonly req: { readonly headers: IncomingHttpHeaders };
}

/** A cached route's rules, compiled once per policy: what the cache stage and `explain` both read. */
export interface CacheRouteView {
  readonly template: KeyTemplate;
  readonly rules: RouteRules;
  readonly storeIf: StoreIf | null;
  /** What of the request body joins the key (key-shape.ts). */
  readonly keying: BodyKeying;
  /** JSON-RPC answers: keyed by method + params, replayed with the request's id, only `result` stored. */
  readonly jsonrpc: boolean;
}

export function compileCacheRoute(r: RoutePolicy, c: RouteCachePolicy): CacheRouteView {
  return {
    template: new KeyTemplate(c.key),
    rules: { ttl: c.ttl, staleWhileRevalidate: c.stale_while_revalidate, staleIfError: c.stale_if_error, override: c.override_upstream },
    storeIf: compileStoreIf(c.store_if),
    keying: bodyKeying(r),
    jsonrpc: isJsonRpcRoute(r),
  };
}

export type LookupPlan =
  /** Not cached: `status` is the Cache-Status value, `reason` says why in words. */
  | { readonly lookup: false; readonly status: string; readonly reason: string }
  /** Keyed: `readable` is the template filled, `base` the key with its variant hash; directives.noCache skips the lookup only. */
  | { readonly lookup: true; readonly readable: string; readonly base: string; readonly directives: RequestDirectives };

const METHOD: LookupPlan = Object.freeze({ lookup: false, status: 'fwd=method', reason: 'only GET, HEAD and POST answers are cached' });
const MISSING_PARAM: LookupPlan = Object.freeze({ lookup: false, status: 'fwd=bypass; detail=missing-param', reason: 'a param the cache key needs is missing or empty' });

const JSONRPC: Record<JsonRpcRequest['kind'], LookupPlan> = {
  notification: Object.freeze({ lookup: false, status: 'fwd=bypass; detail=jsonrpc-notification', reason: 'a JSON-RPC notification (no id): the server answers 202 with no body, never from the cache' }),
  batch: Object.freeze({ lookup: false, status: 'fwd=bypass; detail=jsonrpc-batch', reason: 'a JSON-RPC batch: never answered from the cache' }),
  invalid: Object.freeze({ lookup: false, status: 'fwd=bypass; detail=jsonrpc-invalid', reason: 'the body is not a JSON-RPC request' }),
  call: Object.freeze({ lookup: false, status: 'fwd=bypass; detail=jsonrpc-call', reason: 'a JSON-RPC call whose id could not be read from the raw body' }),
};

/** Methods whose answers the cache keeps (POST: reads such as query_script that routes declare cacheable). */
export function cacheableMethod(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'POST';
}

/** The plan for a request on a route with a `cache` section, keyed as `k` says. */
export function planLookup(route: CompiledRoute, k: CacheRouteView, honourClient: boolean, r: PlanInput): LookupPlan {
  if (!cacheableMethod(r.method)) return METHOD;
  const readable = k.template.fill(r.params);
  if (readable === null) return MISSING_PARAM;
  if (k.jsonrpc) {
    // notifications (the server answers 202, no body) and batches are never answered from the cache
    const kind = classifyJsonRpc(r.json).kind;
    if (kind !== 'call' || rawId(r.body) === null) return JSONRPC[kind];
  }
  const base = baseKey(readable, route, {
    method: r.method, path: r.path, query: r.query, json: r.json, params: r.params,
    identity: route.usesIdentity ? r.identity : null,
    bodyPart: k.keying.kind === 'jsonrpc' || k.keying.kind === 'digest' ? bodyKeyPart(k.keying, r.json, r.body) : null,
  });
  return { lookup: true, readable, base, directives: requestDirectives(r.req.headers, honourClient) };
}
