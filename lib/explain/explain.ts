/**
 * A request's fate under a policy, step by step, computed with the proxy's own code: the Router (its per-route
 * check), the identity resolver, the rate limiter's compiled limits and endpoint key, the cache stage's lookup
 * plan and store rules, the queue class, and the compression filter's request-side decision. Nothing here
 * re-implements a decision; it only calls them and puts what they return into words.
 *
 * `live` adds the current state of the limits (from the pod's lease server) when the question is asked of a
 * running sidecar.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { LoadedPolicy } from '../policy/types';
import { Router, endpointLabel, endpointPathsOf, queueClassOf, type RouteVerdict } from '../routes/router';
import { parseJson } from '../routes/json-body';
import { resolveIdentity } from '../stages/identity';
import { compileLimits, endpointKeyIn, type LimitSpec } from '../stages/ratelimit/limits';
import type { BucketState } from '../stages/ratelimit/store';
import { explainCache, type CacheExplanation, type ExplainResponse } from './cache';
import { explainCompression, type CompressionExplanation } from './compression';
import type { ExplainRequest } from './request';

export interface LiveState {
  /** A limit's state (the pod's counters, or Redis's with scope: cluster), or null when never used (full). */
  limit(spec: LimitSpec, key: string): BucketState | null;
}

export interface LimitExplanation {
  scope: string;
  /** The per_endpoint key, the identity for per_user, '' for global. */
  key: string;
  limit: string;
  dry_run: boolean;
  /** count: upstream: only requests that go upstream spend a token (a cache hit is free). */
  upstream_only: boolean;
  state: BucketState | null;
  /** With live state: whether this limit would let the request through now. */
  verdict: string | null;
}

export interface Explanation {
  policy: { version: string; file: string };
  request: { method: string; path: string; query: string; body_bytes: number };
  /** Set when the request is refused before routing (body too large). */
  refused: string | null;
  body: { read: boolean; json: boolean; why: string };
  routing: { tried: RouteVerdict[]; route: string | null; params: Record<string, string>; endpoint_label: string };
  identity: string | null;
  limits: { applies: boolean; scope: string | null; limits: LimitExplanation[]; outcome: string };
  cache: CacheExplanation;
  queue: { class: string; why: string; in_flight_limit: number | 'auto' | null };
  compression: CompressionExplanation;
  events: string[];
}

export interface ExplainOptions {
  /** The running pod's limit state (POST /debug/explain). */
  live?: LiveState | null;
  /** An upstream answer to judge the cache's store rules against. */
  response?: ExplainResponse | null;
}

