/**
 * Where a worker gets tokens from:
 *  - PodSource: the pod's lease server over the Coordinator (IPC to the primary, or a direct call in the single
 *    process). Requests made in the same event-loop turn travel as one message. If the primary does not answer
 *    in time the worker falls back to a store of its own (per-worker limits) rather than hang or fail open.
 *  - RedisSource (redis-source.ts): the cluster-wide counters, falling back to a PodSource.
 */
import type { Coordinator } from '../../core/ipc';
import type { Logger } from '../../observe/logger';
import type { Clock } from './clock';
import { LocalStore } from './store';
import { GIVE_TOPIC, TAKE_TOPIC, type GiveItem, type TakeItem, type TakeResult } from './protocol';

export interface TokenSource {
  take(item: TakeItem): Promise<TakeResult>;
  give(items: GiveItem[]): void;
  /**
   * Whether per-user leases are exact (only what waiting requests need, see leases.ts): true for the pod's own
   * counters; Redis keeps batching while it answers (one client's requests spread over pods anyway), and
   * leases exactly while it is down and the pod's counters answer instead.
   */
  exactPerUser(): boolean;
}

/**
 * How long a worker waits for its primary before using its own counters. The fallback is for a primary that is
 * gone or hung, not for a busy one: on a loaded node the answer took over 250 ms (the old bound), and then the
 * worker admitted from a full bucket of its own (over-admission) while the primary's late grant was lost
 * (under-admission later).
 */
const IPC_TIMEOUT_MS = 1000;

export class PodSource implements TokenSource {
  private queue: TakeItem[] = [];
  private waiters: Array<(r: TakeResult) => void> = [];
  private scheduled = false;
  private ownStore: LocalStore | null = null;

  constructor(private readonly coordinator: Coordinator, private readonly clock: Clock, private readonly log: Logger) {}

  take(item: TakeItem): Promise<TakeResult> {
    return new Promise<TakeResult>((resolve) => {
      this.queue.push(item);
      this.waiters.push(resolve);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const items = this.queue;
    const waiters = this.waiters;
    this.queue = [];
    this.waiters = [];
    this.coordinator.request(TAKE_TOPIC, items, IPC_TIMEOUT_MS).then(
      (results) => {
        for (let i = 0; i < waiters.length; i++) waiters[i]!(results[i] ?? this.fallback(items[i]!));
      },
      (err: unknown) => {
        this.log.warn({ err: String(err) }, 'rate-limit lease server did not answer; using this worker\'s own counters');
        for (let i = 0; i < waiters.length; i++) waiters[i]!(this.fallback(items[i]!));
      },
    );
  };

  private fallback(item: TakeItem): TakeResult {
    this.ownStore ??= new LocalStore(this.clock, 10_000);
    return this.ownStore.takeOne(item);
  }

  exactPerUser(): boolean {
    return true;
  }

  give(items: GiveItem[]): void {
    if (items.length === 0) return;
    this.coordinator.request(GIVE_TOPIC, items, IPC_TIMEOUT_MS).catch(() => {
      /* lost tokens only make the limit a little stricter until they refill */
    });
  }
}
