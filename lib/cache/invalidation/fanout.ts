/**
 * Primary side of invalidation: one worker asks (`invalidate:fanout`), the primary asks every worker of the
 * pod to apply the patterns (`invalidate:apply`) and answers with the sum, so the asking worker knows every
 * worker's L1 and L3 are clean before it lets the write's response finish. In single-process mode the one
 * process applies them itself.
 */
import type { Coordinator } from '../../core/ipc';
import type { Logger } from '../../observe/logger';
import type { LoadedPolicy } from '../../policy/types';
import { LOCAL_TIMEOUT_MS } from './engine';
import { TOPIC_APPLY, TOPIC_FANOUT, type ApplyRequest, type ApplyResult } from './protocol';

export class InvalidationFanout {
  constructor(private readonly coordinator: Coordinator, private readonly log: Logger) {
    coordinator.handle(TOPIC_FANOUT, (req: ApplyRequest) => this.fanout(req));
  }

  private async fanout(req: ApplyRequest): Promise<ApplyResult> {
    const c = this.coordinator;
    if (c.role !== 'primary') return c.request(TOPIC_APPLY, req);
    const answers = await Promise.allSettled(c.workerIds().map((id) => c.requestWorker(id, TOPIC_APPLY, req, LOCAL_TIMEOUT_MS)));
    const sum: ApplyResult = { l1: 0, l3: 0, params: [] };
    for (const a of answers) {
      if (a.status === 'fulfilled') {
        sum.l1 += a.value.l1;
        sum.l3 += a.value.l3;
        sum.params.push(...a.value.params);
      } else {
        this.log.warn({ err: String(a.reason) }, 'a worker did not apply an invalidation');
      }
    }
    return sum;
  }

  configure(_next: LoadedPolicy): void {}

  async close(): Promise<void> {}
}
