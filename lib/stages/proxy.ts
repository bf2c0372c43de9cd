/**
 * The last stage: forward the request to the upstream with http-proxy over a keep-alive agent built from
 * `upstream.pool`, and hand the response to the pipeline (selfHandleResponse), which runs the response filters.
 *
 * What this file owns, and why it is here rather than in http-proxy's defaults:
 *  - timeouts: connect_timeout (nginx: "upstream timed out while connecting" -> 504) and read_timeout (-> 504),
 *    measured by us so a timeout is never confused with a reset;
 *  - retries only where safe: idempotent methods or X-Idempotency-Key, with a replayable (buffered) body, and
 *    the classic keep-alive race (the upstream closed a pooled socket just as we reused it: ECONNRESET on a
 *    reused socket before any response byte) for any method, since the upstream never saw that request;
 *  - upstream_connection_wait_seconds: time from dispatch until the request had a socket.
 */
import { Agent, type IncomingMessage, type ClientRequest } from 'node:http';
import type { Readable } from 'node:stream';
import type { Socket } from 'node:net';
import httpProxy from 'http-proxy';
import { relayInterim } from '../server/interim';
import type { UpstreamPolicy } from '../policy/types';
import type { WorkerMetrics } from '../observe/metrics';
import type { RequestContext } from '../core/context';
import { startUpstreamSpan, type UpstreamSpan } from '../observe/tracing'; // tracing (issue 9)

export type UpstreamFailure = 'error' | 'timeout';

export interface ForwardCallbacks {
  /** The upstream answered; the pipeline writes it to the client. */
  onResponse(ctx: RequestContext, upstreamRes: IncomingMessage): void;
  /** No response could be had: 502 (error) or 504 (timeout). Never called after onResponse. */
  onFailure(ctx: RequestContext, kind: UpstreamFailure, err: Error | null): void;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const RETRYABLE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
const STATE = Symbol('bridge-sidecar.forward');

/** Per-request forwarding state, hung on the request so http-proxy's shared events find it without a map. */
interface ForwardState {
  ctx: RequestContext;
  cb: ForwardCallbacks;
  attempt: number;
  proxyReq: ClientRequest | null;
  dispatchedAt: number;
  readTimer: NodeJS.Timeout | null;
  connectTimer: NodeJS.Timeout | null;
  done: boolean;
  timedOut: 'connect' | 'read' | null;
  body: Buffer | null;
  /** Stream that feeds the upstream when the body is not buffered (size-limited). */
  stream: Readable | null;
  /** The current attempt's CLIENT span, null when the request is not traced. */
  span: UpstreamSpan | null;
  /** The request's snapshot of the upstream policy: every attempt, retries included, uses these timeouts. */
  upstream: UpstreamPolicy;
  target: Target;
}

type Target = { protocol: string; host: string; port: number };

export function isRetryEligible(method: string, headers: IncomingMessage['headers']): boolean {
  return IDEMPOTENT.has(method) || headers['x-idempotency-key'] !== undefined;
}

export class UpstreamProxy {
  readonly agent: Agent;
  private readonly proxy: httpProxy;
  private policy: UpstreamPolicy;

  /**
   * Where requests go, passed to http-proxy per call (not fixed at creation), so a reload can move the upstream:
   * new requests go to the new address; requests in flight finish on the old one.
   */
  private target: Target;

  constructor(policy: UpstreamPolicy, private readonly metrics: WorkerMetrics) {
    this.policy = policy;
    this.target = targetOf(policy);
    // every retry reason this leg can count, at 0 from the start (see observe/label-values.ts)
    for (const reason of ['stale_keepalive', ...[...RETRYABLE_CODES].map((c) => c.toLowerCase())]) metrics.upstreamRetries.inc({ reason }, 0);
    this.agent = makeAgent(policy);
    this.proxy = httpProxy.createProxyServer({
      agent: this.agent,
      selfHandleResponse: true,
      xfwd: false,
      ws: true,
      changeOrigin: false,
      // http-proxy would otherwise add its own Connection header handling on responses; we write them ourselves
    });
    this.proxy.on('proxyReq', (proxyReq: ClientRequest, req: IncomingMessage) => this.onSocket(proxyReq, req));
    this.proxy.on('proxyRes', (proxyRes: IncomingMessage, req: IncomingMessage) => this.onProxyRes(proxyRes, req));
    // errors are delivered to the per-call callback; this keeps an unhandled one from crashing the process
    this.proxy.on('error', () => {});
  }

  /**
   * A reload: pool sizes change in place without dropping pooled connections; a new upstream address (same
   * scheme) takes effect for the next request, and the idle connections to the old one are closed.
   */
  reconfigure(policy: UpstreamPolicy): void {
    const before = this.target;
    this.policy = policy;
    if (policy.host !== before.host || policy.port !== before.port) {
      this.target = targetOf(policy);
      for (const socket of this.agent.freeSockets[this.agent.getName({ host: before.host, port: before.port })] ?? []) socket.destroy();
    }
    (this.agent as unknown as { options: { timeout?: number } }).options.timeout = policy.pool.keepalive_timeout;
    this.setPoolSize(policy.pool.max_connections_per_host);
  }

