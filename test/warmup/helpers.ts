/** A policy for warm-up tests: query_script cached briefly but kept (stale-if-error) so it can be replayed. */
import { basicPolicy } from '../helpers/sidecar';

export interface WarmPolicyOptions {
  redis?: string | null;
  schedule?: string;
  onStart?: boolean;
  priority?: 'high' | 'medium' | 'low';
  top?: number;
  ttl?: string;
  startTimeout?: string;
  queues?: string;
  workers?: number;
  /** false: the new pod starts without the JIT warm-up (its workers listen at once). */
  jitWarmup?: boolean;
}

export function warmPolicy(upPort: number, o: WarmPolicyOptions = {}): string {
  const redis = o.redis ? `redis: { url: "${o.redis}", key_prefix: "warm:", command_timeout: 500ms }` : '';
  return basicPolicy(upPort, `
${redis}
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    priority: medium
    cache: { key: "draft:{draft_id}:script", ttl: ${o.ttl ?? '1s'}, stale_if_error: 5m, store_if: { "response.success": true } }
  - name: add_video
    match: { method: POST, path: /add_video }
    priority: high
${o.queues ?? ''}
cache:
  l1: { size: 16MB }
${o.redis ? '  l2: { ttl: 1h }' : ''}
  warmup:
    enabled: true
    start_timeout: ${o.startTimeout ?? '30s'}
    strategies:
      - name: popular_drafts
        pattern: "draft:*:script"
        schedule: "${o.schedule ?? '0 0 1 1 *'}"
        priority: ${o.priority ?? 'low'}
        top: ${o.top ?? 10}
        on_start: ${o.onStart ?? false}
`, { workers: o.workers ?? 0, ...(o.jitWarmup === false ? { jit_warmup: '{ enabled: false }' } : {}) });
}

/** The value of a metric line (labels as written by prom-client), or 0. */
export function metric(text: string, name: string, labels = ''): number {
  const esc = (name + (labels ? `{${labels}}` : '')).replace(/[{}[\]().*+?^$|\\]/g, '\\$&');
  const m = new RegExp(`^${esc} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}
