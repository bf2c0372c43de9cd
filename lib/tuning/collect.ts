/**
 * Reads what every process of the pod has counted, for one snapshot: each worker's registry (over IPC, the
 * `metrics:get` topic /metrics uses), plus the primary's own CPU and RSS. In single-process mode the one
 * registry is read directly. A worker that does not answer in time is left out of this snapshot (its deltas
 * resume at the next one).
 */
import type { Coordinator } from '../core/ipc';
import type { ProxyWorker } from '../server/worker';
import { sampleFromMetrics, type MetricJson, type ProcessSample } from './figures';

const WORKER_TIMEOUT_MS = 3000;

function ownUsage(): { cpuSeconds: number; rssBytes: number } {
  const u = process.cpuUsage();
  return { cpuSeconds: (u.user + u.system) / 1e6, rssBytes: process.memoryUsage.rss() };
}

export function podSampler(coordinator: Coordinator, local: () => ProxyWorker | null): () => Promise<Map<string, ProcessSample>> {
  return async () => {
    const out = new Map<string, ProcessSample>();
    const single = local();
    if (single) {
      out.set('single', sampleFromMetrics(await single.runtime.metrics.registry.getMetricsAsJSON(), ownUsage()));
      return out;
    }
    out.set('primary', sampleFromMetrics([], ownUsage()));
    if (coordinator.role !== 'primary') return out;
    const ids = coordinator.workerIds();
    const answers = await Promise.allSettled(ids.map((id) => coordinator.requestWorker(id, 'metrics:get', null, WORKER_TIMEOUT_MS)));
    answers.forEach((a, i) => {
      if (a.status === 'fulfilled' && Array.isArray(a.value)) out.set(`worker:${ids[i]}`, sampleFromMetrics(a.value));
    });
    return out;
  };
}