export function explain(loaded: LoadedPolicy, req: ExplainRequest, opts: ExplainOptions = {}): Explanation {
  const live = opts.live ?? null;
  const p = loaded.policy;
  const router = new Router(p.routes);
  const declared = Number(req.headers['content-length'] ?? (req.body?.length ?? 0));
  const hasBody = req.body !== null && req.body.length > 0;
  const refused = declared > p.server.client_max_body_size
    ? `413: the body (${declared} bytes) is over server.client_max_body_size (${p.server.client_max_body_size}); refused before routing`
    : null;

  // the proxy reads and parses the body only when a route that could match by method and path looks at it
  const needsBody = hasBody && router.needsBody(req.method, req.path);
  const ct = req.headers['content-type'] as string | string[] | undefined;
  const json = needsBody ? parseJson(req.body!, Array.isArray(ct) ? ct[0] : ct) : undefined;
  const body = {
    read: needsBody,
    json: json !== undefined,
    why: !hasBody ? 'no body' : needsBody ? (json !== undefined ? 'a route that could match looks at the body: read and parsed as JSON' : 'read, but it is not JSON: body conditions cannot match')
      : 'no route that could match looks at the body: streamed to the upstream unread',
  };

  const input = { method: req.method, path: req.path, query: req.query, headers: req.headers, json };
  const { tried, match } = router.explain(input);
  const route = match?.route ?? null;
  const params: Record<string, string> = { ...(match?.params ?? {}) };

  const rl = p.rate_limiting;
  const needsIdentity = rl !== null || (route?.usesIdentity ?? false);
  const ctxLike = { req: { headers: req.headers, socket: { remoteAddress: req.clientAddress } }, route, path: req.path };
  const identity = needsIdentity ? resolveIdentity(ctxLike, rl?.identity ?? null) : null;
  if (route?.usesIdentity && identity !== null) for (const [name, src] of route.params) if (src.kind === 'identity') params[name] = identity;

  const label = endpointLabel(route, req.path, endpointPathsOf(p));

  const priority = queueClassOf(route, p);
  return {
    policy: { version: loaded.version, file: loaded.file },
    request: { method: req.method, path: req.path, query: req.query, body_bytes: req.body?.length ?? 0 },
    refused,
    body,
    routing: { tried, route: route?.name ?? null, params, endpoint_label: label },
    identity,
    limits: explainLimits(loaded, ctxLike, identity, live),
    cache: explainCache(p, route, { method: req.method, path: req.path, query: req.query, json, params, identity, body: req.body, req: { headers: req.headers } }, req.body, opts.response ?? null),
    queue: {
      class: priority,
      why: route?.priority ? `the route's priority` : p.queues?.default_priority ? 'queues.default_priority (the route names none)' : 'medium (no priority anywhere)',
      in_flight_limit: p.queues === null ? null : p.queues.max_in_flight,
    },
    compression: explainCompression(p.compression, req.method, req.headers as IncomingHttpHeaders),
    events: route?.policy.emits ? [...route.policy.emits] : [],
  };
}

function describeLimit(s: LimitSpec): string {
  if (s.scope === 'per_user') return `${Math.round(s.ratePerSec * 60 * 1000) / 1000}/min, burst ${s.capacity}`;
  return `${s.ratePerSec}/s, burst ${s.capacity}`;
}

function explainLimits(loaded: LoadedPolicy, ctx: { route: Router['routes'][number] | null; path: string }, identity: string | null, live: LiveState | null): Explanation['limits'] {
  const rl = loaded.policy.rate_limiting;
  if (rl === null) return { applies: false, scope: null, limits: [], outcome: 'no rate_limiting section: not limited' };
  const L = compileLimits(rl);
  const state = live;
  // the order the limiter checks them: the most specific first; the first that refuses decides
  const specs: Array<[LimitSpec, string]> = [];
  if (L.perUser !== null && identity !== null) specs.push([L.perUser, identity]);
  const ek = endpointKeyIn(ctx, L.endpoints);
  if (ek !== null) specs.push([L.endpoints.get(ek)!, ek]);
  if (L.global !== null) specs.push([L.global, '']);
  const limits = specs.map(([spec, key]): LimitExplanation => {
    const now = state?.limit(spec, key) ?? null;
    let verdict: string | null = null;
    if (state !== null) {
      const available = now === null ? spec.capacity : now.available;
      verdict = available >= 1 ? `admits: ${available} of ${spec.capacity} tokens left`
        : spec.dryRun ? 'would refuse, but dry_run: counted and logged, admitted'
          : `refuses: 429, no token left (full again in ${Math.ceil((now?.msUntilFull ?? 0) / 1000)} s)`;
    }
    return { scope: spec.scope, key, limit: describeLimit(spec), dry_run: spec.dryRun, upstream_only: spec.upstreamOnly, state: now, verdict };
  });
  const refusing = limits.find((l) => l.verdict?.startsWith('refuses'));
  const outcome = limits.length === 0 ? 'no limit applies to this request'
    : state === null ? `${limits.map((l) => l.scope).join(', ')} apply; ${rl.scope === 'cluster' ? 'their state is in Redis (scope: cluster): ask a running sidecar (--admin) that can reach it' : 'ask a running sidecar (--admin) for their state'}`
      : refusing ? `refused by ${refusing.scope}${refusing.key ? ` (${refusing.key})` : ''}: 429 with Retry-After and RateLimit: "${refusing.scope}";r=0`
        : 'admitted by every limit';
  return { applies: limits.length > 0, scope: rl.scope, limits, outcome };
}
