/**
 * Drives one request through the snapshot it took on arrival (see ./pipeline.ts for the map):
 * body -> route -> stages -> proxy -> stages on the response -> client. Each step's decisions live in its own
 * module; this class only sequences them and holds what a worker has for its whole life (the proxy, the logs).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { RequestContext } from '../core/context';
import type { Runtime } from '../core/component';
import type { ResponseHead } from '../core/stage';
import { EndGate } from '../core/end-gate';
import { pipeChain } from '../core/pipe-chain';
import type { ForwardCallbacks, UpstreamAnswer, UpstreamFailure, UpstreamLeg } from '../stages/upstream/types';
import { accessLoggerFor, type Logger } from '../observe/logger';
import type { Pipeline } from './pipeline';
import { endUpstream, runRequestStages, runResponseStages, type RequestPhaseEnd } from './chain';
import { parseJson } from '../routes/json-body';
import { BodyTooLarge, readBody, refuseTooLarge, REPLAY_BODY_LIMIT, sizeLimiter } from './request/body';
import { routeRequest } from './request/route';
import { responseHeadFrom, rewriteRequestHeaders } from './request/headers';
import { requestFailed, upstreamFailed, type ErrorSinks } from './request/errors';
import { requestFinished } from './request/access-log';
import { sendProblem } from './problem';
import { useLocalReply } from './local-reply';
import { expectsContinue } from './interim';
import { OWN_CACHE_CONTROL } from '../cache/response-fields';

/** The request's context plus the snapshot it took on arrival and its handler: the proxy's callbacks and the close listener find them there. */
class PipelineContext extends RequestContext {
  constructor(req: IncomingMessage, res: ServerResponse, startedAt: number, readonly pipeline: Pipeline, readonly handler: RequestHandler) {
    super(req, res, startedAt);
  }
}

const CONTEXT = Symbol('bridge-sidecar.context');
type ClosingResponse = ServerResponse & { [CONTEXT]?: PipelineContext };

function onResponseClose(this: ClosingResponse): void {
  const ctx = this[CONTEXT]!;
  ctx.handler.closed(ctx);
}

type ClosingRequest = IncomingMessage & { [CONTEXT]?: PipelineContext };

function onRequestClose(this: ClosingRequest): void {
  const ctx = this[CONTEXT];
  if (ctx !== undefined && !this.complete) ctx.handler.bodyBrokeOff(ctx);
}

export class RequestHandler implements ForwardCallbacks, RequestPhaseEnd {
  private current: Pipeline;
  /** Set on SIGTERM: responses carry Connection: close so keep-alive clients move on. */
  draining = false;
  private readonly sinks: ErrorSinks;
  /** Where access lines go: batched writes to stdout (see accessLoggerFor). */
  private readonly accessLog: Logger;

  constructor(
    pipeline: Pipeline,
    private readonly proxy: UpstreamLeg,
    private readonly rt: Runtime,
  ) {
    this.current = pipeline;
    this.sinks = { log: rt.log, metrics: rt.metrics };
    this.accessLog = accessLoggerFor(rt.log);
  }

  get pipeline(): Pipeline {
    return this.current;
  }

  swap(next: Pipeline): void {
    this.current = next;
    this.rt.metrics.setBuckets(next.policy.metrics.buckets);
  }

  /** The server's 'request' listener. */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const p = this.current;
    const ctx = new PipelineContext(req, res, performance.now(), p, this);
    if (p.tracing !== null) p.tracing.startRequest(ctx); // server span, sets ctx.traceId
    // one listener function for every response (no closure per request): it finds the context on the response
    (res as ClosingResponse)[CONTEXT] = ctx;
    res.on('close', onResponseClose);
    if (this.draining) res.shouldKeepAlive = false;
    if (p.policy.local_reply !== null) useLocalReply(res, p.policy, null); // the sidecar's own answers, in the upstream's shape

