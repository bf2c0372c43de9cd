/**
 * The long-lived side of a worker (or the single process), kept across policy reloads, and what it hands to
 * the parts it owns.
 *
 * A Component keeps its state (buckets, cache entries, waiters, pooled sockets) and, for each policy, builds an
 * immutable per-policy view that the request path's snapshot holds. `configure` is called at start and on
 * every valid reload with the new policy and the one it replaces.
 */
import type { Clock } from './clock';
import type { Coordinator } from './ipc';
import type { Logger } from '../observe/logger';
import type { WorkerMetrics } from '../observe/metrics';
import type { LoadedPolicy } from '../policy/types';
import type { RedisConnection } from '../redis/client';

export interface Component<V> {
  configure(next: LoadedPolicy, previous: LoadedPolicy | null): V | null;
  close(): Promise<void>;
}

/** What the process gives every component: its channels, its clock and where it sits in the pod. */
export interface Runtime {
  readonly coordinator: Coordinator;
  readonly log: Logger;
  readonly metrics: WorkerMetrics;
  /** The shared Redis link for the policy in force, or null in one-pod mode. Components must not close it. */
  redis(): RedisConnection | null;
  readonly clock: Clock;
  /**
   * This worker's stable slot 0..N-1 in the pod (a restarted worker's replacement gets the same one, so its
   * L3 directory survives), or null when the process is not a cluster worker (single process, tests).
   */
  readonly workerIndex: number | null;
}

/** A service that runs once per pod (in the primary, or in the single process): lease servers, schedulers. */
export interface PrimaryServices {
  /** Called on every valid policy (start and reload). */
  configure(next: LoadedPolicy): void;
  close(): Promise<void>;
}
