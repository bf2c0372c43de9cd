#!/usr/bin/env node
/**
 * Writes the README's policy reference (the table between the policy-reference markers) from the policy's
 * JSON Schema, so the reference, the schema editors use and the loader cannot disagree.
 * test/core/readme.test.ts fails when the README is stale.
 *
 *   node scripts/gen-policy-reference.js [BUILD_DIR]           rewrite README.md's table (BUILD_DIR default dist)
 *   node scripts/gen-policy-reference.js [BUILD_DIR] --print   print the table only
 */
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const { join, resolve } = require('node:path');

const root = resolve(__dirname, '..');
const args = process.argv.slice(2);
const buildDir = resolve(root, args.find((a) => !a.startsWith('--')) || 'dist');

const MEANING = {
 "server.listen": "client traffic (addressed directly, or redirected by `intercept`)",
 "server.admin_listen": "/healthz, /readyz, /metrics, /policy and the token-guarded endpoints",
 "server.worker_connections": "open client connections per worker (like nginx)",
 "server.keepalive_timeout": "idle client keep-alive",
 "server.client_max_body_size": "larger request bodies get 413 (Content-Length or chunked)",
 "server.request_timeout": "the whole request must arrive within this (else 408)",
 "server.slow_request_threshold": "requests slower than this log a warning",
 "upstream.url": "the service in the same pod, e.g. http://127.0.0.1:9101 (required)",
 "upstream.pool.max_connections": "pooled connections per worker, all hosts",
 "upstream.pool.max_connections_per_host": "pooled connections per worker to the upstream; more requests wait for one",
 "upstream.pool.keepalive_timeout": "idle pooled connections are closed after this",
 "upstream.pool.connect_timeout": "not connected by then: 504",
 "upstream.pool.read_timeout": "no response (or a stalled body) by then: 504",
 "upstream.pool.retries": "retries of idempotent requests (or with X-Idempotency-Key) and of stale pooled connections",
 "redis.url": "redis://host:port/db of a single node (or use `cluster`)",
 "redis.key_prefix": "prefix of every key the sidecar writes",
 "redis.max_connections": "upper bound on connections per process",
 "redis.retry_on_timeout": "reconnect after a timeout",
 "redis.health_check_interval": "how often the link is checked",
 "redis.socket_keepalive": "TCP keep-alive on Redis sockets",
 "routes[].name": "unique; the `endpoint` metric label",
 "routes[].match.method": "HTTP method; absent: any",
 "routes[].match.jsonrpc_method": "JSON-RPC 2.0 `method` of the body",
 "routes[].priority": "queue class; absent: queues.default_priority",
 "routes[].cache": "cache this route's responses (absent: never cached)",
 "routes[].cache.key": "key template filled from params, e.g. draft:{draft_id}:script",
 "routes[].cache.ttl": "freshness when the upstream does not say",
 "routes[].cache.store_if": "response JSON fields that must equal these values to store (e.g. response.success: true). Top-level fields among the scalar members at the end of the answer (`success` in the real service's `{\"error\",\"output\",\"success\"}`) are read from the end; otherwise the body is read up to the last such field. The rest is not parsed (a duplicated key: the last counts when read from the end, as for JSON.parse, the first otherwise)",
 "routes[].cache.stale_while_revalidate": "serve stale this long while one background refresh runs",
 "routes[].cache.stale_if_error": "serve stale this long when the upstream fails or the request is shed",
 "routes[].cache.override_upstream": "store even when the upstream says no-store/private",
 "routes[].emits": "events raised when the upstream answers 2xx (see cache.invalidation)",
 "rate_limiting.identity.header": "request header naming the user",
 "rate_limiting.identity.jwt_sub": "use the `sub` claim of a bearer JWT (not verified: a key only)",
 "rate_limiting.identity.trust_forwarded_for": "use the first X-Forwarded-For hop as client address (only behind a trusted proxy)",
 "rate_limiting.global.requests_per_second": "token refill rate for the whole pod",
 "rate_limiting.global.burst_size": "bucket capacity",
 "rate_limiting.global.algorithm": "token bucket",
 "rate_limiting.global.dry_run": "count and log, refuse nothing",
 "rate_limiting.per_user.requests_per_minute": "per-user budget over a sliding minute",
 "rate_limiting.per_user.burst_size": "how many of them may come at once",
 "rate_limiting.per_user.algorithm": "sliding window",
 "rate_limiting.per_user.dry_run": "count and log, refuse nothing",
 "rate_limiting.per_endpoint.<key>.rps": "token refill rate for this path or route name",
 "rate_limiting.per_endpoint.<key>.dry_run": "count and log, refuse nothing",
 "queues.max_in_flight": "concurrent upstream requests, or `auto` (adaptive gradient limit)",
 "queues.max_queue_size": "waiting requests, all classes; beyond: 503",
 "queues.queue_timeout": "longest wait for an upstream slot; beyond: 503",
 "queues.priority_queues.high": "the high class",
 "queues.priority_queues.high.weight": "share of upstream slots under overload",
 "queues.priority_queues.high.max_size": "waiting requests of this class; beyond: 503",
 "queues.priority_queues.medium": "the medium class",
 "queues.priority_queues.medium.weight": "share of upstream slots under overload",
 "queues.priority_queues.medium.max_size": "waiting requests of this class; beyond: 503",
 "queues.priority_queues.low": "the low class",
 "queues.priority_queues.low.weight": "share of upstream slots under overload",
 "queues.priority_queues.low.max_size": "waiting requests of this class; beyond: 503",
 "queues.default_priority": "class of routes that name none",
 "queues.batch_size": "write-behind (L2/L3 stores, invalidation messages) batch size",
 "queues.batch_timeout": "write-behind flush interval",
 "queues.worker_threads": "libuv thread pool size (zlib, disk)",
 "cache.l1.size": "memory budget per worker (body + headers)",
 "cache.l1.ttl": "longest life of an entry",
 "cache.l2.size": "the Redis maxmemory the chart sets",
 "cache.l2.ttl": "entry expiry in Redis",
 "cache.l3.path": "directory for the disk tier",
 "cache.l3.size": "disk budget; oldest entries evicted first",
 "cache.l3.ttl": "entry expiry on disk",
 "cache.warmup.enabled": "run the strategies",
 "cache.warmup.strategies": "what to warm and when",
 "cache.warmup.strategies[].name": "label in metrics and logs",
 "cache.warmup.strategies[].priority": "queue class of warm-up refetches",
 "cache.warmup.strategies[].top": "the most requested keys matching the pattern",
 "cache.warmup.strategies[].on_start": "also run at start-up (gates /readyz)",
 "cache.warmup.start_timeout": "/readyz waits at most this long for start-up warm-up",
 "cache.invalidation.triggers": "events that invalidate",
 "cache.invalidation.patterns": "key globs filled from an event's params",
 "cache.invalidation.cascade": "removed entries apply the patterns their own params fill",
 "cache.invalidation.async": "other pods are told without delaying the response",
 "cache.honor_client_no_cache": "let a client's Cache-Control: no-cache bypass the cache",
 "compression.enabled": "compress responses",
 "compression.threshold": "smaller bodies are sent as they are",
 "memory.gc_threshold": "memory pressure level (of the container limit)",
 "memory.large_body_threshold": "bodies above this are streamed, never held in memory (and skip L1/L2)",
 "tracing.enabled": "OpenTelemetry spans",
 "tracing.endpoint": "OTLP/HTTP collector",
 "tracing.sampling_rate": "parent-based ratio sampler",
 "tracing.service_name": "service.name resource attribute",
 "profiling.enabled": "scheduled profiles",
 "profiling.cpu.interval": "a CPU profile this often",
 "profiling.cpu.duration": "each lasting this long",
 "profiling.heap.interval": "heap check this often",
 "profiling.heap.threshold": "heap snapshot when RSS crosses this",
 "profiling.output": "directory of .cpuprofile / .heapsnapshot files",
 "profiling.max_files": "oldest files deleted beyond this",
 "auto_tuning.enabled": "evaluate the strategies",
 "auto_tuning.interval": "how often",
 "auto_tuning.dry_run": "log what would be done, do nothing",
 "auto_tuning.strategies": "rules: trigger expression -> bounded action",
 "auto_tuning.strategies[].name": "label of autotune_actions_total",
 "auto_tuning.strategies[].params": "the action's bounds (reduction_factor, increment, max_size, max_workers)"
};

