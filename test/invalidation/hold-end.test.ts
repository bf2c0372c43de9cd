/**
 * A write's answer ends only once this pod's invalidation is done (ResponseHead.endAfter): the client that wrote
 * and then reads through the pod never gets the old copy. Shown with a real redis-server that the test pauses
 * (`CLIENT PAUSE`), so the L2 part of the invalidation takes a known time: the write's answer may not be complete
 * before it, on either upstream leg, and with a Transform in the body's path (gzip) too.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { startSidecar } from '../helpers/sidecar';
import { REDIS_CLI, startRedis } from '../helpers/redis';
import { startDraftService } from '../../examples/draft-service/server';
import { waitFor } from '../helpers/ports';
import { draftPolicy, inL2, isHit, queryScript } from './helpers';

const PAUSE_MS = 600;
/** What the answer must at least take: the pause, less what may pass between the pause and the invalidation. */
const HELD_AT_LEAST_MS = 400;

async function writeWhileRedisPaused(t: TestContext, o: { env?: Record<string, string>; gzip?: boolean }): Promise<void> {
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
  const body = JSON.stringify({ draft_id: 'dft_000001', video_url: 'https://v.example.invalid/a.mp4', start: 0, end: 3 });
  const r = await post(sc.url, '/add_video', body, headers);
  const took = performance.now() - started;

  assert.equal(r.status, 200);
  if (o.gzip) assert.equal(r.headers['content-encoding'], 'gzip', 'the answer went through the compression Transform');
  const text = (o.gzip ? gunzipSync(r.raw) : r.raw).toString('utf8');
  assert.equal(JSON.parse(text).success, true, 'the whole answer arrived');
  assert.ok(took >= HELD_AT_LEAST_MS, `the write's answer ended after ${took.toFixed(0)} ms, before the L2 part of its invalidation could finish`);
  assert.ok(!isHit(await queryScript(sc.url, 'dft_000001')), 'read-your-write: the old copy is gone');
}

/** One request on a fresh connection; the body as received (gzip stays gzip). */
function post(base: string, path: string, body: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; raw: Buffer }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const q = http.request({ host: u.hostname, port: Number(u.port), method: 'POST', path, agent: false,
      headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } }, (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => resolve({ status: s.statusCode ?? 0, headers: s.headers, raw: Buffer.concat(chunks) }));
      s.on('error', reject);
    });
    q.setTimeout(30_000, () => q.destroy(new Error('request timed out')));
    q.on('error', reject);
    q.end(body);
  });
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
