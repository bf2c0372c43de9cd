/**
 * The auto-tuning rule engine: once per interval, each strategy's trigger is evaluated on the interval's
 * figures and its action moves ONE setting ONE step, always within bounds:
 *
 *   reduce_cache_size   L1 budget x reduction_factor, never below the floor        revert: / reduction_factor
 *   increase_pool_size  upstream connections per worker + increment, up to max_size  revert: - increment
 *   increase_workers    worker processes + increment, up to max_workers and the CPUs revert: - increment
 *                       the container may use
 *
 * A revert (the opposite step) is taken when the trigger has stayed false for `revert_after` intervals
 * (hysteresis, default 3), one step at a time, back to the policy's setting and never past it; a strategy only
 * reverts the steps it took itself. Between two actions of one strategy (either way) at least its cooldown
 * passes (auto_tuning.cooldown, default the interval; counted in whole intervals so timer jitter cannot skip a
 * beat). A trigger whose figures were not measurable (unknown: no traffic at all, say) does not fire and
 * counts as quiet, so settings return to the policy's when the pressure goes away with the traffic.
 *
 * The engine is synchronous and pure of I/O: it is handed figures and calls the actuators, so tests drive it
 * with injected figures. service.ts runs it on a timer in the primary.
 *
 * A policy reload (configure) resets everything to the new policy: effective values, steps, quiet counts.
 */
import type { AutoTuneStrategyPolicy, LoadedPolicy } from '../policy/types';
import type { Logger } from '../observe/logger';
import { formatFigure } from './figures';
import { parseTrigger, type Figures, type Trigger } from './expr';
import { DEFAULTS, type Action } from './params';
import type { TuningMetrics } from './metrics';

export type SettingName = 'cache_l1_bytes' | 'upstream_pool_size' | 'workers';

/** The settings auto-tuning moves. null: not applicable (no L1 tier; workers when server.workers is 0). */
export interface Settings {
  readonly cache_l1_bytes: number | null;
  readonly upstream_pool_size: number;
  readonly workers: number | null;
}

/** How the engine changes the live settings (service.ts: IPC to the workers, forking in the primary). */
export interface Actuators {
  /** Cache budget and pool size for every worker, for the policy `version`. */
  applyToWorkers(s: { version: string; cache_l1_bytes: number | null; upstream_pool_size: number }): void;
  /** The number of worker processes. */
  setWorkers(n: number): void;
}

export interface TunerDeps {
  actuators: Actuators;
  log: Pick<Logger, 'info' | 'warn' | 'debug'>;
  metrics: TuningMetrics;
  /** CPUs the container may use, read when needed (caps increase_workers). */
  cpus: () => number;
}

interface CompiledStrategy {
  readonly name: string;
  readonly action: Action;
  readonly setting: SettingName;
  readonly trigger: Trigger;
  readonly revertAfter: number;
  readonly cooldownTicks: number;
  /** reduce_cache_size */
  readonly factor: number;
  readonly floorBytes: number;
  /** increase_pool_size / increase_workers */
  readonly increment: number;
  readonly max: number;
}

interface StrategyState {
  /** Steps this strategy took away from the policy's setting and has not reverted. */
  steps: number;
  /** Intervals in a row its trigger was false (or unknown). */
  quiet: number;
  /** Tick of its last action (or would-be action in dry run). */
  lastTick: number;
  /** Whether "at its bound" was logged since the last action (said once, not every interval). */
  boundLogged: boolean;
  last: { at: string; from: number; to: number; direction: 'up' | 'revert'; dry_run: boolean } | null;
}

export interface ActionRecord {
  readonly strategy: string;
  readonly action: Action;
  readonly setting: SettingName;
  readonly direction: 'up' | 'revert';
  readonly from: number;
  readonly to: number;
  readonly dry_run: boolean;
  readonly figures: Readonly<Record<string, string>>;
}

const SETTING_OF: Readonly<Record<Action, SettingName>> = {
  reduce_cache_size: 'cache_l1_bytes',
  increase_pool_size: 'upstream_pool_size',
  increase_workers: 'workers',
};

/** The settings a policy asks for (what a reload resets to). */
export function policySettings(loaded: LoadedPolicy): Settings {
  const p = loaded.policy;
  return {
    cache_l1_bytes: p.cache?.l1?.size ?? null,
    upstream_pool_size: p.upstream.pool.max_connections_per_host,
    workers: p.server.workers > 0 ? p.server.workers : null,
  };
}

export class Tuner {
  private loaded: LoadedPolicy | null = null;
  private base: Settings = { cache_l1_bytes: null, upstream_pool_size: 0, workers: null };
  private current: { -readonly [K in keyof Settings]: Settings[K] } = { ...this.base };
  private strategies: CompiledStrategy[] = [];
  private states = new Map<string, StrategyState>();
  private tick = 0;
  private lastFigures: Figures | null = null;
  private lastEvaluatedAt: string | null = null;

  constructor(private readonly d: TunerDeps) {}

