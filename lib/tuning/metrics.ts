/**
 * The auto-tuner's series, on the primary's registry (the primary runs the tuner; the values describe the pod):
 *   bridge_sidecar_autotune_actions_total{strategy}   (PrimaryMetrics already defines it: passed in)
 *   bridge_sidecar_autotune_effective{setting}        the values in force: cache_l1_bytes (per worker),
 *                                                      upstream_pool_size (per worker), workers
 *   bridge_sidecar_autotune_figure{figure}            the figures of the last interval (absent when unknown)
 */
import { Gauge, type Counter, type Registry } from 'prom-client';
import { PREFIX } from '../observe/metrics';

export class TuningMetrics {
  readonly effective: Gauge<'setting'>;
  readonly figure: Gauge<'figure'>;

  constructor(registry: Registry, readonly actions: Counter<'strategy'>) {
    const name = PREFIX + 'autotune_effective';
    const figureName = PREFIX + 'autotune_figure';
    // a second sidecar in one process (tests) shares nothing: replace rather than throw on a duplicate name
    for (const n of [name, figureName]) if (registry.getSingleMetric(n)) registry.removeSingleMetric(n);
    this.effective = new Gauge({
      name,
      help: 'Settings in force after auto-tuning, by setting (cache_l1_bytes and upstream_pool_size per worker, workers).',
      labelNames: ['setting'],
      registers: [registry],
    });
    this.figure = new Gauge({
      name: figureName,
      help: 'The figures auto-tuning evaluated in its last interval (ratios 0..1, times in seconds); absent when not measurable.',
      labelNames: ['figure'],
      registers: [registry],
    });
  }
}
