/**
 * The per-request series kept outside prom-client export exactly what prom-client's own Histogram and Counter
 * would for the same observations: the same Prometheus text, and the same sums when the cluster aggregator adds
 * the workers up.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../../lib/observe/fast-metrics';
import { WorkerMetrics } from '../../lib/observe/metrics';

const BOUNDS = [0.01, 0.05, 0.1, 0.5, 1, 2, 5];
const SAMPLES: Array<[string, string, string, number]> = [
  ['query_script', 'POST', '200', 0.004], ['query_script', 'POST', '200', 0.01], ['query_script', 'POST', '200', 0.2],
  ['other', 'GET', '404', 7], ['other', 'GET', '404', 0.05], ['a "quoted" name', 'GET', '200', 0.0001], ['query_script', 'POST', '503', 1.5],
];

function both(samples: typeof SAMPLES): { theirs: Registry; ours: Registry } {
  const theirs = new Registry();
  const h = new Histogram({ name: 'x_duration_seconds', help: 'h', labelNames: ['endpoint', 'method', 'status'], buckets: BOUNDS, registers: [theirs] });
  const c = new Counter({ name: 'x_requests_total', help: 'c', labelNames: ['endpoint', 'method'], registers: [theirs] });
  const ours = new Registry();
  const fh = new FastHistogram('x_duration_seconds', 'h', ['endpoint', 'method', 'status'], BOUNDS, ours);
  const fc = new FastCounter('x_requests_total', 'c', ['endpoint', 'method'], ours);
  for (const [endpoint, method, status, v] of samples) {
    h.labels(endpoint, method, status).observe(v);
    c.labels(endpoint, method).inc();
    fh.cell([endpoint, method, status]).observe(v);
    fc.cell([endpoint, method]).inc();
  }
  return { theirs, ours };
}

test('same Prometheus text as prom-client for the same observations (bucket edges included)', async () => {
  const { theirs, ours } = both(SAMPLES);
  assert.equal(await ours.metrics(), await theirs.metrics());
});

test('the cluster aggregator sums workers the same way', async () => {
  const w1 = both(SAMPLES);
  const w2 = both(SAMPLES.slice(2));
  const theirs = AggregatorRegistry.aggregate([await w1.theirs.getMetricsAsJSON(), await w2.theirs.getMetricsAsJSON()]);
  const ours = AggregatorRegistry.aggregate([await w1.ours.getMetricsAsJSON(), await w2.ours.getMetricsAsJSON()]);
  assert.equal(await ours.metrics(), await theirs.metrics());
  assert.match(await ours.metrics(), /x_requests_total\{endpoint="query_script",method="POST"\} 6/);
});

test('reset() empties the series (prom-client registry resetMetrics)', async () => {
  const { ours } = both(SAMPLES);
  ours.resetMetrics();
  assert.doesNotMatch(await ours.metrics(), /x_requests_total\{/);
});

test('a histogram without labels (observe(v)) and counter inc(labels, n) match prom-client too', async () => {
  const theirs = new Registry();
  const ours = new Registry();
  const h = new Histogram({ name: 'y_wait_seconds', help: 'w', buckets: [0.0001, 0.001, 0.1], registers: [theirs] });
  const c = new Counter({ name: 'y_total', help: 'c', labelNames: ['layer', 'result'], registers: [theirs] });
  const fh = new FastHistogram('y_wait_seconds', 'w', [], [0.0001, 0.001, 0.1], ours);
  const fc = new FastCounter('y_total', 'c', ['layer', 'result'], ours);
  for (const v of [0.00005, 0.0001, 0.002, 3]) { h.observe(v); fh.observe(v); }
  c.inc({ layer: 'l1', result: 'hit' }, 25);
  fc.inc({ layer: 'l1', result: 'hit' }, 25);
  assert.equal(await ours.metrics(), await theirs.metrics());
});

// WorkerMetrics.observeRequest finds its cells by endpoint, method and status; a reload that changes the buckets
// starts a new histogram, and the requests after it must land there (not in cells of the removed one)
test('observeRequest: each endpoint/method/status in its own series; after new buckets, requests land in the new histogram', async () => {
  const m = new WorkerMetrics([0.1, 1], { defaultMetrics: false });
  m.observeRequest('query_script', 'POST', 200, 0.05);
  m.observeRequest('query_script', 'POST', 200, 0.5);
  m.observeRequest('query_script', 'POST', 503, 0.05);
  m.observeRequest('query_script', 'GET', 200, 0.05);
  m.observeRequest('other', 'POST', 200, 0.05);
  const count = async (name: string, labels: Record<string, string>): Promise<number | undefined> => {
    const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name)!;
    return metric.values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val) && (name.endsWith('_total') || (v as { metricName?: string }).metricName?.endsWith('_count')))?.value;
  };
  const H = 'bridge_sidecar_http_request_duration_seconds';
  const C = 'bridge_sidecar_http_requests_total';
  assert.equal(await count(H, { endpoint: 'query_script', method: 'POST', status: '200' }), 2);
  assert.equal(await count(H, { endpoint: 'query_script', method: 'POST', status: '503' }), 1);
  assert.equal(await count(H, { endpoint: 'query_script', method: 'GET', status: '200' }), 1);
  assert.equal(await count(C, { endpoint: 'query_script', method: 'POST' }), 3);
  assert.equal(await count(C, { endpoint: 'other', method: 'POST' }), 1);

  m.setBuckets([0.01, 0.2, 2]);
  m.observeRequest('query_script', 'POST', 200, 0.15);
  const h = (await m.registry.getMetricsAsJSON()).find((x) => x.name === H)!;
  const les = h.values.filter((v) => (v as { metricName?: string }).metricName?.endsWith('_bucket')).map((v) => v.labels.le);
  assert.deepEqual([...new Set(les)], [0.01, 0.2, 2, '+Inf']);
  assert.equal(await count(H, { endpoint: 'query_script', method: 'POST', status: '200' }), 1, 'the new histogram holds the request after the change');
  assert.equal(await count(C, { endpoint: 'query_script', method: 'POST' }), 4, 'the counter keeps counting');
});
