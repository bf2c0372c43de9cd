/**
 * Runs a snapshot's stages for one request (the order is lib/stages/chain.ts's):
 *  - request phase: each onRequest in turn, synchronously while they answer synchronously; a stage that answers
 *    the request ends the phase, a rejection goes to the error mapping (request/errors.ts);
 *  - response phase: each onResponse in reverse order, collecting the body Transforms;
 *  - the end of the upstream exchange: each onUpstreamEnd once.
 * Each onRequest is traced as a child span named by the stage (no work when tracing is off).
 */
import type { Transform } from 'node:stream';
import type { RequestContext } from '../core/context';
import { ShedError, type ResponseHead, type Stage } from '../core/stage';
import { startChildSpan } from '../observe/tracing';
import type { Pipeline } from './pipeline';

/** Where the request phase goes next. */
export interface RequestPhaseEnd {
  /** Every stage let the request pass: send it upstream. */
  forward(p: Pipeline, ctx: RequestContext): void;
  /** A stage threw or rejected. */
  failed(p: Pipeline, ctx: RequestContext, err: unknown): void;
}

export function runRequestStages(p: Pipeline, ctx: RequestContext, from: number, end: RequestPhaseEnd): void {
  const stages = p.requestStages;
  for (let i = from; i < stages.length; i++) {
    const stage = stages[i];
    const span = stage.span === null ? null : startChildSpan(ctx, stage.span);
    let answered: boolean | Promise<boolean>;
    try {
      answered = stage.onRequest!(ctx);
    } catch (err) {
      span?.end(spanError(err));
      end.failed(p, ctx, err);
      return;
    }
    if (answered instanceof Promise) {
      answered.then(
        (done) => {
          span?.end();
          if (!done) runRequestStages(p, ctx, i + 1, end);
        },
        (err: unknown) => {
          span?.end(spanError(err));
          end.failed(p, ctx, err);
        },
      );
      return;
    }
    span?.end();
    if (answered) return;
  }
  end.forward(p, ctx);
}

/** The body Transforms the stages put in the response's path (in body order), or null for none. */
export function runResponseStages(p: Pipeline, ctx: RequestContext, head: ResponseHead): Transform[] | null {
  const stages = p.responseStages;
  let transforms: Transform[] | null = null;
  for (let i = 0; i < stages.length; i++) {
    const t = stages[i].onResponse!(ctx, head);
    if (t) (transforms ??= []).push(t);
  }
  return transforms;
}

export function endUpstream(p: Pipeline, ctx: RequestContext, ok: boolean): void {
  const stages: readonly Stage[] = p.endStages;
  for (let i = 0; i < stages.length; i++) stages[i].onUpstreamEnd!(ctx, ok);
}

function spanError(err: unknown): unknown {
  return err instanceof ShedError ? 'shed_' + err.reason : err;
}
