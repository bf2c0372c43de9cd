/**
 * Invalidation events through a real `bridge-sidecar serve` (2 workers) in front of the example draft service,
 * with a real redis-server: the contract's three triggers and patterns, read-your-write through one pod,
 * cascades through stored params, and the upstream's X-Invalidate header.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startSidecar, basicPolicy, type SidecarProcess } from '../helpers/sidecar';
import { startRedis } from '../helpers/redis';
import { startDraftService } from '../../examples/draft-service/server';
import { waitFor } from '../helpers/ports';
import { addVideo, admin, draftPolicy, inL2, isHit, pattern, queryScript, request, tempDir, tokenFile, userDrafts, cacheStatus, type Reply } from './helpers';

/** Send `n` requests (fresh connections, so both workers see some) and return the replies. */
async function times(n: number, f: () => Promise<Reply>): Promise<Reply[]> {
  const out: Reply[] = [];
  for (let i = 0; i < n; i++) out.push(await f());
  return out;
}

/** The example service, a sidecar with the draft policy and an admin token (and Redis, an L3 dir if asked). */
async function draftSidecar(t: TestContext, o: { redis?: boolean; l3?: boolean; workers?: number; cascade?: boolean } = {}): Promise<{ sc: SidecarProcess; token: string; redisPort: number | null }> {
  const svc = await startDraftService({ port: 0 });
  t.after(() => svc.close());
  let redisUrl: string | undefined;
  let redisPort: number | null = null;
  if (o.redis) {
    const redis = await startRedis();
    t.after(() => redis.stop());
    redisUrl = redis.url;
    redisPort = redis.port;
  }
  const dir = tempDir(t);
  const [tf, token] = tokenFile(dir);
  const sc = await startSidecar(draftPolicy(svc.port, { redis: redisUrl, workers: o.workers, cascade: o.cascade, tokenFile: tf, l3Dir: o.l3 ? dir + '/l3' : undefined }));
  t.after(() => sc.stop());
  return { sc, token, redisPort };
}

test('three triggers: route emits (draft_updated), admin (template_modified, user_preference_changed); read-your-write across workers', async (t) => {
  const { sc, token, redisPort } = await draftSidecar(t, { redis: true, l3: true, workers: 2 });

  // fill every worker's L1 (and L2, L3) with draft 1's script: after a few rounds every read is a hit
  const before = (await queryScript(sc.url, 'dft_000001')).body;
  const warm = await times(6, () => queryScript(sc.url, 'dft_000001'));
  assert.ok(warm.slice(2).every(isHit), `reads should be hits: ${warm.map(cacheStatus).join(' | ')}`);

  // draft_updated from the add_video route: the next reads, on any worker, see the new clip
  const w = await addVideo(sc.url, 'dft_000001');
  assert.equal(w.status, 200);
  assert.equal(JSON.parse(w.body).success, true);
  const after = await times(4, () => queryScript(sc.url, 'dft_000001'));
  assert.ok(!isHit(after[0]), `first read after the write must not be served from cache: ${cacheStatus(after[0])}`);
  for (const r of after) {
    assert.notEqual(r.body, before, 'a read after the write returned the old draft');
    assert.equal(r.body, after[0].body);
  }

  // template_modified through POST /admin/invalidate
  await times(4, () => pattern(sc.url, 'tpl_0001'));
  assert.ok(isHit(await pattern(sc.url, 'tpl_0001')));
  // L2 is written behind, in batches: a write still queued when the event comes is dropped, not stored and
  // removed, and would not be counted below
  await waitFor('the template in L2', () => inL2(redisPort!, 'template:tpl_0001:pattern'), 10_000, 50);
  const inv = await admin(sc.adminUrl, token, '/admin/invalidate', { event: 'template_modified', params: { template_id: 'tpl_0001' } });
  assert.equal(inv.status, 200, inv.body);
  const res = JSON.parse(inv.body) as { patterns: string[]; removed: { l1: number; l2: number; l3: number } };
  assert.deepEqual(res.patterns, ['template:tpl_0001:*']);
  assert.ok(res.removed.l1 >= 1 && res.removed.l2 >= 1, inv.body);
  const p2 = await pattern(sc.url, 'tpl_0001');
  assert.equal(p2.status, 200);
  assert.ok(!isHit(p2), `template read after invalidation: ${cacheStatus(p2)}`);

  // user_preference_changed: user 7's lists go, user 8's stay
  await times(4, () => userDrafts(sc.url, '7'));
  await times(4, () => userDrafts(sc.url, '8'));
  assert.ok(isHit(await userDrafts(sc.url, '7')));
  const up = await admin(sc.adminUrl, token, '/admin/invalidate', { event: 'user_preference_changed', params: { user_id: '7' } });
  assert.equal(up.status, 200, up.body);
  assert.deepEqual(JSON.parse(up.body).patterns, ['user:7:drafts:*']);
  assert.ok(!isHit(await userDrafts(sc.url, '7')));
  const u8 = await times(2, () => userDrafts(sc.url, '8'));
  assert.ok(u8.every(isHit), 'user 8 was not invalidated');

  // the admin endpoint refuses unknown events and bad bodies, and needs the token
  assert.equal((await admin(sc.adminUrl, token, '/admin/invalidate', { event: 'nope', params: {} })).status, 409);
  assert.equal((await admin(sc.adminUrl, token, '/admin/invalidate', { params: {} })).status, 400);
  assert.equal((await admin(sc.adminUrl, 'wrong', '/admin/invalidate', { event: 'draft_updated', params: { draft_id: 'x' } })).status, 401);

  // metrics: invalidations_total{event} and invalidated_entries_total{layer}
  const m = (await request(sc.adminUrl, { path: '/metrics' })).body;
  assert.match(m, /bridge_sidecar_invalidations_total\{event="draft_updated"\} [1-9]/);
  assert.match(m, /bridge_sidecar_invalidations_total\{event="template_modified"\} 1/);
  assert.match(m, /bridge_sidecar_invalidated_entries_total\{layer="l1"\} [1-9]/);
  assert.match(m, /bridge_sidecar_invalidated_entries_total\{layer="l2"\} [1-9]/);
  assert.match(m, /bridge_sidecar_invalidated_entries_total\{layer="l3"\} [1-9]/);
});

