/**
 * The auto-tuner's series, on the primary's registry (the primary runs the tuner; the values describe the pod).
 * One unit per name, in base units, so a query never mixes bytes with counts:
 *   bridge_sidecar_autotune_actions_total{strategy}            (PrimaryMetrics already defines it: passed in)
 *   bridge_sidecar_autotune_effective_bytes{setting="cache_l1"} the L1 budget in force, per worker
 *   bridge_sidecar_autotune_effective{setting}                  counts in force: upstream_pool_size (per worker), workers
 *   bridge_sidecar_autotune_figure_ratio{figure}                memory_usage, cpu_usage, error_rate, cache_hit_ratio (0..1)
 *   bridge_sidecar_autotune_figure_seconds{figure}              connection_wait_time, p99_latency
 *   bridge_sidecar_autotune_figure_bytes{figure="memory"}       the working set memory_usage is computed from
 *   bridge_sidecar_autotune_figure{figure="queue_length"}       counts
 * Figures are those of the last interval, absent when unknown.
 */
import { Gauge, type Counter, type Registry } from 'prom-client';
import { PREFIX } from '../observe/metrics';
import { FIGURE_KINDS, type FigureName, type Figures } from './expr';

/** The settings the tuner moves, as engine.ts keeps them. */
export interface PublishedSettings {
  readonly cache_l1_bytes: number | null;
  readonly upstream_pool_size: number | null;
  readonly workers: number | null;
}

export class TuningMetrics {
  private readonly effectiveBytes: Gauge<'setting'>;
  private readonly effectiveCount: Gauge<'setting'>;
  private readonly figureRatio: Gauge<'figure'>;
  private readonly figureSeconds: Gauge<'figure'>;
  private readonly figureBytes: Gauge<'figure'>;
  private readonly figureCount: Gauge<'figure'>;

  constructor(registry: Registry, readonly actions: Counter<'strategy'>) {
    const gauge = (suffix: string, label: 'setting' | 'figure', help: string): Gauge<typeof label> => {
      const name = PREFIX + suffix;
      // a second sidecar in one process (tests) shares nothing: replace rather than throw on a duplicate name
      if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
      return new Gauge({ name, help, labelNames: [label], registers: [registry] });
    };
    this.effectiveBytes = gauge('autotune_effective_bytes', 'setting', 'Byte settings in force after auto-tuning: cache_l1 (the L1 budget of each worker).');
    this.effectiveCount = gauge('autotune_effective', 'setting', 'Count settings in force after auto-tuning: upstream_pool_size (per worker), workers.');
    this.figureRatio = gauge('autotune_figure_ratio', 'figure', 'Ratios auto-tuning evaluated in its last interval, 0..1 (memory_usage, cpu_usage, error_rate, cache_hit_ratio); absent when not measurable.');
    this.figureSeconds = gauge('autotune_figure_seconds', 'figure', 'Times auto-tuning evaluated in its last interval (connection_wait_time, p99_latency); absent when not measurable.');
    this.figureBytes = gauge('autotune_figure_bytes', 'figure', 'Sizes auto-tuning evaluated in its last interval: memory (the container working set memory_usage is computed from).');
    this.figureCount = gauge('autotune_figure', 'figure', 'Counts auto-tuning evaluated in its last interval (queue_length).');
  }

  publishSettings(s: PublishedSettings): void {
    this.effectiveBytes.reset();
    this.effectiveCount.reset();
    if (s.cache_l1_bytes !== null) this.effectiveBytes.set({ setting: 'cache_l1' }, s.cache_l1_bytes);
    if (s.upstream_pool_size !== null) this.effectiveCount.set({ setting: 'upstream_pool_size' }, s.upstream_pool_size);
    if (s.workers !== null) this.effectiveCount.set({ setting: 'workers' }, s.workers);
  }

  /** Figures carry times in milliseconds (the trigger language's unit): exported in seconds. */
  publishFigures(f: Figures): void {
    for (const g of [this.figureRatio, this.figureSeconds, this.figureBytes, this.figureCount]) g.reset();
    if (f.memory_bytes !== null) this.figureBytes.set({ figure: 'memory' }, f.memory_bytes);
    for (const [figure, kind] of Object.entries(FIGURE_KINDS) as Array<[FigureName, string]>) {
      const v = f[figure];
      if (v === null) continue;
      if (kind === 'ratio') this.figureRatio.set({ figure }, v);
      else if (kind === 'time') this.figureSeconds.set({ figure }, v / 1000);
      else this.figureCount.set({ figure }, v);
    }
  }
}
