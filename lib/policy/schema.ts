/**
 * The policy file's JSON Schema (draft 2020-12): the single source for both the structural check the loader
 * runs (lib/policy/validate-schema.ts interprets the subset used here) and the published policy.schema.json
 * that editors use for completion (scripts/gen-schema.js writes it; a test asserts the two are identical).
 *
 * Subset used: type, enum, const, pattern, minimum, maximum, exclusiveMinimum, minLength, minItems,
 * properties, required, additionalProperties (false or a schema), propertyNames, items, anyOf, oneOf,
 * $ref to #/$defs/..., plus the annotations description, default, examples and errorMessage (shown after the
 * value's path instead of the raw failure, so it reads "cache.l1.size must be a size like ...";
 * yaml-language-server shows it too).
 *
 * Cross-field rules (unique route names, placeholders that must be params, l2 needs redis, cron syntax, ...)
 * are not expressible here and live in lib/policy/semantic.ts.
 */
import { DURATION_PATTERN, PERCENT_PATTERN, SIZE_PATTERN } from './units';

export type JsonSchema = { readonly [k: string]: unknown };

const ref = (name: string) => ({ $ref: `#/$defs/${name}` });

/** An object whose keys are all optional and which may be written empty (`l1:` or `l1: {}`). */
function section(description: string, properties: Record<string, JsonSchema>, extra: Record<string, unknown> = {}) {
  return { type: ['object', 'null'], description, additionalProperties: false, properties, ...extra };
}

/** `{placeholder}` names: letters, digits, underscore; no other braces. */
const TEMPLATE_PATTERN = '^([^{}]|\\{[A-Za-z_][A-Za-z0-9_]*\\})*$';

const tier = (size: string, ttl: string, strategy: string, what: string) =>
  section(what, {
    size: { ...ref('size'), default: size },
    ttl: { ...ref('duration'), default: ttl },
    strategy: { enum: ['lru', 'lfu', 'fifo'], default: strategy, description: 'eviction order' },
  });

/** Which requests a rate limit counts. */
const LIMIT_COUNT = {
  enum: ['all', 'upstream'],
  default: 'all',
  description: 'all: every request (as nginx counts); upstream: only requests that go to the upstream (cache hits are free)',
};

/** auto-tuning: a strategy param is a number or a percentage; its range depends on the action. */
const autoTuneParam = {
  anyOf: [{ type: 'number' }, { type: 'string', pattern: PERCENT_PATTERN }],
  errorMessage: 'must be a number (or a percentage like 80%)',
};

