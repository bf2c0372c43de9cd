import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_BUCKETS, DEFAULT_COMPRESSIBLE_TYPES } from '../../lib/policy/defaults';
import { UPSTREAM, ok, policyOf, readFixture } from './util';

const MB = 1024 * 1024;
const GB = 1024 * MB;

test('only upstream: server, upstream and metrics get the contract defaults, every other section is null', () => {
  const p = policyOf(readFixture('minimal.yaml'));
  assert.equal(p.version, 1);
  assert.deepEqual(p.server, {
    listen: { host: '0.0.0.0', port: 15006 },
    admin_listen: { host: '0.0.0.0', port: 9901 },
    workers: 2,
    worker_connections: 1000,
    keepalive_timeout: 65_000,
    client_max_body_size: 50 * MB,
    request_timeout: 60_000,
    slow_request_threshold: 1000,
    log_level: 'info',
    log_format: 'auto',
    metrics_listen: null,
    admin_token_file: null,
    drain_timeout: 30_000,
    jit_warmup: { enabled: true, requests: 3000, max_time: 1000, eager_baseline: true },
    v8_polymorphic_maps: 16,
  });
  assert.deepEqual(p.upstream, {
    url: 'http://127.0.0.1:9101',
    protocol: 'http:',
    host: '127.0.0.1',
    port: 9101,
    pool: { max_connections: 100, max_connections_per_host: 20, keepalive_timeout: 30_000, connect_timeout: 5000, read_timeout: 30_000, retries: 3 },
  });
  assert.deepEqual(p.metrics, { buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0] });
  assert.deepEqual(p.routes, []);
  for (const k of ['redis', 'rate_limiting', 'queues', 'cache', 'compression', 'memory', 'tracing', 'profiling', 'auto_tuning'] as const) {
    assert.equal(p[k], null, `${k} absent -> null (feature off)`);
  }
});

test('upstream url: default ports, https, IPv6 host', () => {
  assert.equal(policyOf('upstream: { url: "http://svc" }').upstream.port, 80);
  const s = policyOf('upstream: { url: "https://svc.local/" }').upstream;
  assert.deepEqual([s.protocol, s.host, s.port], ['https:', 'svc.local', 443]);
  const v6 = policyOf('upstream: { url: "http://[::1]:9101" }').upstream;
  assert.deepEqual([v6.host, v6.port], ['::1', 9101]);
});

test('listen forms: host:port, [::]:port, :port and a bare port', () => {
  const p = (v: string) => policyOf(`${UPSTREAM}server: { listen: ${v}, admin_listen: "127.0.0.1:0" }`).server.listen;
  assert.deepEqual(p('"0.0.0.0:15006"'), { host: '0.0.0.0', port: 15006 });
  assert.deepEqual(p('"[::]:15006"'), { host: '::', port: 15006 });
  assert.deepEqual(p('":15006"'), { host: '0.0.0.0', port: 15006 });
  assert.deepEqual(p('15006'), { host: '0.0.0.0', port: 15006 });
  assert.deepEqual(p('"localhost:8080"'), { host: 'localhost', port: 8080 });
});

test('cache: { l1: {} } gets the l1 numbers and leaves the other tiers off', () => {
  const c = policyOf(`${UPSTREAM}cache: { l1: {} }`).cache!;
  assert.deepEqual(c.l1, { size: 256 * MB, ttl: 300_000, strategy: 'lru' });
  assert.equal(c.l2, null);
  assert.equal(c.l3, null);
  assert.equal(c.warmup, null);
  assert.equal(c.invalidation, null);
  assert.equal(c.honor_client_no_cache, false);
});

