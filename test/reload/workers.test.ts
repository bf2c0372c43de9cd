/**
 * Hot reload with 2 worker processes (node:cluster), through the real sidecar and a ConfigMap-style mount:
 * every worker switches, /policy says which worker runs which version, and 20 reloads in a row under load fail
 * no request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policyVersion } from '../../lib/policy/load';
import { atomicUpdate } from '../helpers/atomic-writer';
import { basicPolicy } from '../helpers/sidecar';
import { waitFor } from '../helpers/ports';
import { get, metricsText, policyView, startCountingUpstream, startLoad, startReloadSidecar, sumSeries, type ReloadSidecar } from './harness';

function policy(upstreamPort: number, routes: string[], extra = ''): string {
  const r = routes.length === 0 ? '' : ['routes:', ...routes.flatMap((n) => [`  - name: ${n}`, `    match: { method: GET, path: /r/${n} }`])].join('\n') + '\n';
  return basicPolicy(upstreamPort, r + extra, { workers: 2, drain_timeout: '10s' });
}

/** Publish with the kubelet's sequence; wait until /policy shows the version AND every worker reports it. */
async function publishToAll(sc: ReloadSidecar, yaml: string, timeoutMs = 10_000): Promise<string> {
  const v = policyVersion(yaml);
  atomicUpdate(sc.mount, { 'policy.yaml': yaml });
  await waitFor(`all workers on ${v}`, async () => {
    const view = await policyView(sc);
    return view.version === v && view.workers.length === 2 && view.workers.every((w) => w.version === v);
  }, timeoutMs, 25);
  return v;
}

test('with 2 workers, every worker switches to the new policy and /policy says so', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const sc = await startReloadSidecar(t, policy(up.port, []));
  const v0 = policyVersion(policy(up.port, []));
  await waitFor('both workers reported', async () => (await policyView(sc)).workers.length === 2, 10_000);
  const before = await policyView(sc);
  assert.deepEqual(before.workers.map((w) => w.version), [v0, v0]);

  const v1 = await publishToAll(sc, policy(up.port, ['switched']));
  // new connections are spread round-robin over the workers: all of them must label the new route
  const N = 20;
  for (let i = 0; i < N; i++) assert.equal((await get(sc.url + '/r/switched')).status, 200);
  const m = await metricsText(sc);
  assert.equal(sumSeries(m, 'bridge_sidecar_http_requests_total', 'endpoint="switched"'), N, 'every request, on either worker, matched the new route');
  assert.equal(sumSeries(m, 'bridge_sidecar_policy_info', `version="${v1}"`), 1);
  // access lines are written in batches (at most ~100 ms later)
  const seen = () => new Set(sc.logs.filter((l) => l.msg === 'access' && l.route === 'switched').map((l) => l.pid));
  await waitFor('both workers served the new route', () => seen().size === 2, 5_000);
  const workersSeen = seen();

  // a worker that is restarted comes up on the policy in force, and reports it
  const pid = [...workersSeen][0] as number;
  process.kill(pid, 'SIGKILL');
  await sc.waitForLog((l) => l.msg === 'worker exited unexpectedly: restarting it');
  await waitFor('replacement reports the version in force', async () => {
    const w = (await policyView(sc)).workers;
    return w.length === 2 && w.every((x) => x.version === v1);
  }, 15_000);
});

test('20 reloads in a row under load (2 workers): zero failed requests', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const sc = await startReloadSidecar(t, policy(up.port, ['steady']));
  await waitFor('both workers reported', async () => (await policyView(sc)).workers.length === 2, 10_000);
  let n = 0;
  const load = startLoad(sc.url, { connections: 8, path: () => (n++ % 2 === 0 ? '/r/steady' : '/other') });
  t.after(() => load.stop());
  await waitFor('load flowing', () => load.result.ok > 50, 15_000);

  const RELOADS = 20;
  const took: number[] = [];
  for (let i = 1; i <= RELOADS; i++) {
    // alternate: routes added/removed, a rate limiter (far above the load) switched on and off, a cache tier
    const extra = i % 2 === 1
      ? 'rate_limiting:\n  global: { requests_per_second: 1000000, burst_size: 1000000 }\n'
      : 'cache:\n  l1: { size: 1MB }\n';
    const started = Date.now();
    await publishToAll(sc, policy(up.port, ['steady', `gen${i}`], extra));
    took.push(Date.now() - started);
  }
  took.sort((a, b) => a - b);
  console.log(`# update published -> every worker on it (ms, as observed by polling /policy): min ${took[0]}, median ${took[RELOADS >> 1]}, max ${took[RELOADS - 1]}`);
  const okBeforeStop = load.result.ok;
  const r = await load.stop();
  console.log(`# ${RELOADS} reloads under load: ${r.ok} requests answered, ${r.failures.length} failed`);
  assert.deepEqual(r.failures, [], 'no request failed during the reloads');
  assert.ok(okBeforeStop > 100, `requests flowed during the reloads (${okBeforeStop})`);
  const m = await metricsText(sc);
  assert.equal(sumSeries(m, 'bridge_sidecar_policy_reloads_total', 'result="success"'), RELOADS);
  assert.equal(sumSeries(m, 'bridge_sidecar_policy_reloads_total', 'result="error"'), 0);
  assert.equal(sumSeries(m, 'bridge_sidecar_http_errors_total'), 0, 'no error of any kind was counted');
});

test('with 2 workers, a changed log_level applies in every worker', async (t) => {
  const up = await startCountingUpstream();
  t.after(() => up.close());
  const sc = await startReloadSidecar(t, policy(up.port, []));
  await waitFor('both workers reported', async () => (await policyView(sc)).workers.length === 2, 10_000);
  for (let i = 0; i < 6; i++) assert.equal((await get(sc.url + '/before')).status, 200);
  await waitFor('access lines from both workers', () =>
    new Set(sc.logs.filter((l) => l.msg === 'access' && l.path === '/before').map((l) => l.pid)).size === 2, 10_000);
  await publishToAll(sc, basicPolicy(up.port, '', { workers: 2, drain_timeout: '10s', log_level: 'warn' }));
  for (let i = 0; i < 6; i++) assert.equal((await get(sc.url + '/after')).status, 200);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(sc.logs.filter((l) => l.msg === 'access' && l.path === '/after').length, 0);
});
