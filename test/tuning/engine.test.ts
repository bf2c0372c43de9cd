import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { parsePolicy } from '../../lib/policy/load';
import type { LoadedPolicy } from '../../lib/policy/types';
import { Tuner, type Actuators } from '../../lib/tuning/engine';
import { TuningMetrics } from '../../lib/tuning/metrics';
import { captureLogger, figures } from './util';

const MB = 1024 * 1024;

function load(yaml: string): LoadedPolicy {
  const r = parsePolicy(`upstream: { url: "http://127.0.0.1:9101", pool: { max_connections_per_host: 20 } }\nserver: { workers: 2 }\n${yaml}`, 'p.yaml');
  if (!r.ok) assert.fail(r.errors.map((e) => `${e.line}:${e.col}: ${e.message}`).join('\n'));
  return r.loaded;
}

/** The engine with actuators that record what they were asked (the real ones are IPC: see the e2e test). */
function rig(yaml: string, cpus = 64) {
  const calls: { workers: number[]; workerSettings: Array<{ version: string; cache_l1_bytes: number | null; upstream_pool_size: number }> } = { workers: [], workerSettings: [] };
  const actuators: Actuators = {
    applyToWorkers: (s) => void calls.workerSettings.push(s),
    setWorkers: (n) => void calls.workers.push(n),
  };
  const registry = new Registry();
  const actions = new Counter({ name: 'bridge_sidecar_autotune_actions_total', help: 'x', labelNames: ['strategy'], registers: [registry] });
  const metrics = new TuningMetrics(registry, actions);
  const { log, lines } = captureLogger();
  const tuner = new Tuner({ actuators, log, metrics, cpus: () => cpus });
  tuner.configure(load(yaml));
  const counter = async (strategy: string) => (await actions.get()).values.find((v) => v.labels.strategy === strategy)?.value;
  // one unit per series: the byte setting has its own name
  const series = async (name: string, labels: Record<string, string>) => (await registry.getSingleMetric(name)?.get())?.values
    .find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
  const gauge = (setting: string) => series(setting === 'cache_l1' ? 'bridge_sidecar_autotune_effective_bytes' : 'bridge_sidecar_autotune_effective', { setting });
  return { tuner, calls, lines, counter, gauge, series, registry };
}

const POOL = (params = '{ increment: 5, max_size: 32 }', extra = '') => `auto_tuning:
  interval: 1m
${extra}  strategies:
    - { name: pool, trigger: "connection_wait_time > 100ms", action: increase_pool_size, params: ${params} }
`;

test('increase_pool_size: +increment per interval while the trigger holds, up to max_size, counted, logged with the figure', async () => {
  const r = rig(POOL());
  const hot = figures({ connection_wait_time: 250 });
  assert.deepEqual(r.tuner.step(hot).map((a) => [a.from, a.to]), [[20, 25]]);
  assert.deepEqual(r.calls.workerSettings.at(-1), { version: r.tuner['loaded']!.version, cache_l1_bytes: null, upstream_pool_size: 25 });
  r.tuner.step(hot);
  r.tuner.step(hot);
  assert.equal(r.tuner.effective().upstream_pool_size, 32, 'bounded by max_size, not 35');
  assert.deepEqual(r.tuner.step(hot), [], 'at the bound: no action');
  assert.equal(await r.counter('pool'), 3);
  assert.equal(await r.gauge('upstream_pool_size'), 32);
  // the figures it read, each under the name of its unit (times in seconds, not the trigger's milliseconds)
  assert.equal(await r.series('bridge_sidecar_autotune_figure_seconds', { figure: 'connection_wait_time' }), 0.25);
  assert.equal(await r.series('bridge_sidecar_autotune_figure_ratio', { figure: 'connection_wait_time' }), undefined);
  assert.equal(await r.series('bridge_sidecar_autotune_figure_ratio', { figure: 'memory_usage' }), hot.memory_usage);
  assert.equal(await r.series('bridge_sidecar_autotune_figure_bytes', { figure: 'memory' }), hot.memory_bytes);
  assert.equal(await r.series('bridge_sidecar_autotune_figure', { figure: 'queue_length' }), hot.queue_length);
  assert.equal(await r.series('bridge_sidecar_autotune_effective', { setting: 'cache_l1_bytes' }), undefined, 'no bytes under the count name');
  const line = r.lines.find((l) => l.strategy === 'pool' && l.to === 25)!;
  assert.deepEqual(line.figures, { connection_wait_time: '250ms' });
  assert.match(String(line.msg), /pool changed upstream_pool_size 20 -> 25 \(trigger "connection_wait_time > 100ms" is true: connection_wait_time 250ms\)/);
  assert.ok(r.lines.some((l) => /at its bound \(32\)/.test(String(l.msg))), 'says once that it is at its bound');
});

