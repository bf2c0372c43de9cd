/**
 * Turns a policy that passed the schema and semantic checks into the typed, normalised Policy: units become
 * numbers (ms, bytes, 0..1), absent sections become null (feature off) except server, upstream and metrics,
 * and a present section gets the contract's defaults for every key it leaves out.
 *
 * The defaults are the contract's (../shared/CONTRACT.md, "Policy file"); extensions are marked.
 */
import type {
  AutoTuningPolicy, CachePolicy, CacheTierPolicy, CompressionAlgorithm, CompressionPolicy, DiskTierPolicy,
  EndpointLimitPolicy, HostPort, InvalidationPolicy, JitWarmupPolicy, JsonScalar, LimitCount, LocalReplyPolicy, MemoryPolicy, MetricsPolicy, Policy, Priority,
  PriorityQueuePolicy, ProfilingPolicy, QueuePolicy, RateLimitPolicy, RedisPolicy, RouteCachePolicy, RoutePolicy,
  ServerPolicy, TracingPolicy, UpstreamPolicy, WarmupPolicy,
} from './types';
import { parseHostPort } from './semantic';
import { parseDuration, parseRatio, parseSize } from './units';

type Obj = Record<string, unknown>;

export const DEFAULT_COMPRESSIBLE_TYPES: readonly string[] = [
  'application/json', 'application/*+json', 'text/*', 'application/javascript', 'application/xml',
  'application/*+xml', 'image/svg+xml',
];
/**
 * The guide's buckets with 0.5, 1, 2.5 and 5 ms below them: a sidecar answers most requests (cache hits, local
 * refusals) in a few milliseconds, and with a smallest bucket of 10 ms histogram_quantile would interpolate a
 * 1.2 ms median up to ~5 ms. The policy's `metrics.buckets` replaces them.
 */
export const DEFAULT_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0];

const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
/** A present key (even if written empty: `cache:`) turns its section on. */
const present = (parent: Obj, key: string): boolean => Object.prototype.hasOwnProperty.call(parent, key);

const size = (v: unknown, d: string | number) => parseSize(v ?? d);
const dur = (v: unknown, d: string | number) => parseDuration(v ?? d);
const num = (v: unknown, d: number) => (typeof v === 'number' ? v : d);
const bool = (v: unknown, d: boolean) => (typeof v === 'boolean' ? v : d);
const str = (v: unknown, d: string) => (typeof v === 'string' ? v : d);
const list = <T>(v: unknown, d: readonly T[]): T[] => (Array.isArray(v) ? (v as T[]) : [...d]);

function hostPort(v: unknown, d: string): HostPort {
  const hp = parseHostPort(v ?? d);
  if (!hp) throw new Error(`unreachable: listen ${String(v)} passed validation`);
  return hp;
}

function server(raw: Obj): ServerPolicy {
  return {
    listen: hostPort(raw.listen, '0.0.0.0:15006'),
    admin_listen: hostPort(raw.admin_listen, '0.0.0.0:9901'),
    metrics_listen: raw.metrics_listen === undefined || raw.metrics_listen === null ? null : hostPort(raw.metrics_listen, ''),
    workers: num(raw.workers, 2),
    worker_connections: num(raw.worker_connections, 1000),
    keepalive_timeout: dur(raw.keepalive_timeout, '65s'),
    client_max_body_size: size(raw.client_max_body_size, '50MB'),
    request_timeout: dur(raw.request_timeout, '60s'),
    slow_request_threshold: dur(raw.slow_request_threshold, '1s'),
    log_level: str(raw.log_level, 'info') as ServerPolicy['log_level'],
    log_format: str(raw.log_format, 'auto') as ServerPolicy['log_format'],
    admin_token_file: typeof raw.admin_token_file === 'string' ? raw.admin_token_file : null,
    drain_timeout: dur(raw.drain_timeout, '30s'),
    jit_warmup: jitWarmup(obj(raw.jit_warmup)),
    v8_polymorphic_maps: num(raw.v8_polymorphic_maps, 16),
  };
}

function jitWarmup(raw: Obj): JitWarmupPolicy {
  return {
    enabled: raw.enabled !== false,
    requests: num(raw.requests, 3000),
    max_time: dur(raw.max_time, '1s'),
    eager_baseline: raw.eager_baseline !== false,
  };
}

