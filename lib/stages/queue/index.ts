/**
 * The queue stage: admission control in front of the upstream (weighted priority queues, load shedding,
 * fixed or adaptive concurrency limit). See docs/queues.md.
 *
 * One QueueComponent per worker process. Its AdmissionScheduler is the long-lived state (waiters, in-flight
 * count, adaptive limit); configure() applies each policy to it in place, so a reload never drops a waiter.
 */
import { Gauge, type Registry } from 'prom-client';
import type { LoadedPolicy } from '../../policy/types';
import type { Component, Runtime } from '../../core/component';
import type { RequestContext } from '../../core/context';
import type { QueueStage, Release } from '../../core/stage';
import { AdmissionScheduler, type SchedulerOptions } from './scheduler';
import { settingsFromPolicy } from './settings';

export { sendShed, retryAfterSeconds } from './shed';
export { AdmissionScheduler } from './scheduler';
export { GradientLimiter } from './gradient';
export { queueSettings, settingsFromPolicy, workerShare } from './settings';
export { uvThreadpoolEnv, applyUvThreadpoolSize, threadpoolSizeChanged } from './threadpool';
export { WriteBehind, writeBehindOptions } from './write-behind';

export const CONCURRENCY_LIMIT_METRIC = 'bridge_sidecar_concurrency_limit';

/** bridge_sidecar_concurrency_limit on this registry (created once; shared if a second component asks). */
export function concurrencyLimitGauge(registry: Registry): Gauge<string> {
  const existing = registry.getSingleMetric(CONCURRENCY_LIMIT_METRIC);
  if (existing) return existing as Gauge<string>;
  return new Gauge({
    name: CONCURRENCY_LIMIT_METRIC,
    help: 'Upstream concurrency limit in force (max_in_flight share of this worker, or the adaptive limit); summed over workers it is the pod limit.',
    registers: [registry],
  });
}

/** A gauge of the adaptive limiter's RTT estimates; averaged (not summed) over workers. */
function rttGauge(registry: Registry, name: string, help: string): Gauge<string> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Gauge<string>;
  return new Gauge({ name, help, registers: [registry], aggregator: 'average' });
}

/** The per-policy view the pipeline holds. It is stateless: every view talks to the one scheduler. */
class QueueView implements QueueStage {
  constructor(private readonly scheduler: AdmissionScheduler) {}

  acquire(ctx: RequestContext): Release | Promise<Release> {
    return this.scheduler.acquire(ctx.priority, ctx.res);
  }
}

export class QueueComponent implements Component<QueueStage> {
  readonly scheduler: AdmissionScheduler;
  private readonly view: QueueView;

  constructor(rt: Pick<Runtime, 'metrics'>, opts: Omit<SchedulerOptions, 'metrics'> = {}) {
    const m = rt.metrics;
    this.scheduler = new AdmissionScheduler({
      ...opts,
      metrics: {
        queueLength: m.queueLength,
        queueWait: m.queueWait,
        shed: m.shed,
        concurrencyLimit: concurrencyLimitGauge(m.registry),
        minRtt: rttGauge(m.registry, 'bridge_sidecar_concurrency_min_rtt_seconds', 'max_in_flight auto: the unqueued upstream round trip measured by the last probe.'),
        sampleRtt: rttGauge(m.registry, 'bridge_sidecar_concurrency_sample_rtt_seconds', 'max_in_flight auto: mean upstream latency of the last sampling window.'),
      },
    });
    this.view = new QueueView(this.scheduler);
  }

  configure(next: LoadedPolicy): QueueStage | null {
    const s = settingsFromPolicy(next.policy);
    this.scheduler.configure(s);
    return s === null ? null : this.view;
  }

  async close(): Promise<void> {
    this.scheduler.close();
  }
}
