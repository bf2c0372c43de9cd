/**
 * Background writes to the slower tiers (L2 Redis, L3 disk), off the request path.
 *
 * The shape matches the pod's write-behind queue (lib/stages/queue/write-behind.ts: `enqueue(fn)`): jobs are
 * collected into batches of `batchSize` or whatever arrived within `batchTimeoutMs`, each batch runs
 * concurrently, one batch at a time. When `maxPending` jobs are waiting, new ones are dropped (a cache write
 * is an optimisation; losing one only costs a later miss) and counted.
 */
import type { Logger } from '../observe/logger';

export type Job = () => Promise<unknown>;

export interface BackgroundWriter {
  /** False when the job was dropped because the queue is full. */
  enqueue(job: Job): boolean;
  /** Resolves when every job enqueued so far has finished (tests, shutdown). */
  drain(): Promise<void>;
  close(): Promise<void>;
}

export interface WriteQueueOptions {
  batchSize: number;
  batchTimeoutMs: number;
  maxPending: number;
  log: Logger;
  onDrop?: () => void;
}

export class LocalWriteQueue implements BackgroundWriter {
  private pending: Job[] = [];
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  constructor(private readonly opts: WriteQueueOptions) {}

  enqueue(job: Job): boolean {
    if (this.closed || this.pending.length >= this.opts.maxPending) {
      this.opts.onDrop?.();
      return false;
    }
    this.pending.push(job);
    if (this.running) return true;
    if (this.pending.length >= this.opts.batchSize) this.kick();
    else if (this.timer === null) {
      this.timer = setTimeout(() => { this.timer = null; this.kick(); }, this.opts.batchTimeoutMs);
      this.timer.unref();
    }
    return true;
  }

  private kick(): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    if (this.running) return;
    void this.run();
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.opts.batchSize);
      await Promise.all(batch.map((job) => job().catch((err: unknown) => {
        this.opts.log.debug({ err: err instanceof Error ? err.message : String(err) }, 'cache background write failed');
      })));
    }
    this.running = false;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const fn of w) fn();
  }

  drain(): Promise<void> {
    if (!this.running && this.pending.length === 0) return Promise.resolve();
    if (!this.running) this.kick();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  async close(): Promise<void> {
    await this.drain();
    this.closed = true;
  }
}
