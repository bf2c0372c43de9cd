/**
 * The validated, normalised policy. Produced once by `loadPolicy` (lib/policy/load.ts) and deep-frozen:
 * the hot path reads these objects, it never re-reads YAML.
 *
 * Keys mirror the YAML file (snake_case) so /policy shows the operator the same names they wrote.
 * Values are normalised: durations are milliseconds, sizes are bytes, ratios are 0..1.
 * A section that is absent from the file is `null` (the feature is off); a present section has every key,
 * with the contract's defaults filled in.
 */

export type Priority = 'high' | 'medium' | 'low';
export const PRIORITIES: readonly Priority[] = ['high', 'medium', 'low'];

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface ServerPolicy {
  readonly listen: HostPort;
  readonly admin_listen: HostPort;
  /** A listener serving GET /metrics alone, or null (extension). */
  readonly metrics_listen: HostPort | null;
  /** Worker processes (node:cluster). 0 runs the proxy inside the main process (tests, tiny pods). */
  readonly workers: number;
  /** Max concurrent client connections per worker (like nginx worker_connections). */
  readonly worker_connections: number;
  readonly keepalive_timeout: number;
  readonly client_max_body_size: number;
  readonly request_timeout: number;
  readonly slow_request_threshold: number;
  readonly log_level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  /** auto: human-readable lines when stdout is a terminal, JSON otherwise (Kubernetes); read at start. */
  readonly log_format: 'auto' | 'json' | 'pretty';
  readonly admin_token_file: string | null;
  /** How long SIGTERM waits for in-flight requests before closing them (extension; default 30s). */
  readonly drain_timeout: number;
  /** Synthetic requests through a private copy of the pipeline before the worker listens (extension). */
  readonly jit_warmup: JitWarmupPolicy;
  /** V8's --max-valid-polymorphic-map-count in every process that serves requests (extension; read at start). */
  readonly v8_polymorphic_maps: number;
}

export interface JitWarmupPolicy {
  readonly enabled: boolean;
  /** At most this many requests... */
  readonly requests: number;
  /** ...and at most this long (ms). */
  readonly max_time: number;
  /** V8's --always-sparkplug while the warm-up runs, and only then (lib/perf/v8-flags.ts). */
  readonly eager_baseline: boolean;
}

export interface UpstreamPoolPolicy {
  readonly max_connections: number;
  readonly max_connections_per_host: number;
  readonly keepalive_timeout: number;
  readonly connect_timeout: number;
  readonly read_timeout: number;
  readonly retries: number;
}

export interface UpstreamPolicy {
  /** As written, e.g. http://127.0.0.1:9101 */
  readonly url: string;
  readonly protocol: 'http:' | 'https:';
  readonly host: string;
  readonly port: number;
  readonly pool: UpstreamPoolPolicy;
}

export interface RedisPolicy {
  /** redis://host:port/db, or null when `cluster` is used. */
  readonly url: string | null;
  /** Seed nodes of a Redis Cluster, or null for a single node. */
  readonly cluster: readonly HostPort[] | null;
  /** A file holding the password (a mounted Secret); null: $BRIDGE_SIDECAR_REDIS_PASSWORD, if set. */
  readonly password_file: string | null;
  readonly key_prefix: string;
  readonly max_connections: number;
  readonly retry_on_timeout: boolean;
  readonly health_check_interval: number;
  readonly socket_keepalive: boolean;
  /** Upper bound on any Redis call made on a request's path (extension; default 50ms). */
  readonly command_timeout: number;
}

/** A scalar or small JSON value that a body field must equal. */
export type JsonScalar = string | number | boolean | null;

export interface RouteMatchPolicy {
  /** Upper-case method, or null for any. */
  readonly method: string | null;
  /** Path template: literal segments and `{name}` segments; a trailing `*` matches the rest. Null: any path. */
  readonly path: string | null;
  /** Query parameters that must be present with these values ("*" = present with any value). */
  readonly query: Readonly<Record<string, string>> | null;
  /** Request headers (lower-case names) that must have these values ("*" = present). */
  readonly headers: Readonly<Record<string, string>> | null;
  /** JSON body fields (dotted paths) that must equal these values. Needs the body to be read. */
  readonly body: Readonly<Record<string, JsonScalar>> | null;
  /** JSON-RPC 2.0 `method` of the body. Needs the body to be read. */
  readonly jsonrpc_method: string | null;
}

