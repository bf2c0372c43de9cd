/**
 * The upstream leg on undici: a Pool of HTTP/1.1 connections per worker, built from `upstream.pool`, and one
 * Exchange object per request that is at once undici's dispatch handler, the retry state and the answer the
 * pipeline writes out. The body streams both ways without an intermediate Readable when no filter transforms
 * it: chunks go from undici's parser into res.write, and a slow client pauses the parser (backpressure).
 *
 * What this file owns (the same behaviour as the http-proxy leg, which it replaced):
 *  - timeouts: connect_timeout (-> 504), read_timeout until the head (-> 504, it also covers waiting for a
 *    pooled connection) and between body chunks (the answer is cut off);
 *  - retries only where safe (./retry.ts), with the keep-alive race told apart by whether the attempt went out
 *    on a connection that was already open;
 *  - upstream_connection_wait_seconds: time from dispatch until the pool gave the request a connection;
 *  - 1xx interim answers (102, 103 Early Hints) relayed to the client before the final one.
 * Upgrade/WebSocket requests go through http-proxy (./ws-tunnel.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { Socket } from 'node:net';
import { Client, Pool, buildConnector, type Dispatcher } from 'undici';
import type { UpstreamPolicy } from '../../policy/types';
import type { PoolFigures, WorkerMetrics } from '../../observe/metrics';
import type { RequestContext } from '../../core/context';
import { startUpstreamSpan, type UpstreamSpan } from '../../observe/tracing';
import type { ForwardCallbacks, UpstreamAnswer, UpstreamLeg } from './types';
import { RETRY_REASONS, retryVerdict } from './retry';
import { answerHeaders } from './headers';
import { relayInterim } from '../../server/interim';
import { WsTunnel } from './ws-tunnel';

/** Marks, on each pooled client, whether its connection is open: a request sent on it reuses a connection. */
const OPEN = Symbol('bridge-sidecar.open');

class TrackedClient extends Client {
  [OPEN] = false;
  constructor(origin: URL | string, opts: Client.Options) {
    super(origin, opts);
    this.on('connect', () => { this[OPEN] = true; });
    this.on('disconnect', () => { this[OPEN] = false; });
  }
  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    (handler as Exchange).assigned(this[OPEN]);
    return super.dispatch(opts, handler);
  }
}

const enum Phase { Waiting, Sent, Answered, Done }

/** From this read_timeout on, undici's coarse head timer (resolution ~1 s) is precise enough. */
const COARSE_TIMER_OK_MS = 5000;

/** undici error codes as the retry rules and the failure kinds know them. */
function codeOf(err: Error & { code?: string }): string {
  switch (err.code) {
    case 'UND_ERR_SOCKET': return 'ECONNRESET'; // "other side closed" before a response byte
    case 'UND_ERR_CLOSED': return 'ECONNRESET';
    default: return err.code ?? '';
  }
}

export class UndiciLeg implements UpstreamLeg {
  readonly name = 'undici' as const;
  private policy: UpstreamPolicy;
  private pool: Pool;
  private track: ((s: Socket) => void) | null = null;
  private readonly ws = new WsTunnel();

  constructor(policy: UpstreamPolicy, readonly metrics: WorkerMetrics) {
    this.policy = policy;
    // every retry reason this leg can count, at 0 from the start (see observe/label-values.ts)
    for (const reason of RETRY_REASONS) metrics.upstreamRetries.inc({ reason }, 0);
    this.pool = this.makePool(policy, policy.pool.max_connections_per_host);
  }

  get upstream(): UpstreamPolicy {
    return this.policy;
  }

  private makePool(policy: UpstreamPolicy, connections: number): Pool {
    const p = policy.pool;
    const connect = buildConnector({ timeout: p.connect_timeout, noDelay: true } as buildConnector.BuildOptions);
    return new Pool(`${policy.protocol}//${policy.host}:${policy.port}`, {
      connections,
      pipelining: 1,
      keepAliveTimeout: p.keepalive_timeout,
      keepAliveMaxTimeout: p.keepalive_timeout,
      headersTimeout: 0,
      bodyTimeout: p.read_timeout,
      connect: (opts, cb) => connect(opts, (err, socket) => {
        if (socket && this.track) this.track(socket as Socket);
        (cb as (e: Error | null, s: Socket | null) => void)(err, socket as Socket | null);
      }),
      factory: (origin, opts) => new TrackedClient(origin, opts as Client.Options),
    });
  }

