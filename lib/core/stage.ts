/**
 * The contract between the request pipeline (lib/server/pipeline.ts) and the stages a request passes.
 *
 * Order, like an Envoy filter chain:
 *   route match -> rate limit -> cache lookup -> queue (admission to the upstream) -> proxy
 *   upstream response -> response filters in order (events, compress, cache store) -> client
 *
 * Reloads: each stage keeps its state (buckets, cache entries, waiters, pooled sockets) in a long-lived
 * object that survives policy reloads, and builds an immutable per-policy view from (policy, state).
 * A request takes one Pipeline snapshot when it starts and uses only that snapshot's views, so no request
 * sees half of one policy and half of another.
 */
import type { Transform } from 'node:stream';
import type { RequestContext } from './context';

/** The response head as it will be sent; names are lower-case. Filters may edit it before it is written. */
export interface ResponseHead {
  status: number;
  headers: Record<string, string | string[]>;
}

export type RateLimitDecision =
  | { readonly allowed: true; readonly headers: ReadonlyArray<readonly [string, string]> | null }
  | {
      readonly allowed: false;
      /** 'global' | 'per_user' | 'per_endpoint' */
      readonly scope: string;
      /** Whole seconds until a token is available, >= 1. */
      readonly retryAfter: number;
      readonly headers: ReadonlyArray<readonly [string, string]>;
    };

export interface RateLimitStage {
  /** On arrival (`upstream` false), or after a cache miss for the limits with `count: upstream` (true). */
  check(ctx: RequestContext, upstream?: boolean): RateLimitDecision | Promise<RateLimitDecision>;
  /** Some limit counts only upstream requests: check(ctx, true) before a request goes upstream. */
  readonly countsUpstream: boolean;
}

/** Thrown (or rejected) by QueueStage.acquire when a request is shed. */
export class ShedError extends Error {
  constructor(
    /** 'queue_full' | 'class_full' | 'queue_timeout' | 'displaced' | 'client_gone' ... */
    readonly reason: string,
    readonly retryAfter: number,
  ) {
    super(`shed: ${reason}`);
  }
}

/** Call exactly once when the upstream exchange ends (success or not); latencyMs feeds adaptive limits. */
export type Release = (outcome: { ok: boolean; latencyMs: number }) => void;

export interface QueueStage {
  /** Resolves with a release function once the request may go upstream; rejects with ShedError. */
  acquire(ctx: RequestContext): Release | Promise<Release>;
}

export interface CacheStage {
  /** Serve the request from cache if possible. Resolves true when the response was sent (or is being sent). */
  lookup(ctx: RequestContext): boolean | Promise<boolean>;
  /**
   * The upstream failed (502/504) or the request was shed: serve a stale entry if the rules allow.
   * Resolves true when it served one.
   */
  onFailure(ctx: RequestContext, kind: 'error' | 'timeout' | 'shed'): boolean | Promise<boolean>;
}

/**
 * A stage that sees the upstream response before the client does (compress, cache store, event raise).
 * Returns a Transform to put in the body path, or null to leave the body alone. It may edit `head`.
 */
export interface ResponseFilter {
  readonly name: string;
  onResponse(ctx: RequestContext, head: ResponseHead): Transform | null;
}
