/** When a response is over: the request metrics, the trace's server span, and the access (or slow) log line. */
import type { RequestContext } from '../../core/context';
import type { Logger } from '../../observe/logger';
import { endRequestSpan } from '../../observe/tracing';
import type { Pipeline } from '../pipeline';
import type { ErrorSinks } from './errors';

export function requestFinished(p: Pipeline, ctx: RequestContext, sinks: ErrorSinks, accessLog: Logger): void {
  const res = ctx.res;
  const log = sinks.log;
  const status = res.headersSent ? res.statusCode : 499; // 499: client closed before a response (nginx)
  const ms = performance.now() - ctx.startedAt;
  sinks.metrics.observeRequest(ctx.endpoint, ctx.method, status, ms / 1000);
  if (status === 499) sinks.metrics.errors.inc({ endpoint: ctx.endpoint, error_type: 'client_closed' });
  if (ctx.traceId !== null) endRequestSpan(ctx, status, ctx.route?.policy.match.path ?? null);
  const slow = ms > p.policy.server.slow_request_threshold;
  if (slow || log.isLevelEnabled('info')) {
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
    if (slow) log.warn(line);
    else accessLog.info(line);
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
