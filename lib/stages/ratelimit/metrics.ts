/** The rate limiter's own series, registered once on the worker's registry. */
import type { Counter, Registry } from 'prom-client';
import { PREFIX, registeredCounter } from '../../observe/metrics';
import { SCOPE_NAMES } from './limits';

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[]): Counter<L> {
  return registeredCounter(registry, PREFIX + name, help, labelNames);
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

/** Where each registry's ratelimit_admitted_total reads from (the latest component built on it). */
const admittedSources = new WeakMap<Registry, () => readonly number[]>();

/**
 * ratelimit_admitted_total{scope}: requests each scope let through, read at scrape time from the worker's token
 * leases (`read` gives counts by scope code), so admitting a request costs nothing extra.
 */
export function admittedCounter(registry: Registry, read: () => readonly number[]): void {
  admittedSources.set(registry, read);
  registeredCounter(registry, PREFIX + 'ratelimit_admitted_total',
    'Requests admitted by each rate-limit scope that applied to them (tokens spent).', ['scope'], {
      collect() {
        const counts = admittedSources.get(registry)?.() ?? [];
        this.reset();
        SCOPE_NAMES.forEach((scope, code) => this.inc({ scope }, Math.max(0, counts[code] ?? 0)));
      },
    });
}