    const max = p.policy.server.client_max_body_size;
    const cl = req.headers['content-length'];
    const declared = cl === undefined ? -1 : Number(cl);
    if (declared > max) {
      // refuse before reading: the connection is closed so the unread body cannot be taken for a next request.
      // A client that sends the body anyway has it read and dropped first (bounded), so it gets this 413 and
      // not a reset; one waiting for 100-continue sends no body, so nothing is waited for
      ctx.endpoint = p.endpointFor(ctx);
      refuseTooLarge(res, `request body of ${declared} bytes exceeds client_max_body_size (${max})`, expectsContinue(req) ? null : req);
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
          this.start(p, ctx);
        },
        (err: unknown) => {
          if (err instanceof BodyTooLarge) refuseTooLarge(res, `request body exceeds client_max_body_size (${max})`, req);
          else if (!res.headersSent) sendProblem(res, 400, 'bad-request', 'Bad Request', 'the request body could not be read', null, true);
        },
      );
      return;
    }
    this.start(p, ctx);
  };

  /** The response closed (once): end an upstream exchange the client left behind, then the metrics and the log line. */
  closed(ctx: PipelineContext): void {
    // the client left while the upstream was still at it: end that exchange, free its connection
    if (ctx.exchange !== null) this.proxy.abort(ctx);
    requestFinished(ctx.pipeline, ctx, this.sinks, this.accessLog);
  }

  /** The client's streamed body broke off before its end: the upstream exchange ends now, not at read_timeout. */
  bodyBrokeOff(ctx: PipelineContext): void {
    this.proxy.clientGone(ctx);
  }

  private start(p: Pipeline, ctx: RequestContext): void {
    routeRequest(p, ctx);
    runRequestStages(p, ctx, 0, this);
  }

  /** RequestPhaseEnd: every stage let the request pass. */
  forward(p: Pipeline, ctx: RequestContext): void {
    if (ctx.res.destroyed) return;
    const req = ctx.req;
    // decide how the body travels before hop-by-hop fields (Transfer-Encoding among them) are stripped
    let stream: Readable | null = null;
    if (ctx.body === null && (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined)) {
      stream = req.headers['content-length'] !== undefined ? req
        : req.pipe(sizeLimiter(p.policy.server.client_max_body_size, ctx, () => this.proxy.abort(ctx)));
    }
    // a streamed body that breaks off (parse error, client reset) ends the upstream exchange at once instead of
    // leaving it to wait for the rest until read_timeout
    if (stream !== null) {
      (req as ClosingRequest)[CONTEXT] = ctx as PipelineContext;
      req.on('close', onRequestClose);
    }
    rewriteRequestHeaders(p.policy, ctx);
    ctx.forwardedAt = performance.now();
    this.proxy.forward(ctx, this, ctx.body, stream, p.policy.upstream);
  }

  /** RequestPhaseEnd: a stage threw or rejected. */
  failed(p: Pipeline, ctx: RequestContext, err: unknown): void {
    requestFailed(p, ctx, err, this.sinks);
  }

  /** ForwardCallbacks: the upstream answered. */
  onResponse(ctx: RequestContext, up: UpstreamAnswer): void {
    this.respond((ctx as PipelineContext).pipeline, ctx, up);
  }

  /** ForwardCallbacks: after sendTo, the answer's body went to the client whole (ok) or broke off. */
  onEnd(ctx: RequestContext, ok: boolean): void {
    const p = (ctx as PipelineContext).pipeline;
    if (p.endStages.length !== 0) endUpstream(p, ctx, ok);
  }

  /** ForwardCallbacks: no answer could be had (502/504, or stale-if-error). */
  onFailure(ctx: RequestContext, kind: UpstreamFailure, err: Error | null): void {
    const p = (ctx as PipelineContext).pipeline;
    endUpstream(p, ctx, false);
    upstreamFailed(p, ctx, kind, err, this.sinks);
  }

  private respond(p: Pipeline, ctx: RequestContext, up: UpstreamAnswer): void {
    const res = ctx.res;
    const head = responseHeadFrom(up, ctx);
    if (head.status >= 500) this.rt.metrics.errors.inc({ endpoint: ctx.endpoint, error_type: 'upstream_5xx' });
    const transforms = runResponseStages(p, ctx, head);
    if (res.destroyed) {
      up.destroy();
      endUpstream(p, ctx, true);
      return;
    }
    if (this.draining) head.headers.connection = 'close';
    // the sidecar's own cache directives are for the cache stage, never for the client
    if (head.headers[OWN_CACHE_CONTROL] !== undefined) delete head.headers[OWN_CACHE_CONTROL];
    // a stage that must see the body before the head is final releases it from its Transform (ResponseHead.hold);
    // without one the head is written now, with no closure made for it
    if (head.hold === undefined || transforms === null) writeResponseHead(res, ctx.method, head, up);
    else head.hold.whenReleased(() => writeResponseHead(res, ctx.method, head, up));
    ctx.responded = true;
    const endAfter = head.endAfter ?? null;
    if (transforms === null) {
      up.sendTo(res, endAfter);
    } else {
      if (endAfter !== null) transforms.push(new EndGate(endAfter));
      pipeChain(up.stream(), transforms, res, (err) => {
        endUpstream(p, ctx, !err);
        if (err && !res.destroyed) res.destroy();
      });
    }
  }
}

function writeResponseHead(res: ServerResponse, method: string, head: ResponseHead, up: UpstreamAnswer): void {
  res.writeHead(head.status, head.headers);
  // a streamed answer (SSE, chunked) sends its head now: node would hold it until the first body byte, and
  // a long-lived event stream may not have one for minutes. Not a bodiless answer (304, 204, HEAD): its head
  // is the whole answer, and flushing it would end the exchange for the client while the upstream body still
  // flows into the cache (a 304 made by the cache stage stores the 200 behind it).
  if (up.headers['content-length'] === undefined && method !== 'HEAD' && head.status !== 304 && head.status !== 204) {
    res.flushHeaders();
  }
}
