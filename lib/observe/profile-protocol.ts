/** A profile order from the primary and a worker's answer (see lib/core/topics.ts). */

export type ProfileKind = 'cpu' | 'heap';
export type ProfileReason = 'on_demand' | 'scheduled' | 'threshold';

export interface ProfileOrder {
  kind: ProfileKind;
  /** CPU profiles only. */
  durationMs?: number;
  output: string;
  maxFiles: number;
  reason: ProfileReason;
}

export interface ProfileResult {
  path: string;
  bytes: number;
  pid: number;
  worker: number;
}
