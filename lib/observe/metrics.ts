/**
 * The contract's Prometheus series (prefix bridge_sidecar_), defined in one place so names, labels and
 * buckets stay coherent. Each worker process has its own Metrics on its own registry; the primary sums the
 * workers' registries with prom-client's AggregatorRegistry and adds its own (policy, autotune) series.
 *
 * Labels never come from unbounded input: `endpoint` is a route name, a per-endpoint limit key or "other".
 *
 * Summing over workers: prom-client's AggregatorRegistry sums every series unless the metric says otherwise
 * (`aggregator`). Counters and histograms sum; gauges that describe a share of the pod (cache bytes, queue
 * length, concurrency limit) sum too; gauges that every worker reads from the same place (the cgroup's memory
 * limit) take the max, and "is Redis up" takes the min (1 only when every worker's link is up).
 */
import * as promClient from 'prom-client';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Aggregator, type CounterConfiguration, type GaugeConfiguration, type HistogramConfiguration, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { memoryPressure, readMemory, readProcessIo, SocketBytes } from './resources';
import { FastCounter, FastHistogram, type CounterCell, type HistogramCell } from './fast-metrics';
import { PROM_CLIENT_SAMPLER_MS, registerEventLoopDelay } from './event-loop-delay';
import { knownSeries, RELOAD_RESULTS } from './label-values';
import type { Policy } from '../policy/types';
import { DEFAULT_BUCKETS } from '../policy/defaults';

export const PREFIX = 'bridge_sidecar_';

/**
 * cache_size_bytes over workers: L1 and L3 are per worker (sum), L2 is the one Redis every worker reports
 * (max, or it would count N times). prom-client looks aggregators up by name in this exported table.
 */
const CACHE_SIZE_AGGREGATOR = 'bridge_sidecar_cache_size';
type AggregatorFn = (metrics: MetricObjectWithValues<MetricValue<string>>[]) => MetricObjectWithValues<MetricValue<string>> | undefined;
// exported by prom-client (index.js: exports.aggregators) though its typings omit it
const table = (promClient as unknown as { aggregators: Record<string, AggregatorFn> }).aggregators;
table[CACHE_SIZE_AGGREGATOR] ??= (metrics) => {
  const summed = table.sum(metrics);
  const maxed = table.max(metrics);
  if (!summed || !maxed) return summed;
  const shared = (v: MetricValue<string>) => v.labels.layer === 'l2';
  return { ...summed, values: [...summed.values.filter((v) => !shared(v)), ...maxed.values.filter(shared)] };
};

/** A label-less gauge that shows no sample while `present()` is false (prom-client would show 0). */
class OptionalGauge extends Gauge<string> {
  present: () => boolean = () => true;

  override async get(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    const m = await super.get();
    return this.present() ? m : { ...m, values: [] };
  }
}
/** The contract's default buckets (see policy/defaults.ts). */
export { DEFAULT_BUCKETS };

/** An upstream connection pool's state (one worker's). */
export interface PoolFigures {
  inUse: number;
  idle: number;
  waiting: number;
}

/** One endpoint and method's request counter, and its duration histograms by status. */
interface MethodCells {
  readonly count: CounterCell;
  readonly byStatus: Map<number, HistogramCell>;
}

/** Series every worker (or the single process) exports. */
export class WorkerMetrics {
  readonly registry: Registry;
  /** Per-request series: plain numbers, exported in prom-client's format (see fast-metrics.ts). */
  private requestDuration: FastHistogram;
  private readonly requests: FastCounter;
  readonly errors: Counter<'endpoint' | 'error_type'>;
  /** Counted on every cache lookup: plain numbers, like the per-request series. */
  readonly cacheRequests: FastCounter;
  /** Counted once per request on a cached route, at the cache stage (not a contract series: see observability.md). */
  readonly routeCacheRequests: FastCounter;
  readonly cacheSize: Gauge<'layer'>;
  readonly ratelimitRejected: Counter<'scope'>;
  readonly queueLength: Gauge<'priority'>;
  readonly queueWait: FastHistogram;
  readonly shed: Counter<'reason'>;
  /** Observed for every upstream request: plain numbers (fast-metrics.ts). */
  readonly upstreamConnectionWait: FastHistogram;
  readonly upstreamRetries: Counter<'reason'>;
  /** Bytes on the proxy's sockets, by peer; feed sockets with `sockets.client.track(s)` (see observe/worker). */
  readonly sockets = { client: new SocketBytes(), upstream: new SocketBytes() };
  readonly networkReceive: Counter<'peer'>;
  readonly networkTransmit: Counter<'peer'>;
  readonly diskRead: Counter<string>;
  readonly diskWritten: Counter<string>;
  readonly memoryLimit: Gauge<string>;
  readonly memoryUsage: Gauge<string>;
  readonly redisUp: OptionalGauge;
  /** Upstream connections by state (in_use, idle, waiting: requests waiting for one), read at scrape time. */
  readonly upstreamConnections: Gauge<'state'>;
  /** Set by whoever owns the upstream pool: its figures now, or null when unknown (no sample). */
  poolFigures: (() => PoolFigures | null) | null = null;
  /** Set by the cache: each tier's bytes now, read at scrape time (a tier that is off has no sample). */
  cacheSizes: (() => ReadonlyArray<readonly [layer: string, bytes: number]>) | null = null;
  /** Set by whoever owns the Redis link: true/false, or null when there is no `redis` section (no sample). */
  redisHealth: (() => boolean | null) | null = null;
  private buckets: readonly number[];
  /**
   * The request count and duration cells, by endpoint, then method, then status: found with three lookups on
   * strings and numbers the request already holds (hashed once, then cached in the string), instead of a label
   * string built, flattened and hashed per request.
   */
  private requestCells = new Map<string, Map<string, MethodCells>>();

