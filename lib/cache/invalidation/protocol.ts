/** The messages of invalidation between workers and the primary, and the admin call's (see lib/core/topics.ts). */

export const TOPIC_FANOUT = 'invalidate:fanout';
export const TOPIC_APPLY = 'invalidate:apply';
export const TOPIC_ADMIN_INVALIDATE = 'admin:invalidate';

export interface ApplyRequest {
  readonly patterns: readonly string[];
  readonly cascade: boolean;
  /** Only L1 (the last pass after L2). */
  readonly l1Only: boolean;
  /** RFC 9111 §4.4: also every key each worker's URI index holds for these URIs (L1, L3 and L2). */
  readonly uris?: readonly string[];
  /**
   * When the invalidation was raised (epoch ms; for another pod's, its clock plus REMOTE_CLOCK_MARGIN_MS):
   * copies of the keys that arrived before it are not taken from L2, L3 or a sibling (recent-invalidations.ts).
   */
  readonly raisedAt?: number;
}

export interface ApplyResult {
  l1: number;
  l3: number;
  params: Array<Readonly<Record<string, string>>>;
}

export interface RaiseResult {
  readonly event: string;
  readonly patterns: string[];
  readonly removed: { l1: number; l2: number; l3: number };
}

/** What the pub/sub channel carries. */
export interface InvalidationMessage {
  readonly id: string;
  readonly event: string;
  readonly params: Readonly<Record<string, string>>;
  /** Every pattern applied in the origin pod (cascade included). */
  readonly patterns: readonly string[];
  /** Pod that raised it (skips its own message). */
  readonly origin: string;
  /** Epoch ms when it was raised. */
  readonly time: number;
  /** Target URIs of an unsafe request (RFC 9111 §4.4); `event` is then empty. */
  readonly uris?: readonly string[];
}
