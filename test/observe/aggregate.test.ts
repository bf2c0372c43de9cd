/**
 * How the primary combines two workers' registries (prom-client's AggregatorRegistry.aggregate, as in
 * lib/server/primary/admin-routes.ts): per-worker shares sum, the shared L2 size is not counted twice, Redis-up is the min,
 * and a container-wide figure is not doubled.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { WorkerMetrics } from '../../lib/observe/metrics';
import { parseMetrics, total } from './helpers';

async function aggregate(...workers: WorkerMetrics[]): Promise<ReturnType<typeof parseMetrics>> {
  const jsons = await Promise.all(workers.map((w) => w.registry.getMetricsAsJSON()));
  const agg = AggregatorRegistry.aggregate(jsons as Parameters<typeof AggregatorRegistry.aggregate>[0]) as unknown as Registry;
  return parseMetrics(await agg.metrics());
}

test('aggregation over workers: sums, the shared L2 once, Redis-up min, container memory once', async () => {
  const a = new WorkerMetrics(undefined, { defaultMetrics: false });
  const b = new WorkerMetrics(undefined, { defaultMetrics: false });
  a.observeRequest('query_script', 'POST', 200, 0.02);
  b.observeRequest('query_script', 'POST', 200, 0.3);
  b.observeRequest('other', 'GET', 404, 0.001);
  a.cacheSize.set({ layer: 'l1' }, 1000);
  b.cacheSize.set({ layer: 'l1' }, 500);
  a.cacheSize.set({ layer: 'l2' }, 7_000_000); // the same Redis, read by both workers
  b.cacheSize.set({ layer: 'l2' }, 7_000_100);
  a.queueLength.set({ priority: 'high' }, 3);
  b.queueLength.set({ priority: 'high' }, 4);
  a.redisHealth = () => true;
  b.redisHealth = () => false;

  const m = await aggregate(a, b);
  assert.equal(total(m, 'bridge_sidecar_http_requests_total', { endpoint: 'query_script' }), 2);
  assert.equal(total(m, 'bridge_sidecar_http_request_duration_seconds_bucket', { endpoint: 'query_script', le: '0.05' }), 1);
  assert.equal(total(m, 'bridge_sidecar_http_request_duration_seconds_bucket', { endpoint: 'query_script', le: '0.5' }), 2);
  assert.equal(total(m, 'bridge_sidecar_cache_size_bytes', { layer: 'l1' }), 1500, 'L1 is per worker: summed');
  assert.equal(total(m, 'bridge_sidecar_cache_size_bytes', { layer: 'l2' }), 7_000_100, 'L2 is shared: max, not sum');
  assert.equal(total(m, 'bridge_sidecar_queue_length', { priority: 'high' }), 7);
  assert.equal(total(m, 'bridge_sidecar_redis_up'), 0, 'one worker without Redis: down');
  const one = new WorkerMetrics(undefined, { defaultMetrics: false });
  assert.equal(total(await aggregate(one, new WorkerMetrics(undefined, { defaultMetrics: false })), 'bridge_sidecar_memory_limit_bytes'), total(await aggregate(one), 'bridge_sidecar_memory_limit_bytes'), 'the limit is not doubled');

  b.redisHealth = () => true;
  assert.equal(total(await aggregate(a, b), 'bridge_sidecar_redis_up'), 1);
  a.redisHealth = b.redisHealth = () => null;
  assert.equal((await aggregate(a, b)).get('bridge_sidecar_redis_up')?.samples.length, 0, 'no redis section: no sample');
});
