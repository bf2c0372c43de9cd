/**
 * The queue stage: admission control in front of the upstream (weighted priority queues, load shedding,
 * fixed or adaptive concurrency limit). See docs/queues.md.
 *
 * One QueueComponent per worker process. Its AdmissionScheduler is the long-lived state (waiters, in-flight
 * count, adaptive limit); configure() applies each policy to it in place, so a reload never drops a waiter.
 */
import type { Gauge, Registry } from 'prom-client';
import type { LoadedPolicy } from '../../policy/types';
import type { Component, Runtime } from '../../core/component';
import type { RequestContext } from '../../core/context';
import { StageSlot, type Release, type Stage } from '../../core/stage';
import { AdmissionScheduler, type SchedulerOptions } from './scheduler';
import { settingsFromPolicy } from './settings';
import { registeredGauge } from '../../observe/metrics';

export { sendShed, retryAfterSeconds } from './shed';
export { AdmissionScheduler } from './scheduler';
export { GradientLimiter } from './gradient';
export { queueSettings, settingsFromPolicy, workerShare } from './settings';
export { uvThreadpoolEnv, applyUvThreadpoolSize, threadpoolSizeChanged } from './threadpool';

export const CONCURRENCY_LIMIT_METRIC = 'bridge_sidecar_concurrency_limit';

/** bridge_sidecar_concurrency_limit on this registry (created once; shared if a second component asks). */
export function concurrencyLimitGauge(registry: Registry): Gauge<string> {
  return registeredGauge(registry, CONCURRENCY_LIMIT_METRIC,
    'Upstream concurrency limit in force (max_in_flight share of this worker, or the adaptive limit); summed over workers it is the pod limit.', []);
}

/** A gauge of the adaptive limiter's RTT estimates; averaged (not summed) over workers. */
function rttGauge(registry: Registry, name: string, help: string): Gauge<string> {
  return registeredGauge(registry, name, help, [], { aggregator: 'average' });
}

/** A request's slot while it is upstream: the scheduler's release function is the per-request object. */
const slot = new StageSlot<Release>();

/**
 * The per-policy stage. It keeps no state of its own: every view talks to the one scheduler, and a request's
 * queue slot is held on its context until the upstream exchange ends.
 */
class QueueView implements Stage {
  readonly name = 'queue';
  readonly span = 'queue.wait';

  constructor(private readonly scheduler: AdmissionScheduler) {}

  /** Waits for a slot (throws or rejects ShedError when the request is shed). */
  onRequest(ctx: RequestContext): boolean | Promise<boolean> {
    if (ctx.res.destroyed) return true;
    const queuedAt = performance.now();
    const r = this.scheduler.acquire(ctx.priority, ctx.res);
    if (r instanceof Promise) {
      return r.then((release) => {
        ctx.queueMs = performance.now() - queuedAt;
        if (ctx.res.destroyed) {
          release({ ok: false, latencyMs: 0 }); // client gone: not a latency sample
          return true;
        }
        slot.set(ctx, release);
        return false;
      });
    }
    ctx.queueMs = 0;
    slot.set(ctx, r);
    return false;
  }

  /** Give the slot back once, with how the exchange went (the adaptive limit learns from it). */
  onUpstreamEnd(ctx: RequestContext, ok: boolean): void {
    const release = slot.get(ctx);
    if (release === null) return;
    slot.set(ctx, null);
    release({ ok, latencyMs: performance.now() - ctx.forwardedAt });
  }
}

export class QueueComponent implements Component<Stage> {
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

  configure(next: LoadedPolicy): Stage | null {
    const s = settingsFromPolicy(next.policy);
    this.scheduler.configure(s);
    return s === null ? null : this.view;
  }

  async close(): Promise<void> {
    this.scheduler.close();
  }
}
