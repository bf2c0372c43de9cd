/** Which route a request takes, and what follows from it: metric label, priority, identity, route params. */
import type { RequestContext } from '../../core/context';
import { resolveIdentity } from '../../stages/identity';
import { queueClassOf } from '../../routes/router';
import type { Pipeline } from '../pipeline';
import { useLocalReply } from '../local-reply';

export function routeRequest(p: Pipeline, ctx: RequestContext): void {
  if (!p.router.empty) {
    const m = p.router.match({ method: ctx.method, path: ctx.path, query: ctx.query, headers: ctx.req.headers, json: ctx.json });
    if (m) {
      ctx.route = m.route;
      ctx.params = m.params;
      if (m.route.policy.local_reply !== null) useLocalReply(ctx.res, p.policy, m.route.policy);
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
}
