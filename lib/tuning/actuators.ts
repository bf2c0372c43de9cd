/**
 * How auto-tuning changes the live settings:
 *  - cache budget and pool size live in every worker: the primary broadcasts them (topic autotune:apply) with
 *    the policy version they belong to; each worker applies them only if it runs that version (a reload resets
 *    a worker to its policy, and a message from before the reload must not undo that). A worker that starts
 *    later (restart, scale-up) asks for them (autotune:get).
 *  - the worker count is the primary's: it forks more, or retires the newest workers by asking them to drain
 *    (autotune:retire), and their exit is not a crash (lib/server/primary/supervisor.ts does not restart a
 *    retiring worker).
 */
import cluster from 'node:cluster';
import type { Coordinator } from '../core/ipc';
import type { ProxyWorker } from '../server/worker';
import type { Logger } from '../observe/logger';
import type { Actuators } from './engine';
import { TOPIC_APPLY, TOPIC_GET, TOPIC_RETIRE, type WorkerTuning } from './protocol';


/**
 * In a worker (or the single process): apply the tuned cache budget and pool size, and drain on request.
 * `version` is the policy version the worker runs; `retire` stops the worker gracefully (null: cannot retire).
 */
export function attachTuningToWorker(coordinator: Coordinator, worker: ProxyWorker, version: () => string, retire: (() => void) | null, log: Logger): void {
  const apply = (t: WorkerTuning | null): void => {
    if (!t || t.version !== version()) return;
    const cache = worker.components.cache;
    if (t.cache_l1_bytes !== null) cache.resizeL1(t.cache_l1_bytes);
    worker.proxy.setPoolSize(t.upstream_pool_size);
  };
  coordinator.on(TOPIC_APPLY, apply);
  if (retire) {
    coordinator.handle(TOPIC_RETIRE, () => {
      log.info('auto-tuning retires this worker: draining');
      setImmediate(retire);
      return true;
    });
  }
  if (coordinator.role === 'worker') {
    coordinator.request(TOPIC_GET, null, 10_000).then(apply, () => {});
  }
}

/** The primary's side: broadcast to workers; fork and retire worker processes. */
export class PodActuators implements Actuators {
  constructor(
    private readonly coordinator: Coordinator,
    private readonly log: Logger,
    /** Forks one worker (the supervisor's fork, which restarts it if it crashes); null in single-process mode. */
    private readonly fork: (() => void) | null,
    /** Ids of workers being retired; the supervisor does not count their exit as a crash. */
    private readonly retiring: Set<number>,
    private readonly drainTimeout: () => number,
    private readonly draining: () => boolean,
  ) {}

  applyToWorkers(t: WorkerTuning): void {
    this.coordinator.broadcast(TOPIC_APPLY, t);
  }

  /** Live workers that are not on their way out, oldest first. */
  private serving(): number[] {
    return Object.values(cluster.workers ?? {})
      .flatMap((w) => (w && !w.isDead() && !this.retiring.has(w.id) ? [w.id] : []))
      .sort((a, b) => a - b);
  }

  setWorkers(n: number): void {
    if (this.fork === null || this.draining()) return;
    const ids = this.serving();
    for (let i = ids.length; i < n; i++) this.fork();
    // the newest go first: the oldest have the warmest caches
    for (const id of ids.slice(n).reverse()) this.retire(id);
    if (ids.length !== n) this.log.info({ from: ids.length, to: n }, `auto-tuning: worker processes ${ids.length} -> ${n}`);
  }

  private retire(id: number): void {
    const w = cluster.workers?.[id];
    if (!w) return;
    this.retiring.add(id);
    const hard = setTimeout(() => {
      if (!w.isDead()) {
        this.log.warn({ worker: id }, 'a retired worker did not exit after its drain timeout: killing it');
        w.kill('SIGKILL');
      }
    }, this.drainTimeout() + 5000);
    hard.unref();
    w.once('exit', () => clearTimeout(hard));
    if (this.coordinator.role === 'primary') {
      this.coordinator.requestWorker(id, TOPIC_RETIRE, null, 5000).catch(() => {
        // not answering: it cannot drain either
        if (!w.isDead()) w.kill('SIGTERM');
      });
    } else {
      w.kill('SIGTERM');
    }
  }
}
