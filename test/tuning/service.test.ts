import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { WorkerMetrics } from '../../lib/observe/metrics';
import { parsePolicy } from '../../lib/policy/load';
import type { LoadedPolicy } from '../../lib/policy/types';
import type { Actuators } from '../../lib/tuning/engine';
import { sampleFromMetrics, type ProcessSample } from '../../lib/tuning/figures';
import { TuningMetrics } from '../../lib/tuning/metrics';
import { AutoTuningService } from '../../lib/tuning/service';
import { captureLogger, TestClock } from './util';

function load(auto: string): LoadedPolicy {
  const r = parsePolicy(`upstream: { url: "http://127.0.0.1:9101", pool: { max_connections_per_host: 2 } }\nserver: { workers: 1 }\n${auto}`, 'p.yaml');
  if (!r.ok) assert.fail(r.errors.map((e) => e.message).join('\n'));
  return r.loaded;
}

const AUTO = (interval: string) => `auto_tuning:
  interval: ${interval}
  strategies:
    - { name: pool, trigger: "connection_wait_time > 100ms", action: increase_pool_size, params: { increment: 2, max_size: 10, revert_after: 2 } }
`;

/** The service on a test clock, reading a real worker registry that the test feeds. */
function rig() {
  const worker = new WorkerMetrics(undefined, { defaultMetrics: false });
  const pushed: number[] = [];
  const actuators: Actuators = { applyToWorkers: (s) => void pushed.push(s.upstream_pool_size), setWorkers: () => {} };
  const registry = new Registry();
  const actions = new Counter({ name: 'a_total', help: 'x', labelNames: ['strategy'], registers: [registry] });
  const clock = new TestClock();
  const { log, lines } = captureLogger();
  let samples = 0;
  const service = new AutoTuningService({
    log,
    metrics: new TuningMetrics(registry, actions),
    actuators,
    clock,
    capacity: () => ({ cpus: 2, memoryLimitBytes: 1e12 }),
    sample: async () => {
      samples++;
      return new Map<string, ProcessSample>([['worker:1', sampleFromMetrics(await worker.registry.getMetricsAsJSON(), { cpuSeconds: 0, rssBytes: 1e6 })]]);
    },
  });
  /** Let the clock run one interval and the tick's sampling finish. */
  const interval = async (ms: number) => {
    clock.advance(ms);
    await service.settled();
  };
  return { worker, pushed, clock, service, interval, lines, samples: () => samples };
}

test('every interval: snapshot, figures of the interval, one evaluation; pool up under waits, back down after', async (t) => {
  const r = rig();
  t.after(() => r.service.close());
  r.service.configure(load(AUTO('30s')));
  await r.service.settled(); // the baseline snapshot
  const slowWaits = () => { for (let i = 0; i < 20; i++) r.worker.upstreamConnectionWait.observe(0.4); };

  slowWaits();
  await r.interval(29_999);
  assert.deepEqual(r.pushed, [], 'nothing before the interval is up');
  await r.interval(1);
  assert.deepEqual(r.pushed, [4]);
  slowWaits();
  await r.interval(30_000);
  assert.equal(r.service.effective().upstream_pool_size, 6);
  // the waits of earlier intervals do not count again: a calm interval is calm
  for (let i = 0; i < 50; i++) r.worker.upstreamConnectionWait.observe(0.0002);
  await r.interval(30_000);
  assert.equal(r.service.effective().upstream_pool_size, 6);
  await r.interval(30_000); // no traffic: unknown counts as quiet -> second quiet interval -> one step back
  assert.equal(r.service.effective().upstream_pool_size, 4);
  await r.interval(30_000);
  assert.equal(r.service.effective().upstream_pool_size, 2);
  // while tuned, every interval re-sends the settings (a worker that missed one catches up): same values
  assert.deepEqual(r.pushed.filter((v, i, a) => i === 0 || a[i - 1] !== v), [4, 6, 4, 2]);
  assert.deepEqual(r.pushed, [4, 6, 6, 4, 2]);
  const line = r.lines.find((l) => l.to === 4 && l.direction === 'up')!;
  assert.match(String((line.figures as Record<string, string>).connection_wait_time), /^\d+(\.\d+)?ms$/);
});

test('a reload restarts the timer with the new interval and the settings from the new policy; close stops it', async () => {
  const r = rig();
  r.service.configure(load(AUTO('1m')));
  await r.service.settled();
  for (let i = 0; i < 20; i++) r.worker.upstreamConnectionWait.observe(0.4);
  await r.interval(60_000);
  assert.equal(r.service.effective().upstream_pool_size, 4);

  r.service.configure(load(AUTO('10s').replace('revert_after: 2', 'revert_after: 3')));
  await r.service.settled();
  assert.equal(r.service.effective().upstream_pool_size, 2, 'reset to the policy');
  for (let i = 0; i < 20; i++) r.worker.upstreamConnectionWait.observe(0.4);
  await r.interval(10_000);
  assert.equal(r.service.effective().upstream_pool_size, 4, 'the new 10s interval is in force');
  assert.equal(r.clock.pending(), 1);
  await r.service.close();
  assert.equal(r.clock.pending(), 0);
  const before = r.samples();
  await r.interval(60_000);
  assert.equal(r.samples(), before, 'no sampling after close');
});

test('disabled or absent auto_tuning runs no timer; effective values still follow the policy', async () => {
  const r = rig();
  r.service.configure(load(''));
  assert.equal(r.clock.pending(), 0);
  assert.equal(r.service.effective().upstream_pool_size, 2);
  r.service.configure(load(AUTO('1m').replace('interval: 1m', 'interval: 1m\n  enabled: false')));
  assert.equal(r.clock.pending(), 0);
  await r.service.close();
});
