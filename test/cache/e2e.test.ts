/**
 * End to end through real `bridge-sidecar serve` processes in front of the example draft service and a real
 * redis-server: a restarted sidecar gets L3 hits from its disk, a second sidecar process gets L2 hits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { startRedis, REDIS_CLI } from '../helpers/redis';
import { startDraftService } from '../../examples/draft-service/server';
import { request, tempDir } from './harness';

function cachePolicy(upPort: number, redisUrl: string, l3Dir: string | null): string {
  return basicPolicy(upPort, `
redis: { url: "${redisUrl}", command_timeout: 500ms }
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m, store_if: { "response.success": true } }
cache:
  l1: { size: 16MB }
  l2: { ttl: 1h }
${l3Dir ? `  l3: { path: "${l3Dir}", size: 64MB }` : ''}
`);
}

const query = (url: string, id: string) => request(url, { method: 'POST', path: '/query_script', body: JSON.stringify({ draft_id: id, force_update: false }) });

test('real sidecar processes: L1 hit, restart -> L3 hit, second process -> L2 hit; upstream asked once', async (t) => {
  const svc = await startDraftService({ port: 0 });
  t.after(() => svc.close());
  const redis = await startRedis();
  t.after(() => redis.stop());
  const l3 = tempDir(t);

  const a = await startSidecar(cachePolicy(svc.port, redis.url, l3));
  let stopped = false;
  t.after(async () => { if (!stopped) await a.stop(); });
  const first = await query(a.url, 'dft_000001');
  assert.equal(first.status, 200);
  assert.equal(JSON.parse(first.body).success, true);
  assert.match(String(first.headers['cache-status']), /^bridge-sidecar; fwd=miss/);
  const second = await query(a.url, 'dft_000001');
  assert.match(String(second.headers['cache-status']), /hit; ttl=\d+; detail=l1/);
  assert.equal(second.body, first.body);
  // a draft that does not exist answers 200 {success:false}: never stored
  await query(a.url, 'nope');
  assert.match(String((await query(a.url, 'nope')).headers['cache-status']), /fwd=miss/);
  const upstreamBefore = svc.stats().requests;
  await new Promise((r) => setTimeout(r, 500)); // let write-behind reach L2/L3
  await a.stop();
  stopped = true;

  // restart on the same disk with Redis emptied: the entry comes back from L3
  spawnSync(REDIS_CLI, ['-p', String(redis.port), 'flushall']);
  const b = await startSidecar(cachePolicy(svc.port, redis.url, l3));
  t.after(() => b.stop());
  const fromDisk = await query(b.url, 'dft_000001');
  assert.match(String(fromDisk.headers['cache-status']), /hit; ttl=\d+; detail=l3/);
  assert.equal(fromDisk.body, first.body);
  await new Promise((r) => setTimeout(r, 500)); // the L3 hit is written back to L2

  // another sidecar process (no disk tier) shares Redis: an L2 hit
  const c = await startSidecar(cachePolicy(svc.port, redis.url, null));
  t.after(() => c.stop());
  const fromRedis = await query(c.url, 'dft_000001');
  assert.match(String(fromRedis.headers['cache-status']), /hit; ttl=\d+; detail=l2/);
  assert.equal(fromRedis.body, first.body);
  assert.equal(svc.stats().requests, upstreamBefore, 'no further upstream requests for the cached draft');
});
