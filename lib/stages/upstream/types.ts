/**
 * The contract between the request pipeline and the upstream leg (the part that sends a request to the
 * upstream and hands back its answer). Two legs implement it: undici (the default: Node's own HTTP/1.1
 * client, pooled, with llhttp) and http-proxy (kept for Upgrade/WebSocket tunnels, and selectable for
 * comparison with BRIDGE_SIDECAR_UPSTREAM_LEG=http-proxy).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Socket } from 'node:net';
import type { UpstreamPolicy } from '../../policy/types';
import type { RequestContext } from '../../core/context';
import type { PoolFigures } from '../../observe/metrics';

export type UpstreamFailure = 'error' | 'timeout';

/** An upstream response whose head has arrived. Headers are lower-case, hop-by-hop fields already removed. */
export interface UpstreamAnswer {
  readonly statusCode: number;
  /** Owned by the receiver: the pipeline edits this object and writes it as the response head. */
  readonly headers: Record<string, string | string[]>;
  /**
   * Write the body straight into `res` (no transforms) and end it; the leg reports the end with onEnd. With
   * `endAfter` (ResponseHead.endAfter) the last chunk and the end wait until it settles.
   */
  sendTo(res: ServerResponse, endAfter: Promise<unknown> | null): void;
  /** The body as a stream, for response filters that transform it. */
  stream(): Readable;
  /** Drop the body (the client is gone). */
  destroy(): void;
}

export interface ForwardCallbacks {
  /** The upstream answered; the pipeline writes it to the client. */
  onResponse(ctx: RequestContext, answer: UpstreamAnswer): void;
  /** No response could be had: 502 (error) or 504 (timeout). Never called after onResponse. */
  onFailure(ctx: RequestContext, kind: UpstreamFailure, err: Error | null): void;
  /** After sendTo: the body was written whole (ok) or broke off. */
  onEnd(ctx: RequestContext, ok: boolean): void;
}

export interface UpstreamLeg {
  readonly name: 'undici' | 'http-proxy';
  readonly upstream: UpstreamPolicy;
  /**
   * Send ctx's request upstream. `body` is the buffered request body when one was read; otherwise `stream`
   * (the request or a size-limiting transform) feeds it, or there is none. `upstream` is the request's own
   * snapshot of the policy: every attempt, retries included, uses its timeouts and retry count.
   */
  forward(ctx: RequestContext, cb: ForwardCallbacks, body: Buffer | null, stream: Readable | null, upstream: UpstreamPolicy): void;
  /** Give up on ctx's exchange (its streamed body broke a limit, or the client left): the upstream request ends. */
  abort(ctx: RequestContext): void;
  /** The client's streamed body broke off before its end: fail the exchange now rather than at read_timeout. */
  clientGone(ctx: RequestContext): void;
  /** WebSocket (and other Upgrade) requests pass straight through. */
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer, onError: (err: Error) => void): void;
  /** A reload: pool sizes and timeouts change; a new upstream address takes effect for the next request. */
  reconfigure(policy: UpstreamPolicy): void;
  /** Connections per worker to the upstream, set by the auto-tuner until the next reload. */
  setPoolSize(n: number): void;
  /** Every upstream socket the leg opens is handed to `track` (byte counters). */
  onSocket(track: (s: Socket) => void): void;
  /** The pool now: connections lent out, idle pooled ones, requests waiting for one. */
  poolFigures(): PoolFigures;
  close(): void;
}

export type { IncomingHttpHeaders };
