/**
 * Faults in what the sidecar depends on besides the upstream, each under live traffic: Redis killed and restarted
 * (cluster-scope rate limits and the L2 tier), the L3 disk full and then read-only, a worker process killed, and
 * the policy file replaced by garbage, an empty file and a 2 MB file. Outcome: no failed or hung request beyond
 * the ones in flight on a killed worker, the metrics tell what happened, and shared behaviour resumes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDraftService } from '../../examples/draft-service';
import { startSidecar } from '../helpers/sidecar';
import { startRedis, REDIS_CLI } from '../helpers/redis';
import { sleep, waitFor } from '../helpers/ports';
import { send, metrics, sumSeries, recordFigure, timeUntil } from './helpers';

const KINDS = ['font', 'transition', 'mask', 'text_intro', 'text_outro', 'intro_animation', 'outro_animation', 'text_loop_anim'];

/** Bounded keep-alive load: `loops` clients each sending `next(i)` until stop(); collects outcomes and worst time. */
function load(url: string, loops: number, path: (i: number) => string, headers: (i: number) => Record<string, string> = () => ({})) {
  const agent = new Agent({ keepAlive: true, maxSockets: loops });
  const outcomes = new Map<string, number>();
  const cacheStatus: string[] = [];
  let worstMs = 0;
  let stopped = false;
  const one = async (id: number) => {
    for (let i = 0; i < 100_000 && !stopped; i++) {
      const r = await send(url, { path: path(i * loops + id), headers: headers(i * loops + id), agent, timeoutMs: 10_000 })
        .then((x) => { worstMs = Math.max(worstMs, x.ms); cacheStatus.push(String(x.headers['cache-status'] ?? '')); return String(x.status); },
          (e: Error & { code?: string }) => `error ${e.code ?? e.message}`);
      outcomes.set(r, (outcomes.get(r) ?? 0) + 1);
      await sleep(10);
    }
  };
  const running = Array.from({ length: loops }, (_, id) => one(id));
  return {
    outcomes, cacheStatus,
    worst: () => worstMs,
    /** Idempotent: called by the test, and again by t.after when an assertion failed first. */
    async stop() { stopped = true; await Promise.all(running); agent.destroy(); },
  };
}