test('hysteresis: the opposite step only after revert_after quiet intervals, one step at a time, never past the policy', async () => {
  const r = rig(POOL('{ increment: 5, max_size: 100, revert_after: 2 }'));
  const hot = figures({ connection_wait_time: 250 });
  const calm = figures({ connection_wait_time: 5 });
  r.tuner.step(hot);
  r.tuner.step(hot); // 30
  assert.deepEqual(r.tuner.step(calm), [], 'one quiet interval is not enough');
  assert.deepEqual(r.tuner.step(calm).map((a) => [a.direction, a.from, a.to]), [['revert', 30, 25]]);
  // pressure again resets the quiet count
  assert.deepEqual(r.tuner.step(hot).map((a) => a.to), [30]);
  assert.deepEqual(r.tuner.step(calm), []);
  assert.deepEqual(r.tuner.step(calm).map((a) => a.to), [25]);
  assert.deepEqual(r.tuner.step(calm).map((a) => a.to), [20]);
  for (let i = 0; i < 5; i++) assert.deepEqual(r.tuner.step(calm), [], 'never below the policy\'s 20');
  assert.equal(r.tuner.effective().upstream_pool_size, 20);
  assert.equal(await r.counter('pool'), 6);
  // unknown figures (no traffic) count as quiet: the pool goes back when traffic stops altogether
  r.tuner.step(hot);
  r.tuner.step(figures({ connection_wait_time: null }));
  assert.deepEqual(r.tuner.step(figures({ connection_wait_time: null })).map((a) => a.to), [20]);
});

test('cooldown: at least auto_tuning.cooldown between two actions of a strategy (a param may override it)', () => {
  const r = rig(POOL('{ increment: 1, max_size: 100 }', '  cooldown: 3m\n'));
  const hot = figures({ connection_wait_time: 250 });
  const acted = Array.from({ length: 9 }, () => r.tuner.step(hot).length);
  assert.deepEqual(acted, [1, 0, 0, 1, 0, 0, 1, 0, 0]);
  const p = rig(POOL('{ increment: 1, max_size: 100, cooldown: 120 }', '  cooldown: 3m\n'));
  assert.deepEqual(Array.from({ length: 6 }, () => p.tuner.step(hot).length), [1, 0, 1, 0, 1, 0]);
  // a revert waits for the cooldown too
  const c = rig(POOL('{ increment: 1, max_size: 100, revert_after: 1 }', '  cooldown: 2m\n'));
  const calm = figures({ connection_wait_time: 1 });
  assert.deepEqual([hot, calm, calm, calm, calm].map((f) => c.tuner.step(f).map((a) => a.to)), [[21], [], [20], [], []]);
});

test('reduce_cache_size: L1 budget x reduction_factor, never below the floor; back up by the same factor to the policy', async () => {
  const r = rig(`cache: { l1: { size: 100MB } }
auto_tuning:
  strategies:
    - { name: mem, trigger: "memory_usage > 85%", action: reduce_cache_size, params: { reduction_factor: 0.5, revert_after: 1 } }
`);
  const hot = figures({ memory_usage: 0.9, memory_bytes: 900 * MB });
  assert.equal(r.tuner.effective().cache_l1_bytes, 100 * MB);
  r.tuner.step(hot);
  assert.equal(r.tuner.effective().cache_l1_bytes, 50 * MB);
  assert.equal(r.calls.workerSettings.at(-1)!.cache_l1_bytes, 50 * MB);
  r.tuner.step(hot); // 25MB
  r.tuner.step(hot); // floor: max(10% of 100MB, 16MB) = 16MB, not 12.5MB
  assert.equal(r.tuner.effective().cache_l1_bytes, 16 * MB);
  assert.deepEqual(r.tuner.step(hot), []);
  assert.equal(await r.gauge('cache_l1'), 16 * MB);
  const line = r.lines.find((l) => l.strategy === 'mem')!;
  assert.deepEqual(line.figures, { memory_usage: '90%', memory_bytes: '900MB' });
  const calm = figures({ memory_usage: 0.3 });
  const back = [1, 2, 3, 4].map(() => r.tuner.step(calm).map((a) => a.to));
  assert.deepEqual(back, [[32 * MB], [64 * MB], [100 * MB], []], 'doubling back, capped at the policy\'s 100MB');

  const floored = rig(`cache: { l1: { size: 1GB } }
auto_tuning: { strategies: [ { name: mem, trigger: "memory_usage > 512MB", action: reduce_cache_size, params: { reduction_factor: 0.1, floor: 30% } } ] }
`);
  floored.tuner.step(hot);
  assert.equal(floored.tuner.effective().cache_l1_bytes, Math.floor(1024 * MB * 0.3));
  const bytesFloor = rig(`cache: { l1: { size: 1GB } }
auto_tuning: { strategies: [ { name: mem, trigger: "memory_usage > 512MB", action: reduce_cache_size, params: { reduction_factor: 0.1, floor: 200000000 } } ] }
`);
  bytesFloor.tuner.step(hot);
  assert.equal(bytesFloor.tuner.effective().cache_l1_bytes, 200_000_000);
});

