/**
 * The lease protocol between a worker and whatever holds the exact counters (the primary's LocalStore, or Redis).
 * Tuples, not objects: they cross IPC in batches and are small.
 *
 * A request carries the limit's numbers, so the store needs no copy of the policy and a worker and the primary
 * never disagree about a limit during a reload: the store reconfigures a limit (keeping its state) when the
 * numbers it receives change.
 */
export const TAKE_TOPIC = 'ratelimit.take';
export const GIVE_TOPIC = 'ratelimit.give';

/** [scope code, key, want (tokens), ratePerSec, capacity] */
export type TakeItem = [number, string, number, number, number];
/**
 * [granted, available after the grant, ms until the next token, ms until full, 1 when a cluster-scope take was
 * served by the pod's fallback counters instead of Redis]
 */
export type TakeResult = [number, number, number, number, number?];
/** [scope code, key, tokens given back, ratePerSec, capacity] */
export type GiveItem = [number, string, number, number, number];

/**
 * How much of what is there one taker may get at once: all it asks for, but at most half of the available
 * tokens (at least 1), so two workers hitting the limit together both keep getting tokens.
 */
export function grantSize(want: number, available: number): number {
  if (available <= 0 || want <= 0) return 0;
  return Math.min(want, available, Math.max(1, Math.ceil(available / 2)));
}

/**
 * The pod's counters move between the primary and a worker that is the pod's only one (sources.ts): the worker
 * takes them (ADOPT), sends the limits it changed at most every CHECKPOINT_MS (CHECKPOINT) so a crash loses at
 * most that much, and hands them all back (HANDBACK) when another worker appears. SYNC: the primary asks the
 * worker for its changes now (explain).
 */
export const ADOPT_TOPIC = 'ratelimit.adopt';
export const CHECKPOINT_TOPIC = 'ratelimit.checkpoint';
export const HANDBACK_TOPIC = 'ratelimit.handback';
export const SYNC_TOPIC = 'ratelimit.sync';
/** Half a second: a crash loses at most that much of the count; at 50 ms the messages cost the primary 0.1+ ms per request. */
export const CHECKPOINT_MS = 500;

/**
 * One limit's state without a clock (processes have different monotonic clocks): [scope code, key, ratePerSec,
 * capacity, ms until full]. 0 ms: full, the same as a limit never used.
 */
export type LimitSnapshot = [number, string, number, number, number];
