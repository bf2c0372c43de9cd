/** Milliseconds on a monotonic clock. Injected everywhere so tests can drive time by hand. */
export type Clock = () => number;

export const monotonicClock: Clock = () => performance.now();

/** A clock tests move by hand. */
export class ManualClock {
  constructor(public t = 0) {}
  readonly now: Clock = () => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}
