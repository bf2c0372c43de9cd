/**
 * Warm-up at start-up: a new pod ranks keys by the fleet's counts in Redis, warms them before it reports ready
 * (/readyz 503 "waiting for warm-up"), and readiness is bounded by start_timeout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startSidecar } from '../helpers/sidecar';
import { startRedis, REDIS_CLI } from '../helpers/redis';
import { sleep, waitFor } from '../helpers/ports';
import { startDraftService } from '../../examples/draft-service/server';
import { queryScript, request, cacheStatus } from '../invalidation/helpers';
import { metric, warmPolicy } from './helpers';

async function readyzUntilReady(adminUrl: string, timeoutMs: number): Promise<Array<{ status: number; body: string }>> {
  const seen: Array<{ status: number; body: string }> = [];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await request(adminUrl, { path: '/readyz' });
    seen.push({ status: r.status, body: r.body });
    if (r.status === 200) break;
    await sleep(20);
  }
  return seen;
}

test('on_start: /readyz stays 503 until the fleet\'s most requested keys are warm in the new pod\'s L1', async (t) => {
  const svc = await startDraftService({ port: 0, serviceTimeMs: 300 });
  t.after(() => svc.close());
  const redis = await startRedis();
  t.after(() => redis.stop());
  // pod A serves traffic: counts go to the shared ZSET, entries to L2 (kept past their 1 s freshness)
  const a = await startSidecar(warmPolicy(svc.port, { redis: redis.url }));
  t.after(() => a.stop());
  const ids = ['dft_000001', 'dft_000002', 'dft_000003', 'dft_000004', 'dft_000005', 'dft_000006'];
  for (const id of ids) await queryScript(a.url, id);
  await waitFor('counts in redis', () => {
    const r = spawnSync(REDIS_CLI, ['-p', String(redis.port), 'zcard', 'warm:warm:counts'], { encoding: 'utf8' });
    return Number(r.stdout.trim()) >= ids.length;
  }, 10_000, 50);
  await sleep(1100); // the entries are stale now: the new pod must refetch them (300 ms each)

  // B stores what it refetches for 30 s (A's 1 s entries are stale by now), so a slow machine between B's
  // warm-up and the client's first request cannot turn the expected L1 hit into a stale one
  // B's JIT warm-up is off: a worker takes the cache warm-up's run while its JIT warm-up (up to 1 s before it
  // listens) is still going, so the gate could be over before "listening" and this test's first /readyz
  const b = await startSidecar(warmPolicy(svc.port, { redis: redis.url, onStart: true, workers: 2, ttl: '30s', jitWarmup: false }));
  t.after(() => b.stop());
  const seen = await readyzUntilReady(b.adminUrl, 60_000);
  assert.equal(seen.at(-1)?.status, 200, JSON.stringify(seen.slice(-3)));
  assert.ok(seen.some((s) => s.status === 503 && s.body.includes('waiting for warm-up')), `never saw the warm-up gate: ${JSON.stringify(seen.slice(0, 3))}`);
  const m = (await request(b.adminUrl, { path: '/metrics' })).body;
  assert.equal(metric(m, 'bridge_sidecar_warmup_runs_total', 'strategy="popular_drafts",result="ok"'), 1);
  assert.ok(metric(m, 'bridge_sidecar_warmup_entries_total', 'strategy="popular_drafts",source="upstream"') >= ids.length, m.split('\n').filter((l) => l.includes('warmup')).join('\n'));
  // the first client requests after ready are served from B's own L1, on either worker (fresh connections
  // alternate between them): one worker warmed the keys, the other pulled them in
  const first = [await queryScript(b.url, 'dft_000001'), await queryScript(b.url, 'dft_000001')];
  for (const r of first) assert.match(cacheStatus(r), /hit; .*detail=l1/);
});

test('start_timeout bounds the gate: a warm-up that cannot finish does not keep the pod unready', async (t) => {
  const fast = await startDraftService({ port: 0 });
  t.after(() => fast.close());
  const slow = await startDraftService({ port: 0, serviceTimeMs: 20_000 });
  t.after(() => slow.close());
  const redis = await startRedis();
  t.after(() => redis.stop());
  // pod A (in front of a fast service) leaves stale entries and counts in Redis
  const a = await startSidecar(warmPolicy(fast.port, { redis: redis.url }));
  t.after(() => a.stop());
  await queryScript(a.url, 'dft_000001');
  await waitFor('counts in redis', () => {
    const r = spawnSync(REDIS_CLI, ['-p', String(redis.port), 'zcard', 'warm:warm:counts'], { encoding: 'utf8' });
    return Number(r.stdout.trim()) >= 1;
  }, 10_000, 50);
  await sleep(1100);
  // pod B's refetch would take 20 s: readiness comes after start_timeout (2 s) anyway
  // without the JIT warm-up, as above: the 2 s gate must still be there when the worker listens
  const b = await startSidecar(warmPolicy(slow.port, { redis: redis.url, onStart: true, startTimeout: '2s', jitWarmup: false }));
  t.after(() => b.stop());
  const seen = await readyzUntilReady(b.adminUrl, 12_000);
  assert.equal(seen.at(-1)?.status, 200, JSON.stringify(seen.slice(-3)));
  assert.ok(seen.some((s) => s.status === 503 && s.body.includes('waiting for warm-up')), JSON.stringify(seen.slice(0, 3)));
  // either the gate gave up waiting, or the run itself stopped at the deadline: not a complete warm-up
  await b.waitForLog((l) => (typeof l.msg === 'string' && l.msg.startsWith('start-up warm-up did not finish')) ||
    (l.msg === 'warm-up run finished' && l.result !== 'ok'), 5000);
});
