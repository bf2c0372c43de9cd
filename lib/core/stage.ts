/**
 * The one stage model, after Envoy's HTTP filter chain.
 *
 * A Stage is one policy's view of a feature (rate limit, cache, queue, compression, events...). It has up to
 * four hooks, each optional; the chain (lib/server/chain.ts) calls only the stages that have a hook for a
 * phase, so a stage without one costs nothing there:
 *
 *   onRequest      in chain order, before the upstream: let the request pass (false) or answer it (true)
 *   onResponse     in REVERSE chain order, on the upstream's head: may edit it and put a Transform in the body
 *   onFailure      no answer from the upstream (502/504) or the request was shed: serve something else?
 *   onUpstreamEnd  the upstream exchange is over (body sent, or failed): give back what onRequest took
 *
 * The order of the chain is declared once, in lib/stages/chain.ts.
 *
 * Per-request state: a stage that needs some keeps it in its own per-request object, stored in the request's
 * context under the stage's StageSlot (no maps keyed by request). A request that never reaches the stage
 * allocates nothing for it.
 *
 * Reloads: each feature's Component keeps the long-lived state (buckets, entries, waiters, pooled sockets) and
 * builds an immutable Stage per policy. A request takes one snapshot when it arrives and uses only its stages,
 * so no request sees half of one policy and half of another.
 */
import type { Transform } from 'node:stream';
import type { RequestContext } from './context';
import type { IdentityTail } from './identity-tail';

/** The response head as it will be sent; names are lower-case. Stages may edit it before it is written. */
export interface ResponseHead {
  status: number;
  headers: Record<string, string | string[]>;
  /**
   * Set by a stage whose body Transform must see the whole body before the head is final (the cache's
   * Cache-Status `stored` on a small answer that store_if or the JSON-RPC rules decide on its body). The
   * pipeline then writes the head when the stage releases it; the stage releases it before it pushes any body.
   */
  hold?: HeldHead;
  /**
   * Set by a stage whose work must be done before the client has the whole answer (the events filter: this
   * pod's invalidations, so a client that writes and then reads through this pod never reads its old data).
   * The body's last chunk waits until it settles; the stage bounds the wait. Add to it with holdEndUntil
   * (./end-gate.ts). No Transform is needed for it: the leg that writes the body holds the end itself.
   */
  endAfter?: Promise<unknown>;
  /**
   * Set by the compression stage when it encodes the body: the identity body's last bytes, filled as the body
   * passes once a later stage that reads trailing JSON fields (the cache's store_if) has activated it; that stage
   * reads them there instead of decoding the encoded body.
   */
  identityTail?: IdentityTail;
}

/** A response head held back by a stage until its body Transform has seen enough of the body (see ResponseHead.hold). */
export class HeldHead {
  private write: (() => void) | null = null;
  private released = false;

  /** The pipeline: write the head now if released, else when it is. */
  whenReleased(write: () => void): void {
    if (this.released) write();
    else this.write = write;
  }

  /** The stage: the head is final. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const w = this.write;
    this.write = null;
    w?.();
  }
}

/** Why no upstream answer is at hand: 'error' (502), 'timeout' (504), 'shed' (the queue refused it). */
export type FailureKind = 'error' | 'timeout' | 'shed';

export interface Stage {
  readonly name: string;
  /** Name of the trace span around onRequest (e.g. 'cache.lookup'), or null for none. */
  readonly span: string | null;
  /**
   * Request phase. Resolve false to pass the request on, true when this stage answered it (or is answering).
   * Throw or reject a ShedError to refuse it with 503 (stale-if-error may still answer); anything else is a 500.
   */
  onRequest?(ctx: RequestContext): boolean | Promise<boolean>;
  /** Response phase: a Transform to put in the body path, or null to leave the body alone. May edit `head`. */
  onResponse?(ctx: RequestContext, head: ResponseHead): Transform | null;
  /** Resolve true when this stage answered instead (e.g. a stale copy); the first that does wins. */
  onFailure?(ctx: RequestContext, kind: FailureKind): boolean | Promise<boolean>;
  /** The upstream exchange ended; `ok` is false when it failed or was cut off. Called at most once. */
  onUpstreamEnd?(ctx: RequestContext, ok: boolean): void;
}

/** Thrown (or rejected) by a stage's onRequest when a request is shed. */
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

let slotCount = 0;

/**
 * Where one stage keeps its per-request object on the request's context. Each stage module makes its own
 * once (`const state = new StageSlot<MyRequestState>()`); the context holds the objects in a small array that
 * is only allocated when a stage first stores one.
 */
export class StageSlot<T extends object | ((...args: never[]) => unknown)> {
  private readonly index = slotCount++;

  get(ctx: RequestContext): T | null {
    const slots = ctx.slots;
    return slots === null ? null : ((slots[this.index] as T | undefined) ?? null);
  }

  set(ctx: RequestContext, value: T | null): void {
    (ctx.slots ??= [])[this.index] = value ?? undefined;
  }
}
