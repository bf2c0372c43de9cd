/**
 * registeredCounter / registeredGauge / registeredHistogram: a component built twice on one registry (a worker
 * rebuilds its stages, tests build several) gets the one metric back instead of prom-client's "already
 * registered" error; what only a creation sets (collect, aggregator, buckets) is the first call's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { registeredCounter, registeredGauge, registeredHistogram } from '../../lib/observe/metrics';

test('a second call returns the first metric, with its series', async () => {
  const registry = new Registry();
  const c1 = registeredCounter(registry, 't_total', 'help', ['k']);
  c1.inc({ k: 'a' }, 2);
  const c2 = registeredCounter(registry, 't_total', 'other help', ['k']);
  assert.equal(c2, c1);
  const g1 = registeredGauge(registry, 't_gauge', 'help', [], { aggregator: 'average' });
  const g2 = registeredGauge(registry, 't_gauge', 'help', [], { aggregator: 'sum' });
  assert.equal(g2, g1);
  assert.equal((g2 as unknown as { aggregator: string }).aggregator, 'average');
  const h1 = registeredHistogram(registry, 't_seconds', 'help', ['k'], { buckets: [0.1, 1] });
  const h2 = registeredHistogram(registry, 't_seconds', 'help', ['k'], { buckets: [5] });
  assert.equal(h2, h1);
  h2.observe({ k: 'x' }, 0.5);
  const text = await registry.metrics();
  assert.match(text, /^t_total\{k="a"\} 2$/m);
  assert.match(text, /^t_seconds_bucket\{le="1",k="x"\} 1$/m);
  assert.doesNotMatch(text, /le="5"/);
});

test('a collect function given at creation runs at scrape time', async () => {
  const registry = new Registry();
  let n = 0;
  registeredCounter(registry, 'c_total', 'help', ['scope'], {
    collect() {
      this.reset();
      this.inc({ scope: 'pod' }, n);
    },
  });
  n = 7;
  assert.match(await registry.metrics(), /^c_total\{scope="pod"\} 7$/m);
});
