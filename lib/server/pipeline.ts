/**
 * A request's path through the sidecar, for one policy:
 *
 *   client ─▶ body limit ─▶ route match ─▶ rate limit ─▶ cache lookup ─▶ rate limit ─▶ queue ─▶ proxy ─▶ upstream
 *   client ◀─ response filters (events, compression, cache store) ◀─────────── (count: upstream) ───────┘
 *
 * A Pipeline is an immutable snapshot built from one policy. The RequestHandler holds the current one and every
 * request takes it once at arrival, so a reload never gives a request half of one policy and half of another.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, pipeline as streamPipeline, type Readable } from 'node:stream';
import type { LoadedPolicy, Policy } from '../policy/types';
import { Router, queueClassOf } from '../routes/router';
import { parseJson } from '../routes/json-body';
import { RequestContext } from '../core/context';
import type { CacheStage, QueueStage, RateLimitStage, Release, ResponseFilter, ResponseHead } from '../core/stage';
import { ShedError } from '../core/stage';
import { UpstreamProxy, type ForwardCallbacks, type UpstreamFailure } from '../stages/proxy';
import { resolveIdentity } from '../stages/identity';
import { sendRateLimited } from '../stages/ratelimit';
import { sendShed } from '../stages/queue';
import { sendProblem, VIA } from './problem';
import { isHopByHop, stripRequestHopByHop } from './hop-by-hop';
import { OWN_CACHE_CONTROL } from '../cache/response-fields';
import { expectsContinue } from './interim';
import type { Runtime } from '../core/component';
import { accessLoggerFor, type Logger } from '../observe/logger';
import { tracingFor, startChildSpan, endRequestSpan, type Tracing } from '../observe/tracing'; // tracing (issue 9)

/** Bodies up to this size are kept in memory when the request may need replaying on a retry. */
const REPLAY_BODY_LIMIT = 64 * 1024;

export interface PipelineStages {
  rateLimit: RateLimitStage | null;
  cache: CacheStage | null;
  queue: QueueStage | null;
  filters: readonly ResponseFilter[];
}

export class Pipeline {
  readonly policy: Policy;
  readonly router: Router;
  /** Per-endpoint limit paths double as metric labels for requests that match no route. */
  private readonly endpointPaths: ReadonlySet<string>;
  readonly needsIdentity: boolean;
  /** tracing (issue 9): the process's tracer for this policy, or null when tracing is off (then no tracing work). */
  readonly tracing: Tracing | null;

  constructor(
    readonly loaded: LoadedPolicy,
    readonly stages: PipelineStages,
  ) {
    this.policy = loaded.policy;
    this.router = new Router(this.policy.routes);
    this.endpointPaths = new Set(Object.keys(this.policy.rate_limiting?.per_endpoint ?? {}).filter((k) => k.startsWith('/')));
    this.needsIdentity = this.policy.rate_limiting !== null || this.router.routes.some((r) => r.usesIdentity);
    this.tracing = tracingFor(this.policy.tracing); // tracing (issue 9)
  }

  endpointFor(ctx: RequestContext): string {
    if (ctx.route) return ctx.route.name;
    return this.endpointPaths.has(ctx.path) ? ctx.path : 'other';
  }
}

class BodyTooLarge extends Error {}

/**
 * The pipeline's own per-request state on top of what every stage shares: the policy snapshot the request took
 * on arrival and its queue slot while it is upstream. Kept on the context, so forwarding needs no closures.
 */
class PipelineContext extends RequestContext {
  release: Release | null = null;
  forwardedAt = 0;
  constructor(req: IncomingMessage, res: ServerResponse, startedAt: number, readonly pipeline: Pipeline) {
    super(req, res, startedAt);
  }
}

export class RequestHandler implements ForwardCallbacks {
  private current: Pipeline;
  /** Set on SIGTERM: responses carry Connection: close so keep-alive clients move on. */
  draining = false;
  private readonly log: Logger;
  /** Where access lines go: batched writes to stdout (see accessLoggerFor). */
  private readonly accessLog: Logger;

  constructor(
    pipeline: Pipeline,
    private readonly proxy: UpstreamProxy,
    private readonly rt: Runtime,
  ) {
    this.current = pipeline;
    this.log = rt.log;
    this.accessLog = accessLoggerFor(rt.log);
  }