  /**
   * A reload: a new address, new timeouts or a smaller pool take a new Pool for the next request (the old one
   * finishes what it carries, then closes); a larger pool grows in place.
   */
  reconfigure(policy: UpstreamPolicy): void {
    const before = this.policy;
    this.policy = policy;
    const a = before.pool, b = policy.pool;
    if (policy.host !== before.host || policy.port !== before.port || policy.protocol !== before.protocol
      || a.connect_timeout !== b.connect_timeout || a.keepalive_timeout !== b.keepalive_timeout
      || b.max_connections_per_host < a.max_connections_per_host) {
      this.replacePool(b.max_connections_per_host);
    } else if (b.max_connections_per_host !== a.max_connections_per_host) {
      this.setPoolSize(b.max_connections_per_host);
    }
  }

  setPoolSize(n: number): void {
    if (!Number.isSafeInteger(n) || n < 1) return;
    const sym = Object.getOwnPropertySymbols(this.pool).find((s) => s.description === 'connections');
    const current = sym === undefined ? null : (this.pool as unknown as Record<symbol, number | null>)[sym];
    if (sym !== undefined && typeof current === 'number' && n >= current) {
      // growing: undici opens the extra connections as requests need them; nothing pooled is dropped
      (this.pool as unknown as Record<symbol, number>)[sym] = n;
      return;
    }
    if (current !== n) this.replacePool(n);
  }

  private replacePool(connections: number): void {
    const old = this.pool;
    this.pool = this.makePool(this.policy, connections);
    // requests in flight finish on the old connections, idle ones close now
    void old.close().catch(() => undefined);
  }

  poolFigures(): PoolFigures {
    const st = this.pool.stats;
    return { inUse: st.running, idle: st.free, waiting: st.pending };
  }

  onSocket(track: (s: Socket) => void): void {
    this.track = track;
    this.ws.onSocket(track);
  }

  forward(ctx: RequestContext, cb: ForwardCallbacks, body: Buffer | null, stream: Readable | null, upstream: UpstreamPolicy): void {
    const ex = new Exchange(this, ctx, cb, body, stream, upstream);
    ctx.exchange = ex;
    this.dispatch(ex);
  }

  dispatch(ex: Exchange): void {
    ex.phase = Phase.Waiting;
    ex.abortFn = null;
    ex.dispatchedAt = performance.now();
    ex.span = startUpstreamSpan(ex.ctx, ex.upstream, ex.attempt);
    const req = ex.ctx.req;
    const headers = req.headers;
    // undici refuses Expect (node's server already answered the client's 100-continue)
    if (headers.expect !== undefined) delete headers.expect;
    const p = ex.upstream.pool;
    // undici destroys a stream body once it has sent it; the client's own request must outlive that (its
    // socket carries our answer), so it is read through an iterator that leaves it alone
    const stream = ex.bodyStream;
    const body = ex.body ?? (stream === req ? req.iterator({ destroyOnReturn: false }) as unknown as Readable : stream);
    const coarse = p.read_timeout >= COARSE_TIMER_OK_MS;
    ex.gotClient = false;
    this.pool.dispatch({
      path: ex.ctx.pathAndQuery(),
      method: ex.ctx.method,
      headers: headers as Record<string, string | string[]>,
      body,
      headersTimeout: coarse ? p.read_timeout : 0,
      bodyTimeout: p.read_timeout,
    }, ex);
    // read_timeout runs from dispatch to the head, so it also covers waiting for a pooled connection (a
    // saturated pool cannot hold a request longer than that). A request that got a connection at once is left to
    // undici's head timer (one shared tick, ~1 s resolution: no timer per request) when read_timeout is long
    // enough for that resolution; one that waits for a connection, or a short read_timeout, gets its own.
    if ((ex.phase as Phase) !== Phase.Done && (!coarse || !ex.gotClient)) ex.timer = setTimeout(readTimedOut, p.read_timeout, ex);
  }

