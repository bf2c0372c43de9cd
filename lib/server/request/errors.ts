/**
 * What the client gets when the request cannot go the normal way: shed by the queue (503), no answer from the
 * upstream (502/504), or a stage failed (500). Before a 503/502/504, the stages with an onFailure hook (the
 * cache's stale-if-error) may answer instead.
 */
import type { RequestContext } from '../../core/context';
import { ShedError, type FailureKind } from '../../core/stage';
import type { Logger } from '../../observe/logger';
import type { WorkerMetrics } from '../../observe/metrics';
import { sendShed } from '../../stages/queue';
import type { UpstreamFailure } from '../../stages/proxy';
import { sendProblem } from '../problem';
import type { Pipeline } from '../pipeline';

export interface ErrorSinks {
  readonly log: Logger;
  readonly metrics: WorkerMetrics;
}

/** A stage's onRequest threw or rejected: ShedError -> 503 (or stale), anything else -> 500. */
export function requestFailed(p: Pipeline, ctx: RequestContext, err: unknown, sinks: ErrorSinks): void {
  if (!(err instanceof ShedError)) {
    internalError(ctx, err, sinks);
    return;
  }
  if (err.reason === 'client_gone' || ctx.res.destroyed) return;
  sinks.metrics.errors.inc({ endpoint: ctx.endpoint, error_type: 'shed' });
  staleOr(p, ctx, 'shed', () => sendShed(ctx.res, err));
}

/** No answer from the upstream: 504 on a timeout, 502 otherwise (or stale). */
export function upstreamFailed(p: Pipeline, ctx: RequestContext, kind: UpstreamFailure, err: Error | null, sinks: ErrorSinks): void {
  if (ctx.res.destroyed || ctx.res.headersSent) return;
  sinks.metrics.errors.inc({ endpoint: ctx.endpoint, error_type: kind === 'timeout' ? 'upstream_timeout' : 'upstream_error' });
  staleOr(p, ctx, kind, () => {
    if (kind === 'timeout') sendProblem(ctx.res, 504, 'upstream-timeout', 'Gateway Timeout', err?.message ?? 'the upstream did not answer in time');
    else sendProblem(ctx.res, 502, 'upstream-unavailable', 'Bad Gateway', `the upstream could not be reached: ${err?.message ?? 'error'}`);
  });
}

export function internalError(ctx: RequestContext, err: unknown, sinks: ErrorSinks): void {
  sinks.log.error({ err, path: ctx.path }, 'internal error in request pipeline');
  sinks.metrics.errors.inc({ endpoint: ctx.endpoint, error_type: 'internal' });
  sendProblem(ctx.res, 500, 'internal', 'Internal Server Error', 'the sidecar failed to handle the request');
}

/** Let the stages' onFailure hooks answer in turn (first true wins); if none does, `send` the refusal. */
function staleOr(p: Pipeline, ctx: RequestContext, kind: FailureKind, send: () => void, from = 0): void {
  const stages = p.failureStages;
  for (let i = from; i < stages.length; i++) {
    const served = stages[i].onFailure!(ctx, kind);
    if (served instanceof Promise) {
      served.then((ok) => { if (!ok) staleOr(p, ctx, kind, send, i + 1); }, send);
      return;
    }
    if (served) return;
  }
  send();
}
