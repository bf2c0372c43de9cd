/**
 * The contract's Prometheus series (prefix bridge_sidecar_), defined in one place so names, labels and
 * buckets stay coherent. Each worker process has its own Metrics on its own registry; the primary sums the
 * workers' registries with prom-client's AggregatorRegistry and adds its own (policy, autotune) series.
 *
 * Labels never come from unbounded input: `endpoint` is a route name, a per-endpoint limit key or "other".
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const PREFIX = 'bridge_sidecar_';
export const DEFAULT_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0];

/** Series every worker (or the single process) exports. */
export class WorkerMetrics {
  readonly registry: Registry;
  requestDuration: Histogram<'endpoint' | 'method' | 'status'>;
  readonly requests: Counter<'endpoint' | 'method'>;
  readonly errors: Counter<'endpoint' | 'error_type'>;
  readonly cacheRequests: Counter<'layer' | 'result'>;
  readonly cacheSize: Gauge<'layer'>;
  readonly ratelimitRejected: Counter<'scope'>;
  readonly queueLength: Gauge<'priority'>;
  readonly queueWait: Histogram<string>;
  readonly shed: Counter<'reason'>;
  readonly upstreamConnectionWait: Histogram<string>;
  readonly upstreamRetries: Counter<'reason'>;
  private buckets: readonly number[];
  /** Cached children for the per-request histogram: label lookup by one string key, no object per request. */
  private durationChildren = new Map<string, { observe(v: number): void }>();
  private requestChildren = new Map<string, { inc(v?: number): void }>();

  constructor(buckets: readonly number[] = DEFAULT_BUCKETS, opts: { defaultMetrics?: boolean } = {}) {
    this.registry = new Registry();
    const registers = [this.registry];
    this.buckets = buckets;
    this.requestDuration = this.makeDuration(buckets);
    this.requests = new Counter({ name: PREFIX + 'http_requests_total', help: 'Requests received, by route.', labelNames: ['endpoint', 'method'], registers });
    this.errors = new Counter({ name: PREFIX + 'http_errors_total', help: 'Requests that ended in an error, by kind (upstream_error, upstream_timeout, rate_limited, shed, client_error, ...).', labelNames: ['endpoint', 'error_type'], registers });
    this.cacheRequests = new Counter({ name: PREFIX + 'cache_requests_total', help: 'Cache lookups by tier and result.', labelNames: ['layer', 'result'], registers });
    this.cacheSize = new Gauge({ name: PREFIX + 'cache_size_bytes', help: 'Bytes held by each cache tier.', labelNames: ['layer'], registers });
    this.ratelimitRejected = new Counter({ name: PREFIX + 'ratelimit_rejected_total', help: 'Requests refused with 429, by the scope that refused.', labelNames: ['scope'], registers });
    this.queueLength = new Gauge({ name: PREFIX + 'queue_length', help: 'Requests waiting for an upstream slot, by priority class.', labelNames: ['priority'], registers });
    this.queueWait = new Histogram({ name: PREFIX + 'queue_wait_seconds', help: 'Time requests waited in the priority queue.', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10], registers });
    this.shed = new Counter({ name: PREFIX + 'shed_total', help: 'Requests refused with 503 by backpressure, by reason.', labelNames: ['reason'], registers });
    this.upstreamConnectionWait = new Histogram({ name: PREFIX + 'upstream_connection_wait_seconds', help: 'Time from dispatch until the request had an upstream connection (socket assigned).', buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers });
    this.upstreamRetries = new Counter({ name: PREFIX + 'upstream_retries_total', help: 'Upstream attempts retried, by reason.', labelNames: ['reason'], registers });
    for (const p of ['high', 'medium', 'low']) this.queueLength.set({ priority: p }, 0);
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  private makeDuration(buckets: readonly number[]): Histogram<'endpoint' | 'method' | 'status'> {
    return new Histogram({
      name: PREFIX + 'http_request_duration_seconds',
      help: 'Time from request arrival to the end of the response, by route, method and status.',
      labelNames: ['endpoint', 'method', 'status'],
      buckets: [...buckets],
      registers: [this.registry],
    });
  }

  /** Buckets come from the policy; a reload that changes them starts a new histogram (old samples reset). */
  setBuckets(buckets: readonly number[]): void {
    if (buckets.length === this.buckets.length && buckets.every((b, i) => b === this.buckets[i])) return;
    this.registry.removeSingleMetric(PREFIX + 'http_request_duration_seconds');
    this.buckets = buckets;
    this.requestDuration = this.makeDuration(buckets);
    this.durationChildren.clear();
  }

  /** Hot path: one request finished. */
  observeRequest(endpoint: string, method: string, status: number, seconds: number): void {
    const key = endpoint + '\0' + method + '\0' + status;
    let h = this.durationChildren.get(key);
    if (h === undefined) {
      h = this.requestDuration.labels(endpoint, method, String(status));
      this.durationChildren.set(key, h);
    }
    h.observe(seconds);
    const rkey = endpoint + '\0' + method;
    let c = this.requestChildren.get(rkey);
    if (c === undefined) {
      c = this.requests.labels(endpoint, method);
      this.requestChildren.set(rkey, c);
    }
    c.inc();
  }
}

/** Series only the primary (or the single process) exports: they describe the process group, not a worker. */
export class PrimaryMetrics {
  readonly registry: Registry;
  readonly policyReloads: Counter<'result'>;
  readonly policyInfo: Gauge<'version'>;
  readonly autotuneActions: Counter<'strategy'>;
  readonly workersRestarted: Counter<string>;
  readonly workers: Gauge<string>;

  constructor(registry?: Registry) {
    this.registry = registry ?? new Registry();
    const registers = [this.registry];
    this.policyReloads = new Counter({ name: PREFIX + 'policy_reloads_total', help: 'Policy reload attempts by result (success, error, unchanged).', labelNames: ['result'], registers });
    this.policyInfo = new Gauge({ name: PREFIX + 'policy_info', help: 'The policy in force: 1 for its content hash.', labelNames: ['version'], registers });
    this.autotuneActions = new Counter({ name: PREFIX + 'autotune_actions_total', help: 'Auto-tuning actions taken, by strategy.', labelNames: ['strategy'], registers });
    this.workersRestarted = new Counter({ name: PREFIX + 'worker_restarts_total', help: 'Worker processes restarted after an unexpected exit.', registers });
    this.workers = new Gauge({ name: PREFIX + 'workers', help: 'Worker processes running.', registers });
    for (const r of ['success', 'error']) this.policyReloads.inc({ result: r }, 0);
  }

  setPolicyVersion(version: string): void {
    this.policyInfo.reset();
    this.policyInfo.set({ version }, 1);
  }
}
