/**
 * The pod's lease server: runs once per pod (in the primary, or in the single process) and answers the workers'
 * batched lease requests from one LocalStore, so the pod's limits are exact whatever server.workers is.
 *
 * While one worker is the pod's only one it holds the counters itself (sources.ts): this store is then the copy
 * that worker keeps up to date (at most CHECKPOINT_MS behind), and the worker hands the counters back before
 * another worker is answered.
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
import {
  ADOPT_TOPIC, CHECKPOINT_TOPIC, GIVE_TOPIC, HANDBACK_TOPIC, SYNC_TOPIC, TAKE_TOPIC,
  type GiveItem, type LimitSnapshot, type TakeItem,
} from './protocol';
import type { BucketState } from './store';
import { compileLimits, type CompiledLimits, type LimitSpec } from './limits';
import { closestInRedis, peekCluster } from './redis-peek';
import { RedisConnection, samePolicy } from '../../redis/client';

/** How long the status page's list of the cluster's closest limits is reused before Redis is read again. */
const CLUSTER_CLOSEST_MS = 1000;
/** How long other workers' lease requests wait for the counters to come back from the worker that held them. */
const HANDBACK_WAIT_MS = 1000;

/** The state of limits, now: null for a limit never used (full). */
export type LimitStates = (spec: LimitSpec, key: string) => BucketState | null;

export class RateLimitLeaseService implements PrimaryServices {
  readonly store: LocalStore;
  /** With `scope: cluster`: a connection to read the limits' state (never to take tokens). */
  private conn: RedisConnection | null = null;
  private limits: CompiledLimits | null = null;
  private closestCache: { at: number; list: BucketState[] } | null = null;
  private closestReading = false;
  /** The worker the primary calls the pod's only one, and the worker that holds the counters (took them). */
  private soleId: number | null = null;
  private owner: number | null = null;
  /** Set while the counters are on their way back from their holder: lease requests wait for them. */
  private handback: Promise<void> | null = null;
  private endHandback: (() => void) | null = null;

  constructor(private readonly coordinator: Coordinator, private readonly log: Logger, clock: Clock = monotonicClock, maxUsers = DEFAULT_MAX_USERS) {
    this.store = new LocalStore(clock, maxUsers);
    coordinator.handle(TAKE_TOPIC, (items: TakeItem[]) => {
      if (this.handback === null) return this.store.take(items);
      return this.handback.then(() => this.store.take(items));
    });
    coordinator.handle(GIVE_TOPIC, (items: GiveItem[]) => {
      if (this.handback === null) this.store.give(items);
      else void this.handback.then(() => this.store.give(items));
      return null;
    });
    if (coordinator.role === 'primary' && coordinator.onSole !== undefined) {
      coordinator.onSole((id, sole) => this.soleChanged(id, sole));
      coordinator.handle(ADOPT_TOPIC, (_: null, from: number) => this.adopt(from));
      coordinator.handle(CHECKPOINT_TOPIC, (items: LimitSnapshot[], from: number) => {
        if (from === this.owner) this.store.restore(items, false);
        return null;
      });
      coordinator.handle(HANDBACK_TOPIC, (items: LimitSnapshot[], from: number) => {
        if (from === this.owner) {
          this.store.restore(items, true);
          this.owner = null;
          this.endHandback?.();
        }
        return null;
      });
    }
  }

  private async adopt(from: number): Promise<LimitSnapshot[]> {
    if (this.handback !== null) await this.handback;
    if (from !== this.soleId || this.owner !== null) throw new Error('not the pod\'s only worker');
    this.owner = from;
    return this.store.snapshot();
  }

  private soleChanged(id: number, sole: boolean): void {
    if (sole) {
      this.soleId = id;
      return;
    }
    if (this.soleId === id) this.soleId = null;
    if (this.owner !== id) return;
    const c = this.coordinator;
    if (c.role !== 'primary' || !c.workerIds().includes(id)) {
      // it exited: what it last sent is all there is
      this.owner = null;
      return;
    }
    let timer: NodeJS.Timeout | null = null;
    this.handback = new Promise<void>((resolve) => {
      this.endHandback = resolve;
      timer = setTimeout(() => {
        this.log.warn({ worker: id }, 'rate-limit counters not handed back in time: the last checkpoint stands');
        this.owner = null;
        resolve();
      }, HANDBACK_WAIT_MS);
      timer.unref();
    }).then(() => {
      if (timer !== null) clearTimeout(timer);
      this.handback = null;
      this.endHandback = null;
    });
  }

  /** The counters' holder, asked for its latest changes (explain reads the pod's state now). */
  private async syncOwner(): Promise<void> {
    const c = this.coordinator;
    const owner = this.owner;
    if (owner === null || c.role !== 'primary') return;
    try {
      const changes = await c.requestWorker(owner, SYNC_TOPIC, null, 1000);
      if (owner === this.owner) this.store.restore(changes, false);
    } catch {
      /* the last checkpoint stands */
    }
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
    if (conn === null) {
      await this.syncOwner();
      return (spec, key) => this.store.peek(spec.code, key);
    }
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
