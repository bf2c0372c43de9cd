/**
 * The status page's arithmetic: a Sample read from a real metrics registry, percentiles as Prometheus'
 * histogram_quantile computes them, window deltas, and the rate-limit store's "closest to the limit".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerMetrics } from '../../lib/observe/metrics';
import { sampleFrom } from '../../lib/status/sample';
import { histogramDelta, quantile, windowStart } from '../../lib/status/figures';
import { LocalStore } from '../../lib/stages/ratelimit/store';
import { SCOPE_CODES } from '../../lib/stages/ratelimit/limits';

test('a Sample holds the registry\'s own counts: requests, buckets and status classes per route', async () => {
  const m = new WorkerMetrics([0.01, 0.1, 1], { defaultMetrics: false });
  for (let i = 0; i < 90; i++) m.observeRequest('read', 'POST', 200, 0.005);
  for (let i = 0; i < 9; i++) m.observeRequest('read', 'POST', 503, 0.05);
  m.observeRequest('read', 'GET', 404, 2);
  m.cacheRequests.inc({ layer: 'l1', result: 'hit' }, 7);
  m.shed.inc({ reason: 'queue_full' }, 3);
  const s = sampleFrom(await m.registry.getMetricsAsJSON(), 1000);
  const r = s.routes.read;
  assert.equal(r.requests, 100);
  assert.deepEqual(r.duration.bounds, [0.01, 0.1, 1]);
  assert.deepEqual(r.duration.counts, [90, 99, 99, 100]);
  assert.deepEqual(r.statusClasses, { '2xx': 90, '5xx': 9, '4xx': 1 });
  assert.equal(s.cache.l1.hit, 7);
  assert.equal(s.queues.shed.queue_full, 3);
});

test('quantile interpolates inside the bucket like histogram_quantile; +Inf gives the highest bound', () => {
  const h = { bounds: [0.01, 0.1, 1], counts: [50, 90, 100, 100], sum: 0, count: 100 };
  assert.equal(quantile(0.5, h), 0.01);
  assert.ok(Math.abs(quantile(0.7, h)! - (0.01 + 0.09 * (20 / 40))) < 1e-12);
  assert.ok(Math.abs(quantile(0.95, h)! - (0.1 + 0.9 * 0.5)) < 1e-12);
  assert.equal(quantile(0.99, { ...h, counts: [0, 0, 0, 10] }), 1, 'all in +Inf: the highest finite bound');
  assert.equal(quantile(0.5, { ...h, counts: [0, 0, 0, 0] }), null, 'no observations');
});

test('a window is the difference of two readings; a reset (fewer counts) starts from the newer one', () => {
  const a = { bounds: [1], counts: [5, 8], sum: 4, count: 8 };
  const b = { bounds: [1], counts: [9, 20], sum: 10, count: 20 };
  assert.deepEqual(histogramDelta(a, b), { bounds: [1], counts: [4, 12], sum: 6, count: 12 });
  assert.deepEqual(histogramDelta(b, a), a);
  const at = (t: number) => ({ at: t } as never);
  assert.equal((windowStart([at(0), at(5000), at(9000), at(12_000)], 10_000) as { at: number }).at, 0);
  assert.equal((windowStart([at(0), at(2000), at(12_000), at(13_000)], 10_000) as { at: number }).at, 2000);
  assert.equal(windowStart([at(0)], 10_000), null);
});

test('closest(n) lists the most used limits first and changes nothing', () => {
  let now = 0;
  const store = new LocalStore(() => now);
  store.takeOne([SCOPE_CODES.global, '', 10, 100, 100], now);
  store.takeOne([SCOPE_CODES.per_user, 'h:alice', 8, 1, 10], now); // a taker gets at most half of what is left
  store.takeOne([SCOPE_CODES.per_user, 'h:alice', 3, 1, 10], now);
  store.takeOne([SCOPE_CODES.per_user, 'h:bob', 2, 1, 10], now);
  const c = store.closest(2, now);
  assert.deepEqual(c.map((b) => [b.scope, b.key]), [['per_user', 'h:alice'], ['per_user', 'h:bob']]);
  assert.equal(c[0].available, 2);
  assert.equal(c[0].capacity, 10);
  assert.equal(store.closest(2, now)[0].available, 2, 'reading does not spend');
  assert.equal(store.peek(SCOPE_CODES.per_user, 'h:alice', now)?.available, 2);
  assert.equal(store.peek(SCOPE_CODES.per_user, 'h:nobody', now), null);
  now = 1000;
  assert.equal(store.closest(5, now).length, 3);
  assert.deepEqual(store.closest(0, now), []);
});

test('closest(n) ranks limits equally used by how long they take to refill: the client deepest past its limit first', () => {
  let now = 0;
  const store = new LocalStore(() => now);
  const take = (key: string, want: number) => store.takeOne([SCOPE_CODES.per_user, key, want, 0.1, 10], now); // a token every 10 s
  // both spend their whole burst: 'h:once' at 0 s, 'h:hammer' at 5 s
  for (let i = 0; i < 10; i++) take('h:once', 1);
  now = 5000;
  for (let i = 0; i < 10; i++) take('h:hammer', 1);
  // 'h:once' tries again at 6 s and is refused (it is now the most recently seen)
  now = 6000;
  assert.equal(take('h:once', 1)[0], 0, 'refused');
  const c = store.closest(2, now);
  assert.deepEqual(c.map((b) => [b.key, b.used]), [['h:hammer', 1], ['h:once', 1]]);
  assert.ok(c[0].msUntilFull > c[1].msUntilFull);
  assert.deepEqual(store.closest(1, now).map((b) => b.key), ['h:hammer'], 'the one kept when only one fits');
});
