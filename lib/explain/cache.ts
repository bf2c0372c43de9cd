/**
 * The cache part of `explain`: the cache stage's lookup plan (planLookup), its key in each tier (the tiers' own
 * key functions), and its store rules (headNotStorable, storeIfPasses) applied to the answer when one is given,
 * else to a plain `200 application/json` answer, so the reader sees which request-side rule decides.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Policy, RouteCachePolicy } from '../policy/types';
import type { CompiledRoute } from '../routes/router';
import { describeKey } from '../cache/key-shape';
import { headNotStorable, storeIfPasses, type StoreRequest } from '../cache/admission';
import { l2EntryKey } from '../cache/l2';
import { classifyJsonRpc } from '../cache/jsonrpc';
import { l3EntryFile } from '../cache/l3';
import { compileCacheRoute, planLookup, type CacheRouteView, type PlanInput } from '../stages/cache/plan';
import { l3DirFor } from '../stages/cache/component';

/** An upstream answer to judge the store rules against (`explain --response FILE`). */
export interface ExplainResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface CacheExplanation {
  /** Looked up in the tiers: yes, or no with the Cache-Status the client gets. */
  lookup: boolean;
  status: string | null;
  why: string;
  key: { template: string; readable: string; base: string; made_of: string; tiers: Record<string, string> } | null;
  store: { stored: boolean | 'depends'; why: string } | null;
}

const NOT_STORABLE: Record<string, string> = {
  method: 'the method: only GET and POST answers are stored (HEAD is answered by the upstream and never stored)',
  'request-no-store': 'the request says Cache-Control: no-store (honoured: cache.honor_client_no_cache)',
  status: 'the status is not one a shared cache may store without explicit freshness',
  'vary-star': 'the answer has Vary: *',
  'no-store': 'the answer says Cache-Control: no-store (route override_upstream is off)',
  private: 'the answer says Cache-Control: private (route override_upstream is off)',
  'set-cookie': 'the answer sets a cookie (made for one client)',
  authorization: 'the request carries Authorization and the answer does not say public, s-maxage or must-revalidate (RFC 9111 §3.5)',
};

export function explainCache(p: Policy, route: CompiledRoute | null, input: PlanInput, body: Buffer | null, response: ExplainResponse | null = null): CacheExplanation {
  const c = p.cache;
  if (c === null || (c.l1 === null && c.l2 === null && c.l3 === null)) {
    return { lookup: false, status: null, why: 'the policy has no cache tier: nothing is cached', key: null, store: null };
  }
  if (route === null) return { lookup: false, status: null, why: 'no route matched: only routes with a `cache` section are cached', key: null, store: null };
  const rc = route.policy.cache;
  if (rc === null) {
    return { lookup: false, status: null, why: `route ${route.name} has no \`cache\` section: never looked up, never stored`, key: null, store: null };
  }
  const honour = c.honor_client_no_cache;
  const view = compileCacheRoute(route.policy, rc);
  const plan = planLookup(route, view, honour, input);
  if (!plan.lookup) {
    return { lookup: false, status: plan.status, why: `${plan.reason}: not looked up (Cache-Status: ${plan.status})`, key: null, store: { stored: false, why: `not stored: ${plan.reason}` } };
  }
  const tiers: Record<string, string> = {};
  if (c.l1 !== null) tiers.l1 = `${plan.base} (in each worker's memory)`;
  if (c.l2 !== null) tiers.l2 = p.redis !== null ? `${l2EntryKey(p.redis.key_prefix, plan.base)} (Redis)` : 'off: no `redis` section';
  if (c.l3 !== null) tiers.l3 = l3EntryFile(l3DirFor(c.l3.path, p.server.workers, p.server.workers > 1 ? 0 : null), plan.base) + (p.server.workers > 1 ? ' (worker 0; w1, w2... for the others)' : '');
  const key = { template: rc.key, readable: plan.readable, base: plan.base, made_of: describeKey(route.policy), tiers };

  const d = plan.directives;
  let why = `looked up under ${plan.readable}: L1${c.l2 !== null ? ' → L2' : ''}${c.l3 !== null ? ' → L3' : ''}; a fresh hit is served, a miss goes upstream`;
  if (view.jsonrpc) {
    const call = classifyJsonRpc(input.json);
    if (call.kind === 'call') why += `; JSON-RPC call ${call.method}: keyed by method + params (never the id), a hit is replayed with this request's id`;
  }
  if (d.noCache) why = 'not looked up: the client asked for a fresh answer (Cache-Control: no-cache, honoured: cache.honor_client_no_cache); the answer may still be stored';
  else if (d.onlyIfCached) why = 'Cache-Control: only-if-cached: served from the cache, or 504 without going upstream';

  return { lookup: !d.noCache, status: d.noCache ? 'fwd=request' : null, why, key, store: storeDecision(view, input, body, plan.base, d.noStore, rc, response) };
}

function storeDecision(view: CacheRouteView, input: PlanInput, body: Buffer | null, base: string, noStore: boolean,
  rc: RouteCachePolicy, response: ExplainResponse | null): { stored: boolean | 'depends'; why: string } {
  const storeIf = view.storeIf;
  const sr: StoreRequest = {
    method: input.method, path: input.path, query: input.query, headers: input.req.headers, body, params: input.params,
    baseKey: base, requestTime: 0, noStore, storeIf,
    rules: view.rules, jsonrpc: view.jsonrpc,
  };
  const conditions = storeIf === null ? (view.jsonrpc ? ' and it is a JSON-RPC `result` (an `error` answer is not stored)' : '')
    : ` and ${Object.entries(rc.store_if ?? {}).map(([k, v]) => `${k} == ${JSON.stringify(v)}`).join(' and ')}`;
  if (response !== null) {
    const reason = input.method === 'HEAD' ? 'method' : headNotStorable(response.status, response.headers, sr);
    if (reason !== null) return { stored: false, why: `not stored: ${NOT_STORABLE[reason] ?? reason}` };
    if (!storeIfPasses(storeIf, response.headers, response.body, view.jsonrpc)) {
      return { stored: false, why: storeIf === null ? 'not stored: a JSON-RPC `error` answer (only `result` answers are stored)' : `not stored: store_if does not hold for this answer (wants${conditions.slice(4)})` };
    }
    return { stored: true, why: `stored for ${Math.round(rc.ttl / 1000)} s (route ttl, unless the answer's Cache-Control says otherwise)` };
  }
  // no answer given: judge a plain 200 JSON answer, so a request-side rule shows up as the reason
  const reason = input.method === 'HEAD' ? 'method' : headNotStorable(200, { 'content-type': 'application/json' }, sr);
  if (reason !== null) return { stored: false, why: `not stored, whatever the answer: ${NOT_STORABLE[reason] ?? reason}` };
  return {
    stored: 'depends',
    why: `stored if the answer is storable (e.g. 200 without Cache-Control: no-store/private or Set-Cookie${rc.override_upstream ? '; override_upstream ignores no-store/private' : ''})${conditions}; kept ${Math.round(rc.ttl / 1000)} s (route ttl)`,
  };
}
