/**
 * POST /debug/explain on the admin port (token-guarded like /debug/profile: it shows keys and identities):
 * the explanation of the posted request under the policy in force, with the pod's current limit state.
 *
 *   body:  {"method": "POST", "url": "/query_script", "headers": {"x-user-id": "alice"}, "body": {...}}
 *   reply: {"explanation": {...}, "text": "<what the CLI prints>"}
 */
import type { AdminServer } from '../server/admin';
import type { LoadedPolicy } from '../policy/types';
import type { LocalStore } from '../stages/ratelimit/store';
import { explain, type LiveState } from './explain';
import { formatExplanation } from './format';
import { ExplainInputError, fromJson } from './request';

export function registerExplainEndpoint(admin: AdminServer, policy: () => LoadedPolicy, store: () => LocalStore | null): void {
  admin.route('POST', '/debug/explain', ({ body }) => {
    let req;
    try {
      req = fromJson(body);
    } catch (e) {
      if (e instanceof ExplainInputError) return { status: 400, body: { error: e.message } };
      throw e;
    }
    const s = store();
    const live: LiveState | null = s === null ? null : { limit: (spec, key) => s.peek(spec.code, key) };
    const e = explain(policy(), req, { live });
    return { status: 200, body: { explanation: e, text: formatExplanation(e) } };
  }, { guarded: true });
}
