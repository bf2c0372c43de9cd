/** What the primary (or the single process) knows about the pod: read by /readyz, /policy and the supervisor. */
import type { OverloadReport } from '../../perf/overload-protocol';
import type { LoadedPolicy } from '../../policy/types';

export interface PodState {
  /** The effective policy in force (the reloader swaps it). */
  loaded: LoadedPolicy;
  /** Set once shutdown starts: /readyz answers 503 and exited workers are not restarted. */
  draining: boolean;
  /** Where each worker (0 in the single process) listens, by worker id, from its 'worker:listening' report. */
  listening: Map<number, { host: string; port: number }>;
  /** Gates /readyz until start-up work (e.g. cache warm-up) is done; features add their promises here. */
  startupPending: Set<string>;
  upstreamCheckedAt: number;
  upstreamOk: boolean;
  /** Each worker's last overload step (memory pressure), by worker id; absent: normal. */
  overload: Map<number, OverloadReport>;
}

export function newPodState(loaded: LoadedPolicy): PodState {
  return {
    loaded, draining: false, listening: new Map(), startupPending: new Set(), overload: new Map(),
    upstreamCheckedAt: 0, upstreamOk: false,
  };
}
