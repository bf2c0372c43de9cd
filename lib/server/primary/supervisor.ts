/**
 * Worker supervision in the primary (server.workers >= 1): forks the policy's workers, each with a stable index,
 * waits for them to listen, restarts one that exits unexpectedly (with a growing delay when it keeps crashing),
 * fails start-up when a worker cannot bind its port, and drains them all on shutdown.
 */
import cluster from 'node:cluster';
import type { PrimaryChannel } from '../../core/ipc';
import type { Logger } from '../../observe/logger';
import type { PrimaryMetrics } from '../../observe/metrics';
import { uvThreadpoolEnv } from '../../stages/queue';
import { ListenError, LISTEN_FAILED_EXIT } from '../listen';
import type { PodState } from './state';

/** Restarts within this window count together: more than 3 and the next one waits (250 ms doubling, up to 5 s). */
const RESTART_WINDOW_MS = 10_000;
/** How long start-up waits for every worker's 'worker:listening' report. */
export const START_TIMEOUT_MS = 30_000;

/**
 * Start-up's wait for the workers: settled by the report that completes the count (or by a worker that could not
 * bind), not by looking at the count on a timer; bounded by `timeoutMs`.
 */
export class StartGate {
  private recheck: (() => void) | null = null;
  private failure: string | null = null;

  constructor(private readonly listening: () => number) {}

  /** The number of listening workers may have changed. */
  changed(): void {
    this.recheck?.();
  }

  /** A worker could not bind its port: start-up fails with the first such message. */
  failed(message: string): void {
    this.failure ??= message;
    this.recheck?.();
  }

  wait(want: number, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const finish = (err: Error | null): void => {
        clearTimeout(timer);
        this.recheck = null;
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => {
        finish(new Error(`only ${this.listening()} of ${want} workers started listening within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.recheck = () => {
        if (this.failure !== null) finish(new ListenError(this.failure));
        else if (this.listening() >= want) finish(null);
      };
      this.recheck();
    });
  }
}

export interface SupervisorDeps {
  state: PodState;
  metrics: PrimaryMetrics;
  log: Logger;
  coordinator: PrimaryChannel;
  /** Workers the auto-tuner retires: they drain and exit on purpose, so their exit is not a crash. */
  retiring: Set<number>;
}

export class WorkerSupervisor {
  /** Each worker's stable index 0..N-1 (BRIDGE_SIDECAR_WORKER_INDEX), by cluster id. */
  private readonly slots = new Map<number, number>();
  private readonly recentRestarts: number[] = [];
  private readonly gate: StartGate;

  constructor(private readonly d: SupervisorDeps) {
    this.gate = new StartGate(() => d.state.listening.size);
    d.coordinator.handle('worker:listening', (addr, from) => {
      d.state.listening.set(from, addr);
      this.gate.changed();
      return true;
    });
    d.coordinator.handle('worker:listen-failed', (message) => {
      this.gate.failed(message);
      return true;
    });
  }

  /** Forks the policy's workers and resolves once all of them listen; rejects with a ListenError if one cannot. */
  async start(timeoutMs: number = START_TIMEOUT_MS): Promise<void> {
    const want = this.d.state.loaded.policy.server.workers;
    for (let i = 0; i < want; i++) this.fork(i);
    await this.gate.wait(want, timeoutMs);
  }

  /**
   * Forks one worker (the lowest free index by default, which auto-tuning uses to add one). Its index is reused
   * by its replacement, so per-worker resources such as its L3 directory survive a restart instead of being
   * orphaned under a new cluster id.
   */
  readonly fork = (index: number = this.freeSlot()): void => {
    const { state, metrics, log, coordinator, retiring } = this.d;
    const w = cluster.fork({ ...uvThreadpoolEnv(state.loaded.policy), BRIDGE_SIDECAR_WORKER_INDEX: String(index) });
    this.slots.set(w.id, index);
    // the new worker's IPC channel is connected as soon as fork returns, so it is already in workerIds()
    // (so no "+ 1": counting the new worker again would show one worker too many)
    metrics.workers.set(coordinator.workerIds().length);
    w.on('exit', (code, signal) => {
      state.listening.delete(w.id);
      this.slots.delete(w.id);
      metrics.workers.set(coordinator.workerIds().length);
      if (retiring.delete(w.id)) {
        log.info({ worker: w.id, code }, 'retired worker exited');
        return;
      }
      if (state.draining) return;
      if (code === LISTEN_FAILED_EXIT) {
        // a port that cannot be bound will not be bound by a restart either: start-up fails (see listen.ts)
        this.gate.failed(`a worker could not listen on ${state.loaded.policy.server.listen.host}:${state.loaded.policy.server.listen.port} (server.listen)`);
        return;
      }
      metrics.workersRestarted.inc();
      const now = Date.now();
      while (this.recentRestarts.length && now - this.recentRestarts[0] > RESTART_WINDOW_MS) this.recentRestarts.shift();
      this.recentRestarts.push(now);
      // a worker that keeps crashing is restarted with a growing delay instead of a tight loop
      const n = this.recentRestarts.length;
      const delay = n > 3 ? Math.min(5000, 250 * 2 ** (n - 3)) : 0;
      log.error({ worker: w.id, code, signal, restart_in_ms: delay }, 'worker exited unexpectedly: restarting it');
      setTimeout(() => { if (!state.draining) this.fork(index); }, delay);
    });
  };

  /** Asks every worker to drain and waits for all of them to exit (each bounded by its drain timeout). */
  async stop(): Promise<void> {
    const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
    const exits = workers.map((w) => new Promise<void>((r) => {
      if (w.isDead()) return r();
      w.once('exit', () => r());
    }));
    this.d.coordinator.broadcast('shutdown', null);
    const hard = setTimeout(() => {
      this.d.log.warn('workers did not exit after the drain timeout: killing them');
      for (const w of workers) if (!w.isDead()) w.kill('SIGKILL');
    }, this.d.state.loaded.policy.server.drain_timeout + 5000);
    hard.unref();
    await Promise.all(exits);
    clearTimeout(hard);
  }

  private freeSlot(): number {
    const used = new Set(this.slots.values());
    let i = 0;
    while (used.has(i)) i++;
    return i;
  }
}
