/** scope: cluster on a real 3-master Redis Cluster: each limit's keys in one slot, and the limits hold. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startRedisCluster, REDIS_CLI, type RedisClusterInstance } from '../helpers/redis';
import { redisKey } from '../../lib/stages/ratelimit/redis-source';
import { ctxFor, fixedRate, within5 } from './helpers';
import { clusterPolicy, redisSection, startPod, type Pod } from './pods';

let cluster: RedisClusterInstance;
before(async () => { cluster = await startRedisCluster(); });
after(async () => { await cluster.stop(); });

function cli(...args: string[]): string {
  const port = cluster.nodes[0]!.port;
  return spawnSync(REDIS_CLI, ['-c', '-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim();
}

test('every limit\'s key carries its own hash tag: one slot per limit, limits spread over the cluster', () => {
  const keys = [redisKey('bridge:', 0, ''), redisKey('bridge:', 1, 'h:alice'), redisKey('bridge:', 2, '/mcp/create_draft'), redisKey('bridge:', 1, 'h:{evil}')];
  assert.equal(keys[0], '{bridge:rl:global}');
  assert.equal(keys[1], '{bridge:rl:per_user:h:alice}');
  assert.equal(keys[2], '{bridge:rl:per_endpoint:/mcp/create_draft}');
  assert.ok(!keys[3]!.slice(1, -1).includes('{'), 'braces in a key are hashed away so they cannot move the tag');
  for (const k of keys) {
    // the slot of the whole key is the slot of its tag: anything a limit adds later under the tag stays there
    const tag = k.slice(1, k.indexOf('}'));
    assert.equal(cli('cluster', 'keyslot', k), cli('cluster', 'keyslot', tag));
    assert.equal(cli('cluster', 'keyslot', k), cli('cluster', 'keyslot', k + ':other-field'));
  }
});

test('two pods on a Redis Cluster admit the cluster total for each scope (within 5 %)', { timeout: 90_000 }, async (t) => {
  // global's burst is large on purpose: the driver sends overdue checks at once after a stall of its event loop,
  // and a catch-up of more than 20 would be refused by global (a right answer, but not what this test counts)
  const loaded = clusterPolicy(`
global: { requests_per_second: 200, burst_size: 1000 }
per_user: { requests_per_minute: 600, burst_size: 20 }
per_endpoint: { /mcp/create_draft: { rps: 30, burst: 10 } }`, redisSection({ cluster: cluster.seeds, timeout: '100ms' }));
  const ps: Pod[] = [await startPod(loaded), await startPod(loaded)];
  t.after(() => Promise.all(ps.map((p) => p.close())));
  const admitted = { user: 0, endpoint: 0, other: 0 };
  let i = 0;
  await Promise.all(ps.map((p) => fixedRate(
    () => p.stage,
    () => {
      const k = ++i % 3;
      if (k === 0) return ctxFor({ path: '/x', identity: 'h:alice' });
      if (k === 1) return ctxFor({ path: '/mcp/create_draft', identity: 'h:n' + i });
      return ctxFor({ path: '/y', identity: 'h:n' + i });
    },
    90, 5000,
    (d, _ms, ctx) => {
      if (!d.allowed) return;
      if (ctx.path === '/x') admitted.user++;
      else if (ctx.path === '/mcp/create_draft') admitted.endpoint++;
      else admitted.other++;
    },
  )));
  t.diagnostic(JSON.stringify(admitted));
  assert.ok(within5(admitted.user, 10 * 5 + 20), `alice ${admitted.user}, expected 70`);
  assert.ok(within5(admitted.endpoint, 30 * 5 + 10), `create_draft ${admitted.endpoint}, expected 160`);
  // global: 200/s (and its burst) is not reached by 180/s of offered load minus refusals: every /y request passes
  assert.equal(admitted.other, 300);
  assert.equal(await ps[0]!.backendErrors(), 0);
  // the keys live where CLUSTER KEYSLOT says (redis-cli -c follows MOVED; EXISTS answers on the owner)
  assert.equal(cli('exists', '{bridge:rl:per_user:h:alice}'), '1');
  assert.equal(cli('exists', '{bridge:rl:per_endpoint:/mcp/create_draft}'), '1');
});

test('a global limit on the cluster: two pods together admit rate x duration + burst', { timeout: 60_000 }, async (t) => {
  const loaded = clusterPolicy('global: { requests_per_second: 100, burst_size: 20 }', redisSection({ cluster: cluster.seeds, timeout: '100ms' }).replace('}', ', key_prefix: "g:" }'));
  const ps: Pod[] = [await startPod(loaded), await startPod(loaded)];
  t.after(() => Promise.all(ps.map((p) => p.close())));
  const rs = await Promise.all(ps.map((p) => fixedRate(() => p.stage, () => ctxFor(), 120, 5000)));
  const admitted = rs[0]!.admitted + rs[1]!.admitted;
  t.diagnostic(`admitted ${admitted}, expected 520`);
  assert.ok(within5(admitted, 100 * 5 + 20), `admitted ${admitted}`);
  assert.equal(cli('exists', '{g:rl:global}'), '1');
});