test('every present-but-empty section takes the contract numbers', () => {
  const p = policyOf(`${UPSTREAM}
redis: { url: "redis://127.0.0.1:6379" }
rate_limiting: { global: {}, per_user: {} }
queues: {}
cache: { l1: {}, l2: {}, l3: {}, warmup: {}, invalidation: {} }
compression: {}
memory: {}
tracing: {}
profiling: {}
auto_tuning: {}
`);
  assert.deepEqual(p.redis, {
    url: 'redis://127.0.0.1:6379', cluster: null, password_file: null, key_prefix: 'bridge:', max_connections: 50, retry_on_timeout: true,
    health_check_interval: 30_000, socket_keepalive: true, command_timeout: 50,
  });
  assert.deepEqual(p.rate_limiting, {
    identity: { header: null, jwt_sub: false, trust_forwarded_for: false },
    scope: 'pod',
    global: { requests_per_second: 1000, burst_size: 100, algorithm: 'token_bucket', dry_run: false, count: 'all' },
    per_user: { requests_per_minute: 60, burst_size: 10, algorithm: 'sliding_window', dry_run: false, count: 'all' },
    per_endpoint: {},
  });
  assert.deepEqual(p.queues, {
    max_in_flight: 256, max_queue_size: 1000, queue_timeout: 10_000,
    priority_queues: { high: { weight: 3, max_size: 200 }, medium: { weight: 2, max_size: 500 }, low: { weight: 1, max_size: 300 } },
    default_priority: 'medium', batch_size: 10, batch_timeout: 100, worker_threads: 8,
  });
  assert.deepEqual(p.cache, {
    l1: { size: 256 * MB, ttl: 300_000, strategy: 'lru' },
    l2: { size: 2 * GB, ttl: 3_600_000, strategy: 'lfu' },
    l3: { path: '/var/cache/bridge-sidecar', size: 10 * GB, ttl: 86_400_000, strategy: 'fifo' },
    warmup: { enabled: true, strategies: [], start_timeout: 30_000 },
    invalidation: { triggers: [], patterns: [], cascade: true, async: true },
    honor_client_no_cache: false,
  });
  assert.deepEqual(p.compression, { enabled: true, algorithm: ['gzip'], level: 6, threshold: 1024, types: [...DEFAULT_COMPRESSIBLE_TYPES] });
  assert.deepEqual(DEFAULT_COMPRESSIBLE_TYPES, ['application/json', 'application/*+json', 'text/*', 'application/javascript', 'application/xml', 'application/*+xml', 'image/svg+xml']);
  assert.deepEqual(p.memory, {
    gc_threshold: 0.8, large_body_threshold: 10 * MB, connection_threshold: 0.9, recover_margin: 0.05, l1_floor: 0.1, check_interval: 1000,
  });
  assert.deepEqual(p.tracing, { enabled: false, endpoint: 'http://127.0.0.1:4318', sampling_rate: 0.01, service_name: 'bridge-sidecar' });
  assert.deepEqual(p.profiling, {
    enabled: false, cpu: { interval: 60_000, duration: 30_000 }, heap: { interval: 300_000, threshold: 100 * MB },
    output: '/tmp/bridge-sidecar-profiles', max_files: 20,
  });
  assert.deepEqual(p.auto_tuning, { enabled: true, interval: 300_000, dry_run: false, cooldown: 300_000, strategies: [] });
  assert.deepEqual(p.metrics.buckets, DEFAULT_BUCKETS);
});

test('a section written with no value (`tracing:`) counts as present', () => {
  const p = policyOf(`${UPSTREAM}tracing:\nmemory:\ncache:\n  l1:\n`);
  assert.equal(p.tracing?.service_name, 'bridge-sidecar');
  assert.equal(p.memory?.gc_threshold, 0.8);
  assert.equal(p.cache?.l1?.strategy, 'lru');
  assert.equal(p.cache?.l2, null);
});

test('partial sections keep what is written and fill the rest', () => {
  const p = policyOf(`${UPSTREAM}
server: { workers: 0, drain_timeout: 5s }
queues: { max_in_flight: auto, priority_queues: { high: { weight: 5 } } }
auto_tuning: { interval: 1m, cooldown: 10s, dry_run: true }
`);
  assert.equal(p.server.workers, 0);
  assert.equal(p.server.drain_timeout, 5000);
  assert.equal(p.server.keepalive_timeout, 65_000);
  assert.equal(p.queues!.max_in_flight, 'auto');
  assert.deepEqual(p.queues!.priority_queues.high, { weight: 5, max_size: 200 });
  assert.deepEqual(p.queues!.priority_queues.low, { weight: 1, max_size: 300 });
  assert.deepEqual([p.auto_tuning!.interval, p.auto_tuning!.cooldown, p.auto_tuning!.dry_run], [60_000, 10_000, true]);
  assert.equal(policyOf(`${UPSTREAM}auto_tuning: { interval: 90s }`).auto_tuning!.cooldown, 90_000, 'cooldown defaults to interval');
});

test('compression.algorithm normalises to a list in order of preference', () => {
  const algo = (v: string) => policyOf(`${UPSTREAM}compression: { algorithm: ${v} }`).compression!.algorithm;
  assert.deepEqual(algo('gzip'), ['gzip']);
  assert.deepEqual(algo('br'), ['br']);
  assert.deepEqual(algo('"br, gzip"'), ['br', 'gzip']);
  assert.deepEqual(algo('[br, gzip]'), ['br', 'gzip']);
  assert.deepEqual(algo('[gzip, gzip]'), ['gzip']);
  assert.equal(policyOf(`${UPSTREAM}compression: { algorithm: br, level: 11 }`).compression!.level, 11, 'br allows 0..11');
});

