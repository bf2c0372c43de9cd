/**
 * The policy's rate_limiting section compiled once per policy into what the hot path reads: one LimitSpec per
 * limit with its numbers and its pre-formatted RateLimit-Policy field.
 */
import type { LimitCount, RateLimitPolicy } from '../../policy/types';
import type { RequestContext } from '../../core/context';

export type ScopeName = 'global' | 'per_user' | 'per_endpoint';
/** Numeric scope codes used on the wire (IPC, Redis key names use the names). */
export const SCOPE_CODES: Record<ScopeName, number> = { global: 0, per_user: 1, per_endpoint: 2 };
export const SCOPE_NAMES: readonly ScopeName[] = ['global', 'per_user', 'per_endpoint'];

export interface LimitSpec {
  readonly scope: ScopeName;
  readonly code: number;
  /** Sustained rate, requests per second (per_user: requests_per_minute / 60). */
  readonly ratePerSec: number;
  /** Burst: how many may arrive at once. */
  readonly capacity: number;
  readonly dryRun: boolean;
  /** Counted only for requests that go to the upstream (checked after a cache miss), not on arrival. */
  readonly upstreamOnly: boolean;
  /** Value of the RateLimit-Policy field, e.g. `"global";q=100;w=1`. */
  readonly policyField: string;
  /** Changes when the numbers change (reloads keep state of limits whose signature did not change). */
  readonly signature: string;
}

export interface CompiledLimits {
  readonly scope: 'pod' | 'cluster';
  readonly global: LimitSpec | null;
  readonly perUser: LimitSpec | null;
  /** per_endpoint key (a path or a route name) -> its limit */
  readonly endpoints: ReadonlyMap<string, LimitSpec>;
  /** Some limit counts only upstream requests: the pipeline checks again after a cache miss. */
  readonly countsUpstream: boolean;
}

function quota(scope: ScopeName, perSecond: number, windowSeconds: number): string {
  // RateLimit-Policy wants an integer quota q per window w; pick a window where the quota is whole.
  let w = windowSeconds;
  let q = perSecond * w;
  if (!Number.isInteger(q)) {
    w = 60;
    q = Math.max(1, Math.round(perSecond * 60));
  }
  return `"${scope}";q=${q};w=${w}`;
}

function spec(scope: ScopeName, ratePerSec: number, capacity: number, dryRun: boolean, count: LimitCount, field: string): LimitSpec {
  return {
    scope,
    code: SCOPE_CODES[scope],
    ratePerSec,
    capacity: Math.max(1, Math.floor(capacity)),
    dryRun,
    upstreamOnly: count === 'upstream',
    policyField: field,
    signature: `${ratePerSec}/${capacity}`,
  };
}

export function compileLimits(p: RateLimitPolicy): CompiledLimits {
  const g = p.global;
  const u = p.per_user;
  const endpoints = new Map<string, LimitSpec>();
  for (const [key, e] of Object.entries(p.per_endpoint)) {
    endpoints.set(key, spec('per_endpoint', e.rps, e.burst, e.dry_run, e.count, quota('per_endpoint', e.rps, 1)));
  }
  const global = g ? spec('global', g.requests_per_second, g.burst_size, g.dry_run, g.count, quota('global', g.requests_per_second, 1)) : null;
  const perUser = u ? spec('per_user', u.requests_per_minute / 60, u.burst_size, u.dry_run, u.count, quota('per_user', u.requests_per_minute / 60, 60)) : null;
  return {
    scope: p.scope,
    global,
    perUser,
    endpoints,
    countsUpstream: [global, perUser, ...endpoints.values()].some((l) => l !== null && l.upstreamOnly),
  };
}

/**
 * The per_endpoint key that applies to a request: its route's name when that is a key, else its path when that
 * is a key, else null. Also the pipeline's metric label for per-endpoint limits (never a raw path otherwise).
 */
export function endpointKeyIn(ctx: Pick<RequestContext, 'route' | 'path'>, endpoints: ReadonlyMap<string, LimitSpec>): string | null {
  if (endpoints.size === 0) return null;
  if (ctx.route !== null && endpoints.has(ctx.route.name)) return ctx.route.name;
  return endpoints.has(ctx.path) ? ctx.path : null;
}
