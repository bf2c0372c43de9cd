/**
 * The same cross-pod invalidation against a real 3-master Redis Cluster: L2 removal through the tag index
 * (keys on other slots), pub/sub across the cluster's nodes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSidecar } from '../helpers/sidecar';
import { startRedisCluster } from '../helpers/redis';
import { sleep, waitFor } from '../helpers/ports';
import { startDraftService } from '../../examples/draft-service/server';
import { addVideo, draftPolicy, inL2, isHit, queryScript, cacheStatus, userDrafts, PROPAGATION_MARGIN_MS } from './helpers';

test('Redis Cluster: write through pod A, pod B sees it within 1 s; L2 entries and cascades removed', async (t) => {
  const svc = await startDraftService({ port: 0 });
  t.after(() => svc.close());
  const cluster = await startRedisCluster();
  t.after(() => cluster.stop());
  const a = await startSidecar(draftPolicy(svc.port, { cluster: cluster.seeds, keyPrefix: 'cl:' }));
  t.after(() => a.stop());
  const b = await startSidecar(draftPolicy(svc.port, { cluster: cluster.seeds, keyPrefix: 'cl:' }));
  t.after(() => b.stop());

  const old = (await queryScript(b.url, 'dft_000005', '11')).body;
  await userDrafts(b.url, '11');
  const port = cluster.nodes[0].port;
  await waitFor('entries in L2', () => inL2(port, 'draft:dft_000005:script', 'cl:') && inL2(port, 'user:11:drafts:list', 'cl:'), 15_000, 50);
  assert.match(cacheStatus(await queryScript(a.url, 'dft_000005', '11')), /detail=l2/);
  assert.ok(isHit(await queryScript(b.url, 'dft_000005', '11')));

  // the write carries user 12: user 11's list goes by cascade from the cached draft's own params
  const w = await addVideo(a.url, 'dft_000005', '12');
  assert.equal(w.status, 200);
  const written = Date.now();
  assert.notEqual((await queryScript(a.url, 'dft_000005', '11')).body, old);
  let seen = false;
  while (Date.now() - written < PROPAGATION_MARGIN_MS) {
    if ((await queryScript(b.url, 'dft_000005', '11')).body !== old) { seen = true; break; }
    await sleep(20);
  }
  assert.ok(seen, `pod B still served the old draft ${PROPAGATION_MARGIN_MS / 1000} s after the write`);
  assert.ok(!isHit(await userDrafts(b.url, '11')), 'the cascade did not reach user 11\'s list in pod B');
});