export const POLICY_SCHEMA: JsonSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://github.com/bridge-sidecar/bridge-sidecar/policy.schema.json',
  title: 'bridge-sidecar policy',
  description:
    'The policy of bridge-sidecar. Only `upstream.url` is required; an absent section turns its feature off, ' +
    'a present one takes the defaults for keys it leaves out.',
  type: 'object',
  additionalProperties: false,
  required: ['upstream'],
  properties: {
    version: { const: 1, default: 1, description: 'Policy format version.' },
    server: section('Listeners and per-worker limits (always applies).', {
      listen: { ...ref('listen'), default: '0.0.0.0:15006' },
      admin_listen: { ...ref('listen'), default: '0.0.0.0:9901' },
      metrics_listen: { ...ref('listen'), description: 'a second listener that serves GET /metrics alone (for a Service that must not expose the rest of the admin port); absent: none' },
      workers: { type: 'integer', minimum: 0, maximum: 256, default: 2, description: 'worker processes; 0 = in the main process' },
      worker_connections: { type: 'integer', minimum: 1, default: 1000 },
      keepalive_timeout: { ...ref('duration'), default: '65s' },
      client_max_body_size: { ...ref('size'), default: '50MB' },
      request_timeout: { ...ref('duration'), default: '60s' },
      slow_request_threshold: { ...ref('duration'), default: '1s' },
      log_level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'], default: 'info' },
      log_format: { enum: ['auto', 'json', 'pretty'], default: 'auto', description: 'auto: readable lines on a terminal, JSON otherwise (read at start)' },
      admin_token_file: { type: ['string', 'null'], minLength: 1, description: 'file holding the admin bearer token' },
      drain_timeout: { ...ref('duration'), default: '30s', description: 'SIGTERM waits this long for requests in flight' },
      v8_polymorphic_maps: { type: 'integer', minimum: 1, maximum: 64, default: 16, description: "how many object shapes V8 keeps inline checks for at one property access before it falls back to a generic lookup (V8's --max-valid-polymorphic-map-count, whose own default is 4); read at start" },
      jit_warmup: section('Before a worker takes traffic (and /readyz turns 200), it sends a private copy of its pipeline synthetic requests against an in-process stub upstream, so the first real requests meet compiled code. Nothing real (metrics, cache, limits, logs) is touched.', {
        enabled: { type: 'boolean', default: true, description: 'on by default; off starts a worker cold (faster start, slower first second)' },
        requests: { type: 'integer', minimum: 0, maximum: 100000, default: 3000, description: 'at most this many synthetic requests per worker' },
        max_time: { ...ref('duration'), default: '1s', description: 'and at most this long per worker (requests still in flight then are dropped)' },
        eager_baseline: { type: 'boolean', default: true, description: "during the warm-up, V8 compiles each function the warm-up meets to baseline code on its first call instead of interpreting it until it is warm (V8's --always-sparkplug, set for the warm-up only)" },
      }),
    }),
    upstream: {
      type: 'object',
      description: 'The service behind the sidecar.',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: {
          type: 'string',
          pattern: '^https?://[^/?#\\s]+/?$',
          errorMessage: 'must be an http:// or https:// URL with a host and no path, like http://127.0.0.1:9101',
          examples: ['http://127.0.0.1:9101'],
        },
        pool: section('Keep-alive connection pool to the upstream.', {
          max_connections: { type: 'integer', minimum: 1, default: 100 },
          max_connections_per_host: { type: 'integer', minimum: 1, default: 20 },
          keepalive_timeout: { ...ref('duration'), default: '30s' },
          connect_timeout: { ...ref('duration'), default: '5s' },
          read_timeout: { ...ref('duration'), default: '30s' },
          retries: { type: 'integer', minimum: 0, maximum: 10, default: 3 },
        }),
      },
    },
    redis: {
      ...section('Shared state for several pods. Absent: one-pod mode.', {
        url: { type: 'string', pattern: '^rediss?://', errorMessage: 'must look like redis://host:6379/0' },
        cluster: { type: 'array', minItems: 1, items: ref('hostPort'), description: 'seed nodes of a Redis Cluster' },
        password_file: { type: 'string', minLength: 1, description: 'file holding the Redis password (a mounted Secret); absent: $BRIDGE_SIDECAR_REDIS_PASSWORD if set. Keep passwords out of the policy (it is shown by GET /policy, redacted, and lives in a ConfigMap)' },
        key_prefix: { type: 'string', default: 'bridge:' },
        max_connections: { type: 'integer', minimum: 1, default: 50 },
        retry_on_timeout: { type: 'boolean', default: true },
        health_check_interval: { ...ref('duration'), default: '30s' },
        socket_keepalive: { type: 'boolean', default: true },
        command_timeout: { ...ref('duration'), default: '50ms', description: 'bound on any Redis call on a request path' },
      }),
      type: 'object',
      oneOf: [{ required: ['url'] }, { required: ['cluster'] }],
      errorMessage: 'needs exactly one of `url` (one node) or `cluster` (seed nodes)',
    },
    routes: {
      type: ['array', 'null'],
      description: 'Request matchers, tried in order; the first match wins.',
      items: ref('route'),
    },
    rate_limiting: section('Rate limits. Each scope (global, per_user, per_endpoint) is off when absent.', {
      identity: section('Who a user is; falls back to the client address.', {
        header: { type: ['string', 'null'], pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", errorMessage: 'must be a header name like x-user-id' },
        jwt_sub: { type: 'boolean', default: false },
        trust_forwarded_for: { type: 'boolean', default: false },
      }),
      scope: { enum: ['pod', 'cluster'], default: 'pod', description: 'cluster: counters shared through redis' },
      global: section('Token bucket over all requests.', {
        requests_per_second: { type: 'number', exclusiveMinimum: 0, default: 1000 },
        burst_size: { type: 'integer', minimum: 1, default: 100 },
        algorithm: { const: 'token_bucket', default: 'token_bucket' },
        dry_run: { type: 'boolean', default: false },
        count: LIMIT_COUNT,
      }),
      per_user: section('Sliding window per identity.', {
        requests_per_minute: { type: 'number', exclusiveMinimum: 0, default: 60 },
        burst_size: { type: 'integer', minimum: 1, default: 10 },
        algorithm: { const: 'sliding_window', default: 'sliding_window' },
        dry_run: { type: 'boolean', default: false },
        count: LIMIT_COUNT,
      }),
      per_endpoint: {
        type: ['object', 'null'],
        description: 'Key: a path (/mcp/create_draft) or a route name.',
        propertyNames: { minLength: 1, errorMessage: 'must not be empty' },
        additionalProperties: {
          type: 'object',
          additionalProperties: false,
          required: ['rps'],
          properties: {
            rps: { type: 'number', exclusiveMinimum: 0 },
            burst: { type: 'integer', minimum: 1, description: 'default: rps rounded up' },
            dry_run: { type: 'boolean', default: false },
            count: LIMIT_COUNT,
          },
        },
      },
    }),
    queues: section('Admission control in front of the upstream.', {
      max_in_flight: {
        anyOf: [{ type: 'integer', minimum: 1 }, { const: 'auto' }],
        default: 256,
        errorMessage: 'must be a positive integer or "auto"',
      },
      max_queue_size: { type: 'integer', minimum: 0, default: 1000 },
      queue_timeout: { ...ref('duration'), default: '10s' },
      priority_queues: section('Weighted fair queues per priority.', {
        high: ref('priorityQueue'),
        medium: ref('priorityQueue'),
        low: ref('priorityQueue'),
      }),
      default_priority: { ...ref('priority'), default: 'medium' },
      batch_size: { type: 'integer', minimum: 1, default: 10 },
      batch_timeout: { ...ref('duration'), default: '100ms' },
      worker_threads: { type: 'integer', minimum: 1, maximum: 1024, default: 8 },
    }),
    cache: section('Three cache tiers; each is off when absent.', {
      l1: tier('256MB', '5m', 'lru', 'In-memory tier.'),
      l2: tier('2GB', '1h', 'lfu', 'Redis tier; needs `redis`.'),
      l3: section('Local disk tier.', {
        path: { type: 'string', minLength: 1, default: '/var/cache/bridge-sidecar' },
        size: { ...ref('size'), default: '10GB' },
        ttl: { ...ref('duration'), default: '24h' },
        strategy: { enum: ['lru', 'lfu', 'fifo'], default: 'fifo' },
      }),
      warmup: section('Scheduled warm-up of popular keys.', {
        enabled: { type: 'boolean', default: true },
        strategies: {
          type: ['array', 'null'],
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'pattern', 'schedule'],
            properties: {
              name: ref('name'),
              pattern: { type: 'string', minLength: 1, description: 'key glob, e.g. draft:popular:*' },
              schedule: { type: 'string', minLength: 1, description: 'cron expression, e.g. "0 */6 * * *"' },
              priority: { ...ref('priority'), default: 'medium' },
              top: { type: 'integer', minimum: 1, default: 100 },
              on_start: { type: 'boolean', default: false },
            },
          },
        },
        start_timeout: { ...ref('duration'), default: '30s' },
      }),
      invalidation: section('Events that remove matching keys in every tier.', {
        triggers: { type: ['array', 'null'], items: ref('name') },
        patterns: { type: ['array', 'null'], items: ref('keyTemplate') },
        cascade: { type: 'boolean', default: true },
        async: { type: 'boolean', default: true },
      }),
      honor_client_no_cache: { type: 'boolean', default: false },
    }),
    compression: section('Response compression.', {
      enabled: { type: 'boolean', default: true },
      algorithm: {
        anyOf: [
          { type: 'string', pattern: '^\\s*(gzip|br)\\s*(,\\s*(gzip|br)\\s*)*$' },
          { type: 'array', minItems: 1, items: { enum: ['gzip', 'br'] } },
        ],
        default: 'gzip',
        errorMessage: 'must be gzip, br, "br, gzip" or a list of them',
      },
      level: { type: 'integer', minimum: 0, maximum: 11, default: 6, description: 'gzip 1..9, br 0..11' },
      threshold: { ...ref('size'), default: '1KB' },
      types: {
        type: ['array', 'null'],
        description: 'compressible media types; wildcards like text/* and application/*+json',
        items: { type: 'string', pattern: '^[a-z0-9.+*-]+/[a-z0-9.+*-]+$', errorMessage: 'must be a lower-case media type like application/json or text/*' },
      },
    }),
    memory: section('Memory guards: overload steps against the pod\'s cgroup memory limit (working set).', {
      gc_threshold: { ...ref('ratio'), default: '80%', description: 'at this share of the limit L1 stops storing new entries and shrinks toward l1_floor' },
      large_body_threshold: { ...ref('size'), default: '10MB' },
      connection_threshold: { ...ref('ratio'), default: '90%', description: 'at this share new connections are refused and idle keep-alive ones closed; /readyz turns 503' },
      recover_margin: { ...ref('ratio'), default: '5%', description: 'a step is left only this far below its threshold (hysteresis)' },
      l1_floor: { ...ref('ratio'), default: '10%', description: 'L1 shrinks no further than this share of cache.l1.size' },
      check_interval: { ...ref('duration'), default: '1s', description: 'how often the memory figure is read' },
    }),
    metrics: section('Prometheus metrics (always applies).', {
      buckets: {
        type: 'array',
        minItems: 1,
        items: { type: 'number', exclusiveMinimum: 0 },
        default: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0],
        description: 'request duration histogram buckets in seconds, ascending',
      },
    }),
    tracing: section('OpenTelemetry tracing.', {
      enabled: { type: 'boolean', default: false },
      endpoint: { type: 'string', pattern: '^https?://', default: 'http://127.0.0.1:4318', errorMessage: 'must be an http:// or https:// URL' },
      sampling_rate: { ...ref('ratio'), default: 0.01 },
      service_name: { type: 'string', minLength: 1, default: 'bridge-sidecar' },
    }),
    profiling: section('CPU and heap profiles on a schedule.', {
      enabled: { type: 'boolean', default: false },
      cpu: section('CPU profile every `interval` for `duration`.', {
        interval: { ...ref('duration'), default: '60s' },
        duration: { ...ref('duration'), default: '30s' },
      }),
      heap: section('Heap snapshot every `interval` when the heap is above `threshold`.', {
        interval: { ...ref('duration'), default: '300s' },
        threshold: { ...ref('size'), default: '100MB' },
      }),
      output: { type: 'string', minLength: 1, default: '/tmp/bridge-sidecar-profiles' },
      max_files: { type: 'integer', minimum: 1, default: 20 },
    }),
    local_reply: ref('local_reply'),
    auto_tuning: section('Rules that adjust limits from live metrics.', {
      enabled: { type: 'boolean', default: true },
      interval: { ...ref('duration'), default: '5m' },
      dry_run: { type: 'boolean', default: false },
      cooldown: { ...ref('duration'), description: 'default: interval' },
      strategies: {
        type: ['array', 'null'],
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'trigger', 'action'],
          properties: {
            name: ref('name'),
            trigger: {
              type: 'string',
              pattern: '\\S',
              description: 'a condition on the figures of the interval, e.g. "memory_usage > 85% and queue_length > 100" (figures: memory_usage, cpu_usage, connection_wait_time, queue_length, error_rate, p99_latency, cache_hit_ratio; and/or/not, parentheses; units %, ms, s, MB)',
              errorMessage: 'must be a condition like "memory_usage > 85%"',
            },
            action: { enum: ['reduce_cache_size', 'increase_pool_size', 'increase_workers'] },
            params: {
              type: ['object', 'null'],
              // auto-tuning: which keys each action takes, and their ranges, are checked in semantic.ts
              // with the action at hand (lib/tuning/params.ts); here only their form
              description: 'the action\'s bounds. reduce_cache_size: reduction_factor (0..1, default 0.8), floor (share of cache.l1.size or bytes; ' +
                'default 10% or 16MB, the larger). increase_pool_size: increment (default 5), max_size (default 200). increase_workers: ' +
                'increment (default 2), max_workers (default 16; never more than the container\'s CPUs). All: revert_after (intervals ' +
                'the trigger stays false before one step back, default 3), cooldown (seconds, default auto_tuning.cooldown)',
              additionalProperties: autoTuneParam,
            },
          },
        },
      },
    }),
  },
  $defs: {
    size: {
      description: 'Bytes: 64KB, 256MB, 10GB (1KB = 1024 bytes), or a plain number of bytes.',
      anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: SIZE_PATTERN }],
      errorMessage: 'must be a size like 64KB, 256MB, 10GB (or a number of bytes)',
    },
    duration: {
      description: 'A duration: 100ms, 30s, 5m, 24h, 1d, 1h30m, or a plain number of seconds.',
      anyOf: [{ type: 'number', minimum: 0 }, { type: 'string', pattern: DURATION_PATTERN }],
      errorMessage: 'must be a duration like 100ms, 30s, 5m, 24h (or a number of seconds)',
    },
    ratio: {
      description: 'A ratio: 80%, or a number between 0 and 1.',
      anyOf: [{ type: 'number', minimum: 0, maximum: 1 }, { type: 'string', pattern: PERCENT_PATTERN }],
      errorMessage: 'must be a ratio like 80% (or a number between 0 and 1)',
    },
    listen: {
      description: 'Where to listen: HOST:PORT, [IPv6]:PORT, :PORT (all interfaces) or a bare port.',
      anyOf: [
        { type: 'integer', minimum: 0, maximum: 65535 },
        { type: 'string', pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]*):[0-9]{1,5}$' },
      ],
      errorMessage: 'must be HOST:PORT like 0.0.0.0:15006, [::]:15006 or :15006',
    },
    hostPort: {
      type: 'string',
      pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$',
      errorMessage: 'must be host:port like 10.0.0.5:6379',
    },
    priority: { enum: ['high', 'medium', 'low'] },
    name: {
      type: 'string',
      pattern: '^[A-Za-z0-9_.-]+$',
      errorMessage: 'must be a name of letters, digits, `_`, `.` or `-`',
    },
    keyTemplate: {
      type: 'string',
      minLength: 1,
      pattern: TEMPLATE_PATTERN,
      errorMessage: 'must be a key template whose placeholders are {name}, like draft:{draft_id}:*',
    },
    scalar: { type: ['string', 'number', 'boolean', 'null'] },
    priorityQueue: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: {
        weight: { type: 'integer', minimum: 1 },
        max_size: { type: 'integer', minimum: 0 },
      },
    },
    local_reply: {
      type: 'object',
      additionalProperties: false,
      required: ['body'],
      description: 'The body (and content type) of the sidecar\'s own answers (413, 429, 502, 503, 504, ...) in the upstream\'s error shape, instead of problem+json. Placeholders {status}, {title}, {detail}, {type}, JSON-escaped when the content type is JSON.',
      examples: [{ content_type: 'application/json', body: '{"success": false, "error": "{detail}"}' }],
      properties: {
        content_type: { type: 'string', default: 'application/json', pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+/[!#$%&\'*+.^_`|~0-9A-Za-z-]+(\\s*;.*)?$', errorMessage: 'must be a media type like application/json' },
        body: { type: 'string', minLength: 1 },
      },
    },
    route: {
      type: 'object',
      additionalProperties: false,
      required: ['name'],
      properties: {
        name: ref('name'),
        match: {
          type: ['object', 'null'],
          additionalProperties: false,
          description: 'Every condition given must hold; none given matches every request.',
          properties: {
            method: { type: 'string', pattern: '^[A-Za-z]+$', errorMessage: 'must be an HTTP method like GET or POST' },
            path: { type: 'string', description: 'template: /drafts/{draft_id}, a trailing * matches the rest' },
            query: { type: ['object', 'null'], additionalProperties: { type: 'string' }, description: '"*" = present with any value' },
            headers: { type: ['object', 'null'], additionalProperties: { type: 'string' }, description: '"*" = present' },
            body: { type: ['object', 'null'], additionalProperties: ref('scalar'), description: 'JSON body fields (dotted) that must equal these values' },
            jsonrpc_method: { type: 'string', minLength: 1 },
          },
        },
        params: {
          type: ['object', 'null'],
          propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$', errorMessage: 'must be letters, digits and _ (params are used as {name} in cache keys)' },
          additionalProperties: { type: 'string' },
          description: 'name -> path.X, query.X, header.X, body.a.b, response.a.b or identity',
        },
        priority: ref('priority'),
        local_reply: ref('local_reply'),
        cache: {
          type: 'object',
          additionalProperties: false,
          required: ['key'],
          properties: {
            key: ref('keyTemplate'),
            ttl: { ...ref('duration'), default: '5m' },
            store_if: { type: ['object', 'null'], additionalProperties: ref('scalar') },
            stale_while_revalidate: { ...ref('duration'), default: 0 },
            stale_if_error: { ...ref('duration'), default: 0 },
            override_upstream: { type: 'boolean', default: false },
            jsonrpc: { type: 'boolean', default: false, description: 'The request body is JSON-RPC 2.0 (implied by match.jsonrpc_method): keyed by method + canonical params, never id; a hit carries the request\'s own id; notifications and batches pass through; only result answers are stored unless store_if says otherwise.' },
          },
        },
        emits: {
          description: 'Events raised when the upstream answers: a list (raised on 2xx), or { events, on: any | 2xx } (any: whatever the status).',
          anyOf: [
            { type: ['array', 'null'], items: ref('name') },
            {
              type: 'object',
              additionalProperties: false,
              required: ['events'],
              properties: {
                events: { type: 'array', items: ref('name') },
                on: { enum: ['any', '2xx'], default: '2xx', description: '2xx: only successful answers; any: every answer the upstream gives' },
              },
            },
          ],
          errorMessage: 'must be a list of event names, or { events: [...], on: any | 2xx }',
        },
      },
    },
  },
};