  /**
   * auto-tuning (issue 10): connections per worker to the upstream, set by lib/tuning until the next reload
   * (reconfigure puts the policy's value back). Raising it lets new requests open sockets at once; requests
   * already waiting get the freed sockets as before.
   */
  setPoolSize(n: number): void {
    if (!Number.isSafeInteger(n) || n < 1) return;
    this.agent.maxSockets = n;
    this.agent.maxFreeSockets = n;
    this.agent.maxTotalSockets = Math.max(this.policy.pool.max_connections, n);
    // going down: idle sockets beyond the new size are closed now, or a burst would reuse them all (the agent
    // takes a free socket before it looks at maxSockets); busy ones are closed when they are freed
    for (const [name, list] of Object.entries(this.agent.freeSockets)) {
      if (!list || list.length === 0) continue;
      const busy = this.agent.sockets[name]?.length ?? 0;
      const extra = Math.min(list.length, busy + list.length - n);
      for (const socket of list.slice(0, Math.max(0, extra))) socket.destroy();
    }
  }

  get upstream(): UpstreamPolicy {
    return this.policy;
  }

  /**
   * Send ctx's request upstream. `body` is the buffered request body when one was read (routes matching on it,
   * or small bodies kept for retries); otherwise `stream` (the request or a size-limiting transform) feeds it.
   */
  forward(ctx: RequestContext, cb: ForwardCallbacks, body: Buffer | null, stream: Readable | null, upstream: UpstreamPolicy): void {
    // a request that started before a reload keeps its own policy's address too
    const target = upstream === this.policy ? this.target : targetOf(upstream);
    const st: ForwardState = {
      ctx, cb, attempt: 0, proxyReq: null, dispatchedAt: 0, readTimer: null, connectTimer: null,
      done: false, timedOut: null, body, stream, span: null, upstream, target,
    };
    (ctx.req as unknown as Record<symbol, ForwardState>)[STATE] = st;
    this.dispatch(st);
  }

  /** Give up on ctx's exchange (e.g. its streamed body broke a limit): the upstream request is destroyed. */
  abort(ctx: RequestContext): void {
    const st = (ctx.req as unknown as Record<symbol, ForwardState | undefined>)[STATE];
    if (!st || st.done) return;
    st.done = true;
    this.clearTimers(st);
    st.span?.fail('aborted'); // tracing (issue 9)
    st.proxyReq?.destroy();
  }

  /**
   * reliability (issue 13): the client's streamed body broke off (a malformed chunk, a reset) before its end.
   * Without this the upstream request waited for the rest of the body until read_timeout, holding a pooled
   * connection (and a queue slot) per hostile request. Fails the exchange like a timeout does.
   */
  clientGone(ctx: RequestContext): void {
    const st = (ctx.req as unknown as Record<symbol, ForwardState | undefined>)[STATE];
    if (!st || st.done) return;
    st.proxyReq?.destroy();
    this.fail(st, 'error', new Error('client request body broke off'));
  }

  /** WebSocket (and other Upgrade) requests pass straight through. */
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer, onError: (err: Error) => void): void {
    this.proxy.ws(req, socket, head, { target: this.target } as unknown as httpProxy.ServerOptions, (err: Error) => onError(err));
  }

  private dispatch(st: ForwardState): void {
    const { ctx } = st;
    st.dispatchedAt = performance.now();
    st.proxyReq = null;
    const readTimeout = st.upstream.pool.read_timeout;
    // The read timer covers waiting for a pooled socket too, so a saturated pool cannot hang a request.
    st.readTimer = setTimeout(() => this.timeout(st, 'read'), readTimeout);
    const buffer = st.body !== null ? new BufferedBody(st.body) : (st.stream ?? undefined);
    // tracing (issue 9): one CLIENT span per attempt; it writes the traceparent http-proxy copies upstream
    st.span = startUpstreamSpan(ctx, st.upstream, st.attempt);
    this.proxy.web(ctx.req, ctx.res, { buffer, target: st.target } as unknown as httpProxy.ServerOptions, (err: Error) => this.onError(st, err));
  }

  private onSocket(proxyReq: ClientRequest, req: IncomingMessage): void {
    const st = (req as unknown as Record<symbol, ForwardState | undefined>)[STATE];
    if (!st) return;
    if (st.done) {
      proxyReq.destroy();
      return;
    }
    st.proxyReq = proxyReq;
    proxyReq.on('information', (info) => relayInterim(st.ctx.res, info.statusCode, info.headers));
    this.metrics.upstreamConnectionWait.observe((performance.now() - st.dispatchedAt) / 1000);
    const socket = proxyReq.socket;
    if (socket && socket.connecting) {
      st.connectTimer = setTimeout(() => this.timeout(st, 'connect'), st.upstream.pool.connect_timeout);
      socket.once('connect', () => {
        if (st.connectTimer) clearTimeout(st.connectTimer);
        st.connectTimer = null;
      });
    }
  }

