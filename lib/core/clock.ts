/**
 * Wall-clock time, injected through Runtime so stages and the cache never call Date.now() themselves: tests
 * drive it by hand (test/helpers/clock.ts) instead of sleeping until an entry goes stale.
 */
export interface Clock {
  /** Epoch milliseconds, like Date.now(): HTTP dates, TTLs, deadlines that cross processes. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