export interface RouteCachePolicy {
  /** Key template, e.g. "draft:{draft_id}:script". */
  readonly key: string;
  readonly ttl: number;
  /** Response JSON fields (dotted, prefixed "response.") that must equal these values to store. */
  readonly store_if: Readonly<Record<string, JsonScalar>> | null;
  /** Serve stale for this long while one background refresh runs (RFC 5861); 0 = off unless upstream says. */
  readonly stale_while_revalidate: number;
  /** Serve stale for this long when the upstream fails or the request is shed; 0 = off unless upstream says. */
  readonly stale_if_error: number;
  /** Store even when the upstream says no-store/private (the route's word wins). Default false. */
  readonly override_upstream: boolean;
  /** The body is JSON-RPC 2.0 (also implied by match.jsonrpc_method): keyed by method + params, never id. */
  readonly jsonrpc: boolean;
}

export interface RoutePolicy {
  readonly name: string;
  readonly match: RouteMatchPolicy;
  /** name -> source expression: path.X, query.X, header.X, body.a.b, response.a.b, identity */
  readonly params: Readonly<Record<string, string>>;
  readonly priority: Priority | null;
  readonly cache: RouteCachePolicy | null;
  /** Events raised when the upstream answers (see emits_on). */
  readonly emits: readonly string[];
  /**
   * Which upstream answers raise them: `2xx` (the default), or `any` (every answer, whatever its status: for an
   * upstream whose failed writes may still have changed something, or that answers errors with 200 or 500).
   */
  readonly emits_on: 'any' | '2xx';
  /** This route's local replies, else the policy's local_reply. */
  readonly local_reply: LocalReplyPolicy | null;
}

/**
 * Which requests a limit counts: `all` (every request, as nginx's limit_req does) or `upstream` (only those that
 * go to the upstream: answers from the cache cost it nothing, so they are not counted).
 */
export type LimitCount = 'all' | 'upstream';

export interface TokenBucketPolicy {
  readonly requests_per_second: number;
  readonly burst_size: number;
  readonly algorithm: 'token_bucket';
  readonly dry_run: boolean;
  readonly count: LimitCount;
}

export interface SlidingWindowPolicy {
  readonly requests_per_minute: number;
  readonly burst_size: number;
  readonly algorithm: 'sliding_window';
  readonly dry_run: boolean;
  readonly count: LimitCount;
}

export interface EndpointLimitPolicy {
  readonly rps: number;
  readonly burst: number;
  readonly dry_run: boolean;
  readonly count: LimitCount;
}

export interface IdentityPolicy {
  /** Lower-case header name that carries the user id, or null. */
  readonly header: string | null;
  /** Take the `sub` claim of `Authorization: Bearer <JWT>` (not verified: a key only). */
  readonly jwt_sub: boolean;
  /** Use the first X-Forwarded-For hop as the client address (only behind a trusted proxy). */
  readonly trust_forwarded_for: boolean;
}

export interface RateLimitPolicy {
  readonly identity: IdentityPolicy;
  readonly scope: 'pod' | 'cluster';
  readonly global: TokenBucketPolicy | null;
  readonly per_user: SlidingWindowPolicy | null;
  /** Key: a path ("/mcp/create_draft") or a route name. */
  readonly per_endpoint: Readonly<Record<string, EndpointLimitPolicy>>;
}

export interface PriorityQueuePolicy {
  readonly weight: number;
  readonly max_size: number;
}

export interface QueuePolicy {
  /** Fixed limit, or 'auto' for the adaptive (gradient) limit. */
  readonly max_in_flight: number | 'auto';
  readonly max_queue_size: number;
  readonly queue_timeout: number;
  readonly priority_queues: Readonly<Record<Priority, PriorityQueuePolicy>>;
  readonly default_priority: Priority;
  readonly batch_size: number;
  readonly batch_timeout: number;
  readonly worker_threads: number;
}

export interface CacheTierPolicy {
  readonly size: number;
  readonly ttl: number;
  readonly strategy: 'lru' | 'lfu' | 'fifo';
}

export interface DiskTierPolicy extends CacheTierPolicy {
  readonly path: string;
}

export interface WarmupStrategyPolicy {
  readonly name: string;
  readonly pattern: string;
  readonly schedule: string;
  readonly priority: Priority;
  readonly top: number;
  readonly on_start: boolean;
}

