/**
 * One cache per pod, whatever server.workers: an answer cached through one worker is a hit in every worker, so
 * whether a request hits never depends on which worker its connection reached.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { send, sidecar, startOrigin } from './rig';

test('with server.workers: 2, a key misses once per pod, not once per worker', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  o.routes.set('/doc', (_req, _b, res) => {
    res.writeHead(200, { 'content-length': '3', 'cache-control': 'max-age=300' });
    res.end('doc');
  });
  const sc = await sidecar(t, o.port, `
  - name: doc
    match: { method: GET, path: /doc }
    cache: { key: "doc", ttl: 5m }`, '', { workers: 2 });
  const first = await send(sc.port, 'GET', '/doc');
  assert.match(String(first.headers['cache-status']), /fwd=miss/);
  // every request on its own connection: the primary spreads connections over both workers
  for (let i = 0; i < 8; i++) {
    const r = await send(sc.port, 'GET', '/doc');
    assert.match(String(r.headers['cache-status']), /; hit;/, `request ${i} was not a hit: ${r.headers['cache-status']}`);
  }
  assert.equal(o.seen.filter((s) => s === 'GET /doc').length, 1);
});