function render(schema) {
  const defs = schema.$defs || {};
  const deref = (s) => (s && s.$ref ? { ...deref(defs[s.$ref.split('/').pop()]), ...without(s, '$ref') } : s);
  const without = (o, k) => { const c = { ...o }; delete c[k]; return c; };
  const typeOf = (s) => {
    if (!s) return '';
    if (s.$ref) return s.$ref.split('/').pop();
    if (s.enum) return s.enum.map((e) => `\`${e}\``).join(' or ');
    if (s.const !== undefined) return `\`${s.const}\``;
    const alts = s.anyOf || s.oneOf;
    if (alts) return alts.map(typeOf).filter(Boolean).join(' or ');
    const t = Array.isArray(s.type) ? s.type.filter((x) => x !== 'null') : [s.type];
    if (t[0] === 'array' && s.items) return `list of ${typeOf(s.items)}`;
    if (t[0] === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object' && !s.properties) return `map of ${typeOf(s.additionalProperties)}`;
    return t.filter(Boolean).join(', ');
  };
  const cell = (v) => String(v ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const rows = [];
  const walk = (prefix, s, depth) => {
    s = deref(s);
    if (!s) return;
    const props = s.properties;
    if (props) {
      for (const [k, sub] of Object.entries(props)) {
        const d = deref(sub);
        const path = prefix ? `${prefix}.${k}` : k;
        const def = sub.default !== undefined ? sub.default : d && d.default;
        rows.push(`| \`${path}\` | ${cell(typeOf(sub))} | ${def === undefined ? '' : '`' + cell(JSON.stringify(def)) + '`'} | ${cell(sub.description || MEANING[path] || (d && !sub.$ref && d.description) || '')} |`);
        if (depth < 4) {
          if (d && d.properties) walk(path, d, depth + 1);
          else if (d && d.items && deref(d.items) && deref(d.items).properties) walk(`${path}[]`, d.items, depth + 1);
          else if (d && d.additionalProperties && typeof d.additionalProperties === 'object' && deref(d.additionalProperties).properties) walk(`${path}.<key>`, d.additionalProperties, depth + 1);
        }
      }
    }
  };
  walk('', schema, 0);
  const units = Object.entries(defs).filter(([, v]) => v.description && ['size', 'duration', 'ratio', 'listen', 'priority'].includes(v ? Object.keys(defs).find((k) => defs[k] === v) : ''))
    .map(([k, v]) => `- **${k}**: ${v.description}`);
  return [
    ...units,
    '',
    '| key | type | default (when its section is present) | meaning |',
    '|---|---|---|---|',
    ...rows,
  ].join('\n');
}

const { POLICY_SCHEMA } = require(join(buildDir, 'lib', 'policy', 'schema.js'));
const table = render(POLICY_SCHEMA);
if (args.includes('--print')) {
  process.stdout.write(table + '\n');
  process.exit(0);
}
const START = '<!-- policy-reference:start (generated by scripts/gen-policy-reference.js from lib/policy/schema.ts) -->';
const END = '<!-- policy-reference:end -->';
const readmePath = join(root, 'README.md');
const readme = readFileSync(readmePath, 'utf8');
const a = readme.indexOf(START);
const b = readme.indexOf(END);
if (a === -1 || b === -1) {
  process.stderr.write('README.md has no policy-reference markers\n');
  process.exit(1);
}
const next = readme.slice(0, a + START.length) + '\n' + table + '\n' + readme.slice(b);
if (args.includes('--check')) process.exit(next === readme ? 0 : 1);
writeFileSync(readmePath, next);