function upstream(raw: Obj): UpstreamPolicy {
  const url = new URL(str(raw.url, ''));
  const protocol = url.protocol as 'http:' | 'https:';
  const pool = obj(raw.pool);
  return {
    url: str(raw.url, ''),
    protocol,
    // URL keeps IPv6 brackets; sockets want the bare address
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : protocol === 'https:' ? 443 : 80,
    pool: {
      max_connections: num(pool.max_connections, 100),
      max_connections_per_host: num(pool.max_connections_per_host, 20),
      keepalive_timeout: dur(pool.keepalive_timeout, '30s'),
      connect_timeout: dur(pool.connect_timeout, '5s'),
      read_timeout: dur(pool.read_timeout, '30s'),
      retries: num(pool.retries, 3),
    },
  };
}

function redis(raw: Obj): RedisPolicy {
  return {
    url: typeof raw.url === 'string' ? raw.url : null,
    cluster: Array.isArray(raw.cluster) ? raw.cluster.map((n) => hostPort(n, '')) : null,
    password_file: typeof raw.password_file === 'string' ? raw.password_file : null,
    key_prefix: str(raw.key_prefix, 'bridge:'),
    max_connections: num(raw.max_connections, 50),
    retry_on_timeout: bool(raw.retry_on_timeout, true),
    health_check_interval: dur(raw.health_check_interval, '30s'),
    socket_keepalive: bool(raw.socket_keepalive, true),
    command_timeout: dur(raw.command_timeout, '50ms'),
  };
}

function stringMap(v: unknown, lowerKeys = false): Record<string, string> | null {
  if (v === null || v === undefined) return null;
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(obj(v))) out[lowerKeys ? k.toLowerCase() : k] = String(val);
  return out;
}

function scalarMap(v: unknown): Record<string, JsonScalar> | null {
  if (v === null || v === undefined) return null;
  return { ...(obj(v) as Record<string, JsonScalar>) };
}

function route(raw: Obj): RoutePolicy {
  const m = obj(raw.match);
  const c = present(raw, 'cache') ? obj(raw.cache) : null;
  const cache: RouteCachePolicy | null = c && {
    key: str(c.key, ''),
    ttl: dur(c.ttl, '5m'),
    store_if: scalarMap(c.store_if),
    stale_while_revalidate: dur(c.stale_while_revalidate, 0),
    stale_if_error: dur(c.stale_if_error, 0),
    override_upstream: bool(c.override_upstream, false),
    jsonrpc: bool(c.jsonrpc, false),
  };
  return {
    name: str(raw.name, ''),
    match: {
      method: typeof m.method === 'string' ? m.method.toUpperCase() : null,
      path: typeof m.path === 'string' ? m.path : null,
      query: stringMap(m.query),
      headers: stringMap(m.headers, true),
      body: scalarMap(m.body),
      jsonrpc_method: typeof m.jsonrpc_method === 'string' ? m.jsonrpc_method : null,
    },
    params: stringMap(raw.params) ?? {},
    priority: (raw.priority as Priority | undefined) ?? null,
    cache,
    // `emits: [a, b]` (raised on 2xx, as the contract has it) or `emits: { events: [a, b], on: any | 2xx }`
    emits: list<string>(Array.isArray(raw.emits) ? raw.emits : obj(raw.emits).events, []),
    emits_on: obj(raw.emits).on === 'any' ? 'any' : '2xx',
    local_reply: present(raw, 'local_reply') ? localReply(obj(raw.local_reply)) : null,
  };
}

/** nginx counts every request, and so does a limit unless it says `count: upstream`. */
function limitCount(v: unknown): LimitCount {
  return v === 'upstream' ? 'upstream' : 'all';
}

