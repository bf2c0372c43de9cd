/**
 * nodejs_eventloop_lag_*_seconds say how late the event loop was: ~0 on an idle sidecar (not the 100 ms the
 * sampler waits between samples), and the stall of a blocked loop, in the window of the scrape that follows it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { http, parseMetrics, total } from './helpers';
import { WorkerMetrics } from '../../lib/observe/metrics';
import { SAMPLE_MS } from '../../lib/observe/event-loop-delay';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One of the lag gauges in a /metrics text; fails when the series is not there at all. */
function lag(text: string, stat: string): number {
  const name = `nodejs_eventloop_lag_${stat}_seconds`;
  const families = parseMetrics(text);
  assert.ok(families.get(name)?.samples.some((s) => s.name === name), `${name} is exported`);
  return total(families, name);
}

test('an idle sidecar reports an event-loop lag near 0, not the sampling interval', async () => {
  const upstream = await startDraftService({ port: 0, host: '127.0.0.1' });
  const sc = await startSidecar(basicPolicy(upstream.port, '', { workers: 1 }));
  try {
    await http(sc.adminUrl + '/metrics'); // the window below starts now
    await sleep(12 * SAMPLE_MS);
    const text = (await http(sc.adminUrl + '/metrics')).text;
    const mean = lag(text, 'mean');
    const p99 = lag(text, 'p99');
    // the sampler's own interval (0.1 s) is not in the figure; a loaded test machine may make a timer late by
    // some ms, not by most of a 0.1 s
    assert.ok(mean >= 0 && mean < 0.05, `idle mean lag ${mean} s`);
    assert.ok(p99 >= 0 && p99 < 0.09, `idle p99 lag ${p99} s`);
    assert.ok(lag(text, 'min') >= 0, 'a sampler that ran early is not negative lag');
  } finally {
    await sc.stop();
    await upstream.close();
  }
});

test('a loop blocked for 400 ms shows in the next scrape, and not in the one after', async () => {
  const metrics = new WorkerMetrics();
  await metrics.registry.metrics(); // start a window
  await sleep(3 * SAMPLE_MS);
  const until = performance.now() + 400;
  while (performance.now() < until) { /* the stall */ }
  await sleep(3 * SAMPLE_MS);
  const blocked = await metrics.registry.metrics();
  const max = lag(blocked, 'max');
  // the sampler wanted to run every 0.1 s and ran ~0.4 s apart: ~0.3 s late
  assert.ok(max >= 0.2 && max < 1, `max lag after a 400 ms stall: ${max} s`);
  await sleep(6 * SAMPLE_MS);
  const after = await metrics.registry.metrics();
  assert.ok(lag(after, 'max') < 0.2, 'each scrape reports its own window');
});

test('nodejs_eventloop_lag_seconds: a scrape probes how long the loop takes to reach a queued callback', async () => {
  const metrics = new WorkerMetrics();
  const text0 = await metrics.registry.metrics(); // queues this scrape's probe
  assert.match(text0, /# HELP nodejs_eventloop_lag_seconds Lag of event loop in seconds\.\n# TYPE nodejs_eventloop_lag_seconds gauge/);
  const until = performance.now() + 300;
  while (performance.now() < until) { /* the probe waits behind this */ }
  await sleep(10);
  const stalled = total(parseMetrics(await metrics.registry.metrics()), 'nodejs_eventloop_lag_seconds');
  assert.ok(stalled >= 0.25 && stalled < 5, `the probe waited behind a 300 ms stall: ${stalled} s`);
  await sleep(10);
  const idle = total(parseMetrics(await metrics.registry.metrics()), 'nodejs_eventloop_lag_seconds');
  assert.ok(idle >= 0 && idle < 0.2, `the next probe had nothing in its way: ${idle} s`);
  // one sample, aggregated over workers as an average (as prom-client's was)
  const json = await metrics.registry.getMetricsAsJSON();
  const lagJson = json.find((m) => m.name === 'nodejs_eventloop_lag_seconds') as unknown as { aggregator: string; values: unknown[] };
  assert.equal(lagJson.aggregator, 'average');
  assert.equal(lagJson.values.length, 1);
});
