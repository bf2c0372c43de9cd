/**
 * POST /debug/explain on the admin port (token-guarded like /debug/profile: it shows keys and identities):
 * the explanation of the posted request under the policy in force, with its limits' current state (the pod's
 * counters, or Redis's with `scope: cluster`).
 *
 *   body:  {"method": "POST", "url": "/query_script", "headers": {"x-user-id": "alice"}, "body": {...}}
 *   reply: {"explanation": {...}, "text": "<what the CLI prints>"}
 */
import type { AdminServer } from '../server/admin';
import type { LoadedPolicy } from '../policy/types';
import type { RateLimitLeaseService } from '../stages/ratelimit/service';
import { compileLimits } from '../stages/ratelimit/limits';
import { explain, type LiveState } from './explain';
import { formatExplanation } from './format';
import { ExplainInputError, fromJson } from './request';

export function registerExplainEndpoint(admin: AdminServer, policy: () => LoadedPolicy, limits: () => RateLimitLeaseService | null): void {
  admin.route('POST', '/debug/explain', async ({ body }) => {
    let req;
    try {
      req = fromJson(body);
    } catch (e) {
      if (e instanceof ExplainInputError) return { status: 400, body: { error: e.message } };
      throw e;
    }
    const loaded = policy();
    const s = limits();
    let live: LiveState | null = null;
    if (s !== null) {
      // which limits apply comes from the explanation itself; their state is read for those (from Redis with
      // scope: cluster, which is why it is read before, not while, explaining)
      const applying = explain(loaded, req).limits.limits;
      const specs = loaded.policy.rate_limiting === null ? null : compileLimits(loaded.policy.rate_limiting);
      const wanted = specs === null ? [] : applying.flatMap((l) => {
        const spec = l.scope === 'global' ? specs.global : l.scope === 'per_user' ? specs.perUser : specs.endpoints.get(l.key) ?? null;
        return spec === null ? [] : [{ spec, key: l.key }];
      });
      const states = await s.states(wanted);
      live = states === null ? null : { limit: states };
    }
    const e = explain(loaded, req, { live });
    return { status: 200, body: { explanation: e, text: formatExplanation(e) } };
  }, { guarded: true });
}