function rateLimiting(raw: Obj): RateLimitPolicy {
  const id = obj(raw.identity);
  const g = present(raw, 'global') ? obj(raw.global) : null;
  const u = present(raw, 'per_user') ? obj(raw.per_user) : null;
  const perEndpoint: Record<string, EndpointLimitPolicy> = {};
  for (const [k, v] of Object.entries(obj(raw.per_endpoint))) {
    const e = obj(v);
    const rps = num(e.rps, 1);
    // burst defaults to one second's worth of requests
    perEndpoint[k] = { rps, burst: num(e.burst, Math.max(1, Math.ceil(rps))), dry_run: bool(e.dry_run, false), count: limitCount(e.count) };
  }
  return {
    identity: {
      header: typeof id.header === 'string' ? id.header.toLowerCase() : null,
      jwt_sub: bool(id.jwt_sub, false),
      trust_forwarded_for: bool(id.trust_forwarded_for, false),
    },
    scope: str(raw.scope, 'pod') as 'pod' | 'cluster',
    global: g && {
      requests_per_second: num(g.requests_per_second, 1000),
      burst_size: num(g.burst_size, 100),
      algorithm: 'token_bucket',
      dry_run: bool(g.dry_run, false),
      count: limitCount(g.count),
    },
    per_user: u && {
      requests_per_minute: num(u.requests_per_minute, 60),
      burst_size: num(u.burst_size, 10),
      algorithm: 'sliding_window',
      dry_run: bool(u.dry_run, false),
      count: limitCount(u.count),
    },
    per_endpoint: perEndpoint,
  };
}

const QUEUE_DEFAULTS: Record<Priority, PriorityQueuePolicy> = {
  high: { weight: 3, max_size: 200 },
  medium: { weight: 2, max_size: 500 },
  low: { weight: 1, max_size: 300 },
};

function queues(raw: Obj): QueuePolicy {
  const pq = obj(raw.priority_queues);
  const priorityQueue = (p: Priority): PriorityQueuePolicy => {
    const q = obj(pq[p]);
    return { weight: num(q.weight, QUEUE_DEFAULTS[p].weight), max_size: num(q.max_size, QUEUE_DEFAULTS[p].max_size) };
  };
  return {
    max_in_flight: raw.max_in_flight === 'auto' ? 'auto' : num(raw.max_in_flight, 256),
    max_queue_size: num(raw.max_queue_size, 1000),
    queue_timeout: dur(raw.queue_timeout, '10s'),
    priority_queues: { high: priorityQueue('high'), medium: priorityQueue('medium'), low: priorityQueue('low') },
    default_priority: str(raw.default_priority, 'medium') as Priority,
    batch_size: num(raw.batch_size, 10),
    batch_timeout: dur(raw.batch_timeout, '100ms'),
    worker_threads: num(raw.worker_threads, 8),
  };
}

function tier(raw: Obj, d: { size: string; ttl: string; strategy: CacheTierPolicy['strategy'] }): CacheTierPolicy {
  return { size: size(raw.size, d.size), ttl: dur(raw.ttl, d.ttl), strategy: str(raw.strategy, d.strategy) as CacheTierPolicy['strategy'] };
}

function cache(raw: Obj): CachePolicy {
  const l3 = obj(raw.l3);
  const w = obj(raw.warmup);
  const inv = obj(raw.invalidation);
  const warmup: WarmupPolicy | null = present(raw, 'warmup')
    ? {
        enabled: bool(w.enabled, true),
        strategies: list<unknown>(w.strategies, []).map((s) => {
          const o = obj(s);
          return {
            name: str(o.name, ''),
            pattern: str(o.pattern, ''),
            schedule: str(o.schedule, ''),
            priority: str(o.priority, 'medium') as Priority,
            top: num(o.top, 100),
            on_start: bool(o.on_start, false),
          };
        }),
        start_timeout: dur(w.start_timeout, '30s'),
      }
    : null;
  const invalidation: InvalidationPolicy | null = present(raw, 'invalidation')
    ? {
        triggers: list<string>(inv.triggers, []),
        patterns: list<string>(inv.patterns, []),
        cascade: bool(inv.cascade, true),
        async: bool(inv.async, true),
      }
    : null;
  const disk: DiskTierPolicy | null = present(raw, 'l3')
    ? { path: str(l3.path, '/var/cache/bridge-sidecar'), ...tier(l3, { size: '10GB', ttl: '24h', strategy: 'fifo' }) }
    : null;
  return {
    l1: present(raw, 'l1') ? tier(obj(raw.l1), { size: '256MB', ttl: '5m', strategy: 'lru' }) : null,
    l2: present(raw, 'l2') ? tier(obj(raw.l2), { size: '2GB', ttl: '1h', strategy: 'lfu' }) : null,
    l3: disk,
    warmup,
    invalidation,
    honor_client_no_cache: bool(raw.honor_client_no_cache, false),
  };
}

