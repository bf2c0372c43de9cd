/** Warm-up metrics, on the worker registry that runs the warm-up. */
import type { Counter, Registry } from 'prom-client';
import { PREFIX, registeredCounter } from '../../observe/metrics';

export interface WarmupMetrics {
  readonly runs: Counter<'strategy' | 'result'>;
  readonly entries: Counter<'strategy' | 'source'>;
}

export function warmupMetrics(registry: Registry): WarmupMetrics {
  const get = <L extends string>(name: string, help: string, labelNames: L[]): Counter<L> => registeredCounter(registry, PREFIX + name, help, labelNames);
  return {
    runs: get('warmup_runs_total', 'Warm-up runs by strategy and result (ok, partial: some refetches failed, timeout, error).', ['strategy', 'result']),
    entries: get('warmup_entries_total', 'Entries warmed by strategy and source: l2/l3 (promoted into L1), upstream (refetched through the queue), l1 (already warm), failed.', ['strategy', 'source']),
  };
}
