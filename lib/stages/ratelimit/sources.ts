/**
 * Where a worker gets tokens from:
 *  - PodSource: the pod's lease server over the Coordinator (IPC to the primary, or a direct call in the single
 *    process). Requests made in the same event-loop turn travel as one message. If the primary does not answer
 *    in time the worker falls back to a store of its own (per-worker limits) rather than hang or fail open.
 *    While the primary says this worker is the pod's only one, the pod's counters live here instead (no round
 *    trip per request): taken from the primary, their changes sent back at most every CHECKPOINT_MS (so the
 *    primary's status page and a restarted worker keep them, losing at most that much on a crash), and all
 *    of them handed back before another worker serves.
 *  - RedisSource (redis-source.ts): the cluster-wide counters, falling back to a PodSource.
 */
import type { Coordinator } from '../../core/ipc';
import type { Logger } from '../../observe/logger';
import type { Clock } from './clock';
import { DEFAULT_MAX_USERS, LocalStore } from './store';
import {
  ADOPT_TOPIC, CHECKPOINT_MS, CHECKPOINT_TOPIC, GIVE_TOPIC, HANDBACK_TOPIC, SYNC_TOPIC, TAKE_TOPIC,
  type GiveItem, type TakeItem, type TakeResult,
} from './protocol';

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
  /** The pod's counters while this worker is the pod's only one. */
  private local: LocalStore | null = null;
  /** The counters are on their way here: batches wait for them. */
  private adopting: Promise<void> | null = null;
  private checkpointTimer: NodeJS.Timeout | null = null;
  private lastCheckpoint = -1e12;

  constructor(private readonly coordinator: Coordinator, private readonly clock: Clock, private readonly log: Logger) {
    const c = coordinator;
    if (c.role === 'worker' && c.onSole !== undefined) {
      c.onSole((sole) => (sole ? this.adopt() : this.handBack()));
      c.handle(SYNC_TOPIC, () => this.local?.changes() ?? []);
      if (c.sole === true) this.adopt();
    }
  }

  /** The pod's counters are in this process (this worker is the pod's only one). */
  get holdsPodCounters(): boolean {
    return this.local !== null;
  }

  private isSole(): boolean {
    const c = this.coordinator;
    return c.role === 'worker' && c.sole === true;
  }

  private adopt(): void {
    if (this.local !== null || this.adopting !== null) return;
    this.adopting = this.coordinator.request(ADOPT_TOPIC, null, IPC_TIMEOUT_MS).then(
      (snapshot) => {
        const store = new LocalStore(this.clock, DEFAULT_MAX_USERS);
        store.restore(snapshot, true);
        store.trackChanges(this.scheduleCheckpoint);
        this.local = store;
        this.log.info({ limits: snapshot.length }, 'this worker holds the pod\'s rate-limit counters (the pod\'s only worker)');
      },
      (err: unknown) => {
        // refused (another worker appeared meanwhile) or no answer: the counters stay in the primary
        this.log.debug({ err: String(err) }, 'rate-limit counters stay in the primary');
      },
    ).finally(() => {
      this.adopting = null;
    });
  }

  /** Another worker appeared: every counter goes back to the primary before this worker asks it again. */
  private handBack(): void {
    if (this.adopting !== null) {
      void this.adopting.then(() => { if (!this.isSole()) this.handBack(); });
      return;
    }
    const local = this.local;
    if (local === null) return;
    this.local = null;
    if (this.checkpointTimer !== null) clearTimeout(this.checkpointTimer);
    this.checkpointTimer = null;
    this.log.info('another worker appeared: the rate-limit counters go back to the primary');
    this.coordinator.request(HANDBACK_TOPIC, local.snapshot(), IPC_TIMEOUT_MS).catch((err: unknown) => {
      this.log.warn({ err: String(err) }, 'rate-limit counters could not be handed back to the primary');
    });
  }

  private readonly scheduleCheckpoint = (): void => {
    if (this.checkpointTimer !== null) return;
    const wait = Math.max(0, this.lastCheckpoint + CHECKPOINT_MS - this.clock());
    this.checkpointTimer = setTimeout(this.checkpoint, wait);
    this.checkpointTimer.unref();
  };

  private readonly checkpoint = (): void => {
    this.checkpointTimer = null;
    const local = this.local;
    if (local === null) return;
    this.lastCheckpoint = this.clock();
    const changes = local.changes();
    if (changes.length === 0) return;
    this.coordinator.request(CHECKPOINT_TOPIC, changes, IPC_TIMEOUT_MS).catch(() => {
      /* the next checkpoint or the hand-back carries the state again */
    });
  };

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
    if (this.adopting !== null) void this.adopting.then(() => this.send(items, waiters));
    else this.send(items, waiters);
  };

  private send(items: TakeItem[], waiters: Array<(r: TakeResult) => void>): void {
    const local = this.local;
    if (local !== null) {
      const results = local.take(items);
      for (let i = 0; i < waiters.length; i++) waiters[i]!(results[i]!);
      return;
    }
    this.coordinator.request(TAKE_TOPIC, items, IPC_TIMEOUT_MS).then(
      (results) => {
        for (let i = 0; i < waiters.length; i++) waiters[i]!(results[i] ?? this.fallback(items[i]!));
      },
      (err: unknown) => {
        this.log.warn({ err: String(err) }, 'rate-limit lease server did not answer; using this worker\'s own counters');
        for (let i = 0; i < waiters.length; i++) waiters[i]!(this.fallback(items[i]!));
      },
    );
  }

  private fallback(item: TakeItem): TakeResult {
    this.ownStore ??= new LocalStore(this.clock, 10_000);
    return this.ownStore.takeOne(item);
  }

  exactPerUser(): boolean {
    return true;
  }

  give(items: GiveItem[]): void {
    if (items.length === 0) return;
    if (this.adopting !== null) {
      void this.adopting.then(() => this.give(items));
      return;
    }
    if (this.local !== null) {
      this.local.give(items);
      return;
    }
    this.coordinator.request(GIVE_TOPIC, items, IPC_TIMEOUT_MS).catch(() => {
      /* lost tokens only make the limit a little stricter until they refill */
    });
  }
}