  constructor(buckets: readonly number[] = DEFAULT_BUCKETS, opts: { defaultMetrics?: boolean } = {}) {
    this.registry = new Registry();
    const registers = [this.registry];
    this.buckets = buckets;
    this.requestDuration = this.makeDuration(buckets);
    this.requests = new FastCounter(PREFIX + 'http_requests_total', 'Requests received, by route.', ['endpoint', 'method'], this.registry);
    this.errors = new Counter({ name: PREFIX + 'http_errors_total', help: 'Requests that ended in an error, by kind (upstream_error, upstream_timeout, rate_limited, shed, client_error, ...).', labelNames: ['endpoint', 'error_type'], registers });
    this.cacheRequests = new FastCounter(PREFIX + 'cache_requests_total', 'Cache lookups by tier and result.', ['layer', 'result'], this.registry);
    this.routeCacheRequests = new FastCounter(PREFIX + 'route_cache_requests_total', 'Requests on routes with a cache section, by route and how the cache answered (hit, stale, miss: the upstream answered, bypass: not looked up).', ['endpoint', 'result'], this.registry);
    const cacheSizes = () => this.cacheSizes?.() ?? null;
    this.cacheSize = new Gauge({
      name: PREFIX + 'cache_size_bytes', help: 'Bytes held by each cache tier (l2: the Redis used_memory).', labelNames: ['layer'], registers,
      aggregator: CACHE_SIZE_AGGREGATOR as Aggregator,
      collect() {
        const sizes = cacheSizes();
        if (sizes === null) return;
        this.reset();
        for (const [layer, bytes] of sizes) this.set({ layer }, bytes);
      },
    });
    this.ratelimitRejected = new Counter({ name: PREFIX + 'ratelimit_rejected_total', help: 'Requests refused with 429, by the scope that refused.', labelNames: ['scope'], registers });
    this.queueLength = new Gauge({ name: PREFIX + 'queue_length', help: 'Requests waiting for an upstream slot, by priority class.', labelNames: ['priority'], registers });
    this.queueWait = new FastHistogram(PREFIX + 'queue_wait_seconds', 'Time requests waited in the priority queue, by priority class (0 for those admitted at once).', ['priority'], [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10], this.registry);
    this.shed = new Counter({ name: PREFIX + 'shed_total', help: 'Requests refused with 503 by backpressure, by reason.', labelNames: ['reason'], registers });
    this.upstreamConnectionWait = new FastHistogram(PREFIX + 'upstream_connection_wait_seconds', 'Time from dispatch until the request had an upstream connection (socket assigned).', [], [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], this.registry);
    this.upstreamRetries = new Counter({ name: PREFIX + 'upstream_retries_total', help: 'Upstream attempts retried, by reason.', labelNames: ['reason'], registers });
    for (const p of ['high', 'medium', 'low']) this.queueLength.set({ priority: p }, 0);

    // resource figures, computed at scrape time (collect) so nothing runs between scrapes
    const sockets = this.sockets;
    const networkReceive = new Counter({
      name: PREFIX + 'network_receive_bytes_total', help: 'Bytes received on the proxy\'s sockets, by peer (client, upstream).',
      labelNames: ['peer'], registers,
      collect() {
        this.reset();
        this.inc({ peer: 'client' }, sockets.client.totals().read);
        this.inc({ peer: 'upstream' }, sockets.upstream.totals().read);
      },
    });
    const networkTransmit = new Counter({
      name: PREFIX + 'network_transmit_bytes_total', help: 'Bytes sent on the proxy\'s sockets, by peer (client, upstream).',
      labelNames: ['peer'], registers,
      collect() {
        this.reset();
        this.inc({ peer: 'client' }, sockets.client.totals().written);
        this.inc({ peer: 'upstream' }, sockets.upstream.totals().written);
      },
    });
    this.networkReceive = networkReceive;
    this.networkTransmit = networkTransmit;
    this.diskRead = new Counter({
      name: PREFIX + 'disk_read_bytes_total', help: 'Bytes this process read from storage (/proc/self/io read_bytes).', registers,
      collect() {
        const io = readProcessIo();
        this.reset();
        if (io) this.inc(io.readBytes);
      },
    });
    this.diskWritten = new Counter({
      name: PREFIX + 'disk_written_bytes_total', help: 'Bytes this process caused to be written to storage (/proc/self/io write_bytes).', registers,
      collect() {
        const io = readProcessIo();
        this.reset();
        if (io) this.inc(io.writeBytes);
      },
    });
    this.memoryLimit = new Gauge({
      name: PREFIX + 'memory_limit_bytes', help: 'Memory the container may use: the cgroup limit, else the machine\'s RAM.',
      registers, aggregator: 'max',
      collect() {
        this.set(readMemory().limitBytes);
      },
    });
    this.memoryUsage = new Gauge({
      name: PREFIX + 'memory_usage_ratio', help: 'The container\'s memory working set (cgroup usage minus inactive page cache, as the kubelet counts it; else the machine\'s used RAM) over memory_limit_bytes, 0..1.',
      registers, aggregator: 'max',
      collect() {
        this.set(memoryPressure());
      },
    });
    const redisHealth = () => this.redisHealth?.() ?? null;
    this.redisUp = new OptionalGauge({
      name: PREFIX + 'redis_up', help: 'Whether the Redis link is up (1) or down (0); the min over workers. No sample without a redis section.',
      registers, aggregator: 'min',
      collect() {
        this.set(redisHealth() === true ? 1 : 0);
      },
    });
    this.redisUp.present = () => redisHealth() !== null;
    const poolFigures = () => this.poolFigures?.() ?? null;
    this.upstreamConnections = new Gauge({
      name: PREFIX + 'upstream_connections', help: 'Connections to the upstream by state: in_use, idle (pooled keep-alive), waiting (requests queued for a connection).',
      labelNames: ['state'], registers,
      collect() {
        const f = poolFigures();
        this.reset();
        if (f === null) return;
        this.set({ state: 'in_use' }, f.inUse);
        this.set({ state: 'idle' }, f.idle);
        this.set({ state: 'waiting' }, f.waiting);
      },
    });

    if (opts.defaultMetrics !== false) {
      // nodejs_eventloop_lag_{min,...,p99}_seconds come from ./event-loop-delay.ts (sampled every 100 ms, and
      // without the sampling interval in the figure); prom-client's own sampler is left as slow as it can be
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: PROM_CLIENT_SAMPLER_MS });
      registerEventLoopDelay(this.registry);
      // gauges named *_total (prom-client's totals of nodejs_active_handles/requests/resources, which stay):
      // promtool refuses a _total suffix on a non-counter
      for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(n);
      // defaults that must not be summed over workers: a per-process limit, and when the group started
      setAggregator(this.registry, 'process_max_fds', 'max');
      setAggregator(this.registry, 'process_start_time_seconds', 'min');
    }
  }

  private makeDuration(buckets: readonly number[]): FastHistogram {
    return new FastHistogram(PREFIX + 'http_request_duration_seconds',
      'Time from request arrival to the end of the response, by route, method and status.',
      ['endpoint', 'method', 'status'], [...buckets], this.registry);
  }

  /**
   * What a policy (at start or on reload) changes here: the duration buckets, and the label sets it makes
   * possible, exported at 0 (see label-values.ts). Series of an earlier policy stay: counters never go away.
   */
  applyPolicy(policy: Policy): void {
    this.setBuckets(policy.metrics.buckets);
    const known = knownSeries(policy);
    for (const l of known.requests) this.requests.inc(l, 0);
    for (const l of known.errors) this.errors.inc(l, 0);
    for (const l of known.cacheRequests) this.cacheRequests.inc(l, 0);
    for (const l of known.ratelimitRejected) this.ratelimitRejected.inc(l, 0);
    for (const l of known.shed) this.shed.inc(l, 0);
  }

  /** Buckets come from the policy; a reload that changes them starts a new histogram (old samples reset). */
  setBuckets(buckets: readonly number[]): void {
    if (buckets.length === this.buckets.length && buckets.every((b, i) => b === this.buckets[i])) return;
    this.registry.removeSingleMetric(PREFIX + 'http_request_duration_seconds');
    this.buckets = buckets;
    this.requestDuration = this.makeDuration(buckets);
    for (const byMethod of this.requestCells.values()) for (const m of byMethod.values()) m.byStatus.clear();
  }

  /** Hot path: one request finished. */
  observeRequest(endpoint: string, method: string, status: number, seconds: number): void {
    let byMethod = this.requestCells.get(endpoint);
    if (byMethod === undefined) {
      byMethod = new Map();
      this.requestCells.set(endpoint, byMethod);
    }
    let m = byMethod.get(method);
    if (m === undefined) {
      m = { count: this.requests.cell([endpoint, method]), byStatus: new Map() };
      byMethod.set(method, m);
    }
    let h = m.byStatus.get(status);
    if (h === undefined) {
      h = this.requestDuration.cell([endpoint, method, String(status)]);
      m.byStatus.set(status, h);
    }
    h.observe(seconds);
    m.count.inc();
  }
}

