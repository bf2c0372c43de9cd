/**
 * Write-behind: a bounded queue for background writes that must never delay a response (L2/L3 cache stores,
 * invalidation messages). The request path calls enqueue() and moves on; tasks run later, in batches.
 *
 *   import { WriteBehind, writeBehindOptions } from '../../cache/write-behind';
 *
 *   const wb = new WriteBehind({ name: 'l2', ...writeBehindOptions(policy), log, metrics: rt.metrics });
 *   wb.enqueue(() => redis.set(key, value));   // returns at once; true if queued, false if refused
 *   await wb.flush();                           // everything queued so far has run (tests, shutdown)
 *   await wb.close();                           // flush, then refuse new tasks (counted as dropped)
 *   wb.reconfigure(writeBehindOptions(next));   // on policy reload: new sizes apply to the live queue
 *
 * Options:
 *   batchSize       run up to this many tasks together (concurrently); a full batch starts at once      (10)
 *   batchTimeoutMs  a partial batch starts after this long                                            (100)
 *   maxPending      tasks waiting at most; past it the OLDEST pending task is dropped (the newest write
 *                   for a key is the one worth keeping), or the new one with overflow: 'refuse_new'  (1000)
 *   taskTimeoutMs   a task still running after this long counts as failed and stops holding the batch (30000)
 *   name            the `queue` label of the metrics ("l2", "l3", "invalidation", ...)
 *   log             pino logger; task errors are logged (throttled), never thrown into the request
 *   metrics         a registry holder (rt.metrics) for bridge_sidecar_write_behind_{dropped,errors}_total
 *                   and bridge_sidecar_write_behind_pending, labelled by `queue`; null for none
 *
 * Only one batch runs at a time, so at most batchSize background writes are in flight per queue: the
 * background never competes with requests for more than that many Redis connections or disk writes.
 */
import { RedisUnavailableError } from '../redis/client';
import type { Counter, Gauge, Registry } from 'prom-client';
import { registeredCounter, registeredGauge } from '../observe/metrics';
import type { Logger } from '../observe/logger';
import type { Policy } from '../policy/types';

export type WriteTask = () => Promise<void> | void;

export interface WriteBehindOptions {
  name?: string;
  batchSize?: number;
  batchTimeoutMs?: number;
  maxPending?: number;
  taskTimeoutMs?: number;
  overflow?: 'drop_oldest' | 'refuse_new';
  log?: Logger | null;
  metrics?: { readonly registry: Registry } | null;
}

/** batchSize / batchTimeoutMs / maxPending from the policy's `queues` section (the guide's numbers when absent). */
export function writeBehindOptions(policy: Policy): { batchSize: number; batchTimeoutMs: number; maxPending: number } {
  const q = policy.queues;
  return { batchSize: q?.batch_size ?? 10, batchTimeoutMs: q?.batch_timeout ?? 100, maxPending: Math.max(1, q?.max_queue_size ?? 1000) };
}

const P = 'bridge_sidecar_write_behind_';

function counter(registry: Registry, name: string, help: string): Counter<'queue'> {
  return registeredCounter(registry, name, help, ['queue']);
}

function gauge(registry: Registry, name: string, help: string): Gauge<'queue'> {
  return registeredGauge(registry, name, help, ['queue']);
}

/** Log at most one task error per this many ms (a Redis outage must not flood the log). */
const ERROR_LOG_EVERY_MS = 5000;

export class WriteBehind {
  readonly name: string;
  private batchSize: number;
  private batchTimeoutMs: number;
  private maxPending: number;
  private readonly taskTimeoutMs: number;
  private readonly overflow: 'drop_oldest' | 'refuse_new';
  private readonly log: Logger | null;

  /** Pending tasks, oldest first: a ring buffer so dropping the oldest is O(1). */
  private ring: Array<WriteTask | undefined>;
  private head = 0;
  private size = 0;

  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private flushWaiters: Array<() => void> = [];
  private closed = false;

  private lastErrorLog = 0;
  private suppressedErrors = 0;

  /** Totals, also exported as metrics. */
  dropped = 0;
  errors = 0;
  completed = 0;

  private readonly droppedMetric: { inc(v?: number): void } | null;
  private readonly errorsMetric: { inc(v?: number): void } | null;
  private readonly pendingMetric: { set(v: number): void } | null;

  constructor(opts: WriteBehindOptions = {}) {
    this.name = opts.name ?? 'default';
    this.batchSize = positive(opts.batchSize, 10);
    this.batchTimeoutMs = Math.max(0, opts.batchTimeoutMs ?? 100);
    this.maxPending = positive(opts.maxPending, 1000);
    this.taskTimeoutMs = positive(opts.taskTimeoutMs, 30_000);
    this.overflow = opts.overflow ?? 'drop_oldest';
    this.log = opts.log ?? null;
    this.ring = new Array<WriteTask | undefined>(this.maxPending);
    const reg = opts.metrics?.registry ?? null;
    this.droppedMetric = reg ? counter(reg, P + 'dropped_total', 'Background writes dropped because the write-behind queue was full or closed.').labels(this.name) : null;
    this.errorsMetric = reg ? counter(reg, P + 'errors_total', 'Background writes that failed or timed out.').labels(this.name) : null;
    this.pendingMetric = reg ? gauge(reg, P + 'pending', 'Background writes waiting in the write-behind queue.').labels(this.name) : null;
    this.droppedMetric?.inc(0);
    this.errorsMetric?.inc(0);
  }

