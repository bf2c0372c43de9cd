/**
 * The params each auto-tuning action takes, their defaults (the guide's §10 numbers) and their bounds: one
 * table read by the policy loader (lib/policy/semantic.ts, which reports a bad one at its line and column)
 * and by the engine (which fills in the defaults).
 */
import type { AutoTuneStrategyPolicy } from '../policy/types';

export type Action = AutoTuneStrategyPolicy['action'];

interface ParamSpec {
  /** What a valid value is, for the error message ("a whole number of at least 1"). */
  readonly want: string;
  readonly ok: (v: number) => boolean;
}

const wholeAtLeast1: Pick<ParamSpec, 'want' | 'ok'> = { want: 'a whole number of at least 1', ok: (v) => Number.isSafeInteger(v) && v >= 1 };

/** Params every action takes. */
const COMMON: Readonly<Record<string, ParamSpec>> = {
  revert_after: { ...wholeAtLeast1 },
  cooldown: {
    want: 'a number of seconds (0 or more)',
    ok: (v) => Number.isFinite(v) && v >= 0,
  },
};

export const ACTION_PARAMS: Readonly<Record<Action, Readonly<Record<string, ParamSpec>>>> = {
  reduce_cache_size: {
    reduction_factor: {
      want: 'a ratio between 0 and 1 (exclusive), like 0.8 or 80%',
      ok: (v) => Number.isFinite(v) && v > 0 && v < 1,
    },
    floor: {
      want: 'a share of cache.l1.size (like 10% or 0.1) or a number of bytes above 1',
      ok: (v) => Number.isFinite(v) && v > 0 && (v <= 1 || Number.isSafeInteger(v)),
    },
    ...COMMON,
  },
  increase_pool_size: {
    increment: { ...wholeAtLeast1 },
    max_size: { ...wholeAtLeast1 },
    ...COMMON,
  },
  increase_workers: {
    increment: { ...wholeAtLeast1 },
    max_workers: { ...wholeAtLeast1 },
    ...COMMON,
  },
};

export const DEFAULTS = {
  reduction_factor: 0.8,
  /** The floor of the L1 budget: this share of cache.l1.size, or FLOOR_MIN_BYTES if larger (never above l1.size). */
  floor_share: 0.1,
  floor_min_bytes: 16 * 1024 * 1024,
  pool_increment: 5,
  max_size: 200,
  workers_increment: 2,
  max_workers: 16,
  revert_after: 3,
} as const;

/** A problem with one param of a strategy (its value normalised: "80%" is 0.8), or null. */
export function checkParam(action: Action, name: string, value: number): string | null {
  const spec = ACTION_PARAMS[action][name];
  if (!spec) {
    const known = Object.keys(ACTION_PARAMS[action]);
    return `unknown param ${JSON.stringify(name)} for action ${action} (expected one of: ${known.join(', ')})`;
  }
  return spec.ok(value) ? null : `params.${name} must be ${spec.want}, not ${value}`;
}