  /**
   * Take a policy (start, and every reload): effective values go back to the policy's, steps and hysteresis
   * start over. Workers reset their cache budget and pool size themselves when they apply the policy; the
   * worker count is set here since forking is the primary's job.
   */
  configure(loaded: LoadedPolicy): void {
    if (this.loaded !== null && this.loaded.version === loaded.version) return;
    const previousWorkers = this.current.workers;
    this.loaded = loaded;
    this.base = policySettings(loaded);
    this.current = { ...this.base };
    this.tick = 0;
    this.lastFigures = null;
    this.states = new Map();
    const at = loaded.policy.auto_tuning;
    this.strategies = at ? at.strategies.map((s) => this.compile(s, loaded, at.interval, at.cooldown)) : [];
    for (const s of this.strategies) {
      this.states.set(s.name, { steps: 0, quiet: 0, lastTick: -Infinity, boundLogged: false, last: null });
      this.d.metrics.actions.inc({ strategy: s.name }, 0);
      if (this.current[s.setting] === null) {
        this.d.log.warn({ strategy: s.name, action: s.action },
          s.action === 'reduce_cache_size' ? `auto-tuning strategy ${s.name}: there is no cache.l1 tier to reduce; it will do nothing`
            : `auto-tuning strategy ${s.name}: server.workers is 0 (one process), so there are no workers to add; it will do nothing`);
      }
    }
    if (previousWorkers !== null && this.current.workers !== null && previousWorkers !== this.current.workers) {
      this.d.actuators.setWorkers(this.current.workers);
    }
    this.publish();
  }

  private compile(s: AutoTuneStrategyPolicy, loaded: LoadedPolicy, interval: number, cooldown: number): CompiledStrategy {
    const p = s.params;
    const l1 = loaded.policy.cache?.l1?.size ?? 0;
    const floorParam = p.floor;
    const floorBytes = floorParam === undefined ? Math.min(l1, Math.max(Math.floor(l1 * DEFAULTS.floor_share), DEFAULTS.floor_min_bytes))
      : floorParam <= 1 ? Math.floor(l1 * floorParam) : Math.min(l1, floorParam);
    const cooldownMs = p.cooldown !== undefined ? p.cooldown * 1000 : cooldown;
    return {
      name: s.name,
      action: s.action,
      setting: SETTING_OF[s.action],
      // validated by the policy loader, so this cannot fail on a loaded policy
      trigger: parseTrigger(s.trigger),
      revertAfter: p.revert_after ?? DEFAULTS.revert_after,
      cooldownTicks: Math.max(1, Math.ceil(cooldownMs / Math.max(1, interval) - 1e-9)),
      factor: p.reduction_factor ?? DEFAULTS.reduction_factor,
      floorBytes,
      increment: p.increment ?? (s.action === 'increase_workers' ? DEFAULTS.workers_increment : DEFAULTS.pool_increment),
      max: s.action === 'increase_workers' ? (p.max_workers ?? DEFAULTS.max_workers) : (p.max_size ?? DEFAULTS.max_size),
    };
  }

  /** The step up (or down, for the cache) the action takes from `cur`; equal to `cur` at its bound. */
  private stepUp(s: CompiledStrategy, cur: number): number {
    switch (s.action) {
      case 'reduce_cache_size':
        return cur <= s.floorBytes ? cur : Math.max(s.floorBytes, Math.floor(cur * s.factor));
      case 'increase_pool_size':
        return cur >= s.max ? cur : Math.min(s.max, cur + s.increment);
      case 'increase_workers': {
        const cap = Math.min(s.max, Math.max(1, Math.floor(this.d.cpus())));
        return cur >= cap ? cur : Math.min(cap, cur + s.increment);
      }
    }
  }

  /** One step back towards the policy's value `base`, never past it. */
  private stepBack(s: CompiledStrategy, cur: number, base: number): number {
    if (s.action === 'reduce_cache_size') return cur >= base ? base : Math.min(base, Math.ceil(cur / s.factor));
    return cur <= base ? base : Math.max(base, cur - s.increment);
  }