test('increase_workers: +increment up to max_workers and never beyond the CPUs the container may use', () => {
  const yaml = `auto_tuning:
  strategies:
    - { name: w, trigger: "queue_length > 500", action: increase_workers, params: { increment: 2, max_workers: 16, revert_after: 1 } }
`;
  const r = rig(yaml, 5.5);
  const hot = figures({ queue_length: 800 });
  r.tuner.step(hot);
  r.tuner.step(hot);
  r.tuner.step(hot);
  assert.deepEqual(r.calls.workers, [4, 5], 'bounded by 5 CPUs (5.5 rounded down), not 6');
  assert.equal(r.tuner.effective().workers, 5);
  r.tuner.step(figures({ queue_length: 0 }));
  r.tuner.step(figures({ queue_length: 0 }));
  assert.deepEqual(r.calls.workers, [4, 5, 3, 2]);
  const capped = rig(yaml.replace('max_workers: 16', 'max_workers: 3'), 64);
  capped.tuner.step(hot);
  capped.tuner.step(hot);
  assert.deepEqual(capped.calls.workers, [3]);
});

test('each figure can drive a trigger (error_rate, p99_latency, cache_hit_ratio, cpu_usage, compound)', () => {
  const cases: Array<[string, Partial<ReturnType<typeof figures>>, Partial<ReturnType<typeof figures>>]> = [
    ['error_rate > 5%', { error_rate: 0.1 }, { error_rate: 0.01 }],
    ['p99_latency > 1s', { p99_latency: 1500 }, { p99_latency: 200 }],
    ['cache_hit_ratio < 30%', { cache_hit_ratio: 0.1 }, { cache_hit_ratio: 0.9 }],
    ['cpu_usage > 70%', { cpu_usage: 0.95 }, { cpu_usage: 0.2 }],
    ['queue_length > 100 and not error_rate > 50%', { queue_length: 200, error_rate: 0.1 }, { queue_length: 200, error_rate: 0.9 }],
  ];
  for (const [trigger, on, off] of cases) {
    const r = rig(POOL().replace('connection_wait_time > 100ms', trigger));
    assert.deepEqual(r.tuner.step(figures(off)), [], `${trigger} must not fire on ${JSON.stringify(off)}`);
    assert.equal(r.tuner.step(figures(on)).length, 1, `${trigger} must fire on ${JSON.stringify(on)}`);
  }
});

test('dry_run logs what it would do and changes nothing', async () => {
  const r = rig(POOL('{ increment: 5, max_size: 100 }', '  dry_run: true\n'));
  const acts = r.tuner.step(figures({ connection_wait_time: 250 }));
  assert.deepEqual(acts.map((a) => [a.dry_run, a.from, a.to]), [[true, 20, 25]]);
  assert.equal(r.tuner.effective().upstream_pool_size, 20);
  assert.deepEqual(r.calls.workerSettings, []);
  assert.equal(await r.counter('pool'), 0);
  assert.equal(await r.gauge('upstream_pool_size'), 20);
  assert.ok(r.lines.some((l) => l.dry_run === true && /pool would change upstream_pool_size 20 -> 25/.test(String(l.msg))));
});

test('a reload resets effective values to the new policy and starts over; disabled tuning does nothing', async () => {
  const r = rig(`auto_tuning:
  strategies:
    - { name: pool, trigger: "connection_wait_time > 100ms", action: increase_pool_size, params: { increment: 5, max_size: 100 } }
    - { name: w, trigger: "connection_wait_time > 100ms", action: increase_workers, params: { increment: 1, max_workers: 8 } }
`);
  const hot = figures({ connection_wait_time: 250 });
  r.tuner.step(hot);
  r.tuner.step(hot);
  assert.deepEqual(r.tuner.effective(), { cache_l1_bytes: null, upstream_pool_size: 30, workers: 4 });
  const next = parsePolicy(`upstream: { url: "http://127.0.0.1:9101", pool: { max_connections_per_host: 8 } }\nserver: { workers: 2 }\ncache: { l1: { size: 64MB } }
auto_tuning: { enabled: false, strategies: [ { name: pool, trigger: "connection_wait_time > 1s", action: increase_pool_size } ] }\n`, 'p.yaml');
  assert.ok(next.ok);
  r.tuner.configure(next.loaded);
  assert.deepEqual(r.tuner.effective(), { cache_l1_bytes: 64 * MB, upstream_pool_size: 8, workers: 2 });
  assert.deepEqual(r.calls.workers.at(-1), 2, 'the extra workers are retired');
  assert.equal(await r.gauge('upstream_pool_size'), 8);
  assert.deepEqual(r.tuner.step(figures({ connection_wait_time: 5000 })), [], 'enabled: false');
});

test('status() shows the last figures and each strategy\'s state for /policy', () => {
  const r = rig(POOL());
  r.tuner.step(figures({ connection_wait_time: 1234, cache_hit_ratio: null }));
  const st = r.tuner.status() as { last_evaluation: { figures: Record<string, string> }; strategies: Array<Record<string, unknown>>; policy_settings: Record<string, unknown> };
  assert.equal(st.last_evaluation.figures.connection_wait_time, '1.234s');
  assert.equal(st.last_evaluation.figures.cache_hit_ratio, 'unknown');
  assert.equal(st.strategies[0].steps, 1);
  assert.deepEqual(st.policy_settings, { cache_l1_bytes: null, upstream_pool_size: 20, workers: 2 });
});
