/** Invalidation metrics, registered once per worker registry (summed over workers by /metrics). */
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { PREFIX, registeredCounter, registeredGauge, registeredHistogram } from '../../observe/metrics';

export interface InvalidationMetrics {
  readonly events: Counter<'event'>;
  readonly entries: Counter<'layer'>;
  readonly delay: Histogram<string>;
  readonly resyncs: Counter<string>;
  readonly held: Gauge<string>;
}

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[]): Counter<L> {
  return registeredCounter(registry, PREFIX + name, help, labelNames);
}

export function invalidationMetrics(registry: Registry): InvalidationMetrics {
  const delay: Histogram<string> = registeredHistogram(registry, PREFIX + 'invalidation_delay_seconds',
    'Delay from an invalidation event (in the pod that raised it) to the removal of its keys in another pod.', [],
    { buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
  return {
    events: counter(registry, 'invalidations_total', 'Invalidation events raised in this pod (routes, X-Invalidate, /admin/invalidate), by event.', ['event']),
    entries: counter(registry, 'invalidated_entries_total', 'Cache entries removed by invalidation (events, cascades, reconnect resyncs), by tier.', ['layer']),
    delay,
    resyncs: counter(registry, 'invalidation_resyncs_total', 'Times the invalidation channel to Redis was lost and local entries stored before it came back were dropped.', []),
    held: registeredGauge(registry, PREFIX + 'invalidations_held', 'Invalidations raised in this pod that could not be published yet (redis unreachable): sent when it is back.', []),
  };
}
