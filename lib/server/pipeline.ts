/**
 * A request's path through the sidecar, for one policy:
 *
 *   client ─▶ body (request/body.ts) ─▶ route (request/route.ts) ─▶ stages' onRequest (chain.ts) ─▶ proxy ─▶ upstream
 *   client ◀─ stages' onResponse, in reverse (chain.ts) ◀─ response head (request/headers.ts) ◀────────┘
 *
 * The stages and their order are declared in lib/stages/chain.ts; lib/server/handler.ts drives one request.
 *
 * A Pipeline is the immutable snapshot built from one policy: its router and its stages, pre-sorted by hook so
 * a stage without a hook for a phase costs nothing there. The RequestHandler holds the current one and every
 * request takes it once at arrival, so a reload never gives a request half of one policy and half of another
 * (the proxy, too, takes its timeouts and retries from the request's snapshot).
 */
import type { LoadedPolicy, Policy } from '../policy/types';
import { Router, endpointLabel, endpointPathsOf } from '../routes/router';
import type { RequestContext } from '../core/context';
import type { Stage } from '../core/stage';
import type { Component } from '../core/component';
import { tracingFor, type Tracing } from '../observe/tracing';

export class Pipeline {
  readonly policy: Policy;
  readonly router: Router;
  /** Per-endpoint limit paths double as metric labels for requests that match no route. */
  private readonly endpointPaths: ReadonlySet<string>;
  readonly needsIdentity: boolean;
  /** The process's tracer for this policy, or null when tracing is off (then no tracing work). */
  readonly tracing: Tracing | null;
  /** Stages with an onRequest hook, in chain order. */
  readonly requestStages: readonly Stage[];
  /** Stages with an onResponse hook, in reverse chain order (the order the body passes them). */
  readonly responseStages: readonly Stage[];
  /** Stages with an onFailure hook, in chain order. */
  readonly failureStages: readonly Stage[];
  /** Stages with an onUpstreamEnd hook. */
  readonly endStages: readonly Stage[];

  constructor(
    readonly loaded: LoadedPolicy,
    /** The policy's stages in chain order. */
    readonly stages: readonly Stage[],
  ) {
    this.policy = loaded.policy;
    this.router = new Router(this.policy.routes);
    this.endpointPaths = endpointPathsOf(this.policy);
    this.needsIdentity = this.policy.rate_limiting !== null || this.router.routes.some((r) => r.usesIdentity);
    this.tracing = tracingFor(this.policy.tracing);
    this.requestStages = stages.filter((s) => s.onRequest !== undefined);
    this.responseStages = stages.filter((s) => s.onResponse !== undefined).reverse();
    this.failureStages = stages.filter((s) => s.onFailure !== undefined);
    this.endStages = stages.filter((s) => s.onUpstreamEnd !== undefined);
  }

  endpointFor(ctx: RequestContext): string {
    return endpointLabel(ctx.route, ctx.path, this.endpointPaths);
  }
}

/** The snapshot for `next`: each component (in chain order) builds its stage for the policy, or none. */
export function buildPipeline(next: LoadedPolicy, previous: LoadedPolicy | null, ordered: ReadonlyArray<Component<Stage>>): Pipeline {
  const stages: Stage[] = [];
  for (const c of ordered) {
    const s = c.configure(next, previous);
    if (s !== null) stages.push(s);
  }
  return new Pipeline(next, stages);
}