  private onProxyRes(proxyRes: IncomingMessage, req: IncomingMessage): void {
    const st = (req as unknown as Record<symbol, ForwardState | undefined>)[STATE];
    if (!st) return;
    if (st.done) {
      proxyRes.destroy();
      return;
    }
    st.done = true;
    this.clearTimers(st);
    // the read timeout also bounds the body: a response that stalls mid-body is cut off
    const readTimeout = st.upstream.pool.read_timeout;
    proxyRes.setTimeout?.(readTimeout, () => proxyRes.destroy(new Error('upstream read timeout')));
    st.span?.response(proxyRes); // tracing (issue 9)
    st.ctx.upstreamMs = performance.now() - st.dispatchedAt;
    st.cb.onResponse(st.ctx, proxyRes);
  }

  private timeout(st: ForwardState, which: 'connect' | 'read'): void {
    if (st.done) return;
    st.timedOut = which;
    st.span?.fail(`${which}_timeout`); // tracing (issue 9)
    if (st.proxyReq) st.proxyReq.destroy();
    // If no socket was ever assigned, destroy() is impossible; fail now and drop the request when it gets one.
    this.fail(st, 'timeout', new Error(`upstream ${which} timeout`));
  }

  private onError(st: ForwardState, err: Error & { code?: string }): void {
    if (st.done) return;
    this.clearTimers(st);
    st.span?.fail(err); // tracing (issue 9): this attempt failed (a retry gets its own span)
    if (st.timedOut) {
      this.fail(st, 'timeout', err);
      return;
    }
    const { ctx } = st;
    if (ctx.res.destroyed || ctx.req.destroyed && !ctx.req.complete) {
      // the client went away: nothing to answer
      this.fail(st, 'error', err);
      return;
    }
    const reused = st.proxyReq?.reusedSocket === true;
    const replayable = st.body !== null || st.stream === null;
    const code = err.code ?? (err.message === 'socket hang up' ? 'ECONNRESET' : '');
    const raceOnReuse = reused && (code === 'ECONNRESET' || code === 'EPIPE');
    const safe = raceOnReuse || isRetryEligible(ctx.method, ctx.req.headers);
    if (replayable && safe && RETRYABLE_CODES.has(code) && st.attempt < st.upstream.pool.retries) {
      st.attempt++;
      ctx.retries = st.attempt;
      this.metrics.upstreamRetries.inc({ reason: raceOnReuse ? 'stale_keepalive' : code.toLowerCase() });
      // a stale pooled socket is retried at once; other failures back off (25, 50, 100 ms ... with jitter)
      const delay = raceOnReuse && st.attempt === 1 ? 0 : Math.round(25 * 2 ** (st.attempt - 1) * (0.5 + Math.random()));
      if (delay === 0) this.dispatch(st);
      else setTimeout(() => this.dispatch(st), delay);
      return;
    }
    this.fail(st, 'error', err);
  }

  private fail(st: ForwardState, kind: UpstreamFailure, err: Error | null): void {
    if (st.done) return;
    st.done = true;
    this.clearTimers(st);
    st.ctx.upstreamMs = performance.now() - st.dispatchedAt;
    st.cb.onFailure(st.ctx, kind, err);
  }

  private clearTimers(st: ForwardState): void {
    if (st.readTimer) clearTimeout(st.readTimer);
    if (st.connectTimer) clearTimeout(st.connectTimer);
    st.readTimer = st.connectTimer = null;
  }

  close(): void {
    this.agent.destroy();
    this.proxy.close();
  }
}

/**
 * A body already in memory, in the one shape http-proxy asks of `options.buffer` (`buffer.pipe(proxyReq)`):
 * `end(body)` hands Node the headers and the body together (one write), without a Readable per attempt.
 */
class BufferedBody {
  constructor(private readonly body: Buffer) {}
  pipe<T extends NodeJS.WritableStream>(dest: T): T {
    dest.end(this.body);
    return dest;
  }
}

function targetOf(policy: UpstreamPolicy): Target {
  return { protocol: policy.protocol, host: policy.host, port: policy.port };
}

function makeAgent(policy: UpstreamPolicy): Agent {
  const pool = policy.pool;
  return new Agent({
    keepAlive: true,
    keepAliveMsecs: 1000,
    maxSockets: pool.max_connections_per_host,
    maxTotalSockets: Math.max(pool.max_connections, pool.max_connections_per_host),
    maxFreeSockets: pool.max_connections_per_host,
    // idle pooled sockets are closed after keepalive_timeout
    timeout: pool.keepalive_timeout,
    scheduling: 'lifo',
  });
}
