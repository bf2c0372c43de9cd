/**
 * RFC 9111 §4.4: a non-error answer to an unsafe request invalidates the stored answers for its target URI and
 * for a same-origin Location / Content-Location, in every worker of the pod.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { send, sidecar, startOrigin } from './rig';

async function rig(t: { after(fn: () => unknown): void }, workers: number) {
  const o = await startOrigin();
  t.after(() => o.close());
  const version = new Map<string, number>();
  for (const p of ['/items/1', '/items/2', '/items/3']) {
    version.set(p, 1);
    o.routes.set(p, (req, _b, res) => {
      if (req.method === 'GET') {
        const out = `${p} v${version.get(p)}`;
        res.writeHead(200, { 'content-length': String(out.length), 'cache-control': 'max-age=300' });
        return void res.end(out);
      }
      version.set(p, version.get(p)! + 1);
      if (req.method === 'PATCH') {
        res.writeHead(409, { 'content-length': '0' }); // an error answer invalidates nothing
        return void res.end();
      }
      // PUT /items/1 says it also changed /items/2 (Location) and /items/3 (Content-Location)
      res.writeHead(200, { 'content-length': '0', location: '/items/2', 'content-location': 'http://elsewhere.example/items/3' });
      res.end();
    });
  }
  const sc = await sidecar(t, o.port, `
  - name: items
    match: { method: GET, path: "/items/{id}" }
    params: { id: path.id }
    cache: { key: "item:{id}", ttl: 5m }`, '', { workers });
  return { o, sc, version };
}

test('unsafe methods invalidate the target URI and a same-origin Location; errors and other origins do not', async (t) => {
  const { sc } = await rig(t, 0);
  for (const p of ['/items/1', '/items/2', '/items/3']) await send(sc.port, 'GET', p);
  assert.match(String((await send(sc.port, 'GET', '/items/1')).headers['cache-status']), /; hit;/);
  assert.equal((await send(sc.port, 'PATCH', '/items/1', { body: '{}' })).status, 409);
  assert.equal((await send(sc.port, 'GET', '/items/1')).body, '/items/1 v1', 'an error answer invalidates nothing');
  assert.equal((await send(sc.port, 'PUT', '/items/1', { body: '{}' })).status, 200);
  assert.equal((await send(sc.port, 'GET', '/items/1')).body, '/items/1 v3');
  const two = await send(sc.port, 'GET', '/items/2');
  assert.match(String(two.headers['cache-status']), /fwd=miss/, 'the same-origin Location was invalidated');
  const three = await send(sc.port, 'GET', '/items/3');
  assert.match(String(three.headers['cache-status']), /; hit;/, 'another origin\'s Content-Location is not ours to invalidate');
});

test('POST /items/1 through one worker invalidates /items/1 in every worker', async (t) => {
  const { o, sc } = await rig(t, 2);
  // fill, then read on fresh connections until both workers have answered from their cache
  await send(sc.port, 'GET', '/items/1');
  for (let i = 0; i < 6; i++) await send(sc.port, 'GET', '/items/1');
  const before = o.seen.filter((s) => s === 'GET /items/1').length;
  await send(sc.port, 'POST', '/items/1', { body: '{}' });
  for (let i = 0; i < 6; i++) {
    const r = await send(sc.port, 'GET', '/items/1');
    assert.equal(r.body, '/items/1 v2', `read ${i}: no worker serves the answer from before the POST`);
  }
  assert.ok(o.seen.filter((s) => s === 'GET /items/1').length > before);
});
