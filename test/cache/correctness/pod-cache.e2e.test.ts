/**
 * One cache per pod, whatever server.workers: an answer cached through one worker is a hit in every worker, so
 * whether a request hits never depends on which worker its connection reached.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { send, sidecar, startOrigin } from './rig';
import { basicPolicy, startSidecar } from '../../helpers/sidecar';
import { tempDir } from '../harness';

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

test('with server.workers: 2, after a restart, a key found in one worker\'s L3 becomes a hit in every worker', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  // after the restart the origin's answers may not be stored, so a worker's L1 can only be filled by an L3
  // promotion: its own, or (what this checks) its sibling's, handed over like any other L1 store
  let storable = true;
  o.routes.set('/doc', (_req, _b, res) => {
    res.writeHead(200, { 'content-length': '3', 'cache-control': storable ? 'max-age=300' : 'no-store' });
    res.end('doc');
  });
  const dir = tempDir(t);
  const yaml = basicPolicy(o.port, `routes:
  - name: doc
    match: { method: GET, path: /doc }
    cache: { key: "doc", ttl: 5m }
cache:
  l1: { size: 8MB }
  l3: { path: "${dir}", size: 10MB }
`, { workers: 2 });
  const before = await startSidecar(yaml);
  try {
    assert.match(String((await send(before.port, 'GET', '/doc')).headers['cache-status']), /fwd=miss; stored/);
  } finally {
    assert.equal(await before.stop(), 0); // drains: the background L3 write is done (only that worker's L3 has it)
  }
  storable = false;
  const after = await startSidecar(yaml);
  t.after(() => after.stop());
  // each request on its own connection: the primary spreads connections over both workers
  const seen: string[] = [];
  for (let i = 0; i < 8; i++) seen.push(String((await send(after.port, 'GET', '/doc')).headers['cache-status']));
  const promoted = seen.findIndex((s) => /detail=l3/.test(s));
  assert.ok(promoted >= 0, `no L3 hit: ${seen.join(' | ')}`);
  for (const s of seen.slice(promoted + 1)) assert.match(s, /; hit;/, `after the L3 hit: ${seen.join(' | ')}`);
});