  get pipeline(): Pipeline {
    return this.current;
  }

  swap(next: Pipeline): void {
    this.current = next;
    this.rt.metrics.applyPolicy(next.policy);
  }

  /** The server's 'request' listener. */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const p = this.current;
    const ctx = new PipelineContext(req, res, performance.now(), p);
    if (p.tracing !== null) p.tracing.startRequest(ctx); // tracing (issue 9): server span, sets ctx.traceId
    res.on('close', () => this.finished(p, ctx)); // a response closes once
    if (this.draining) res.shouldKeepAlive = false;

    const max = p.policy.server.client_max_body_size;
    const cl = req.headers['content-length'];
    const declared = cl === undefined ? -1 : Number(cl);
    if (declared > max) {
      // refuse before reading: the connection is closed so the unread body cannot be taken for a next request
      ctx.endpoint = p.endpointFor(ctx);
      refuseTooLarge(res, `request body of ${declared} bytes exceeds client_max_body_size (${max})`);
      return;
    }
    if (expectsContinue(req)) {
      // the body may come: say so now (node leaves it to us once a checkContinue listener exists; a server
      // without one has sent it already), and not again upstream
      if (!(res as unknown as { _sent100: boolean })._sent100) res.writeContinue();
      delete req.headers.expect;
    }
    const hasBody = declared > 0 || req.headers['transfer-encoding'] !== undefined;
    // A route that matches on the body (or takes params from it) needs it read and parsed. Small bodies are also
    // read whole (not parsed) when retries are on: a request can only be replayed (after a stale pooled socket,
    // or for idempotent calls after an error) if its body is still at hand.
    const routeNeedsBody = hasBody && p.router.needsBody(ctx.method, ctx.path);
    if (routeNeedsBody || (hasBody && declared > 0 && declared <= REPLAY_BODY_LIMIT && p.policy.upstream.pool.retries > 0)) {
      readBody(req, max).then(
        (body) => {
          ctx.body = body;
          if (routeNeedsBody) ctx.json = parseJson(body, req.headers['content-type']);
          this.route(p, ctx);
        },
        (err: unknown) => {
          if (err instanceof BodyTooLarge) refuseTooLarge(res, `request body exceeds client_max_body_size (${max})`);
          else if (!res.headersSent) sendProblem(res, 400, 'bad-request', 'Bad Request', 'the request body could not be read', null, true);
        },
      );
      return;
    }
    this.route(p, ctx);
  };

  private route(p: Pipeline, ctx: RequestContext): void {
    if (!p.router.empty) {
      const m = p.router.match({ method: ctx.method, path: ctx.path, query: ctx.query, headers: ctx.req.headers, json: ctx.json });
      if (m) {
        ctx.route = m.route;
        ctx.params = m.params;
      }
    }
    ctx.endpoint = p.endpointFor(ctx);
    ctx.priority = queueClassOf(ctx.route, p.policy);
    if (p.needsIdentity) {
      ctx.identity = resolveIdentity(ctx, p.policy.rate_limiting?.identity ?? null);
      if (ctx.route?.usesIdentity) {
        for (const [name, src] of ctx.route.params) if (src.kind === 'identity') ctx.params[name] = ctx.identity;
      }
    }
    const rl = p.stages.rateLimit;
    if (rl) {
      const span = startChildSpan(ctx, 'ratelimit.check'); // tracing (issue 9): no-op when off
      const d = rl.check(ctx);
      if (isPromise(d)) {
        d.then((dec) => { span.end(); this.afterLimit(p, ctx, dec); }, (err: unknown) => { span.end(err); this.internalError(ctx, err); });
        return;
      }
      span.end();
      this.afterLimit(p, ctx, d);
      return;
    }
    this.lookup(p, ctx);
  }

  private afterLimit(p: Pipeline, ctx: RequestContext, d: Awaited<ReturnType<RateLimitStage['check']>>, upstream = false): void {
    if (!d.allowed) {
      ctx.limitOutcome = 'rejected:' + d.scope;
      this.rt.metrics.errors.inc({ endpoint: ctx.endpoint, error_type: 'rate_limited' });
      sendRateLimited(ctx.res, d);
      return;
    }
    if (d.headers) for (const [k, v] of d.headers) ctx.addHeader(k, v);
    if (upstream) this.admit(p, ctx);
    else this.lookup(p, ctx);
  }

  /** Not answered from the cache: the limits that count only upstream requests (`count: upstream`) apply now. */
  private toUpstream(p: Pipeline, ctx: RequestContext): void {
    const rl = p.stages.rateLimit;
    if (rl === null || !rl.countsUpstream) {
      this.admit(p, ctx);
      return;
    }
    const d = rl.check(ctx, true);
    if (isPromise(d)) d.then((dec) => this.afterLimit(p, ctx, dec, true), (err: unknown) => this.internalError(ctx, err));
    else this.afterLimit(p, ctx, d, true);
  }

  private lookup(p: Pipeline, ctx: RequestContext): void {
    const cache = p.stages.cache;
    if (cache) {
      const span = startChildSpan(ctx, 'cache.lookup'); // tracing (issue 9): no-op when off
      const served = cache.lookup(ctx);
      if (isPromise(served)) {
        served.then((s) => { span.end(); if (!s) this.toUpstream(p, ctx); }, (err: unknown) => { span.end(err); this.internalError(ctx, err); });
        return;
      }
      span.end();
      if (served) return;
    }
    this.toUpstream(p, ctx);
  }

  private admit(p: Pipeline, ctx: RequestContext): void {
    if (ctx.res.destroyed) return;
    const q = p.stages.queue;
    if (!q) {
      this.forward(p, ctx, null);
      return;
    }
    const queuedAt = performance.now();
    const span = startChildSpan(ctx, 'queue.wait'); // tracing (issue 9): no-op when off
    let r: Release | Promise<Release>;
    try {
      r = q.acquire(ctx);
    } catch (err) {
      span.end(err instanceof ShedError ? 'shed_' + err.reason : err);
      this.shed(p, ctx, err);
      return;
    }
    if (isPromise(r)) {
      r.then(
        (release) => {
          span.end();
          ctx.queueMs = performance.now() - queuedAt;
          if (ctx.res.destroyed) release({ ok: false, latencyMs: 0 }); // client gone: not a latency sample
          else this.forward(p, ctx, release);
        },
        (err: unknown) => { span.end(err instanceof ShedError ? 'shed_' + err.reason : err); this.shed(p, ctx, err); },
      );
      return;
    }
    span.end();
    ctx.queueMs = 0;
    this.forward(p, ctx, r);
  }

  private shed(p: Pipeline, ctx: RequestContext, err: unknown): void {
    if (!(err instanceof ShedError)) {
      this.internalError(ctx, err);
      return;
    }
    if (err.reason === 'client_gone' || ctx.res.destroyed) return;
    this.rt.metrics.errors.inc({ endpoint: ctx.endpoint, error_type: 'shed' });
    staleOr(p, ctx, 'shed', () => sendShed(ctx.res, err));
  }

  private forward(p: Pipeline, ctx: RequestContext, release: Release | null): void {
    const req = ctx.req;
    // decide how the body travels before hop-by-hop fields (Transfer-Encoding among them) are stripped
    let stream: Readable | null = null;
    if (ctx.body === null && (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined)) {
      stream = req.headers['content-length'] !== undefined ? req
        : req.pipe(sizeLimiter(p.policy.server.client_max_body_size, ctx, () => this.proxy.abort(ctx)));
    }
    // reliability (issue 13): a streamed body that breaks off (parse error, client reset) ends the upstream
    // exchange at once instead of leaving it to wait for the rest until read_timeout
    if (stream !== null) req.once('close', () => { if (!req.complete) this.proxy.clientGone(ctx); });
    stripRequestHopByHop(req.headers);
    // reliability: an upstream framework that routes by X-Original-URL / X-Rewrite-URL would answer another path
    // than the request line's, and the cache would store that answer under the request line's key for everyone
    // (cache poisoning). On routes the cache may store, the sidecar does not pass them on.
    if (ctx.route !== null && ctx.route.policy.cache !== null) {
      if (req.headers['x-original-url'] !== undefined) delete req.headers['x-original-url'];
      if (req.headers['x-rewrite-url'] !== undefined) delete req.headers['x-rewrite-url'];
    }
    const xff = req.headers['x-forwarded-for'];
    const addr = req.socket.remoteAddress ?? '';
    req.headers['x-forwarded-for'] = xff ? `${xff}, ${addr}` : addr;
    req.headers['x-forwarded-proto'] ??= 'http';
    // reliability (issue 13): a client's own X-Forwarded-Host is kept only behind a trusted proxy
    // (identity.trust_forwarded_for); otherwise it is set from Host, so a client cannot make an upstream that
    // reflects it put an attacker's host into a cached answer another client then gets (cache poisoning)
    if (req.headers.host !== undefined) {
      if (p.policy.rate_limiting?.identity.trust_forwarded_for === true) req.headers['x-forwarded-host'] ??= req.headers.host;
      else req.headers['x-forwarded-host'] = req.headers.host;
    }
    const via = req.headers.via;
    req.headers.via = via ? `${via}, ${VIA}` : VIA;

    const pc = ctx as PipelineContext;
    pc.release = release;
    pc.forwardedAt = performance.now();
    this.proxy.forward(ctx, this, ctx.body, stream);
  }

  /** Give the request's queue slot back once, with how the exchange went (the adaptive limit learns from it). */
  private done(ctx: PipelineContext, ok: boolean): void {
    const release = ctx.release;
    if (release === null) return;
    ctx.release = null;
    release({ ok, latencyMs: performance.now() - ctx.forwardedAt });
  }

  /** ForwardCallbacks: the upstream answered. */
  onResponse(ctx: RequestContext, up: IncomingMessage): void {
    const pc = ctx as PipelineContext;
    this.respond(pc.pipeline, pc, up);
  }

  /** ForwardCallbacks: no answer could be had (502/504, or stale-if-error). */
  onFailure(ctx: RequestContext, kind: UpstreamFailure, err: Error | null): void {
    const pc = ctx as PipelineContext;
    this.done(pc, false);
    this.upstreamFailed(pc.pipeline, pc, kind, err);
  }

  private respond(p: Pipeline, ctx: PipelineContext, up: IncomingMessage): void {
    const res = ctx.res;
    const headers: Record<string, string | string[]> = {};
    const src = up.headers;
    const connection = src.connection;
    for (const name in src) {
      const v = src[name];
      if (v === undefined || isHopByHop(name, connection)) continue;
      headers[name] = v;
    }
    // node keeps only the first of several Expires lines; the cache must see them all (several = expired)
    if (headers.expires !== undefined) headers.expires = fieldLines(up.rawHeaders, 'expires');
    const prevVia = headers.via;
    headers.via = prevVia ? `${prevVia}, ${VIA}` : VIA;
    if (ctx.extraHeaders) for (const [k, v] of ctx.extraHeaders) headers[k] = v;
    const head: ResponseHead = { status: up.statusCode ?? 502, headers };
    if (head.status >= 500) this.rt.metrics.errors.inc({ endpoint: ctx.endpoint, error_type: 'upstream_5xx' });

    const filters = p.stages.filters;
    let transforms: Transform[] | null = null;
    for (let i = 0; i < filters.length; i++) {
      const t = filters[i].onResponse(ctx, head);
      if (t) (transforms ??= []).push(t);
    }
    if (res.destroyed) {
      up.destroy();
      this.done(ctx, true);
      return;
    }
    if (this.draining) head.headers.connection = 'close';
    // the sidecar's own cache directives are for the cache filter above, never for the client
    if (head.headers[OWN_CACHE_CONTROL] !== undefined) delete head.headers[OWN_CACHE_CONTROL];
    res.writeHead(head.status, head.headers);
    // a streamed answer (SSE, chunked) sends its head now: node would hold it until the first body byte, and
    // a long-lived event stream may not have one for minutes
    if (up.headers['content-length'] === undefined && ctx.method !== 'HEAD') res.flushHeaders();
    ctx.responded = true;
    if (transforms === null) {
      up.on('error', () => res.destroy());
      if (ctx.release !== null) up.on('end', () => this.done(ctx, true));
      up.pipe(res);
    } else {
      streamPipeline([up, ...transforms, res], (err) => {
        this.done(ctx, !err);
        if (err && !res.destroyed) res.destroy();
      });
    }
  }

  private upstreamFailed(p: Pipeline, ctx: RequestContext, kind: UpstreamFailure, err: Error | null): void {
    if (ctx.res.destroyed || ctx.res.headersSent) return;
    this.rt.metrics.errors.inc({ endpoint: ctx.endpoint, error_type: kind === 'timeout' ? 'upstream_timeout' : 'upstream_error' });
    const send = () => {
      if (kind === 'timeout') sendProblem(ctx.res, 504, 'upstream-timeout', 'Gateway Timeout', err?.message ?? 'the upstream did not answer in time');
      else sendProblem(ctx.res, 502, 'upstream-unavailable', 'Bad Gateway', `the upstream could not be reached: ${err?.message ?? 'error'}`);
    };
    staleOr(p, ctx, kind, send);
  }

  private internalError(ctx: RequestContext, err: unknown): void {
    this.log.error({ err, path: ctx.path }, 'internal error in request pipeline');
    this.rt.metrics.errors.inc({ endpoint: ctx.endpoint, error_type: 'internal' });
    sendProblem(ctx.res, 500, 'internal', 'Internal Server Error', 'the sidecar failed to handle the request');
  }

  private finished(p: Pipeline, ctx: RequestContext): void {
    const res = ctx.res;
    const status = res.headersSent ? res.statusCode : 499; // 499: client closed before a response (nginx)
    const ms = performance.now() - ctx.startedAt;
    this.rt.metrics.observeRequest(ctx.endpoint, ctx.method, status, ms / 1000);
    if (status === 499) this.rt.metrics.errors.inc({ endpoint: ctx.endpoint, error_type: 'client_closed' });
    if (ctx.traceId !== null) endRequestSpan(ctx, status, ctx.route?.policy.match.path ?? null); // tracing (issue 9)
    const slow = ms > p.policy.server.slow_request_threshold;
    if (slow || this.log.isLevelEnabled('info')) {
      const line = {
        msg: slow ? 'slow request' : 'access',
        method: ctx.method,
        path: ctx.path,
        route: ctx.route?.name ?? null,
        status,
        duration_ms: round(ms),
        upstream_ms: ctx.upstreamMs < 0 ? null : round(ctx.upstreamMs),
        queue_ms: ctx.queueMs < 0 ? null : round(ctx.queueMs),
        cache: ctx.cacheStatus,
        limit: ctx.limitOutcome,
        retries: ctx.retries || undefined,
        bytes_out: res.getHeader('content-length') ?? undefined,
        client: ctx.clientAddress,
        trace_id: ctx.traceId ?? undefined,
      };
      if (slow) this.log.warn(line);
      else this.accessLog.info(line);
    }
  }
}

