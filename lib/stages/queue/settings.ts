/**
 * The numbers one worker process enforces, derived once per policy from `queues` and `server.workers`.
 *
 * Every number in the `queues` section is a pod figure (the contract calls max_in_flight "concurrent upstream
 * requests", and /metrics sums queue_length over workers). Each worker process has its own queue, so a worker
 * enforces its share: ceil(figure / workers). With 4 workers and max_in_flight 256 each worker admits 64, and
 * the pod as a whole never has more than 256 requests at the upstream (ceil may add up to workers-1).
 */
import type { Policy, Priority, QueuePolicy } from '../../policy/types';

export interface ClassSettings {
  readonly weight: number;
  readonly maxSize: number;
}

export interface QueueSettings {
  /** Fixed per-worker limit, or 'auto'. */
  readonly maxInFlight: number | 'auto';
  readonly maxQueueSize: number;
  readonly queueTimeoutMs: number;
  readonly classes: Readonly<Record<Priority, ClassSettings>>;
  /** Bounds of the adaptive limit for this worker. */
  readonly autoMin: number;
  readonly autoMax: number;
}

/** Upper bound of the adaptive limit for the whole pod (Envoy's adaptive concurrency default max is 1000). */
export const AUTO_MAX_PER_POD = 1000;

export function workerShare(podFigure: number, workers: number): number {
  if (podFigure <= 0) return 0;
  return Math.ceil(podFigure / Math.max(1, workers));
}

export function queueSettings(q: QueuePolicy, workers: number): QueueSettings {
  const share = (n: number) => workerShare(n, workers);
  const cls = (p: Priority): ClassSettings => ({ weight: q.priority_queues[p].weight, maxSize: share(q.priority_queues[p].max_size) });
  return {
    maxInFlight: q.max_in_flight === 'auto' ? 'auto' : share(q.max_in_flight),
    maxQueueSize: share(q.max_queue_size),
    queueTimeoutMs: q.queue_timeout,
    classes: { high: cls('high'), medium: cls('medium'), low: cls('low') },
    autoMin: 1,
    autoMax: share(AUTO_MAX_PER_POD),
  };
}

export function settingsFromPolicy(policy: Policy): QueueSettings | null {
  return policy.queues ? queueSettings(policy.queues, policy.server.workers) : null;
}