test('Redis killed and restarted under traffic (cluster-scope limits + L2): no request fails or hangs, errors are counted, L2 and shared limits resume', { timeout: 60_000 }, async (t) => {
  const up = await startDraftService({ port: 0, host: '127.0.0.1' });
  t.after(() => up.close());
  const redis = await startRedis();
  t.after(() => redis.stop());
  const sc = await startSidecar(`version: 1
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 0, log_level: warn }
upstream: { url: "http://127.0.0.1:${up.port}" }
redis: { url: "${redis.url}", command_timeout: 50ms, key_prefix: "rel:" }
routes:
  - name: type_lists
    match: { method: GET, path: "/{type_list}" }
    params: { type_list: path.type_list }
    cache: { key: "static:{type_list}", ttl: 1h }
rate_limiting:
  identity: { header: x-user-id }
  scope: cluster
  global: { requests_per_second: 5000, burst_size: 1000 }
  per_user: { requests_per_minute: 100000, burst_size: 10000 }
cache:
  l2: { size: 64MB, ttl: 1h }
`);
  t.after(() => sc.stop());
  // every key the sidecar writes carries the prefix: cache entries rel:c:..., rate-limit counters {rel:rl:...}
  const redisKeys = () => spawnSync(REDIS_CLI, ['-p', String(redis.port), '--scan', '--pattern', '*rel:*'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  const hasLimitKeys = () => redisKeys().some((k) => k.includes('rel:rl:'));

  const l = load(sc.url, 6, (i) => `/get_${KINDS[i % KINDS.length]}_types`, (i) => ({ 'x-user-id': `u${i % 5}` }));
  t.after(() => l.stop());
  await waitFor('L2 hits while Redis is up', () => l.cacheStatus.some((s) => /hit.*l2/.test(s)), 10_000);
  assert.ok(hasLimitKeys(), `shared rate-limit counters live in Redis: ${redisKeys().join(' ')}`);

  await redis.kill(); // the fault
  const killedAt = l.cacheStatus.length;
  await sleep(3000);
  assert.ok(l.cacheStatus.length - killedAt > 50, 'requests kept flowing while Redis was down');
  const mDown = await metrics(sc.adminUrl);
  assert.ok(sumSeries(mDown, 'bridge_sidecar_ratelimit_backend_errors_total') > 0, 'rate-limit backend errors counted');
  assert.ok(sumSeries(mDown, 'bridge_sidecar_cache_requests_total', 'layer="l2",result="error"') > 0, 'L2 errors counted');

  await redis.restart(); // the fault ends (an empty Redis: no persistence)
  const seenBefore = l.cacheStatus.length;
  const recovered = await timeUntil('L2 hits and shared rate-limit keys again after the Redis restart', async () =>
    l.cacheStatus.slice(seenBefore).some((s) => /hit.*l2/.test(s)) && hasLimitKeys(), 30_000, 200);
  recordFigure('redis restarted: shared behaviour (L2 hits, cluster limits) back after', Math.round(recovered), 'ms');
  await l.stop();
  const statuses = Object.fromEntries(l.outcomes);
  recordFigure('redis kill/restart: request outcomes', JSON.stringify(statuses));
  recordFigure('redis kill/restart: slowest request', Math.round(l.worst()), 'ms');
  assert.deepEqual(Object.keys(statuses), ['200'], `outcomes: ${JSON.stringify(statuses)}`);
  // bounded: Redis commands time out at 50 ms, so no request waits on a dead Redis for long (generous for CI)
  assert.ok(l.worst() < 5000, `slowest request ${l.worst()} ms`);
});

test('L3 disk full, then read-only: no crash, misses are still served, the sidecar stays ready', { timeout: 60_000 }, async (t) => {
  const up = await startDraftService({ port: 0, host: '127.0.0.1' });
  t.after(() => up.close());
  const work = mkdtempSync(join(tmpdir(), 'rel-l3-'));
  const mnt = join(work, 'mnt');
  mkdirSync(mnt);
  // a real, tiny filesystem (root ignores chmod 000, so a full/read-only mount is the honest way to fail writes)
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { encoding: 'utf8' });
  assert.equal(m.status, 0, `mount tmpfs (needs root, as CI runs): ${m.stderr}`);
  t.after(() => { spawnSync('umount', ['-l', mnt]); rmSync(work, { recursive: true, force: true }); });
  const l3 = join(mnt, 'l3');
  mkdirSync(l3);
  // fill it: write until ENOSPC
  let filled = 0;
  for (let i = 0; i < 64; i++) {
    try { writeFileSync(join(mnt, `fill-${i}`), Buffer.alloc(8192, 1)); filled++; } catch (e) { assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC'); break; }
  }
  assert.ok(filled < 64, 'the tmpfs is full');
  const sc = await startSidecar(`version: 1
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 0, log_level: warn }
upstream: { url: "http://127.0.0.1:${up.port}" }
routes:
  - name: type_lists
    match: { method: GET, path: "/{type_list}" }
    params: { type_list: path.type_list }
    cache: { key: "static:{type_list}", ttl: 1h }
  - name: big
    match: { method: GET, path: /download }
    cache: { key: "download:{n}", ttl: 1h }
    params: { n: query.bytes }
cache:
  l3: { path: ${l3}, size: 10MB, ttl: 1h }
`);
  t.after(() => sc.stop());
  const direct = await send(up.url, { path: '/download?bytes=200000' });
  const round = async (tag: string) => {
    for (let rep = 0; rep < 2; rep++) {
      for (const k of KINDS) {
        const r = await send(sc.url, { path: `/get_${k}_types`, timeoutMs: 10_000 });
        assert.equal(r.status, 200, `${tag} ${k}: ${r.status}`);
        assert.equal(JSON.parse(r.body).success, true);
      }
      const big = await send(sc.url, { path: '/download?bytes=200000', timeoutMs: 10_000 });
      assert.equal(big.status, 200);
      assert.equal(big.headers['content-length'], '200000');
      assert.ok(big.body === direct.body, `${tag}: the large body arrives whole although its L3 write fails`);
    }
  };
  await round('full');
  await sleep(300); // let the write-behind queue hit ENOSPC
  assert.equal(sc.proc.exitCode, null);
  // now read-only: every write fails with EROFS
  const ro = spawnSync('mount', ['-o', 'remount,ro', mnt], { encoding: 'utf8' });
  assert.equal(ro.status, 0, ro.stderr);
  await round('read-only');
  await sleep(300);
  assert.equal(sc.proc.exitCode, null, 'no crash');
  assert.equal((await send(sc.adminUrl, { path: '/readyz' })).status, 200);
  assert.equal((await send(sc.adminUrl, { path: '/healthz' })).status, 200);
  const text = await metrics(sc.adminUrl);
  assert.ok(sumSeries(text, 'bridge_sidecar_cache_requests_total', 'layer="l3"') > 0, 'L3 lookups happened');
});

test('a worker process killed under load: replaced, and only requests in flight on it fail', { timeout: 60_000 }, async (t) => {
  const up = await startDraftService({ port: 0, host: '127.0.0.1' });
  t.after(() => up.close());
  const sc = await startSidecar(`version: 1
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 2, log_level: info }
upstream: { url: "http://127.0.0.1:${up.port}" }
`);
  t.after(() => sc.stop());
  const loops = 8;
  const l = load(sc.url, loops, (i) => (i % 3 === 0 ? '/slow?ms=50' : '/get_font_types'));
  t.after(() => l.stop());
  await waitFor('access lines from a worker', () => sc.logs.some((x) => x.role === 'worker' && x.msg === 'access'), 10_000);
  await sleep(1000);
  const pid = sc.logs.find((x) => x.role === 'worker' && x.msg === 'access')?.pid as number;
  const killedAt = performance.now();
  process.kill(pid, 'SIGKILL');
  await sc.waitForLog((x) => x.msg === 'worker exited unexpectedly: restarting it', 15_000);
  await timeUntil('readyz 200 with the replacement worker', async () => (await send(sc.adminUrl, { path: '/readyz', timeoutMs: 5000 })).status === 200, 30_000);
  const recoveredMs = performance.now() - killedAt;
  await sleep(1500);
  await l.stop();
  const outcomes = Object.fromEntries(l.outcomes);
  recordFigure('worker killed: replaced and ready after', Math.round(recoveredMs), 'ms');
  recordFigure('worker killed: request outcomes', JSON.stringify(outcomes));
  const failed = Object.entries(outcomes).filter(([k]) => k !== '200').reduce((a, [, n]) => a + n, 0);
  // at most the requests that were in flight on the killed worker's connections (one per keep-alive client)
  assert.ok(failed <= loops, `failed: ${JSON.stringify(outcomes)}`);
  for (const k of Object.keys(outcomes)) assert.match(k, /^(200|error (ECONNRESET|EPIPE|socket hang up|ECONNREFUSED))$/);
  assert.ok((outcomes['200'] ?? 0) > 100);
  assert.equal(sumSeries(await metrics(sc.adminUrl), 'bridge_sidecar_worker_restarts_total'), 1);
});

test('the policy file replaced by garbage, by an empty file, by a 2 MB file: the old policy keeps serving and each refusal is counted', { timeout: 60_000 }, async (t) => {
  const up = await startDraftService({ port: 0, host: '127.0.0.1' });
  t.after(() => up.close());
  const good = `version: 1
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 0, log_level: warn }
upstream: { url: "http://127.0.0.1:${up.port}" }
routes:
  - name: type_lists
    match: { method: GET, path: "/{type_list}" }
    params: { type_list: path.type_list }
    cache: { key: "static:{type_list}", ttl: 1h }
cache:
  l1: { size: 16MB, ttl: 1h }
`;
  const sc = await startSidecar(good, { env: { BRIDGE_SIDECAR_RELOAD_POLL: '200' } });
  t.after(() => sc.stop());
  const version = async () => ((await (await fetch(`${sc.adminUrl}/policy`)).json()) as { version: string }).version;
  const v0 = await version();
  const l = load(sc.url, 4, (i) => `/get_${KINDS[i % KINDS.length]}_types`);
  t.after(() => l.stop());
  const bad: Array<[string, string | Buffer]> = [
    ['garbage', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256))],
    ['yaml garbage', 'version: 1\nserver: [unclosed\n  - : :\n\t}{'],
    ['empty', ''],
    ['2 MB', good + '# ' + 'x'.repeat(2 * 1024 * 1024) + '\n'],
  ];
  let errors = sumSeries(await metrics(sc.adminUrl), 'bridge_sidecar_policy_reloads_total', 'result="error"');
  for (const [name, content] of bad) {
    writeFileSync(sc.policyFile, content);
    const ms = await timeUntil(`${name}: refusal counted`, async () =>
      sumSeries(await metrics(sc.adminUrl), 'bridge_sidecar_policy_reloads_total', 'result="error"') > errors, 15_000, 100);
    errors = sumSeries(await metrics(sc.adminUrl), 'bridge_sidecar_policy_reloads_total', 'result="error"');
    recordFigure(`policy replaced by ${name}: refusal seen after`, Math.round(ms), 'ms');
    assert.equal(await version(), v0, `${name}: /policy still shows the old version`);
    assert.equal((await send(sc.url, { path: '/get_font_types' })).status, 200);
    assert.match(String((await send(sc.url, { path: '/get_font_types' })).headers['cache-status']), /hit/, `${name}: the old cache policy is in force`);
  }
  // and a good policy afterwards is applied (the watcher survived the bad ones)
  writeFileSync(sc.policyFile, good.replace('ttl: 1h }\ncache', 'ttl: 2h }\ncache'));
  await timeUntil('the good policy applied', async () => (await version()) !== v0, 15_000);
  await l.stop();
  const outcomes = Object.fromEntries(l.outcomes);
  assert.deepEqual(Object.keys(outcomes), ['200'], JSON.stringify(outcomes));
  assert.equal(sc.proc.exitCode, null);
  assert.ok(existsSync(sc.policyFile) && readFileSync(sc.policyFile, 'utf8').includes('ttl: 2h'));
});
