/**
 * The pod's lease server: runs once per pod (in the primary, or in the single process) and answers the workers'
 * batched lease requests from one LocalStore, so the pod's limits are exact whatever server.workers is.
 *
 * It also answers "what is the state of this limit now" for the status page and `explain`: from the LocalStore
 * with `scope: pod`, from Redis with `scope: cluster` (read only, over a connection of its own, see redis-peek.ts).
 */
import type { Coordinator } from '../../core/ipc';
import type { PrimaryServices } from '../../core/component';
import type { LoadedPolicy } from '../../policy/types';
import type { Logger } from '../../observe/logger';
import { monotonicClock, type Clock } from './clock';
import { LocalStore, DEFAULT_MAX_USERS } from './store';
import { GIVE_TOPIC, TAKE_TOPIC, type GiveItem, type TakeItem } from './protocol';
import type { BucketState } from './store';
import { compileLimits, type CompiledLimits, type LimitSpec } from './limits';
import { closestInRedis, peekCluster } from './redis-peek';
import { RedisConnection, samePolicy } from '../../redis/client';

/** How long the status page's list of the cluster's closest limits is reused before Redis is read again. */
const CLUSTER_CLOSEST_MS = 1000;

/** The state of limits, now: null for a limit never used (full). */
export type LimitStates = (spec: LimitSpec, key: string) => BucketState | null;

export class RateLimitLeaseService implements PrimaryServices {
  readonly store: LocalStore;
  /** With `scope: cluster`: a connection to read the limits' state (never to take tokens). */
  private conn: RedisConnection | null = null;
  private limits: CompiledLimits | null = null;
  private closestCache: { at: number; list: BucketState[] } | null = null;
  private closestReading = false;

  constructor(coordinator: Coordinator, private readonly log: Logger, clock: Clock = monotonicClock, maxUsers = DEFAULT_MAX_USERS) {
    this.store = new LocalStore(clock, maxUsers);
    coordinator.handle(TAKE_TOPIC, (items: TakeItem[]) => this.store.take(items));
    coordinator.handle(GIVE_TOPIC, (items: GiveItem[]) => {
      this.store.give(items);
      return null;
    });
  }

  configure(next: LoadedPolicy): void {
    // Leases need nothing: every lease request carries its limit's numbers, and the store reconfigures a limit
    // (keeping its state) when they change (protocol.ts). The read side follows the policy's scope.
    const rl = next.policy.rate_limiting;
    const redis = rl !== null && rl.scope === 'cluster' ? next.policy.redis : null;
    this.limits = rl === null ? null : compileLimits(rl);
    this.closestCache = null;
    if (redis === null) {
      void this.conn?.close();
      this.conn = null;
    } else if (this.conn === null || !samePolicy(this.conn.policy, redis)) {
      void this.conn?.close();
      this.conn = new RedisConnection(redis, this.log, 'limit-state');
    }
  }

  /** The policy's limits are counted in Redis (scope: cluster) rather than in this pod's store. */
  get clusterScope(): boolean {
    return this.conn !== null;
  }

  /**
   * The limits closest to their limit (the status page): the pod's store, or the cluster's counters in Redis as
   * last read (read again at most every second, in the background; null until the first read, or Redis is down).
   */
  closest(n: number): BucketState[] | null {
    const conn = this.conn;
    const limits = this.limits;
    if (conn === null || limits === null) return this.store.closest(n);
    const now = Date.now();
    const cached = this.closestCache;
    if ((cached === null || now - cached.at >= CLUSTER_CLOSEST_MS) && !this.closestReading && conn.healthy) {
      this.closestReading = true;
      closestInRedis(conn, limits, n)
        .then((list) => { this.closestCache = { at: Date.now(), list }; }, () => { this.closestCache = null; })
        .finally(() => { this.closestReading = false; });
    }
    return conn.healthy ? cached?.list ?? null : null;
  }

  /**
   * The state of these limits now (`explain` against a running sidecar): a lookup into the pod's store, or the
   * cluster's counters read from Redis first. Null when Redis cannot be read (the state is then unknown).
   */
  async states(limits: ReadonlyArray<{ spec: LimitSpec; key: string }>): Promise<LimitStates | null> {
    const conn = this.conn;
    if (conn === null) return (spec, key) => this.store.peek(spec.code, key);
    try {
      const read = await Promise.all(limits.map(({ spec, key }) => peekCluster(conn, spec, key)));
      const byLimit = new Map(limits.map(({ spec, key }, i) => [spec.code + '\0' + key, read[i]]));
      return (spec, key) => byLimit.get(spec.code + '\0' + key) ?? null;
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    await this.conn?.close();
    this.conn = null;
    this.log.debug('rate-limit lease service closed');
  }
}