/**
 * The request could not be forwarded (shed, upstream error or timeout): serve a stale cached copy if the cache's
 * rules allow (stale-if-error), else `send` the refusal.
 */
function staleOr(p: Pipeline, ctx: RequestContext, kind: 'shed' | UpstreamFailure, send: () => void): void {
  const cache = p.stages.cache;
  if (cache === null) return send();
  const served = cache.onFailure(ctx, kind);
  if (isPromise(served)) served.then((ok) => { if (!ok) send(); }, send);
  else if (!served) send();
}

/** 413 with Connection: close, so an unread body cannot be taken for the connection's next request. */
function refuseTooLarge(res: ServerResponse, detail: string): void {
  sendProblem(res, 413, 'body-too-large', 'Content Too Large', detail, null, true);
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** Every line of one field, from node's raw header list (names in any case). */
function fieldLines(raw: readonly string[], name: string): string | string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === name.length && raw[i].toLowerCase() === name) out.push(raw[i + 1]);
  return out.length === 1 ? out[0] : out;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}


/**
 * Counts a streamed (chunked) body and fails the exchange with 413 once it passes the limit. It never emits an
 * error (nothing would handle it): past the limit it aborts the upstream request, answers 413 with
 * Connection: close, and swallows the rest.
 */
function sizeLimiter(limit: number, ctx: RequestContext, abortUpstream: () => void): Transform {
  let size = 0;
  let over = false;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (over) return cb();
      size += chunk.length;
      if (size > limit) {
        over = true;
        // the upstream must never see a truncated body as if it were whole: abort its request first
        abortUpstream();
        refuseTooLarge(ctx.res, `request body exceeds client_max_body_size (${limit})`);
        return cb();
      }
      cb(null, chunk);
    },
  });
}