test('create_draft: draft_id read from the response body (response.output.draft_id), body passed unchanged', async (t) => {
  const { sc, token } = await draftSidecar(t);
  const created = await request(sc.url, { method: 'POST', path: '/create_draft', body: JSON.stringify({ width: 1080, height: 1920 }), headers: { 'x-user-id': '9' } });
  assert.equal(created.status, 200);
  const id = JSON.parse(created.body).output.draft_id as string;
  assert.match(id, /^dft_/);
  const m = (await request(sc.adminUrl, { path: '/metrics' })).body;
  assert.match(m, /bridge_sidecar_invalidations_total\{event="draft_updated"\} 1/);
  void token;
});

test('cascade: invalidating a draft also removes user:{user_id}:drafts:* from the params the cached draft remembers', async (t) => {
  const { sc, token } = await draftSidecar(t, { redis: true, l3: true });

  await queryScript(sc.url, 'dft_000002', '7'); // stored with params {draft_id: dft_000002, user_id: 7}
  await userDrafts(sc.url, '7');
  await userDrafts(sc.url, '8');
  assert.ok(isHit(await queryScript(sc.url, 'dft_000002', '7')));
  assert.ok(isHit(await userDrafts(sc.url, '7')));
  // the event carries only draft_id
  const r = await admin(sc.adminUrl, token, '/admin/invalidate', { event: 'draft_updated', params: { draft_id: 'dft_000002' } });
  assert.equal(r.status, 200, r.body);
  const body = JSON.parse(r.body) as { patterns: string[] };
  assert.deepEqual(body.patterns.sort(), ['draft:dft_000002:*', 'user:7:drafts:*']);
  assert.ok(!isHit(await userDrafts(sc.url, '7')), 'user 7 list should be gone by cascade');
  assert.ok(isHit(await userDrafts(sc.url, '8')), 'user 8 list must stay');
});

test('cascade: false applies only the event\'s own patterns', async (t) => {
  const { sc, token } = await draftSidecar(t, { cascade: false });
  await queryScript(sc.url, 'dft_000002', '7');
  await userDrafts(sc.url, '7');
  const r = await admin(sc.adminUrl, token, '/admin/invalidate', { event: 'draft_updated', params: { draft_id: 'dft_000002' } });
  assert.deepEqual(JSON.parse(r.body).patterns, ['draft:dft_000002:*']);
  assert.ok(!isHit(await queryScript(sc.url, 'dft_000002', '7')));
  assert.ok(isHit(await userDrafts(sc.url, '7')));
});

test('X-Invalidate from the upstream raises its events and never reaches the client', async (t) => {
  let version = 1;
  const up = http.createServer((req, res) => {
    if (req.url?.startsWith('/item/')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ version }));
      return;
    }
    // a background change the sidecar did not see: the service says what it changed
    version++;
    res.writeHead(202, { 'content-type': 'application/json', 'x-invalidate': 'draft_updated; draft_id=5, template_modified; template_id="t%2C1"' });
    res.end('{}');
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => up.close(() => r())));
  const port = (up.address() as { port: number }).port;
  const sc = await startSidecar(basicPolicy(port, `
routes:
  - name: item
    match: { method: GET, path: "/item/{id}" }
    params: { draft_id: path.id }
    cache: { key: "draft:{draft_id}:item", ttl: 5m }
  - name: tpl
    match: { method: GET, path: "/tpl/{id}" }
    params: { template_id: path.id }
    cache: { key: "template:{template_id}:x", ttl: 5m }
cache:
  l1: { size: 8MB }
  invalidation:
    triggers: [draft_updated, template_modified]
    patterns: ["draft:{draft_id}:*", "template:{template_id}:*"]
`));
  t.after(() => sc.stop());
  await request(sc.url, { path: '/item/5' });
  await request(sc.url, { path: '/item/6' });
  assert.ok(isHit(await request(sc.url, { path: '/item/5' })));
  const bg = await request(sc.url, { method: 'POST', path: '/background-save', body: '{}' });
  assert.equal(bg.status, 202);
  assert.equal(bg.headers['x-invalidate'], undefined, 'X-Invalidate leaked to the client');
  const again = await request(sc.url, { path: '/item/5' });
  assert.ok(!isHit(again), cacheStatus(again));
  assert.equal(JSON.parse(again.body).version, 2);
  assert.ok(isHit(await request(sc.url, { path: '/item/6' })), 'item 6 was not named');
  const m = (await request(sc.adminUrl, { path: '/metrics' })).body;
  assert.match(m, /bridge_sidecar_invalidations_total\{event="template_modified"\} 1/);
});
