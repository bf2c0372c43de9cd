/**
 * The pod's lease server: runs once per pod (in the primary, or in the single process) and answers the workers'
 * batched lease requests from one LocalStore, so the pod's limits are exact whatever server.workers is.
 */
import type { Coordinator } from '../../core/ipc';
import type { PrimaryServices } from '../../core/component';
import type { LoadedPolicy } from '../../policy/types';
import type { Logger } from '../../observe/logger';
import { monotonicClock, type Clock } from './clock';
import { LocalStore, DEFAULT_MAX_USERS } from './store';
import { GIVE_TOPIC, TAKE_TOPIC, type GiveItem, type TakeItem } from './protocol';

export class RateLimitLeaseService implements PrimaryServices {
  readonly store: LocalStore;

  constructor(coordinator: Coordinator, private readonly log: Logger, clock: Clock = monotonicClock, maxUsers = DEFAULT_MAX_USERS) {
    this.store = new LocalStore(clock, maxUsers);
    coordinator.handle(TAKE_TOPIC, (items: TakeItem[]) => this.store.take(items));
    coordinator.handle(GIVE_TOPIC, (items: GiveItem[]) => {
      this.store.give(items);
      return null;
    });
  }

  configure(next: LoadedPolicy): void {
    // Nothing to do: every lease request carries its limit's numbers, and the store reconfigures a limit
    // (keeping its state) when they change. See protocol.ts.
    void next;
  }

  async close(): Promise<void> {
    this.log.debug('rate-limit lease service closed');
  }
}
