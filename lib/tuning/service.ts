/**
 * Auto-tuning in the primary (or the single process): every `auto_tuning.interval`, a snapshot of what the
 * processes counted, the interval's figures (figures.ts), one evaluation of the strategies (engine.ts).
 *
 * A PrimaryService, so the reloader hands it every new policy: effective values are reset to the new policy
 * and the timer restarts with the new interval. The clock is injectable so tests run intervals by hand.
 */
import type { LoadedPolicy } from '../policy/types';
import type { Logger } from '../observe/logger';
import type { PrimaryServices } from '../core/component';
import type { Coordinator } from '../core/ipc';
import { computeFigures, type Capacity, type ProcessSample, type Snapshot } from './figures';
import { Tuner, type ActionRecord, type Actuators, type Settings } from './engine';
import type { TuningMetrics } from './metrics';
import { TOPIC_GET, type WorkerTuning } from './protocol';

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref(); // the tuner never keeps the process alive
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface AutoTuningDeps {
  log: Logger;
  metrics: TuningMetrics;
  actuators: Actuators;
  /** The processes' samples now. */
  sample: () => Promise<ReadonlyMap<string, ProcessSample>>;
  capacity: () => Capacity;
  clock?: Clock;
  /** Answers workers that start later (autotune:get); omitted in tests without workers. */
  coordinator?: Coordinator;
}

export class AutoTuningService implements PrimaryServices {
  readonly tuner: Tuner;
  private readonly clock: Clock;
  private timer: unknown = null;
  private baseline: Snapshot | null = null;
  /** Bumped by configure/close: a tick that was sampling when the policy changed drops its result. */
  private generation = 0;
  private loaded: LoadedPolicy | null = null;
  private closed = false;
  /** Resolves when the tick in progress (if any) has finished: for tests. */
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly d: AutoTuningDeps) {
    this.clock = d.clock ?? systemClock;
    this.tuner = new Tuner({ actuators: d.actuators, log: d.log, metrics: d.metrics, cpus: () => d.capacity().cpus });
    d.coordinator?.handle(TOPIC_GET, (): WorkerTuning | null => {
      if (!this.loaded || !this.tuner.workerSettingsTuned()) return null;
      const e = this.tuner.effective();
      return { version: this.loaded.version, cache_l1_bytes: e.cache_l1_bytes, upstream_pool_size: e.upstream_pool_size };
    });
  }

  configure(next: LoadedPolicy): void {
    if (this.closed || (this.loaded !== null && this.loaded.version === next.version)) return;
    this.loaded = next;
    this.tuner.configure(next);
    this.restart();
  }

  private restart(): void {
    this.generation++;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.baseline = null;
    const at = this.loaded?.policy.auto_tuning;
    if (this.closed || !at || !at.enabled || at.strategies.length === 0) return;
    const gen = this.generation;
    // the first interval starts now: its figures are the difference to this snapshot
    this.running = this.d.sample().then((s) => {
      if (gen === this.generation) this.baseline = { at: this.clock.now(), processes: s };
    }, (err: unknown) => this.d.log.warn({ err: String(err) }, 'auto-tuning: could not read the metrics'));
    this.schedule(gen, at.interval);
  }

  private schedule(gen: number, interval: number): void {
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.running = this.tick(gen).finally(() => {
        if (gen === this.generation && !this.closed) this.schedule(gen, interval);
      });
    }, interval);
  }

  /** One interval: sample, compute the figures against the last sample, evaluate. */
  private async tick(gen: number): Promise<void> {
    let processes: ReadonlyMap<string, ProcessSample>;
    try {
      processes = await this.d.sample();
    } catch (err) {
      this.d.log.warn({ err: String(err) }, 'auto-tuning: could not read the metrics; skipping this interval');
      return;
    }
    if (gen !== this.generation) return;
    const now: Snapshot = { at: this.clock.now(), processes };
    const before = this.baseline;
    this.baseline = now;
    if (before === null) return;
    const figures = computeFigures(before, now, this.d.capacity());
    this.lastActions = this.tuner.step(figures);
    // a worker that missed a message (or started in between) gets the settings again
    if (this.tuner.workerSettingsTuned() && !this.lastActions.some((a) => !a.dry_run && a.setting !== 'workers')) this.tuner.resendToWorkers();
  }

  /** What the last interval did (tests). */
  lastActions: ActionRecord[] = [];

  /** Resolves when the interval being evaluated (if any) is done (tests). */
  settled(): Promise<void> {
    return this.running;
  }

  effective(): Settings {
    return this.tuner.effective();
  }

  status(): Record<string, unknown> {
    return this.tuner.status();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.generation++;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    await this.running.catch(() => {});
  }
}