  get pending(): number {
    return this.size;
  }

  /** Nothing waiting and nothing running. */
  get idle(): boolean {
    return this.size === 0 && !this.running;
  }

  /** Queue a background write. Never throws, never runs the task before returning. */
  enqueue(task: WriteTask): boolean {
    if (this.closed) {
      this.drop(1);
      return false;
    }
    if (this.size >= this.maxPending) {
      if (this.overflow === 'refuse_new') {
        this.drop(1);
        return false;
      }
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.ring.length;
      this.size--;
      this.drop(1);
    }
    this.ring[(this.head + this.size) % this.ring.length] = task;
    this.size++;
    this.pendingMetric?.set(this.size);
    this.schedule();
    return true;
  }

  /** Resolves once every task queued so far has run (or failed). */
  flush(): Promise<void> {
    if (this.size === 0 && !this.running) return Promise.resolve();
    return new Promise((resolve) => {
      this.flushWaiters.push(resolve);
      this.startSoon();
    });
  }

  /** Run what is pending, then refuse new tasks. Idempotent. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    this.clearTimers();
  }

  /** New sizes from a reloaded policy; pending tasks are kept (the oldest are dropped if the bound shrank). */
  reconfigure(opts: { batchSize?: number; batchTimeoutMs?: number; maxPending?: number }): void {
    this.batchSize = positive(opts.batchSize, this.batchSize);
    this.batchTimeoutMs = Math.max(0, opts.batchTimeoutMs ?? this.batchTimeoutMs);
    const max = positive(opts.maxPending, this.maxPending);
    if (max !== this.maxPending) {
      const keep = Math.min(this.size, max);
      if (this.size > keep) this.drop(this.size - keep);
      const next = new Array<WriteTask | undefined>(max);
      for (let i = 0; i < keep; i++) next[i] = this.ring[(this.head + this.size - keep + i) % this.ring.length];
      this.ring = next;
      this.head = 0;
      this.size = keep;
      this.maxPending = max;
      this.pendingMetric?.set(this.size);
    }
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.schedule();
  }

  // --- draining --------------------------------------------------------------------------------------------

  private schedule(): void {
    if (this.running || this.size === 0) return;
    if (this.size >= this.batchSize || this.flushWaiters.length > 0) this.startSoon();
    else if (this.timer === null) {
      this.timer = setTimeout(this.onTimer, this.batchTimeoutMs);
      this.timer.unref();
    }
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    void this.drain();
  };

  /** On the next turn of the event loop, never inside the caller's stack. */
  private startSoon(): void {
    if (this.running || this.immediate !== null) return;
    this.immediate = setImmediate(() => {
      this.immediate = null;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    try {
      // full batches back to back; a partial batch only when its timer fired (first pass) or a flush waits
      let first = true;
      while (this.size > 0 && (first || this.size >= this.batchSize || this.flushWaiters.length > 0)) {
        first = false;
        await this.runBatch(this.take(Math.min(this.batchSize, this.size)));
      }
    } finally {
      this.running = false;
    }
    if (this.size === 0) {
      const waiters = this.flushWaiters;
      this.flushWaiters = [];
      for (const w of waiters) w();
    } else this.schedule();
  }

  private take(n: number): WriteTask[] {
    const batch = new Array<WriteTask>(n);
    for (let i = 0; i < n; i++) {
      batch[i] = this.ring[this.head]!;
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.ring.length;
    }
    this.size -= n;
    this.pendingMetric?.set(this.size);
    return batch;
  }

  private runBatch(batch: WriteTask[]): Promise<void> {
    return new Promise<void>((resolve) => {
      let left = batch.length;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        this.failed(new Error(`write-behind task still running after ${this.taskTimeoutMs} ms`), left);
        resolve();
      }, this.taskTimeoutMs);
      timer.unref();
      const one = (err: unknown, ok: boolean) => {
        if (timedOut) return;
        if (ok) this.completed++;
        else this.failed(err, 1);
        if (--left === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
      for (const task of batch) {
        let p: Promise<void> | void;
        try {
          p = task();
        } catch (err) {
          one(err, false);
          continue;
        }
        if (p && typeof (p as Promise<void>).then === 'function') (p as Promise<void>).then(() => one(null, true), (err: unknown) => one(err, false));
        else one(null, true);
      }
    });
  }

  private failed(err: unknown, n: number): void {
    this.errors += n;
    this.errorsMetric?.inc(n);
    if (!this.log) return;
    // Redis being down is said once by the connection ("redis unreachable" / "connection lost"); a line per
    // failed write on top of that (with a stack) flooded the terminal
    if (err instanceof RedisUnavailableError) return;
    const now = Date.now();
    if (now - this.lastErrorLog < ERROR_LOG_EVERY_MS) {
      this.suppressedErrors += n;
      return;
    }
    this.lastErrorLog = now;
    this.log.warn({ err: err instanceof Error ? err.message : String(err), queue: this.name, suppressed: this.suppressedErrors }, 'write-behind task failed');
    this.suppressedErrors = 0;
  }

  private drop(n: number): void {
    this.dropped += n;
    this.droppedMetric?.inc(n);
  }

  private clearTimers(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
  }
}

function positive(v: number | undefined, fallback: number): number {
  return v !== undefined && Number.isFinite(v) && v >= 1 ? Math.floor(v) : fallback;
}
