/**
 * A write's answer ends only once this pod's invalidation is done (ResponseHead.endAfter): the client that wrote
 * and then reads through the pod never gets the old copy. Shown with a real redis-server that the test pauses
 * (`CLIENT PAUSE`), so the L2 part of the invalidation takes a known time: the write's answer may not be complete
 * before it, on either upstream leg, and with a Transform in the body's path (gzip) too.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { startSidecar } from '../helpers/sidecar';
import { REDIS_CLI, startRedis } from '../helpers/redis';
import { startDraftService } from '../../examples/draft-service/server';
import { waitFor } from '../helpers/ports';
import { draftPolicy, inL2, isHit, queryScript } from './helpers';
import { rawRequest } from '../compress/helpers';

const PAUSE_MS = 600;
/** What the answer must at least take: the pause, less what may pass between the pause and the invalidation. */
const HELD_AT_LEAST_MS = 400;

/** `create`: POST /create_draft, whose draft_id the route reads from the answer (the events are raised at its end). */
async function writeWhileRedisPaused(t: TestContext, o: { env?: Record<string, string>; gzip?: boolean; create?: boolean }): Promise<void> {
  const svc = await startDraftService({ port: 0 });
  t.after(() => svc.close());
  const redis = await startRedis();
  t.after(() => redis.stop());
  // one worker: the pod's only worker, the path without the primary's fan-out
  const extraTop = o.gzip ? 'compression: { enabled: true, algorithm: gzip, threshold: 16B }' : '';
  const sc = await startSidecar(draftPolicy(svc.port, { redis: redis.url, workers: 1, extraTop }), { env: o.env });
  t.after(() => sc.stop());

  await queryScript(sc.url, 'dft_000001');
  assert.ok(isHit(await queryScript(sc.url, 'dft_000001')));
  await waitFor('the draft in L2', () => inL2(redis.port, 'draft:dft_000001:script'), 30_000);

  const paused = spawnSync(REDIS_CLI, ['-p', String(redis.port), 'client', 'pause', String(PAUSE_MS), 'ALL'], { encoding: 'utf8' });
  assert.equal(paused.stdout.trim(), 'OK', paused.stderr);
  const started = performance.now();
  const headers: Record<string, string> = { 'x-user-id': '7' };
  if (o.gzip) headers['accept-encoding'] = 'gzip';
  const body = o.create ? '{}' : JSON.stringify({ draft_id: 'dft_000001', video_url: 'https://v.example.invalid/a.mp4', start: 0, end: 3 });
  const path = o.create ? '/create_draft' : '/add_video';
  const r = await rawRequest(sc.url + path, { method: 'POST', body, headers: { ...headers, 'content-type': 'application/json' } });
  const took = performance.now() - started;

  assert.equal(r.status, 200);
  if (o.gzip) assert.equal(r.headers['content-encoding'], 'gzip', 'the answer went through the compression Transform');
  const text = (o.gzip ? gunzipSync(r.body) : r.body).toString('utf8');
  assert.equal(JSON.parse(text).success, true, 'the whole answer arrived');
  assert.ok(took >= HELD_AT_LEAST_MS, `the write's answer ended after ${took.toFixed(0)} ms, before the L2 part of its invalidation could finish`);
  if (!o.create) assert.ok(!isHit(await queryScript(sc.url, 'dft_000001')), 'read-your-write: the old copy is gone');
}

test('a write\'s answer ends only when this pod\'s invalidation is done (undici leg, body written straight)', async (t) => {
  await writeWhileRedisPaused(t, {});
});

test('a write\'s answer ends only when this pod\'s invalidation is done (a gzip Transform in the body\'s path)', async (t) => {
  await writeWhileRedisPaused(t, { gzip: true });
});

test('a write\'s answer ends only when this pod\'s invalidation is done (http-proxy leg)', async (t) => {
  await writeWhileRedisPaused(t, { env: { BRIDGE_SIDECAR_UPSTREAM_LEG: 'http-proxy' } });
});

test('a write\'s answer ends only when this pod\'s invalidation is done (params read from the answer\'s body)', async (t) => {
  await writeWhileRedisPaused(t, { create: true });
});