/**
 * The counter `name` of this registry, created on first use: components built more than once per process
 * (a worker restarts its stages, tests build several) share the one series instead of failing to re-register it.
 * `extra` (a collect function, the cross-worker aggregator) applies only when this call creates it.
 */
export function registeredCounter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[],
  extra: Pick<CounterConfiguration<L>, 'collect' | 'aggregator'> = {}): Counter<L> {
  return (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers: [registry], ...extra });
}

/** The gauge `name` of this registry, created on first use (see registeredCounter). */
export function registeredGauge<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[],
  extra: Pick<GaugeConfiguration<L>, 'collect' | 'aggregator'> = {}): Gauge<L> {
  return (registry.getSingleMetric(name) as Gauge<L> | undefined) ?? new Gauge({ name, help, labelNames, registers: [registry], ...extra });
}

/** The histogram `name` of this registry, created on first use (see registeredCounter). */
export function registeredHistogram<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[],
  extra: Pick<HistogramConfiguration<L>, 'buckets' | 'aggregator'> = {}): Histogram<L> {
  return (registry.getSingleMetric(name) as Histogram<L> | undefined) ?? new Histogram({ name, help, labelNames, registers: [registry], ...extra });
}

function setAggregator(registry: Registry, name: string, aggregator: 'sum' | 'max' | 'min' | 'first' | 'average'): void {
  const m = registry.getSingleMetric(name) as { aggregator?: string } | undefined;
  if (m) m.aggregator = aggregator;
}

