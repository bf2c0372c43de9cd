/**
 * RFC 9111 §4.4 after a restart: answers stored on disk (L3) by an earlier run of the sidecar are invalidated by
 * an unsafe request to their URI, like those stored by this run (the URI index is rebuilt from L3 at start-up).
 * A real `bridge-sidecar serve` process, stopped and started again on the same L3 directory, in front of a real
 * origin.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { basicPolicy, startSidecar } from '../../helpers/sidecar';
import { waitFor } from '../../helpers/ports';
import { tempDir } from '../../invalidation/helpers';
import { send, startOrigin, type Origin } from './rig';

/** `path` answers GET with body(version), cacheable for 5 min; any other method bumps the version (204). */
function versioned(o: Origin, path: string, body: (version: number) => string): void {
  let version = 1;
  o.routes.set(path, (req, _b, res) => {
    if (req.method !== 'GET') {
      version++;
      res.writeHead(204);
      return void res.end();
    }
    const out = body(version);
    res.writeHead(200, { 'content-length': String(out.length), 'cache-control': 'max-age=300' });
    res.end(out);
  });
}

test('an unsafe request after a restart invalidates what the previous run stored on disk for its URI', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  const paths = ['/items/1', '/items/2'];
  for (const p of paths) versioned(o, p, (v) => `${p} v${v}`);
  const dir = tempDir(t, 'bridge-uri-restart-');
  const policy = basicPolicy(o.port, `
routes:
  - name: items
    match: { method: GET, path: "/items/{id}" }
    params: { id: path.id }
    cache: { key: "item:{id}", ttl: 5m }
cache:
  l1: { size: 8MB }
  l3: { path: "${join(dir, 'l3')}", size: 64MB }
`);
  const first = await startSidecar(policy, { dir });
  for (const p of paths) assert.match(String((await send(first.port, 'GET', p)).headers['cache-status']), /fwd=miss; stored/);
  assert.equal(await first.stop(), 0); // a clean stop finishes the queued L3 writes

  const second = await startSidecar(policy, { dir });
  t.after(() => second.stop());
  // the control: what the first run stored is on disk and served from there
  const two = await send(second.port, 'GET', '/items/2');
  assert.match(String(two.headers['cache-status']), /; hit;.*detail=l3/, 'the entry survived the restart in L3');
  assert.equal(two.body, '/items/2 v1');
  // POST /items/1 matches no cached route: its 2xx invalidates what is stored for /items/1, although this run
  // never stored nor read it
  assert.equal((await send(second.port, 'POST', '/items/1', { body: '{}' })).status, 204);
  const one = await send(second.port, 'GET', '/items/1');
  assert.match(String(one.headers['cache-status']), /fwd=miss/, 'the entry stored before the restart was invalidated');
  assert.equal(one.body, '/items/1 v2');
});

test('an unsafe request invalidates a large answer that was streamed to disk', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  versioned(o, '/big/1', (v) => `v${v} ` + 'x'.repeat(8000));
  const dir = tempDir(t, 'bridge-uri-large-');
  const sc = await startSidecar(basicPolicy(o.port, `
memory: { large_body_threshold: 1KB }
routes:
  - name: big
    match: { method: GET, path: "/big/{id}" }
    params: { id: path.id }
    cache: { key: "big:{id}", ttl: 5m }
cache:
  l1: { size: 8MB }
  l3: { path: "${join(dir, 'l3')}", size: 64MB }
`), { dir });
  t.after(() => sc.stop());
  assert.match(String((await send(sc.port, 'GET', '/big/1')).headers['cache-status']), /fwd=miss; stored/);
  // the file lands just after the answer: read until it is served from disk
  await waitFor('the large answer served from L3', async () => /; hit;.*detail=l3/.test(String((await send(sc.port, 'GET', '/big/1')).headers['cache-status'])), 30_000);
  assert.equal((await send(sc.port, 'POST', '/big/1', { body: '{}' })).status, 204);
  const after = await send(sc.port, 'GET', '/big/1');
  assert.match(String(after.headers['cache-status']), /fwd=miss/, 'the streamed entry was invalidated');
  assert.ok(after.body.startsWith('v2 '));
});
