/**
 * A FIFO concurrency cap, so the example service behaves like a Flask app with N threads: at most `max`
 * requests are worked on at once, the rest wait in arrival order. Backpressure benchmarks rely on it.
 * Like Flask, a request whose client went away while it waited is still worked on when its turn comes.
 */
export class FifoGate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly max: number) {}

  /** Resolves when the caller may run; it must call release() exactly once afterwards. */
  acquire(): Promise<void> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next(); // the slot passes straight to the next waiter
    else this.active--;
  }

  get queued(): number {
    return this.waiting.length;
  }

  get running(): number {
    return this.active;
  }
}
