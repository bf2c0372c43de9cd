import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from '../helpers/ports';
import { parsePrometheusText, sampleFromPrometheus, sampleFromProc, sampleTarget, usageBetween } from '../../lib/loadtest/target-stats';

const PAGE = (n: number) => `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total ${10 + n}
process_resident_memory_bytes ${100 * 2 ** 20 + n * 2 ** 20}
bridge_sidecar_cache_requests_total{layer="l1",result="hit"} ${80 * n}
bridge_sidecar_cache_requests_total{layer="l1",result="miss"} ${20 * n}
bridge_sidecar_cache_requests_total{layer="l2",result="hit"} ${10 * n}
bridge_sidecar_cache_requests_total{layer="l2",result="miss"} ${10 * n}
bridge_sidecar_shed_total{reason="queue_full"} ${n > 1 ? 5 : 0}
bridge_sidecar_ratelimit_rejected_total{scope="global"} ${3 * n}
bridge_sidecar_http_requests_total{endpoint="a \\"quoted\\" name",method="POST"} 7 1700000000000
`;

test('Prometheus text: labels (with escapes), timestamps and comments', () => {
  const samples = parsePrometheusText(PAGE(1));
  assert.equal(samples.length, 9);
  const last = samples[samples.length - 1];
  assert.deepEqual(last, { name: 'bridge_sidecar_http_requests_total', labels: { endpoint: 'a "quoted" name', method: 'POST' }, value: 7 });
});

test('usage between two scrapes: CPU cores, memory, cache hit ratio over tiers, shedding and rate limiting', () => {
  const a = sampleFromPrometheus(PAGE(1), 1_000_000);
  const b = sampleFromPrometheus(PAGE(3), 1_004_000);
  const u = usageBetween(a, b);
  assert.equal(u.cpuCores, 0.5, '2 CPU seconds in 4 wall seconds');
  assert.equal(u.rssBytes, 103 * 2 ** 20);
  assert.deepEqual(u.cache, { l1: { hits: 160, lookups: 200 }, l2: { hits: 20, lookups: 40 } });
  assert.equal(u.cacheHitRatio, (160 + 20) / 200, 'hits in any tier over lookups at the first tier');
  assert.deepEqual(u.shed, { queue_full: 5 });
  assert.equal(u.shedTotal, 5);
  assert.equal(u.rateLimitedTotal, 6);
});

test('sampleTarget scrapes a real /metrics page; a dead page is recorded, not thrown', async (t) => {
  let n = 0;
  const server = createServer((_req, res) => res.end(PAGE(++n)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  const s = await sampleTarget({ metricsUrl: url, pid: null });
  assert.equal(s?.cpuSeconds, 11);
  assert.equal(s?.cache.l1.hit, 80);
  const dead = await sampleTarget({ metricsUrl: 'http://127.0.0.1:1/metrics', pid: null });
  assert.ok(dead?.error?.includes('127.0.0.1:1'));
  assert.equal(await sampleTarget({ metricsUrl: null, pid: null }), null);
});

test('--pid: memory and CPU of a real process from /proc', async (t) => {
  // The child burns 600 ms of its own CPU time (a busy machine can deschedule a wall-clock loop), says so, then
  // idles. It burns past the 0.5 s asserted because /proc counts in 10 ms ticks rounded down: a child that
  // stopped at exactly 500,000 µs could read 0.49 s for ever.
  const child = spawn(process.execPath, ['-e', "const a = Buffer.alloc(64 * 2 ** 20, 1); while (process.cpuUsage().user + process.cpuUsage().system < 600_000); process.stdout.write('burned'); setInterval(() => a, 1000)"]);
  t.after(() => child.kill());
  // wait for the child's word (a busy machine can take seconds to start node), not a fixed time
  let said = '';
  child.stdout.on('data', (d: Buffer) => { said += d.toString(); });
  await waitFor('the child to hold its 64 MB and to have used 0.6 s of CPU', () => said.includes('burned'), 120_000, 50);
  const s = sampleFromProc(child.pid!, Date.now());
  assert.ok((s.rssBytes ?? 0) > 64 * 2 ** 20, `rss ${s.rssBytes}`);
  // a sampler that misread /proc (0, null, the wrong fields) fails here
  assert.ok((s.cpuSeconds ?? 0) >= 0.5 && (s.cpuSeconds ?? 0) < 5, `cpu ${s.cpuSeconds} s after burning 0.6 s`);
});