test('rate limiting: identity forms, per_endpoint entries and dry_run defaults', () => {
  const rl = policyOf(`${UPSTREAM}
routes: [ { name: query_script, match: { path: /query_script } } ]
rate_limiting:
  identity: { header: X-User-Id }
  per_user: { requests_per_minute: 120, dry_run: true }
  per_endpoint: { /mcp/create_draft: { rps: 100, burst: 20 }, query_script: { rps: 2.5 } }
`).rate_limiting!;
  assert.deepEqual(rl.identity, { header: 'x-user-id', jwt_sub: false, trust_forwarded_for: false });
  assert.equal(rl.global, null, 'a scope that is absent is off');
  assert.deepEqual(rl.per_user, { requests_per_minute: 120, burst_size: 10, algorithm: 'sliding_window', dry_run: true, count: 'all' });
  assert.deepEqual(rl.per_endpoint['/mcp/create_draft'], { rps: 100, burst: 20, dry_run: false, count: 'all' });
  assert.deepEqual(rl.per_endpoint.query_script, { rps: 2.5, burst: 3, dry_run: false, count: 'all' }, 'burst defaults to one second of rps, rounded up');
  const jwt = policyOf(`${UPSTREAM}rate_limiting: { identity: { jwt_sub: true, trust_forwarded_for: true } }`).rate_limiting!;
  assert.deepEqual(jwt.identity, { header: null, jwt_sub: true, trust_forwarded_for: true });
});

test('routes: match fields absent are null, method upper-cased, header names lower-cased, defaults filled', () => {
  const routes = policyOf(`${UPSTREAM}
routes:
  - name: any
  - name: r
    match: { method: post, path: "/drafts/{id}", headers: { X-Tenant: a }, query: { v: "2" }, body: { a.b: 1, c: null } }
    params: { id: path.id }
    cache: { key: "d:{id}" }
`).routes;
  assert.deepEqual(routes[0], {
    name: 'any',
    match: { method: null, path: null, query: null, headers: null, body: null, jsonrpc_method: null },
    params: {}, priority: null, cache: null, emits: [], emits_on: '2xx', local_reply: null,
  });
  assert.deepEqual(routes[1].match, { method: 'POST', path: '/drafts/{id}', query: { v: '2' }, headers: { 'x-tenant': 'a' }, body: { 'a.b': 1, c: null }, jsonrpc_method: null });
  assert.deepEqual(routes[1].cache, { key: 'd:{id}', ttl: 300_000, store_if: null, stale_while_revalidate: 0, stale_if_error: 0, override_upstream: false, jsonrpc: false });
});

test('redis cluster seeds become host/port pairs', () => {
  const r = policyOf(`${UPSTREAM}redis: { cluster: ["10.0.0.1:7000", "redis-b:7001", "[fd00::1]:7002"] }`).redis!;
  assert.equal(r.url, null);
  assert.deepEqual(r.cluster, [{ host: '10.0.0.1', port: 7000 }, { host: 'redis-b', port: 7001 }, { host: 'fd00::1', port: 7002 }]);
});

test('warm-up strategies and auto-tuning strategies get their defaults', () => {
  const p = policyOf(`${UPSTREAM}
cache:
  warmup: { strategies: [ { name: w, pattern: "t:*", schedule: "0 2 * * *" } ] }
auto_tuning:
  strategies: [ { name: s, trigger: "memory_usage > 85%", action: reduce_cache_size, params: { reduction_factor: 80% } } ]
`);
  assert.deepEqual(p.cache!.warmup!.strategies[0], { name: 'w', pattern: 't:*', schedule: '0 2 * * *', priority: 'medium', top: 100, on_start: false });
  assert.deepEqual(p.auto_tuning!.strategies[0], { name: 's', trigger: 'memory_usage > 85%', action: 'reduce_cache_size', params: { reduction_factor: 0.8 } });
});

test('the full contract example loads with the contract numbers', () => {
  const loaded = ok(readFixture('full.yaml'));
  const p = loaded.policy;
  assert.equal(p.routes.length, 5);
  assert.equal(p.rate_limiting!.scope, 'cluster');
  assert.equal(p.tracing!.sampling_rate, 0.01);
  assert.deepEqual(p.compression!.algorithm, ['br', 'gzip']);
  assert.equal(p.cache!.warmup!.strategies[0].on_start, true);
  assert.equal(p.auto_tuning!.strategies.length, 3);
  assert.match(loaded.version, /^[0-9a-f]{12}$/);
});