function compression(raw: Obj): CompressionPolicy {
  const a = raw.algorithm ?? 'gzip';
  const algos = (typeof a === 'string' ? a.split(',').map((s) => s.trim()) : (a as string[])) as CompressionAlgorithm[];
  return {
    enabled: bool(raw.enabled, true),
    algorithm: [...new Set(algos)],
    level: num(raw.level, 6),
    threshold: size(raw.threshold, '1KB'),
    types: list<string>(raw.types, DEFAULT_COMPRESSIBLE_TYPES),
  };
}

function memory(raw: Obj): MemoryPolicy {
  return {
    gc_threshold: parseRatio(raw.gc_threshold ?? '80%'),
    large_body_threshold: size(raw.large_body_threshold, '10MB'),
    connection_threshold: parseRatio(raw.connection_threshold ?? '90%'),
    recover_margin: parseRatio(raw.recover_margin ?? '5%'),
    l1_floor: parseRatio(raw.l1_floor ?? '10%'),
    check_interval: dur(raw.check_interval, '1s'),
  };
}

function metrics(raw: Obj): MetricsPolicy {
  return { buckets: list<number>(raw.buckets, DEFAULT_BUCKETS) };
}

function tracing(raw: Obj): TracingPolicy {
  return {
    enabled: bool(raw.enabled, false),
    endpoint: str(raw.endpoint, 'http://127.0.0.1:4318'),
    sampling_rate: parseRatio(raw.sampling_rate ?? 0.01),
    service_name: str(raw.service_name, 'bridge-sidecar'),
  };
}

function profiling(raw: Obj): ProfilingPolicy {
  const cpu = obj(raw.cpu);
  const heap = obj(raw.heap);
  return {
    enabled: bool(raw.enabled, false),
    cpu: { interval: dur(cpu.interval, '60s'), duration: dur(cpu.duration, '30s') },
    heap: { interval: dur(heap.interval, '300s'), threshold: size(heap.threshold, '100MB') },
    output: str(raw.output, '/tmp/bridge-sidecar-profiles'),
    max_files: num(raw.max_files, 20),
  };
}

function autoTuning(raw: Obj): AutoTuningPolicy {
  const interval = dur(raw.interval, '5m');
  return {
    enabled: bool(raw.enabled, true),
    interval,
    dry_run: bool(raw.dry_run, false),
    cooldown: dur(raw.cooldown, interval / 1000),
    strategies: list<unknown>(raw.strategies, []).map((s) => {
      const o = obj(s);
      const params: Record<string, number> = {};
      for (const [k, v] of Object.entries(obj(o.params))) params[k] = typeof v === 'number' ? v : parseRatio(v);
      return {
        name: str(o.name, ''),
        trigger: str(o.trigger, ''),
        action: o.action as AutoTuningPolicy['strategies'][number]['action'],
        params,
      };
    }),
  };
}

/** The normalised policy from a raw value that passed validation. */
export function normalize(rawRoot: unknown): Policy {
  const root = obj(rawRoot);
  const section = <T>(key: string, build: (raw: Obj) => T): T | null => (present(root, key) ? build(obj(root[key])) : null);
  return {
    version: 1,
    server: server(obj(root.server)),
    upstream: upstream(obj(root.upstream)),
    redis: section('redis', redis),
    routes: list<unknown>(root.routes, []).map((r) => route(obj(r))),
    rate_limiting: section('rate_limiting', rateLimiting),
    queues: section('queues', queues),
    cache: section('cache', cache),
    compression: section('compression', compression),
    memory: section('memory', memory),
    metrics: metrics(obj(root.metrics)),
    tracing: section('tracing', tracing),
    profiling: section('profiling', profiling),
    auto_tuning: section('auto_tuning', autoTuning),
    local_reply: section('local_reply', localReply),
  };
}

function localReply(raw: Obj): LocalReplyPolicy {
  return { content_type: str(raw.content_type, 'application/json'), body: str(raw.body, '') };
}