export interface WarmupPolicy {
  readonly enabled: boolean;
  readonly strategies: readonly WarmupStrategyPolicy[];
  /** /readyz waits at most this long for the start-up warm-up (extension; default 30s). */
  readonly start_timeout: number;
}

export interface InvalidationPolicy {
  readonly triggers: readonly string[];
  readonly patterns: readonly string[];
  readonly cascade: boolean;
  readonly async: boolean;
}

export interface CachePolicy {
  readonly l1: CacheTierPolicy | null;
  readonly l2: CacheTierPolicy | null;
  readonly l3: DiskTierPolicy | null;
  readonly warmup: WarmupPolicy | null;
  readonly invalidation: InvalidationPolicy | null;
  /** Honour a client's `Cache-Control: no-cache` / `Pragma: no-cache` (extension; default false). */
  readonly honor_client_no_cache: boolean;
}

export type CompressionAlgorithm = 'gzip' | 'br';

export interface CompressionPolicy {
  readonly enabled: boolean;
  /** In order of preference. YAML may say `gzip`, `[br, gzip]` or `"br, gzip"`. */
  readonly algorithm: readonly CompressionAlgorithm[];
  readonly level: number;
  readonly threshold: number;
  /** Compressible media types; `text/*` style wildcards allowed. */
  readonly types: readonly string[];
}

export interface MemoryPolicy {
  /** Working set / cgroup limit at which L1 stops admitting and shrinks (lib/perf/overload.ts). */
  readonly gc_threshold: number;
  readonly large_body_threshold: number;
  /** ...at which new connections are refused and idle keep-alive ones closed (extension). */
  readonly connection_threshold: number;
  /** Each step is left only this far below its threshold (extension). */
  readonly recover_margin: number;
  /** L1 shrinks no further than this share of cache.l1.size (extension). */
  readonly l1_floor: number;
  /** How often the figure is read, ms (extension). */
  readonly check_interval: number;
}

export interface MetricsPolicy {
  readonly buckets: readonly number[];
}

export interface TracingPolicy {
  readonly enabled: boolean;
  readonly endpoint: string;
  readonly sampling_rate: number;
  readonly service_name: string;
}

export interface ProfilingPolicy {
  readonly enabled: boolean;
  readonly cpu: { readonly interval: number; readonly duration: number };
  readonly heap: { readonly interval: number; readonly threshold: number };
  readonly output: string;
  /** Keep at most this many profile files (extension; default 20). */
  readonly max_files: number;
}

export interface AutoTuneStrategyPolicy {
  readonly name: string;
  readonly trigger: string;
  readonly action: 'reduce_cache_size' | 'increase_pool_size' | 'increase_workers';
  readonly params: Readonly<Record<string, number>>;
}

export interface AutoTuningPolicy {
  readonly enabled: boolean;
  readonly interval: number;
  readonly dry_run: boolean;
  readonly cooldown: number;
  readonly strategies: readonly AutoTuneStrategyPolicy[];
}

/** A template for the sidecar's own answers (413, 429, 502, 503, 504, ...) in the upstream's error shape. */
export interface LocalReplyPolicy {
  readonly content_type: string;
  /** With {status}, {title}, {detail}, {type}; JSON-escaped when content_type is JSON. */
  readonly body: string;
}

export interface Policy {
  readonly version: 1;
  readonly server: ServerPolicy;
  readonly upstream: UpstreamPolicy;
  readonly redis: RedisPolicy | null;
  readonly routes: readonly RoutePolicy[];
  readonly rate_limiting: RateLimitPolicy | null;
  readonly queues: QueuePolicy | null;
  readonly cache: CachePolicy | null;
  readonly compression: CompressionPolicy | null;
  readonly memory: MemoryPolicy | null;
  readonly metrics: MetricsPolicy;
  readonly tracing: TracingPolicy | null;
  readonly profiling: ProfilingPolicy | null;
  readonly auto_tuning: AutoTuningPolicy | null;
  /** null: local replies are problem+json. */
  readonly local_reply: LocalReplyPolicy | null;
}

/** One problem found in a policy file, positioned like a compiler error. */
export interface PolicyError {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export interface LoadedPolicy {
  readonly policy: Policy;
  /** Content hash of the file (first 12 hex of sha256), shown as policy_info{version}. */
  readonly version: string;
  readonly source: string;
  readonly file: string;
}
