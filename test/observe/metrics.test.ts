/**
 * /metrics of the real sidecar: every series of the contract with the guide's labels and buckets, summed over
 * two workers, no label taken from a raw path, the resource figures, the Redis-up gauge, and promtool's lint.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy, type SidecarProcess } from '../helpers/sidecar';
import { startRedis } from '../helpers/redis';
import { waitFor } from '../helpers/ports';
import { http, postJson, parseMetrics, total, promtool, type Family } from './helpers';

// the guide's buckets with 0.5, 1, 2.5 and 5 ms below them (the contract's default)
const GUIDE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5];

/** The contract's series: name -> [type, label names]. */
const CONTRACT: Record<string, [string, string[]]> = {
  bridge_sidecar_http_request_duration_seconds: ['histogram', ['endpoint', 'method', 'status']],
  bridge_sidecar_http_requests_total: ['counter', ['endpoint', 'method']],
  bridge_sidecar_http_errors_total: ['counter', ['endpoint', 'error_type']],
  bridge_sidecar_cache_requests_total: ['counter', ['layer', 'result']],
  bridge_sidecar_cache_size_bytes: ['gauge', ['layer']],
  bridge_sidecar_ratelimit_rejected_total: ['counter', ['scope']],
  bridge_sidecar_queue_length: ['gauge', ['priority']],
  bridge_sidecar_queue_wait_seconds: ['histogram', ['priority']],
  bridge_sidecar_shed_total: ['counter', ['reason']],
  bridge_sidecar_upstream_connection_wait_seconds: ['histogram', []],
  bridge_sidecar_policy_reloads_total: ['counter', ['result']],
  bridge_sidecar_policy_info: ['gauge', ['version']],
  bridge_sidecar_autotune_actions_total: ['counter', ['strategy']],
};

const ROUTES = `routes:
  - name: query_script
    match: { method: POST, path: /query_script }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m }
  - name: pattern
    match: { method: GET, path: "/api/drafts/preview/{id}" }
rate_limiting:
  global: { requests_per_second: 1000, burst_size: 100 }
  per_endpoint: { /save_draft: { rps: 0.1, burst: 1 } }
queues: { max_in_flight: 64 }
cache:
  l1: { size: 16MB }
`;

let upstream: DraftService;
before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1' });
});
after(async () => {
  await upstream.close();
});

async function scrape(sc: SidecarProcess): Promise<{ text: string; families: Map<string, Family> }> {
  const r = await http(`${sc.adminUrl}/metrics`);
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return { text: r.text, families: parseMetrics(r.text) };
}

function labelNames(f: Family): string[] {
  const names = new Set<string>();
  for (const s of f.samples) for (const k of Object.keys(s.labels)) if (k !== 'le') names.add(k);
  return [...names].sort();
}

