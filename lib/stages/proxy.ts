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
import { Agent, type IncomingMessage, type ClientRequest, type ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Socket } from 'node:net';
import httpProxy from 'http-proxy';
import { relayInterim } from '../server/interim';
import type { UpstreamPolicy } from '../policy/types';
import type { PoolFigures, WorkerMetrics } from '../observe/metrics';
import type { ForwardCallbacks, UpstreamAnswer, UpstreamFailure, UpstreamLeg } from './upstream/types';
import { RETRY_REASONS, retryVerdict } from './upstream/retry';
import { isHopByHop } from '../util/hop-by-hop';
import type { RequestContext } from '../core/context';
import { EndGate } from '../core/end-gate';
import { startUpstreamSpan, type UpstreamSpan } from '../observe/tracing';

export type { ForwardCallbacks, UpstreamFailure } from './upstream/types';
export { isRetryEligible } from './upstream/retry';

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

export class UpstreamProxy implements UpstreamLeg {
  readonly name = 'http-proxy' as const;
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
    for (const reason of RETRY_REASONS) metrics.upstreamRetries.inc({ reason }, 0);
    this.agent = makeAgent(policy);
    this.proxy = httpProxy.createProxyServer({
      agent: this.agent,
      selfHandleResponse: true,
      xfwd: false,
      ws: true,
      changeOrigin: false,
      // http-proxy would otherwise add its own Connection header handling on responses; we write them ourselves
    });
    this.proxy.on('proxyReq', (proxyReq: ClientRequest, req: IncomingMessage) => this.onProxyReq(proxyReq, req));
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
   * auto-tuning: connections per worker to the upstream, set by lib/tuning until the next reload
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

  /** The agent's pool now: sockets lent out, pooled idle ones, and requests waiting for a socket. */
  poolFigures(): PoolFigures {
    const count = (lists: NodeJS.ReadOnlyDict<unknown[]>): number => {
      let n = 0;
      for (const k in lists) n += lists[k]?.length ?? 0;
      return n;
    };
    return { inUse: count(this.agent.sockets), idle: count(this.agent.freeSockets), waiting: count(this.agent.requests) };
  }

  /** http.Agent has no event for a new socket: wrap createConnection. */
  onSocket(track: (s: Socket) => void): void {
    type Create = (this: Agent, ...args: unknown[]) => Socket | undefined;
    const a = this.agent as unknown as { createConnection: Create };
    const original = a.createConnection;
    a.createConnection = function (this: Agent, ...args: unknown[]) {
      const s = original.apply(this, args);
      if (s) track(s);
      return s;
    };
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
    st.span?.fail('aborted');
    st.proxyReq?.destroy();
  }

  /**
   * The client's streamed body broke off (a malformed chunk, a reset) before its end.
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
    // one CLIENT span per attempt; it writes the traceparent http-proxy copies upstream
    st.span = startUpstreamSpan(ctx, st.upstream, st.attempt);
    this.proxy.web(ctx.req, ctx.res, { buffer, target: st.target } as unknown as httpProxy.ServerOptions, (err: Error) => this.onError(st, err));
  }

  private onProxyReq(proxyReq: ClientRequest, req: IncomingMessage): void {
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
    const span = st.span;
    if (span !== null) {
      span.response(proxyRes.statusCode ?? 0);
      proxyRes.once('close', () => span.end(proxyRes.complete));
    }
    st.ctx.upstreamMs = performance.now() - st.dispatchedAt;
    st.cb.onResponse(st.ctx, new IncomingAnswer(proxyRes, st));
  }

  private timeout(st: ForwardState, which: 'connect' | 'read'): void {
    if (st.done) return;
    st.timedOut = which;
    st.span?.fail(`${which}_timeout`);
    if (st.proxyReq) st.proxyReq.destroy();
    // If no socket was ever assigned, destroy() is impossible; fail now and drop the request when it gets one.
    this.fail(st, 'timeout', new Error(`upstream ${which} timeout`));
  }

  private onError(st: ForwardState, err: Error & { code?: string }): void {
    if (st.done) return;
    this.clearTimers(st);
    st.span?.fail(err); // this attempt failed (a retry gets its own span)
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
    const v = retryVerdict(ctx.method, ctx.req.headers, code, reused, replayable, st.attempt, st.upstream.pool.retries);
    if (v.reason !== null) {
      st.attempt++;
      ctx.retries = st.attempt;
      this.metrics.upstreamRetries.inc({ reason: v.reason });
      if (v.delayMs === 0) this.dispatch(st);
      else setTimeout(() => this.dispatch(st), v.delayMs);
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

/** node's IncomingMessage as an UpstreamAnswer: the head copied without hop-by-hop fields, the body piped. */
class IncomingAnswer implements UpstreamAnswer {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[]> = {};
  constructor(private readonly msg: IncomingMessage, private readonly st: ForwardState) {
    this.statusCode = msg.statusCode ?? 502;
    const src = msg.headers;
    const connection = src.connection;
    for (const name in src) {
      const v = src[name];
      if (v === undefined || isHopByHop(name, connection)) continue;
      this.headers[name] = v;
    }
    // node keeps only the first of several Expires lines; the cache must see them all (several = expired)
    if (this.headers.expires !== undefined) this.headers.expires = fieldLines(msg.rawHeaders, 'expires');
  }

  sendTo(res: ServerResponse, endAfter: Promise<unknown> | null): void {
    const { msg, st } = this;
    msg.on('error', () => res.destroy());
    const body: Readable = endAfter === null ? msg : msg.pipe(new EndGate(endAfter));
    body.on('end', () => st.cb.onEnd(st.ctx, true));
    body.pipe(res);
  }

  stream(): Readable {
    return this.msg;
  }

  destroy(): void {
    this.msg.destroy();
  }
}

/** Every line of one field, from node's raw header list (names in any case). */
function fieldLines(raw: readonly string[], name: string): string | string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === name.length && raw[i].toLowerCase() === name) out.push(raw[i + 1]);
  return out.length === 1 ? out[0] : out;
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
