/** Invalidation metrics, registered once per worker registry (summed over workers by /metrics). */
import { Counter, Histogram, type Registry } from 'prom-client';
import { PREFIX } from '../../observe/metrics';

export interface InvalidationMetrics {
  readonly events: Counter<'event'>;
  readonly entries: Counter<'layer'>;
  readonly delay: Histogram<string>;
  readonly resyncs: Counter<string>;
}

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[]): Counter<L> {
  const existing = registry.getSingleMetric(PREFIX + name);
  if (existing) return existing as Counter<L>;
  return new Counter({ name: PREFIX + name, help, labelNames, registers: [registry] });
}

export function invalidationMetrics(registry: Registry): InvalidationMetrics {
  const delayName = PREFIX + 'invalidation_delay_seconds';
  const delay = (registry.getSingleMetric(delayName) as Histogram<string> | undefined) ?? new Histogram({
    name: delayName,
    help: 'Delay from an invalidation event (in the pod that raised it) to the removal of its keys in another pod.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  return {
    events: counter(registry, 'invalidations_total', 'Invalidation events raised in this pod (routes, X-Invalidate, /admin/invalidate), by event.', ['event']),
    entries: counter(registry, 'invalidated_entries_total', 'Cache entries removed by invalidation (events, cascades, reconnect resyncs), by tier.', ['layer']),
    delay,
    resyncs: counter(registry, 'invalidation_resyncs_total', 'Times the invalidation channel to Redis was lost and local entries stored before it came back were dropped.', []),
  };
}
