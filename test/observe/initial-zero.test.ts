/**
 * Labelled counters start at 0: before the first request, /metrics already has every label set the policy
 * makes possible (error types per endpoint, shed reasons, rate-limit scopes, cache tiers and results, retry
 * reasons, reload results, store-skipped and eviction series), summed over two workers; so the first 429 is
 * a step from 0 to 1 that rate()/increase() see, not a series that appears already at 1.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { waitFor } from '../helpers/ports';
import { http, postJson, parseMetrics, type Family } from './helpers';
import { ERROR_TYPES, SHED_REASONS } from '../../lib/observe/label-values';
import { tempDir } from '../helpers/temp-dir';

const POLICY = `routes:
  - name: query_script
    match: { method: POST, path: /query_script }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m }
rate_limiting:
  global: { requests_per_second: 1000, burst_size: 100 }
  per_endpoint: { /save_draft: { rps: 0.1, burst: 1 } }
queues: { max_in_flight: 8 }
cache:
  l1: { size: 1MB }
  l3: { path: L3DIR, size: 10MB }
`;

let upstream: DraftService;
before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1' });
});
after(async () => {
  await upstream.close();
});

function value(families: Map<string, Family>, name: string, labels: Record<string, string>): number | undefined {
  const base = name.replace(/_total$/, '');
  const f = families.get(name) ?? families.get(base);
  const s = f?.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}

test('every labelled counter the policy can move is on /metrics at 0 before the first event, summed over two workers', { timeout: 90_000 }, async (t) => {
  const l3 = tempDir(t, 'bridge-zero-l3-');
  const sidecar = await startSidecar(basicPolicy(upstream.port, POLICY.replace('L3DIR', l3), { workers: 2 }));
  t.after(() => sidecar.stop());
  // both workers have reported their registries (the primary sums what answers)
  let families = new Map<string, Family>();
  await waitFor('both workers on /metrics', async () => {
    families = parseMetrics((await http(`${sidecar.adminUrl}/metrics`)).text);
    return value(families, 'bridge_sidecar_shed_total', { reason: 'queue_full' }) !== undefined;
  }, 20_000);

  const expectZero: Array<[string, Record<string, string>]> = [
    ...['query_script', '/save_draft', 'other'].flatMap((endpoint) =>
      ERROR_TYPES.map((error_type): [string, Record<string, string>] => ['bridge_sidecar_http_errors_total', { endpoint, error_type }])),
    ...SHED_REASONS.map((reason): [string, Record<string, string>] => ['bridge_sidecar_shed_total', { reason }]),
    ['bridge_sidecar_ratelimit_rejected_total', { scope: 'global' }],
    ['bridge_sidecar_ratelimit_rejected_total', { scope: 'per_endpoint' }],
    ['bridge_sidecar_cache_requests_total', { layer: 'l1', result: 'hit' }],
    ['bridge_sidecar_cache_requests_total', { layer: 'l1', result: 'miss' }],
    ['bridge_sidecar_cache_requests_total', { layer: 'l3', result: 'hit' }],
    ['bridge_sidecar_cache_requests_total', { layer: 'l3', result: 'miss' }],
    ['bridge_sidecar_cache_requests_total', { layer: 'coalesce', result: 'hit' }],
    ['bridge_sidecar_cache_evictions_total', { layer: 'l1' }],
    ['bridge_sidecar_cache_evictions_total', { layer: 'l3' }],
    ['bridge_sidecar_cache_store_skipped_total', { reason: 'invalidated_in_flight' }],
    ['bridge_sidecar_upstream_retries_total', { reason: 'stale_keepalive' }],
    ['bridge_sidecar_upstream_retries_total', { reason: 'econnrefused' }],
    ['bridge_sidecar_policy_reloads_total', { result: 'error' }],
    ['bridge_sidecar_policy_reloads_total', { result: 'unchanged' }],
    ['bridge_sidecar_http_requests_total', { endpoint: 'query_script', method: 'POST' }],
  ];
  const missing = expectZero.filter(([n, l]) => value(families, n, l) !== 0).map(([n, l]) => `${n}${JSON.stringify(l)}=${value(families, n, l)}`);
  assert.deepEqual(missing, [], 'series not at 0 before any request');
  // features that are off have no series: no L2 tier, no per_user limit
  assert.equal(value(families, 'bridge_sidecar_cache_requests_total', { layer: 'l2', result: 'hit' }), undefined);
  assert.equal(value(families, 'bridge_sidecar_ratelimit_rejected_total', { scope: 'per_user' }), undefined);
  assert.equal(value(families, 'bridge_sidecar_policy_last_reload_successful', {}), 1);

  // the first refusal is a step from 0 to 1 (rate() sees it), not a series born at 1
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await postJson(`${sidecar.url}/save_draft`, { draft_id: 'dft_000001' })).status);
  const refused = statuses.filter((s) => s === 429).length;
  assert.ok(refused >= 1, `3 quick calls at 0.1 rps, burst 1: ${statuses}`);
  await waitFor('the refusals counted', async () => {
    families = parseMetrics((await http(`${sidecar.adminUrl}/metrics`)).text);
    return value(families, 'bridge_sidecar_ratelimit_rejected_total', { scope: 'per_endpoint' }) === refused;
  }, 10_000);
  assert.equal(value(families, 'bridge_sidecar_http_errors_total', { endpoint: '/save_draft', error_type: 'rate_limited' }), refused);
});
