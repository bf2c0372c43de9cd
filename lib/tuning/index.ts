/**
 * Auto-tuning (the guide's §10), wired for the sidecar: runPrimary creates it once the workers run and adds it
 * to the primary services (so a reload reaches it); workers attach with attachTuningToWorker.
 *
 *   expr.ts       the trigger language (parsed at policy load; errors positioned in the file)
 *   params.ts     the actions' params, defaults and bounds
 *   figures.ts    the figures of one interval from two snapshots of the workers' metrics
 *   engine.ts     the rules: bounded steps, hysteresis, cooldown, dry run
 *   service.ts    the timer in the primary; actuators.ts and collect.ts the IPC on both sides
 */
import type { Counter, Registry } from 'prom-client';
import type { LoadedPolicy } from '../policy/types';
import type { Logger } from '../observe/logger';
import type { Coordinator } from '../core/ipc';
import type { ProxyWorker } from '../server/worker';
import { PodActuators } from './actuators';
import { readCapacity } from './capacity';
import { podSampler } from './collect';
import { TuningMetrics } from './metrics';
import { AutoTuningService } from './service';

export { attachTuningToWorker } from './actuators';
export { AutoTuningService } from './service';

export interface PodTuningDeps {
  coordinator: Coordinator;
  log: Logger;
  /** The primary's registry and its autotune_actions_total counter. */
  registry: Registry;
  actions: Counter<'strategy'>;
  state: { loaded: LoadedPolicy; draining: boolean };
  /** The proxy of the single process, or null when there are workers. */
  local: () => ProxyWorker | null;
  /** Forks one worker (null in single-process mode). */
  fork: (() => void) | null;
  /** Workers being retired: their exit is not a crash. */
  retiring: Set<number>;
}

/** The pod's auto-tuner, configured with the policy in force. */
export function createAutoTuning(d: PodTuningDeps): AutoTuningService {
  const actuators = new PodActuators(d.coordinator, d.log, d.fork, d.retiring,
    () => d.state.loaded.policy.server.drain_timeout, () => d.state.draining);
  const service = new AutoTuningService({
    log: d.log,
    metrics: new TuningMetrics(d.registry, d.actions),
    actuators,
    sample: podSampler(d.coordinator, d.local),
    capacity: readCapacity,
    coordinator: d.coordinator,
  });
  service.configure(d.state.loaded);
  return service;
}