  /** Evaluate every strategy on one interval's figures; returns what was done (or would be, in dry run). */
  step(figures: Figures): ActionRecord[] {
    const at = this.loaded?.policy.auto_tuning;
    if (!this.loaded || !at || !at.enabled) return [];
    this.tick++;
    this.lastFigures = figures;
    this.lastEvaluatedAt = new Date().toISOString();
    this.publishFigures(figures);
    const done: ActionRecord[] = [];
    for (const s of this.strategies) {
      const st = this.states.get(s.name)!;
      const cur = this.current[s.setting];
      const fired = s.trigger.evaluate(figures);
      if (fired === true) st.quiet = 0;
      else st.quiet++;
      if (cur === null) continue;
      const cooled = this.tick - st.lastTick >= s.cooldownTicks;
      let next = cur;
      let direction: 'up' | 'revert' = 'up';
      if (fired === true) {
        next = this.stepUp(s, cur);
        if (next === cur) {
          if (!st.boundLogged) {
            st.boundLogged = true;
            this.d.log.info({ strategy: s.name, setting: s.setting, value: cur, figures: this.figuresOf(s, figures) },
              `auto-tuning: ${s.name} fired but ${s.setting} is at its bound (${cur}): nothing to do`);
          }
          continue;
        }
      } else if (st.steps > 0 && st.quiet >= s.revertAfter) {
        const base = this.base[s.setting] as number;
        next = this.stepBack(s, cur, base);
        direction = 'revert';
        if (next === cur) {
          st.steps = 0;
          continue;
        }
      } else {
        continue;
      }
      if (!cooled) {
        this.d.log.debug({ strategy: s.name, ticks_since_last: this.tick - st.lastTick, cooldown_ticks: s.cooldownTicks }, 'auto-tuning: cooling down');
        continue;
      }
      done.push(this.act(s, st, cur, next, direction, figures, at.dry_run));
    }
    if (done.some((r) => !r.dry_run)) this.apply(done);
    return done;
  }

  private act(s: CompiledStrategy, st: StrategyState, from: number, to: number, direction: 'up' | 'revert', figures: Figures, dryRun: boolean): ActionRecord {
    st.lastTick = this.tick;
    st.boundLogged = false;
    st.last = { at: new Date().toISOString(), from, to, direction, dry_run: dryRun };
    const shown = this.figuresOf(s, figures);
    const rec: ActionRecord = { strategy: s.name, action: s.action, setting: s.setting, direction, from, to, dry_run: dryRun, figures: shown };
    const why = direction === 'up' ? `trigger "${s.trigger.source}" is true` : `trigger "${s.trigger.source}" false for ${st.quiet} intervals`;
    const figs = Object.entries(shown).map(([k, v]) => `${k} ${v}`).join(', ');
    const msg = `auto-tuning: ${s.name} ${dryRun ? 'would change' : 'changed'} ${s.setting} ${from} -> ${to} (${why}: ${figs})`;
    this.d.log.info({ strategy: s.name, action: s.action, direction, setting: s.setting, from, to, trigger: s.trigger.source, figures: shown, dry_run: dryRun }, msg);
    if (dryRun) return rec;
    this.current[s.setting] = to;
    st.steps += direction === 'up' ? 1 : -1;
    if (st.steps < 0) st.steps = 0;
    this.d.metrics.actions.inc({ strategy: s.name });
    return rec;
  }

  private apply(done: readonly ActionRecord[]): void {
    this.publish();
    if (done.some((r) => !r.dry_run && r.setting !== 'workers')) this.resendToWorkers();
    const w = done.filter((r) => !r.dry_run && r.setting === 'workers');
    if (w.length > 0 && this.current.workers !== null) this.d.actuators.setWorkers(this.current.workers);
  }

  /**
   * Tell every worker the cache budget and pool size in force. Also called each interval while they differ
   * from the policy (cheap and idempotent), so a message a worker missed is made good.
   */
  resendToWorkers(): void {
    if (!this.loaded) return;
    this.d.actuators.applyToWorkers({ version: this.loaded.version, cache_l1_bytes: this.current.cache_l1_bytes, upstream_pool_size: this.current.upstream_pool_size });
  }

  /** Whether any worker-side setting differs from the policy's. */
  workerSettingsTuned(): boolean {
    return this.current.cache_l1_bytes !== this.base.cache_l1_bytes || this.current.upstream_pool_size !== this.base.upstream_pool_size;
  }

  private figuresOf(s: CompiledStrategy, f: Figures): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of s.trigger.figures) {
      out[name] = formatFigure(name, f[name]);
      if (name === 'memory_usage' && f.memory_bytes !== null) out.memory_bytes = formatFigure('memory_bytes', f.memory_bytes);
    }
    return out;
  }

  private publish(): void {
    this.d.metrics.publishSettings(this.current);
  }

  private publishFigures(f: Figures): void {
    this.d.metrics.publishFigures(f);
  }

  /** The settings in force. */
  effective(): Settings {
    return { ...this.current };
  }

  /** For /policy: the tuner's state, what it last saw and did. */
  status(): Record<string, unknown> {
    const at = this.loaded?.policy.auto_tuning ?? null;
    return {
      enabled: at?.enabled ?? false,
      dry_run: at?.dry_run ?? false,
      interval_ms: at?.interval ?? null,
      policy_settings: { ...this.base },
      last_evaluation: this.lastFigures === null ? null : {
        at: this.lastEvaluatedAt,
        figures: Object.fromEntries(Object.entries(this.lastFigures).map(([k, v]) => [k, formatFigure(k as keyof Figures, v as number | null)])),
      },
      strategies: this.strategies.map((s) => {
        const st = this.states.get(s.name)!;
        return { name: s.name, action: s.action, trigger: s.trigger.source, steps: st.steps, quiet_intervals: st.quiet, last_action: st.last };
      }),
    };
  }
}
