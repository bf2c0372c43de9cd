/** The messages between the primary's warm-up scheduler and the workers' runners (see lib/core/topics.ts). */
import type { WarmupStrategyPolicy } from '../../policy/types';

export const TOPIC_COUNTS = 'warmup:counts';
export const TOPIC_RUN = 'warmup:run';
export const TOPIC_PROMOTE = 'warmup:promote';

export interface RunRequest {
  readonly strategy: WarmupStrategyPolicy;
  /** Counts gathered from every worker of the pod. */
  readonly counts: Array<[string, number]>;
  /** Epoch ms: stop warming after this. */
  readonly deadline: number;
}

export interface RunResult {
  readonly strategy: string;
  readonly result: 'ok' | 'partial' | 'timeout' | 'error';
  readonly keys: number;
  readonly sources: Record<string, number>;
  /** Keys now warm in this worker's L1: the scheduler asks the other workers to pull them in. */
  readonly warmed: string[];
}