/** Series only the primary (or the single process) exports: they describe the process group, not a worker. */
export class PrimaryMetrics {
  readonly registry: Registry;
  readonly policyReloads: Counter<'result'>;
  readonly policyInfo: Gauge<'version'>;
  readonly policyReloadSuccessful: Gauge<string>;
  readonly autotuneActions: Counter<'strategy'>;
  readonly workersRestarted: Counter<string>;
  readonly workers: Gauge<string>;

  constructor(registry?: Registry) {
    this.registry = registry ?? new Registry();
    const registers = [this.registry];
    this.policyReloads = new Counter({ name: PREFIX + 'policy_reloads_total', help: 'Policy reload attempts by result (success, error, unchanged).', labelNames: ['result'], registers });
    // like prometheus_config_last_reload_successful: an alert on it resolves as soon as a later reload succeeds
    this.policyReloadSuccessful = new Gauge({ name: PREFIX + 'policy_last_reload_successful', help: 'Whether the last policy reload attempt succeeded (1: the file on disk is the policy in force or unchanged from it; 0: it was refused and the previous policy still serves).', registers });
    this.policyReloadSuccessful.set(1);
    this.policyInfo = new Gauge({ name: PREFIX + 'policy_info', help: 'The policy in force: 1 for its content hash.', labelNames: ['version'], registers });
    this.autotuneActions = new Counter({ name: PREFIX + 'autotune_actions_total', help: 'Auto-tuning actions taken, by strategy.', labelNames: ['strategy'], registers });
    this.workersRestarted = new Counter({ name: PREFIX + 'worker_restarts_total', help: 'Worker processes restarted after an unexpected exit.', registers });
    this.workers = new Gauge({ name: PREFIX + 'workers', help: 'Worker processes running.', registers });
    for (const r of RELOAD_RESULTS) this.policyReloads.inc({ result: r }, 0);
  }

  setPolicyVersion(version: string): void {
    this.policyInfo.reset();
    this.policyInfo.set({ version }, 1);
  }
}
