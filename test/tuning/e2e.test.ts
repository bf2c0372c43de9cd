/**
 * Auto-tuning through the real sidecar (a worker process behind the primary with real IPC, and the single
 * process of `workers: 0`) in front of the real
 * example draft service: a slow upstream makes requests wait for one of the 2 pooled connections, the
 * connection_wait_time trigger raises the pool in the worker (seen in /policy, the gauge, and the upstream's own
 * concurrency), and once the upstream answers fast again the pool steps back to the policy's 2.
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { startDraftService } from '../../examples/draft-service/server';
import { basicPolicy, startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { sleep, waitFor } from '../helpers/ports';

function get(url: string, headers: Record<string, string>, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function adminJson(sc: SidecarProcess, path: string): Promise<any> {
  const r = await fetch(sc.adminUrl + path);
  return path === '/metrics' ? r.text() : r.json();
}

function metricValue(text: string, series: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : null;
}

/** `concurrency` clients each sending requests one after another until stop() (bounded by `maxMs`). */
function load(url: string, headers: Record<string, string>, concurrency: number, maxMs: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  let running = true;
  const deadline = Date.now() + maxMs;
  const statuses: number[] = [];
  const loops = Array.from({ length: concurrency }, async () => {
    while (running && Date.now() < deadline) statuses.push(await get(url, headers, agent).catch(() => -1));
  });
  return {
    statuses,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

for (const workers of [1, 0]) test(`a slow upstream raises the pool size in the workers; it falls back when the upstream recovers (workers: ${workers})`, { timeout: 120_000 }, async (t) => {
  const svc = await startDraftService({ port: 0, seedDrafts: 10 });
  t.after(() => svc.close());
  const policy = basicPolicy(svc.port, `  pool: { max_connections_per_host: 2, read_timeout: 30s }
auto_tuning:
  interval: 1s
  strategies:
    - { name: pool_scaling, trigger: "connection_wait_time > 100ms", action: increase_pool_size, params: { increment: 2, max_size: 6, revert_after: 2 } }
`, { workers });
  const sc = await startSidecar(policy, { timeoutMs: 60_000 });
  t.after(() => sc.stop());

  const p0 = await adminJson(sc, '/policy');
  assert.equal(p0.effective.upstream_pool_size, 2);

  // slow phase: 12 clients, 300 ms per upstream answer, 2 connections -> requests wait seconds for a socket
  svc.resetStats();
  const slow = load(`${sc.url}/get_font_types`, { 'x-service-time-ms': '300' }, 12, 60_000);
  let raised: any;
  try {
    raised = await waitFor('the pool to be raised to its max_size', async () => {
      const p = await adminJson(sc, '/policy');
      return p.effective.upstream_pool_size === 6 ? p : null;
    }, 40_000, 200);
    // the worker really opened more connections: the upstream saw more than 2 calls at once
    await waitFor('the upstream to see more than 2 calls at once', () => svc.stats().peakInFlight > 2, 10_000, 100);
  } finally {
    await slow.stop();
  }
  assert.ok(slow.statuses.length > 0 && slow.statuses.every((s) => s === 200), `statuses: ${[...new Set(slow.statuses)].join(',')}`);
  const metrics = await adminJson(sc, '/metrics');
  assert.ok((metricValue(metrics, 'bridge_sidecar_autotune_actions_total{strategy="pool_scaling"}') ?? 0) >= 2, 'two steps up counted');
  assert.ok((metricValue(metrics, 'bridge_sidecar_autotune_effective{setting="upstream_pool_size"}') ?? 0) >= 4);
  const st = raised.auto_tuning.strategies[0];
  assert.equal(st.name, 'pool_scaling');
  assert.ok(st.steps >= 2);
  const up = sc.logs.find((l) => l.strategy === 'pool_scaling' && l.direction === 'up');
  assert.ok(up, 'the action is logged');
  assert.match(String((up.figures as Record<string, string>).connection_wait_time), /^[\d.]+m?s$/);

  // recovery: the upstream answers at once; light traffic sees no wait, and the pool steps back to 2
  const fast = load(`${sc.url}/get_font_types`, {}, 2, 60_000);
  try {
    await waitFor('the pool to fall back to the policy\'s 2', async () => (await adminJson(sc, '/policy')).effective.upstream_pool_size === 2, 40_000, 200);
  } finally {
    await fast.stop();
  }
  const downs = sc.logs.filter((l) => l.strategy === 'pool_scaling' && l.direction === 'revert').map((l) => [l.from, l.to]);
  assert.deepEqual(downs, [[6, 4], [4, 2]], 'one step at a time, never below the policy');
  const after = await adminJson(sc, '/metrics');
  assert.equal(metricValue(after, 'bridge_sidecar_autotune_effective{setting="upstream_pool_size"}'), 2);

  // the pool really is back at 2 in the worker: 3 clients are capped at 2 calls upstream again. Their waits stay
  // well under the 100 ms trigger (40 ms answers), so the tuner has no reason to raise the pool during the burst.
  await sleep(300);
  svc.resetStats();
  const burst = load(`${sc.url}/get_font_types`, { 'x-service-time-ms': '40' }, 3, 800);
  await sleep(900);
  await burst.stop();
  assert.ok(svc.stats().peakInFlight <= 2, `peak ${svc.stats().peakInFlight}`);
});

test('increase_workers forks a worker; a reload resets to the policy and retires it gracefully (not a crash)', { timeout: 120_000 }, async (t) => {
  const svc = await startDraftService({ port: 0, seedDrafts: 10 });
  t.after(() => svc.close());
  // queue_length >= 0 holds in every interval: the workers go to max_workers (2; this machine may have 2 CPUs)
  const policy = (trigger: string) => basicPolicy(svc.port, `auto_tuning:
  interval: 1s
  strategies:
    - { name: more_workers, trigger: "${trigger}", action: increase_workers, params: { increment: 1, max_workers: 2 } }
`, { workers: 1 });
  const sc = await startSidecar(policy('queue_length >= 0'), { env: { BRIDGE_SIDECAR_RELOAD_WATCH: 'off' }, timeoutMs: 60_000 });
  t.after(() => sc.stop());

  await waitFor('a second worker', async () => (await adminJson(sc, '/policy')).effective.workers === 2, 30_000, 200);
  await waitFor('the second worker to listen', async () => (await fetch(sc.adminUrl + '/readyz')).status === 200 &&
    metricValue(await adminJson(sc, '/metrics'), 'bridge_sidecar_workers') === 2, 30_000, 200);
  assert.equal((await fetch(`${sc.url}/get_font_types`)).status, 200);

  writeFileSync(sc.policyFile, policy('queue_length > 1000000'));
  sc.proc.kill('SIGHUP');
  await waitFor('the reload to reset the workers to 1', async () => (await adminJson(sc, '/policy')).effective.workers === 1, 30_000, 200);
  await sc.waitForLog((l) => l.msg === 'retired worker exited', 30_000);
  const m = await adminJson(sc, '/metrics');
  assert.equal(metricValue(m, 'bridge_sidecar_workers'), 1);
  assert.equal(metricValue(m, 'bridge_sidecar_worker_restarts_total'), 0, 'a retired worker is not a crash');
  await sleep(1500);
  assert.equal(metricValue(await adminJson(sc, '/metrics'), 'bridge_sidecar_workers'), 1, 'and it is not restarted');
  assert.equal((await fetch(`${sc.url}/get_font_types`)).status, 200);
});
