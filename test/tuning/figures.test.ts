import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { WorkerMetrics } from '../../lib/observe/metrics';
import { containerCpus } from '../../lib/tuning/capacity';
import { computeFigures, histogramOf, quantile, sampleFromMetrics, type ProcessSample, type Snapshot } from '../../lib/tuning/figures';

const CAP = { cpus: 2, memoryLimitBytes: 1000 * 1024 * 1024 };

async function sample(m: WorkerMetrics, own: { cpuSeconds?: number; rssBytes?: number } = {}): Promise<ProcessSample> {
  return sampleFromMetrics(await m.registry.getMetricsAsJSON(), own);
}

function snap(at: number, processes: Record<string, ProcessSample>): Snapshot {
  return { at, processes: new Map(Object.entries(processes)) };
}

test('figures of an interval from two snapshots of two real worker registries', async () => {
  const a = new WorkerMetrics([0.01, 0.05, 0.1, 0.5, 1, 2, 5], { defaultMetrics: false });
  const b = new WorkerMetrics([0.01, 0.05, 0.1, 0.5, 1, 2, 5], { defaultMetrics: false });
  // before the interval: traffic that must not count
  for (let i = 0; i < 50; i++) a.observeRequest('r', 'GET', 200, 3);
  a.errors.inc({ endpoint: 'r', error_type: 'upstream_timeout' }, 40);
  for (let i = 0; i < 30; i++) a.upstreamConnectionWait.observe(4);
  a.cacheRequests.inc({ layer: 'l1', result: 'miss' }, 100);
  const before = snap(0, { 'worker:1': await sample(a, { cpuSeconds: 10, rssBytes: 100e6 }), 'worker:2': await sample(b, { cpuSeconds: 5, rssBytes: 100e6 }) });

  // the interval: 200 requests over two workers, 10 errors; 197 fast, 3 slow
  for (let i = 0; i < 98; i++) a.observeRequest('r', 'GET', 200, 0.02);
  a.observeRequest('r', 'GET', 200, 1.5);
  a.observeRequest('r', 'GET', 200, 1.5);
  for (let i = 0; i < 99; i++) b.observeRequest('r', 'POST', 200, 0.02);
  b.observeRequest('r', 'POST', 502, 1.5);
  a.errors.inc({ endpoint: 'r', error_type: 'upstream_error' }, 6);
  b.errors.inc({ endpoint: 'r', error_type: 'shed' }, 4);
  // connection waits: 90 short, 10 around 0.3 s -> p95 in the (0.1, 0.5] bucket
  for (let i = 0; i < 45; i++) { a.upstreamConnectionWait.observe(0.0002); b.upstreamConnectionWait.observe(0.0002); }
  for (let i = 0; i < 5; i++) { a.upstreamConnectionWait.observe(0.3); b.upstreamConnectionWait.observe(0.3); }
  a.queueLength.set({ priority: 'high' }, 3);
  b.queueLength.set({ priority: 'low' }, 4);
  // cache: 60 lookups on a, 20 on b; hits in L1 (30) and L2 (10); L2 sees only L1's misses
  a.cacheRequests.inc({ layer: 'l1', result: 'hit' }, 25);
  a.cacheRequests.inc({ layer: 'l1', result: 'miss' }, 35);
  a.cacheRequests.inc({ layer: 'l2', result: 'hit' }, 10);
  a.cacheRequests.inc({ layer: 'l2', result: 'miss' }, 25);
  b.cacheRequests.inc({ layer: 'l1', result: 'hit' }, 5);
  b.cacheRequests.inc({ layer: 'l1', result: 'miss' }, 15);
  const after = snap(10_000, { 'worker:1': await sample(a, { cpuSeconds: 16, rssBytes: 150e6 }), 'worker:2': await sample(b, { cpuSeconds: 7, rssBytes: 130e6 }), primary: sampleFromMetrics([], { cpuSeconds: 1, rssBytes: 50e6 }) });

  const f = computeFigures(before, after, CAP);
  assert.equal(f.error_rate, 10 / 200);
  assert.equal(f.queue_length, 7);
  assert.equal(f.cache_hit_ratio, 40 / 80);
  // p99 of 200: rank 198 falls in (1, 2] where the 3 slow ones are: 1 + (198 - 197) / 3 s
  assert.ok(f.p99_latency !== null && Math.abs(f.p99_latency - 4000 / 3) < 1e-6, String(f.p99_latency));
  // p95 of 100 waits: rank 95 -> 5 of the 10 in (0.1, 0.5] -> 0.1 + 0.4 * 5 / 10 = 0.3 s
  assert.ok(f.connection_wait_time !== null && Math.abs(f.connection_wait_time - 300) < 1e-6, String(f.connection_wait_time));
  // CPU: (6 + 2 + 1) s over 10 s on 2 CPUs; the primary is new in this snapshot, so all of its second counts
  assert.ok(Math.abs(f.cpu_usage! - 9 / 10 / 2) < 1e-9, String(f.cpu_usage));
  // no cgroup working set known (no cgroup limit): the processes' RSS stands in
  assert.equal(f.memory_bytes, 330e6);
  assert.equal(f.memory_usage, 330e6 / CAP.memoryLimitBytes);
  // in a container: the cgroup's working set (page cache left out), not the RSS, against the limit
  const inPod = computeFigures(before, after, { ...CAP, memoryWorkingSetBytes: 600e6 });
  assert.equal(inPod.memory_bytes, 600e6);
  assert.equal(inPod.memory_usage, 600e6 / CAP.memoryLimitBytes);
});