  abort(ctx: RequestContext): void {
    const ex = ctx.exchange as Exchange | null;
    if (ex === null || ex.phase === Phase.Done) return;
    ex.finish();
    ex.span?.fail('aborted');
    ex.abortFn?.(new Error('aborted'));
  }

  clientGone(ctx: RequestContext): void {
    const ex = ctx.exchange as Exchange | null;
    if (ex === null || ex.phase >= Phase.Answered) return;
    ex.abortFn?.(new Error('client request body broke off'));
    ex.fail('error', new Error('client request body broke off'));
  }

  upgrade(req: IncomingMessage, socket: Socket, head: Buffer, onError: (err: Error) => void): void {
    this.ws.upgrade(this.policy, req, socket, head, onError);
  }

  close(): void {
    void this.pool.destroy().catch(() => undefined);
    this.ws.close();
  }
}

function readTimedOut(ex: Exchange): void {
  ex.timer = null;
  if (ex.phase >= Phase.Answered) return;
  ex.timedOut = true;
  ex.span?.fail('read_timeout');
  ex.fail('timeout', new Error('upstream read timeout'));
  ex.abortFn?.(new Error('upstream read timeout'));
}

function redispatch(ex: Exchange): void {
  if (ex.phase !== Phase.Done) ex.leg.dispatch(ex);
}

/** A client that stopped reading has drained: let undici's parser go on. */
function drained(this: ServerResponse & { [EXCHANGE]?: Exchange }): void {
  this[EXCHANGE]?.resumeFn?.();
}
const EXCHANGE = Symbol('bridge-sidecar.exchange');

/** One request's trip upstream: undici's handler (legacy callback API), retry state, and the answer. */
export class Exchange implements UpstreamAnswer {
  phase = Phase.Waiting;
  attempt = 0;
  reused = false;
  /** The pool gave this attempt a connection (see assigned()). */
  gotClient = false;
  timedOut = false;
  dispatchedAt = 0;
  abortFn: ((err: Error) => void) | null = null;
  resumeFn: (() => void) | null = null;
  timer: NodeJS.Timeout | null = null;
  span: UpstreamSpan | null = null;
  statusCode = 0;
  headers: Record<string, string | string[]> = EMPTY;
  private sink: ServerResponse | null = null;
  private readable: Readable | null = null;
  /** sendTo's endAfter: the last chunk (`held`) and the end wait for it. */
  private endAfter: Promise<unknown> | null = null;
  private held: Buffer | null = null;

  constructor(
    readonly leg: UndiciLeg,
    readonly ctx: RequestContext,
    private readonly cb: ForwardCallbacks,
    readonly body: Buffer | null,
    readonly bodyStream: Readable | null,
    /** The request's snapshot of the upstream policy (timeouts, retries). */
    readonly upstream: UpstreamPolicy,
  ) {}

