/**
 * Local use: the policy is a plain file (no ConfigMap), edited in place or replaced by rename (what editors and
 * `mv` do). Both reach the real sidecar.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { policyVersion } from '../../lib/policy/load';
import { basicPolicy } from '../helpers/sidecar';
import { waitFor } from '../helpers/ports';
import { get, metricsText, policyView, startCountingUpstream, startReloadSidecar, sumSeries } from './harness';

function policy(upstreamPort: number, route: string | null): string {
  const r = route === null ? '' : `routes:\n  - name: ${route}\n    match: { method: GET, path: /r/${route} }\n`;
  return basicPolicy(upstreamPort, r);
}

test('plain policy file: an in-place edit and a replace-by-rename are each applied', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const sc = await startReloadSidecar(t, policy(up.port, null), { layout: 'plain' });

  const edited = policy(up.port, 'edited');
  writeFileSync(sc.policyFile, edited);
  await waitFor('in-place edit applied', async () => (await policyView(sc)).version === policyVersion(edited), 10_000, 25);
  assert.equal((await get(sc.url + '/r/edited')).status, 200);

  const renamed = policy(up.port, 'renamed');
  writeFileSync(sc.policyFile + '.new', renamed);
  renameSync(sc.policyFile + '.new', sc.policyFile);
  await waitFor('replace by rename applied', async () => (await policyView(sc)).version === policyVersion(renamed), 10_000, 25);
  assert.equal((await get(sc.url + '/r/renamed')).status, 200);

  const m = await metricsText(sc);
  assert.equal(sumSeries(m, 'bridge_sidecar_http_requests_total', 'endpoint="edited"'), 1);
  assert.equal(sumSeries(m, 'bridge_sidecar_http_requests_total', 'endpoint="renamed"'), 1);
  assert.equal(sumSeries(m, 'bridge_sidecar_policy_reloads_total', 'result="success"'), 2);
  const reloaded = sc.logs.filter((l) => l.msg === 'policy reloaded');
  assert.deepEqual(reloaded.map((l) => l.changed), [['routes.edited (added)'], ['routes.renamed (added)', 'routes.edited (removed)']]);
});