test('a quiet interval leaves the rate and percentile figures unknown; a restarted worker counts from zero', async () => {
  const m = new WorkerMetrics(undefined, { defaultMetrics: false });
  m.observeRequest('r', 'GET', 200, 0.2);
  const s1 = await sample(m);
  const quiet = computeFigures(snap(0, { w: s1 }), snap(1000, { w: s1 }), CAP);
  assert.deepEqual([quiet.error_rate, quiet.p99_latency, quiet.connection_wait_time, quiet.cache_hit_ratio, quiet.cpu_usage, quiet.memory_usage],
    [null, null, null, null, null, null]);
  assert.equal(quiet.queue_length, 0);

  // the worker restarted: its counters are smaller than before, so they are the interval's
  const fresh = new WorkerMetrics(undefined, { defaultMetrics: false });
  fresh.observeRequest('r', 'GET', 500, 0.02);
  fresh.errors.inc({ endpoint: 'r', error_type: 'upstream_5xx' });
  const big = new WorkerMetrics(undefined, { defaultMetrics: false });
  for (let i = 0; i < 1000; i++) big.observeRequest('r', 'GET', 200, 0.02);
  const f = computeFigures(snap(0, { w: await sample(big) }), snap(1000, { w: await sample(fresh) }), CAP);
  assert.equal(f.error_rate, 1);
  assert.ok(f.p99_latency !== null && f.p99_latency <= 50);
});

test('process CPU and RSS come from prom-client\'s default metrics when the registry has them', async () => {
  const m = new WorkerMetrics();
  const s = await sample(m);
  assert.ok(s.cpuSeconds !== null && s.cpuSeconds >= 0);
  assert.ok(s.rssBytes !== null && s.rssBytes > 1024 * 1024);
});

test('quantile interpolates like histogram_quantile; the +Inf bucket answers the highest finite bound', () => {
  const h = { bounds: [0.1, 0.5, 1, Infinity], counts: [50, 90, 100, 100] };
  assert.equal(quantile(h, 0.5), 0.1);
  assert.ok(Math.abs(quantile(h, 0.7)! - 0.3) < 1e-9);
  assert.equal(quantile({ bounds: [0.1, Infinity], counts: [0, 10] }, 0.99), 0.1);
  assert.equal(quantile({ bounds: [0.1, Infinity], counts: [0, 0] }, 0.99), null);
  assert.equal(histogramOf(undefined), null);
});

test('containerCpus reads cgroup v2 cpu.max and v1 quotas, and never exceeds the host', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tuning-cgroup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'cpu.max'), '150000 100000\n');
  assert.equal(containerCpus(dir, 8), 1.5);
  assert.equal(containerCpus(dir, 1), 1);
  writeFileSync(join(dir, 'cpu.max'), 'max 100000\n');
  assert.equal(containerCpus(dir, 8), 8);
  const v1 = join(dir, 'v1');
  mkdirSync(join(v1, 'cpu'), { recursive: true });
  writeFileSync(join(v1, 'cpu', 'cpu.cfs_quota_us'), '300000\n');
  writeFileSync(join(v1, 'cpu', 'cpu.cfs_period_us'), '100000\n');
  assert.equal(containerCpus(v1, 8), 3);
  writeFileSync(join(v1, 'cpu', 'cpu.cfs_quota_us'), '-1\n');
  assert.equal(containerCpus(v1, 8), 8);
  assert.equal(containerCpus(join(dir, 'none'), 4), 4);
});
