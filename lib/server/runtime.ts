/**
 * What a worker (or the single process) holds for its whole life, across policy reloads: the IPC channel,
 * the logger, the metrics, the shared Redis link, and the stage components.
 *
 * A Component keeps its state (buckets, cache entries, waiters, pooled sockets) and, for each policy, builds an
 * immutable per-policy view that the Pipeline snapshot holds (see lib/stages/types.ts). `configure` is called at
 * start and on every valid reload with the new policy and the one it replaces.
 */
import type { Coordinator } from './ipc';
import type { Logger } from '../observe/logger';
import type { WorkerMetrics } from '../observe/metrics';
import type { LoadedPolicy } from '../policy/types';
import { RedisConnection, samePolicy } from '../redis/client';

export interface Component<V> {
  configure(next: LoadedPolicy, previous: LoadedPolicy | null): V | null;
  close(): Promise<void>;
}

export interface Runtime {
  readonly coordinator: Coordinator;
  readonly log: Logger;
  readonly metrics: WorkerMetrics;
  /** The shared Redis link for the policy in force, or null in one-pod mode. Stages must not close it. */
  redis(): RedisConnection | null;
}

/** Owns the Redis link: reconnects only when the policy's `redis` section changes. */
export class RedisHolder {
  private conn: RedisConnection | null = null;
  constructor(private readonly log: Logger) {}

  get(): RedisConnection | null {
    return this.conn;
  }

  configure(next: LoadedPolicy): RedisConnection | null {
    const want = next.policy.redis;
    if (this.conn && samePolicy(this.conn.policy, want)) return this.conn;
    const old = this.conn;
    this.conn = want ? new RedisConnection(want, this.log) : null;
    if (old) void old.close();
    return this.conn;
  }

  async close(): Promise<void> {
    await this.conn?.close();
    this.conn = null;
  }
}
