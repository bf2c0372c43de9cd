/** The messages between the primary's auto-tuner and the workers (see lib/core/topics.ts). */

export const TOPIC_APPLY = 'autotune:apply';
export const TOPIC_GET = 'autotune:get';
export const TOPIC_RETIRE = 'autotune:retire';

/** What the workers are told. null cache: no L1 tier. */
export interface WorkerTuning {
  readonly version: string;
  readonly cache_l1_bytes: number | null;
  readonly upstream_pool_size: number;
}
