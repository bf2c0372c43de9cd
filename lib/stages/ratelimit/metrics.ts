/** The rate limiter's own series, registered once on the worker's registry. */
import { Counter, type Registry } from 'prom-client';
import { PREFIX } from '../../observe/metrics';

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[]): Counter<L> {
  const existing = registry.getSingleMetric(PREFIX + name);
  if (existing) return existing as Counter<L>;
  return new Counter<L>({ name: PREFIX + name, help, labelNames, registers: [registry] });
}

export function backendErrorsCounter(registry: Registry): Counter<'reason'> {
  return counter(registry, 'ratelimit_backend_errors_total',
    'Cluster-scope rate-limit calls that could not use Redis (timeout, error, disconnected, breaker_open) and used the pod\'s own limits.',
    ['reason']);
}

export function dryRunCounter(registry: Registry): Counter<'scope'> {
  return counter(registry, 'ratelimit_dry_run_total',
    'Requests a dry_run rate-limit scope would have refused (they were admitted).', ['scope']);
}
