/**
 * The label values the code can produce for each labelled counter, and the label sets a given policy makes
 * possible. Every one of them is exported at 0 from the moment the process (or the policy) starts: Prometheus'
 * rate() and increase() need a sample before the first event to see it, so a counter that appears only at its
 * first event, already above 0, hides that event (a burst inside one scrape interval is never seen at all),
 * and a panel over it reads "No data" where the truth is 0.
 */
import type { Policy } from '../policy/types';

/** `http_errors_total{error_type}`: what the pipeline counts (see docs/observability.md). */
export const ERROR_TYPES = ['upstream_error', 'upstream_timeout', 'upstream_5xx', 'rate_limited', 'shed', 'client_closed', 'internal'] as const;
export type ErrorType = (typeof ERROR_TYPES)[number];

/** `shed_total{reason}`: why the queue stage refused or dropped a request (docs/queues.md). */
export const SHED_REASONS = ['queue_full', 'class_full', 'queue_timeout', 'displaced', 'client_gone'] as const;
export type ShedReason = (typeof SHED_REASONS)[number];

/** `ratelimit_rejected_total{scope}`. */
export const RATELIMIT_SCOPES = ['global', 'per_user', 'per_endpoint'] as const;

/** `policy_reloads_total{result}`. */
export const RELOAD_RESULTS = ['success', 'error', 'unchanged'] as const;

/** `cache_requests_total{layer,result}`: L2 also counts Redis errors; `coalesce` counts waits on a fill in flight. */
const CACHE_RESULTS: Readonly<Record<string, readonly string[]>> = { l1: ['hit', 'miss'], l2: ['hit', 'miss', 'error'], l3: ['hit', 'miss'], coalesce: ['hit', 'miss'] };

/** Every `endpoint` label a request can get under this policy: route names, per-endpoint paths, `other`. */
export function endpointsOf(policy: Policy): string[] {
  const paths = Object.keys(policy.rate_limiting?.per_endpoint ?? {}).filter((k) => k.startsWith('/'));
  return [...new Set([...policy.routes.map((r) => r.name), ...paths, 'other'])];
}

/** The counters' label sets this policy can produce (only features that are on: an absent tier has no lookups). */
export interface KnownSeries {
  /** routes that name their method: the only (endpoint, method) pairs known before a request arrives */
  requests: { endpoint: string; method: string }[];
  errors: { endpoint: string; error_type: string }[];
  cacheRequests: { layer: string; result: string }[];
  ratelimitRejected: { scope: string }[];
  shed: { reason: string }[];
}

export function knownSeries(policy: Policy): KnownSeries {
  const errors = endpointsOf(policy).flatMap((endpoint) => ERROR_TYPES.map((error_type) => ({ endpoint, error_type })));
  const c = policy.cache;
  const layers = c === null ? [] : [c.l1 && 'l1', c.l2 && 'l2', c.l3 && 'l3', 'coalesce'].filter((l): l is string => typeof l === 'string');
  const cacheRequests = layers.flatMap((layer) => CACHE_RESULTS[layer].map((result) => ({ layer, result })));
  const rl = policy.rate_limiting;
  const scopes = rl === null ? [] : RATELIMIT_SCOPES.filter((s) => (s === 'per_endpoint' ? Object.keys(rl.per_endpoint).length > 0 : rl[s] !== null));
  return {
    requests: policy.routes.filter((r) => r.match.method !== null).map((r) => ({ endpoint: r.name, method: r.match.method! })),
    errors,
    cacheRequests,
    ratelimitRejected: scopes.map((scope) => ({ scope })),
    shed: policy.queues === null ? [] : SHED_REASONS.map((reason) => ({ reason })),
  };
}
