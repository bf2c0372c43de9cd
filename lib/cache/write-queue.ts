/**
 * Background writes to the slower tiers (L2 Redis, L3 disk), off the request path, through the pod's
 * write-behind queue (lib/stages/queue/write-behind.ts): batches of `queues.batch_size` or whatever arrived
 * within `queues.batch_timeout`, at most `queues.max_queue_size` pending (the oldest is dropped past that: a
 * cache write is an optimisation, losing one only costs a later miss).
 */
import type { Logger } from '../observe/logger';
import type { Registry } from 'prom-client';
import { WriteBehind } from './write-behind';

export type Job = () => Promise<unknown>;

export interface BackgroundWriter {
  /** False when the job was refused. */
  enqueue(job: Job): boolean;
  /** Resolves when every job enqueued so far has finished (tests, shutdown). */
  drain(): Promise<void>;
  /** No job waiting or running: nothing enqueued so far can still land. */
  readonly idle: boolean;
  close(): Promise<void>;
  reconfigure?(opts: { batchSize: number; batchTimeoutMs: number; maxPending: number }): void;
}

export class CacheWriteQueue implements BackgroundWriter {
  private readonly wb: WriteBehind;

  constructor(opts: { batchSize: number; batchTimeoutMs: number; maxPending: number; log: Logger; metrics: { readonly registry: Registry } | null }) {
    this.wb = new WriteBehind({ name: 'cache', ...opts });
  }

  enqueue(job: Job): boolean {
    return this.wb.enqueue(async () => { await job(); });
  }

  drain(): Promise<void> {
    return this.wb.flush();
  }

  get idle(): boolean {
    return this.wb.idle;
  }

  close(): Promise<void> {
    return this.wb.close();
  }

  reconfigure(opts: { batchSize: number; batchTimeoutMs: number; maxPending: number }): void {
    this.wb.reconfigure(opts);
  }
}
