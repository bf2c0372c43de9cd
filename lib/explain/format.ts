/** An Explanation as the text `bridge-sidecar explain` prints: one numbered step per stage, in request order. */
import type { Explanation } from './explain';

export function formatExplanation(e: Explanation): string {
  const out: string[] = [];
  const line = (s = '') => out.push(s);
  const q = e.request.query ? `?${e.request.query}` : '';
  line(`${e.request.method} ${e.request.path}${q}  (policy ${e.policy.version}, ${e.policy.file})`);
  line();
  if (e.refused !== null) {
    line(`0. body limit: ${e.refused}`);
    return out.join('\n') + '\n';
  }
  line(`1. body: ${e.body.why}`);
  line(`2. route: ${e.routing.route === null ? 'none matched: proxied as is' : e.routing.route}`);
  for (const t of e.routing.tried) line(`     ${t.matched ? '✓' : '✗'} ${t.route}: ${t.why}`);
  const params = Object.entries(e.routing.params);
  line(`   params: ${params.length === 0 ? 'none' : params.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}`);
  line(`   metrics label: endpoint="${e.routing.endpoint_label}"`);
  if (e.identity !== null) line(`   identity: ${e.identity}`);
  line(`3. rate limits: ${e.limits.outcome}${e.limits.scope ? ` [scope ${e.limits.scope}]` : ''}`);
  for (const l of e.limits.limits) {
    const st = l.state === null ? '' : ` — now ${l.state.available}/${l.state.capacity} tokens`;
    line(`     ${l.scope}${l.key ? ` (${l.key})` : ''}: ${l.limit}${l.dry_run ? ', dry_run' : ''}${l.upstream_only ? ', counts upstream requests only (checked after the cache: a hit is free)' : ''}${st}${l.verdict ? ` → ${l.verdict}` : ''}`);
  }
  line(`4. cache: ${e.cache.why}`);
  if (e.cache.key !== null) {
    line(`     key template: ${e.cache.key.template}`);
    line(`     key: ${e.cache.key.base}`);
    line(`     made of: ${e.cache.key.made_of}`);
    for (const [tier, k] of Object.entries(e.cache.key.tiers)) line(`     ${tier}: ${k}`);
  }
  if (e.cache.store !== null) line(`   store: ${e.cache.store.why}`);
  line(`5. queue: class ${e.queue.class} (${e.queue.why})${e.queue.in_flight_limit === null ? '; no queues section: straight to the upstream' : `; max_in_flight ${e.queue.in_flight_limit}`}`);
  line(`6. compression: ${e.compression.why}`);
  if (e.events.length > 0) line(`7. events on a 2xx answer: ${e.events.join(', ')} (invalidation)`);
  return out.join('\n') + '\n';
}