test('two workers: contract series, guide buckets, sums over workers, bounded labels, promtool clean', { timeout: 120_000 }, async (t) => {
  const sc = await startSidecar(basicPolicy(upstream.port, ROUTES, { workers: 2 }));
  t.after(() => sc.stop());

  // fresh connections: the cluster hands them to the workers in turn; go on until both served some
  let sent = 0;
  const served = () => new Set(sc.logs.filter((l) => l.msg === 'access').map((l) => l.worker));
  await waitFor('both workers serving', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await postJson(`${sc.url}/query_script`, { draft_id: `dft_00000${1 + (sent % 5)}` });
      assert.equal(r.status, 200);
      sent++;
    }
    return served().size >= 2 && sent >= 20;
  }, 60_000, 10);
  // raw paths must never become labels
  for (const p of ['/api/drafts/preview/p1', '/api/drafts/preview/p2', '/no/such/thing/12345', '/drafts/dft_000123']) await http(`${sc.url}${p}`);
  const limited = [];
  for (let i = 0; i < 4; i++) limited.push((await postJson(`${sc.url}/save_draft`, { draft_id: 'dft_000001' })).status);
  assert.ok(limited.includes(429), `per-endpoint limit of 0.1 rps (burst 1) should refuse some of 4 quick calls: ${limited}`);
  await waitFor('access logs', () => sc.logs.filter((l) => l.msg === 'access').length >= sent + 8, 10_000);

  const { text, families } = await scrape(sc);
  for (const [name, [type, labels]] of Object.entries(CONTRACT)) {
    const f = families.get(name);
    assert.ok(f, `${name} missing from /metrics`);
    assert.equal(f.type, type, `${name} type`);
    assert.ok(f.help.length > 0, `${name} has help text`);
    if (f.samples.length > 0) assert.deepEqual(labelNames(f), [...labels].sort(), `${name} labels`);
  }
  // the guide's buckets, on every series of the request histogram
  const dur = families.get('bridge_sidecar_http_request_duration_seconds')!;
  const les = [...new Set(dur.samples.filter((s) => s.name.endsWith('_bucket')).map((s) => s.labels.le))];
  assert.deepEqual(les, [...GUIDE_BUCKETS.map(String), '+Inf']);

  // summed over both workers: the counter equals what the access logs of both workers saw
  // access lines are written in batches (at most ~100 ms later)
  await waitFor('both workers served query_script', () =>
    new Set(sc.logs.filter((l) => l.msg === 'access' && l.route === 'query_script').map((l) => l.worker)).size >= 2, 5_000);
  assert.equal(total(families, 'bridge_sidecar_http_requests_total', { endpoint: 'query_script', method: 'POST' }), sent);
  assert.equal(total(families, 'bridge_sidecar_http_request_duration_seconds_count', { endpoint: 'query_script' }), sent);
  assert.equal(total(families, 'bridge_sidecar_http_request_duration_seconds_bucket', { endpoint: 'query_script', le: '+Inf' }), sent);
  assert.equal(total(families, 'bridge_sidecar_cache_requests_total', { layer: 'l1' }), sent, 'one L1 lookup per query_script call, over both workers');
  assert.ok(total(families, 'bridge_sidecar_ratelimit_rejected_total', { scope: 'per_endpoint' }) >= 1);
  assert.ok(total(families, 'bridge_sidecar_http_errors_total', { error_type: 'rate_limited' }) >= 1);

  // endpoint labels: route names, per-endpoint paths or "other", never a raw path
  const endpoints = new Set<string>();
  for (const f of families.values()) for (const s of f.samples) if (s.labels.endpoint !== undefined) endpoints.add(s.labels.endpoint);
  for (const e of endpoints) assert.ok(['query_script', 'pattern', '/save_draft', 'other'].includes(e), `unbounded endpoint label: ${e}`);
  assert.ok(endpoints.has('pattern') && endpoints.has('other'));

  // resource figures
  assert.ok(total(families, 'bridge_sidecar_memory_limit_bytes') > 0);
  const ratio = total(families, 'bridge_sidecar_memory_usage_ratio');
  assert.ok(ratio > 0 && ratio <= 1, `memory ratio ${ratio}`);
  assert.ok(total(families, 'process_cpu_seconds_total') > 0);
  assert.equal(families.get('bridge_sidecar_disk_read_bytes_total')?.type, 'counter');
  assert.equal(families.get('bridge_sidecar_disk_written_bytes_total')?.type, 'counter');
  for (const peer of ['client', 'upstream']) {
    assert.ok(total(families, 'bridge_sidecar_network_receive_bytes_total', { peer }) > 0, `received from ${peer}`);
    assert.ok(total(families, 'bridge_sidecar_network_transmit_bytes_total', { peer }) > 0, `sent to ${peer}`);
  }
  // what the clients sent at least (bodies + request lines) arrived on client sockets, summed over workers
  assert.ok(total(families, 'bridge_sidecar_network_receive_bytes_total', { peer: 'client' }) > sent * 60);
  // no redis section: no Redis-up sample (an absent link is not a down one)
  assert.equal(families.get('bridge_sidecar_redis_up')?.samples.length, 0);
  // a per-process limit is not summed over workers
  const fds = total(families, 'process_max_fds');
  assert.ok(fds > 0 && fds < 2 * 1024 * 1024 * 1024);

  const lint = promtool(['check', 'metrics'], text);
  assert.equal(lint.output.trim(), '', `promtool check metrics: ${lint.output}`);
  assert.equal(lint.code, 0);
});

test('single process: the page passes promtool too, buckets follow the policy', { timeout: 60_000 }, async (t) => {
  const sc = await startSidecar(basicPolicy(upstream.port, `${ROUTES}metrics: { buckets: [0.02, 0.2, 2] }\n`));
  t.after(() => sc.stop());
  for (let i = 0; i < 3; i++) await postJson(`${sc.url}/query_script`, { draft_id: 'dft_000001' });
  const { text, families } = await scrape(sc);
  const dur = families.get('bridge_sidecar_http_request_duration_seconds')!;
  assert.deepEqual([...new Set(dur.samples.filter((s) => s.name.endsWith('_bucket')).map((s) => s.labels.le))], ['0.02', '0.2', '2', '+Inf']);
  assert.equal(total(families, 'bridge_sidecar_http_requests_total', { endpoint: 'query_script' }), 3);
  const lint = promtool(['check', 'metrics'], text);
  assert.equal(lint.output.trim(), '', `promtool check metrics: ${lint.output}`);
});

test('bridge_sidecar_redis_up follows the Redis link of every worker', { timeout: 90_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const sc = await startSidecar(basicPolicy(upstream.port, `redis: { url: "${redis.url}" }\n`, { workers: 2 }));
  t.after(() => sc.stop());
  const up = async () => total((await scrape(sc)).families, 'bridge_sidecar_redis_up');
  const sampled = async () => (await scrape(sc)).families.get('bridge_sidecar_redis_up')?.samples.length ?? 0;
  await waitFor('redis_up 1', async () => (await up()) === 1, 20_000, 200);
  assert.equal(await sampled(), 1, 'one sample over both workers (min), not one per worker');
  await redis.kill();
  await waitFor('redis_up 0', async () => (await sampled()) === 1 && (await up()) === 0, 20_000, 200);
  await redis.restart();
  await waitFor('redis_up 1 again', async () => (await up()) === 1, 30_000, 200);
});