  // ---- undici's handler ----------------------------------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.phase === Phase.Done) {
      abort(new Error('aborted'));
      return;
    }
    this.phase = Phase.Sent;
  }

  /**
   * The pool gave this request a connection (open, or being opened): the end of the connection wait, measured
   * as the http.Agent leg measured it (a socket assigned, its TCP connect not counted), so auto-tuning reads
   * the same figure with either leg.
   */
  assigned(reused: boolean): void {
    this.gotClient = true;
    this.reused = reused;
    this.leg.metrics.upstreamConnectionWait.observe((performance.now() - this.dispatchedAt) / 1000);
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.phase === Phase.Done) return false;
    if (statusCode < 200) {
      relayInterim(this.ctx.res, statusCode, answerHeaders(raw));
      return true;
    }
    this.phase = Phase.Answered;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.resumeFn = resume;
    this.statusCode = statusCode;
    this.headers = answerHeaders(raw);
    this.span?.response(statusCode);
    this.ctx.upstreamMs = performance.now() - this.dispatchedAt;
    this.cb.onResponse(this.ctx, this);
    return true;
  }

  onData(chunk: Buffer): boolean {
    const sink = this.sink;
    if (sink !== null) {
      if (this.endAfter !== null) {
        const prev = this.held;
        this.held = chunk;
        if (prev === null) return true;
        chunk = prev;
      }
      if (sink.write(chunk)) return true;
      const s = sink as ServerResponse & { [EXCHANGE]?: Exchange };
      s[EXCHANGE] = this;
      sink.once('drain', drained);
      return false;
    }
    if (this.readable !== null) return this.readable.push(chunk);
    return true;
  }

  onComplete(): void {
    if (this.phase === Phase.Done) return;
    this.finish();
    this.span?.end(true);
    if (this.sink !== null) {
      if (this.endAfter === null) this.endSink();
      else this.endAfter.then(() => this.endSink(), () => this.endSink());
    } else if (this.readable !== null) {
      this.readable.push(null);
    }
  }

  onError(err: Error & { code?: string }): void {
    if (this.phase === Phase.Done) return;
    if (this.phase === Phase.Answered) {
      // the body broke off after the head was sent: the client sees a cut-off answer, never a whole-looking one
      this.finish();
      this.span?.end(false);
      if (this.sink !== null) {
        this.sink.destroy(err);
        this.cb.onEnd(this.ctx, false);
      } else if (this.readable !== null) {
        this.readable.destroy(err);
      }
      return;
    }
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.span?.fail(err);
    const code = codeOf(err);
    if (code === 'UND_ERR_CONNECT_TIMEOUT') return this.fail('timeout', new Error('upstream connect timeout'));
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || this.timedOut) return this.fail('timeout', new Error('upstream read timeout'));
    const { ctx } = this;
    if (ctx.res.destroyed || (ctx.req.destroyed && !ctx.req.complete)) return this.fail('error', err); // client gone
    const replayable = this.body !== null || this.bodyStream === null;
    const v = retryVerdict(ctx.method, ctx.req.headers, code, this.reused, replayable, this.attempt, this.upstream.pool.retries);
    if (v.reason === null) return this.fail('error', err);
    this.attempt++;
    ctx.retries = this.attempt;
    this.leg.metrics.upstreamRetries.inc({ reason: v.reason });
    if (v.delayMs === 0) this.leg.dispatch(this);
    else setTimeout(redispatch, v.delayMs, this);
  }

  // ---- UpstreamAnswer ------------------------------------------------------------------------------------

  sendTo(res: ServerResponse, endAfter: Promise<unknown> | null): void {
    this.sink = res;
    this.endAfter = endAfter;
  }

  private endSink(): void {
    const last = this.held;
    this.held = null;
    if (last !== null) this.sink!.end(last);
    else this.sink!.end();
    this.cb.onEnd(this.ctx, true);
  }

  stream(): Readable {
    // a filter's pipeline that fails destroys this stream: the upstream exchange ends with it
    this.readable ??= new Readable({ read: () => this.resumeFn?.(), destroy: (err, done) => { this.destroy(); done(err); } });
    return this.readable;
  }

  destroy(): void {
    if (this.phase === Phase.Done) return;
    this.finish();
    this.span?.fail('client_gone');
    this.abortFn?.(new Error('client gone'));
  }

  // ---- endings -------------------------------------------------------------------------------------------

  finish(): void {
    this.phase = Phase.Done;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.ctx.exchange === this) this.ctx.exchange = null;
  }

  fail(kind: 'error' | 'timeout', err: Error): void {
    if (this.phase === Phase.Done) return;
    this.finish();
    this.ctx.upstreamMs = performance.now() - this.dispatchedAt;
    this.cb.onFailure(this.ctx, kind, err);
  }
}

const EMPTY: Record<string, string | string[]> = Object.freeze({}) as Record<string, string | string[]>;
