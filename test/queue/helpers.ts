/** Shared bits of the queue tests: policy-shaped settings and a scheduler wired to real metrics. */
import type { Priority, QueuePolicy } from '../../lib/policy/types';
import { queueSettings, type QueueSettings } from '../../lib/stages/queue/settings';
import { AdmissionScheduler, type SchedulerOptions } from '../../lib/stages/queue/scheduler';
import { concurrencyLimitGauge } from '../../lib/stages/queue';
import { WorkerMetrics } from '../../lib/observe/metrics';

export interface QueueKnobs {
  maxInFlight?: number | 'auto';
  maxQueueSize?: number;
  queueTimeoutMs?: number;
  sizes?: Partial<Record<Priority, number>>;
  weights?: Partial<Record<Priority, number>>;
  workers?: number;
}

export function queuePolicy(k: QueueKnobs = {}): QueuePolicy {
  const cls = (p: Priority, w: number, s: number) => ({ weight: k.weights?.[p] ?? w, max_size: k.sizes?.[p] ?? s });
  return {
    max_in_flight: k.maxInFlight ?? 4,
    max_queue_size: k.maxQueueSize ?? 1000,
    queue_timeout: k.queueTimeoutMs ?? 10_000,
    priority_queues: { high: cls('high', 3, 200), medium: cls('medium', 2, 500), low: cls('low', 1, 300) },
    default_priority: 'medium',
    batch_size: 10,
    batch_timeout: 100,
    worker_threads: 8,
  };
}

export function settings(k: QueueKnobs = {}): QueueSettings {
  return queueSettings(queuePolicy(k), k.workers ?? 1);
}

export function schedulerWithMetrics(k: QueueKnobs = {}, opts: Omit<SchedulerOptions, 'metrics'> = {}): { s: AdmissionScheduler; m: WorkerMetrics } {
  const m = new WorkerMetrics(undefined, { defaultMetrics: false });
  const s = new AdmissionScheduler({
    ...opts,
    metrics: { queueLength: m.queueLength, queueWait: m.queueWait, shed: m.shed, concurrencyLimit: concurrencyLimitGauge(m.registry) },
  });
  s.configure(settings(k));
  return { s, m };
}

/** Sum of the samples of `name` (or of its `sample` series, e.g. a histogram's _count) matching `labels`. */
export async function metricValue(m: WorkerMetrics, name: string, labels: Record<string, string> = {}, sample = name): Promise<number> {
  const metric = m.registry.getSingleMetric(name);
  if (!metric) return NaN;
  const data = await metric.get();
  const want = Object.entries(labels);
  let sum = 0;
  let found = false;
  for (const v of data.values) {
    const l = v.labels as Record<string, string | number>;
    const series = (v as { metricName?: string }).metricName ?? name;
    if (series !== sample) continue;
    if (want.every(([k, val]) => String(l[k]) === val)) {
      sum += v.value;
      found = true;
    }
  }
  return found ? sum : 0;
}

/** Settle a promise into a tagged result without throwing (for asserting on rejections later). */
export function settle<T>(p: T | Promise<T>): { result: T | undefined; error: unknown; done: boolean; promise: Promise<void> } {
  const out: { result: T | undefined; error: unknown; done: boolean; promise: Promise<void> } = { result: undefined, error: undefined, done: false, promise: Promise.resolve() };
  out.promise = Promise.resolve(p).then(
    (r) => {
      out.result = r;
      out.done = true;
    },
    (e: unknown) => {
      out.error = e;
      out.done = true;
    },
  );
  return out;
}

/** Let pending promise callbacks run. */
export function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
