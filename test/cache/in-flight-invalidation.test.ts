/**
 * The in-flight read race (docs/invalidation.md, "Reads in flight"): a read whose upstream request started
 * before an invalidation of its key is served but never stored, whether the invalidation came from this worker
 * (a write route, X-Invalidate, /admin/invalidate, /admin/purge), another worker or another pod. A real upstream
 * on 127.0.0.1 holds chosen reads (their bodies are computed when they arrive, like a service that read its
 * data before the write) until the test releases them; the sidecars are real `bridge-sidecar serve` processes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { TestContext } from 'node:test';
import { startSidecar, basicPolicy, type SidecarProcess } from '../helpers/sidecar';
import { startRedis } from '../helpers/redis';
import { sleep, waitFor } from '../helpers/ports';
import { admin, cacheStatus, isHit, request, tempDir, tokenFile, type Reply } from '../invalidation/helpers';

interface HoldingUpstream {
  port: number;
  /** Hold the next `n` reads of `path` (GET) until release(path). */
  hold(path: string, n?: number): void;
  /** Reads of `path` waiting to be released. */
  held(path: string): number;
  release(path: string): void;
  /** Reads of `path` that reached the upstream. */
  reads(path: string): number;
  /** Change an item behind the sidecar's back. */
  bump(id: string): void;
  close(): Promise<void>;
}

/**
 * GET /item/{id}, /swr/{id}: `{"id", "version"}` (computed on arrival, sent when released if held);
 * POST /write/{id}: the item's version + 1 (the sidecar's write route emits draft_updated);
 * POST /bg/{id}: the same, answered with `X-Invalidate: draft_updated; draft_id={id}`.
 */
async function holdingUpstream(t: TestContext): Promise<HoldingUpstream> {
  const versions = new Map<string, number>();
  const holds = new Map<string, number>();
  const held = new Map<string, Array<() => void>>();
  const reads = new Map<string, number>();
  const bump = (id: string) => versions.set(id, (versions.get(id) ?? 1) + 1);
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const m = /^\/(item|swr|write|bg)\/([A-Za-z0-9_]+)$/.exec(url);
    req.resume();
    if (m === null) { res.writeHead(404).end(); return; }
    const [, kind, id] = m;
    if (req.method === 'POST') {
      bump(id);
      const h: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
      if (kind === 'bg') h['x-invalidate'] = `draft_updated; draft_id=${id}`;
      res.writeHead(200, h).end(JSON.stringify({ success: true, version: versions.get(id) ?? 1 }));
      return;
    }
    reads.set(url, (reads.get(url) ?? 0) + 1);
    const body = JSON.stringify({ id, version: versions.get(id) ?? 1 });
    const send = () => { res.writeHead(200, { 'content-type': 'application/json' }).end(body); };
    const n = holds.get(url) ?? 0;
    if (n > 0) {
      holds.set(url, n - 1);
      const list = held.get(url) ?? [];
      list.push(send);
      held.set(url, list);
    } else send();
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const up: HoldingUpstream = {
    port: (server.address() as { port: number }).port,
    hold: (path, n = 1) => { holds.set(path, (holds.get(path) ?? 0) + n); },
    held: (path) => held.get(path)?.length ?? 0,
    release: (path) => {
      holds.delete(path);
      const list = held.get(path) ?? [];
      held.delete(path);
      for (const send of list) send();
    },
    reads: (path) => reads.get(path) ?? 0,
    bump,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
  t.after(() => {
    for (const path of [...held.keys()]) up.release(path);
    return up.close();
  });
  return up;
}

/** A holding upstream and one sidecar (the item policy) whose admin endpoints take `token`. */
async function withAdmin(t: TestContext): Promise<{ up: HoldingUpstream; sc: Awaited<ReturnType<typeof startSidecar>>; token: string }> {
  const up = await holdingUpstream(t);
  const [tf, token] = tokenFile(tempDir(t, 'bridge-race-'));
  const sc = await startSidecar(itemPolicy(up.port, { tokenFile: tf }));
  t.after(() => sc.stop());
  return { up, sc, token };
}

function itemPolicy(upPort: number, o: { redis?: string; workers?: number; tokenFile?: string } = {}): string {
  const server: Record<string, string | number> = { workers: o.workers ?? 0 };
  if (o.tokenFile) server.admin_token_file = o.tokenFile;
  return basicPolicy(upPort, `
${o.redis ? `redis: { url: "${o.redis}", key_prefix: "race:", command_timeout: 500ms }` : ''}
routes:
  - name: item
    match: { method: GET, path: "/item/{id}" }
    params: { draft_id: path.id }
    cache: { key: "draft:{draft_id}:item", ttl: 5m }
  - name: swr
    match: { method: GET, path: "/swr/{id}" }
    params: { draft_id: path.id }
    cache: { key: "draft:{draft_id}:swr", ttl: 1s, stale_while_revalidate: 5m }
  - name: write
    match: { method: POST, path: "/write/{id}" }
    params: { draft_id: path.id }
    emits: [draft_updated]
cache:
  l1: { size: 8MB }
${o.redis ? '  l2: { ttl: 1h }' : ''}
  invalidation:
    triggers: [draft_updated]
    patterns: ["draft:{draft_id}:*"]
`, server);
}

const version = (r: Reply): number => (JSON.parse(r.body) as { version: number }).version;
const get = (sc: SidecarProcess, path: string): Promise<Reply> => request(sc.url, { path });

/** Start a read that the upstream holds; resolves once the upstream has it (with the reply, boxed: not awaited). */
async function heldRead(up: HoldingUpstream, sc: SidecarProcess, path: string): Promise<{ reply: Promise<Reply> }> {
  up.hold(path);
  const reply = get(sc, path);
  reply.catch(() => {});
  await waitFor(`the upstream to hold ${path}`, () => up.held(path) === 1, 10_000, 10);
  return { reply };
}

async function skippedStores(sc: SidecarProcess): Promise<number> {
  const m = (await request(sc.adminUrl, { path: '/metrics' })).body;
  const line = /^bridge_sidecar_cache_store_skipped_total\{reason="invalidated_in_flight"\} (\d+)/m.exec(m);
  return line ? Number(line[1]) : 0;
}

test('a write route\'s event while a read is in flight: the read is served, not stored; the next read goes upstream; reads after it are stored', async (t) => {
  const up = await holdingUpstream(t);
  const sc = await startSidecar(itemPolicy(up.port));
  t.after(() => sc.stop());

  const inFlight = await heldRead(up, sc, '/item/a1');
  const w = await request(sc.url, { method: 'POST', path: '/write/a1', body: '{}' });
  assert.equal(w.status, 200);
  up.release('/item/a1');
  const old = await inFlight.reply;
  assert.equal(old.status, 200);
  assert.equal(version(old), 1, 'the held read answers with what the upstream read before the write');

  // (1) the next read is a miss that goes upstream and gets the new data (without the fix: a hit on version 1)
  const next = await get(sc, '/item/a1');
  assert.ok(!isHit(next), `served from cache after the invalidation: ${cacheStatus(next)}`);
  assert.equal(version(next), 2);
  assert.equal(up.reads('/item/a1'), 2);
  // the held read's Cache-Status said so (its head left after the invalidation)
  assert.match(cacheStatus(old), /fwd=miss; detail=invalidated/);
  // (3) a read that started after the invalidation is stored as usual: the one after it is a hit
  assert.match(cacheStatus(next), /fwd=miss; stored/);
  const hit = await get(sc, '/item/a1');
  assert.ok(isHit(hit), cacheStatus(hit));
  assert.equal(version(hit), 2);
  assert.equal(up.reads('/item/a1'), 2);
  assert.equal(await skippedStores(sc), 1);
});

test('X-Invalidate, /admin/invalidate and /admin/purge while a read is in flight: none of them lets the older answer be stored', async (t) => {
  const { up, sc, token } = await withAdmin(t);

  const sources: Array<[string, (id: string) => Promise<void>]> = [
    ['X-Invalidate', async (id) => { assert.equal((await request(sc.url, { method: 'POST', path: `/bg/${id}`, body: '{}' })).status, 200); }],
    ['/admin/invalidate', async (id) => {
      up.bump(id);
      const r = await admin(sc.adminUrl, token, '/admin/invalidate', { event: 'draft_updated', params: { draft_id: id } });
      assert.equal(r.status, 200, r.body);
    }],
    ['/admin/purge', async (id) => {
      up.bump(id);
      const r = await admin(sc.adminUrl, token, '/admin/purge', { pattern: `draft:${id}:*` });
      assert.equal(r.status, 200, r.body);
    }],
  ];
  let n = 0;
  for (const [source, invalidate] of sources) {
    const id = `s${++n}`;
    const inFlight = await heldRead(up, sc, `/item/${id}`);
    await invalidate(id);
    up.release(`/item/${id}`);
    assert.equal(version(await inFlight.reply), 1, source);
    const next = await get(sc, `/item/${id}`);
    assert.ok(!isHit(next), `${source}: the answer older than the invalidation was stored: ${cacheStatus(next)}`);
    assert.equal(version(next), 2, source);
    assert.ok(isHit(await get(sc, `/item/${id}`)), `${source}: a read after the invalidation must be stored`);
  }
  assert.equal(await skippedStores(sc), 3);
});

test('another pod\'s invalidation (Redis pub/sub) while a read is in flight in this pod: not stored in L1 nor L2', async (t) => {
  const up = await holdingUpstream(t);
  const redis = await startRedis();
  t.after(() => redis.stop());
  const a = await startSidecar(itemPolicy(up.port, { redis: redis.url }));
  t.after(() => a.stop());
  const b = await startSidecar(itemPolicy(up.port, { redis: redis.url }));
  t.after(() => b.stop());

  const inFlight = await heldRead(up, b, '/item/p1');
  assert.equal((await request(a.url, { method: 'POST', path: '/write/p1', body: '{}' })).status, 200);
  // pod B has applied the message once it has observed its delay
  await waitFor('pod B to apply the invalidation from pod A', async () =>
    /bridge_sidecar_invalidation_delay_seconds_count [1-9]/.test((await request(b.adminUrl, { path: '/metrics' })).body), 10_000, 20);
  up.release('/item/p1');
  assert.equal(version(await inFlight.reply), 1);

  const viaB = await get(b, '/item/p1');
  assert.ok(!isHit(viaB), `pod B stored the answer older than pod A's write: ${cacheStatus(viaB)}`);
  assert.equal(version(viaB), 2);
  assert.equal(await skippedStores(b), 1);
  // nothing old reached the shared L2 either (any write-behind has run by now)
  await sleep(300);
  const viaA = await get(a, '/item/p1');
  assert.equal(version(viaA), 2, `pod A read the older answer: ${cacheStatus(viaA)}`);
  // and B's fresh read was stored normally
  const again = await get(b, '/item/p1');
  assert.ok(isHit(again), cacheStatus(again));
  assert.equal(version(again), 2);
});

test('another worker\'s invalidation (2 workers): no worker stores the read it had in flight', async (t) => {
  const up = await holdingUpstream(t);
  const sc = await startSidecar(itemPolicy(up.port, { workers: 2 }));
  t.after(() => sc.stop());

  // one read in flight in each worker (reads coalesce within a worker, so two held upstream reads = two workers)
  up.hold('/item/w1', 2);
  const replies: Array<Promise<Reply>> = [];
  for (let i = 0; i < 20 && up.held('/item/w1') < 2; i++) {
    const r = get(sc, '/item/w1');
    r.catch(() => {});
    replies.push(r);
    await sleep(50);
  }
  await waitFor('a read held in each worker', () => up.held('/item/w1') === 2, 10_000, 10);
  assert.equal((await request(sc.url, { method: 'POST', path: '/write/w1', body: '{}' })).status, 200);
  up.release('/item/w1');
  for (const r of await Promise.all(replies)) assert.equal(version(r), 1, 'reads in flight (and their coalesced waiters) get the answer they started');

  // whichever worker answers, none may serve the older answer from its L1
  for (let i = 0; i < 8; i++) {
    const r = await get(sc, '/item/w1');
    assert.equal(version(r), 2, `read ${i}: an answer older than the write was stored (${cacheStatus(r)})`);
  }
  assert.equal(await skippedStores(sc), 2, 'one skipped store in each worker');
});

test('a pattern invalidation blocks the in-flight reads it matches, not the others', async (t) => {
  const { up, sc, token } = await withAdmin(t);

  const x5 = await heldRead(up, sc, '/item/x5');
  const x55 = await heldRead(up, sc, '/item/x55'); // draft:x55:item: a longer id, same prefix
  const x5swr = await heldRead(up, sc, '/swr/x5'); // draft:x5:swr: another key the pattern covers
  up.bump('x5');
  up.bump('x55');
  const r = await admin(sc.adminUrl, token, '/admin/invalidate', { event: 'draft_updated', params: { draft_id: 'x5' } });
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(JSON.parse(r.body).patterns, ['draft:x5:*']);
  up.release('/item/x5');
  up.release('/item/x55');
  up.release('/swr/x5');
  for (const reply of [await x5.reply, await x55.reply, await x5swr.reply]) assert.equal(version(reply), 1);

  const a = await get(sc, '/item/x5');
  assert.ok(!isHit(a), cacheStatus(a));
  assert.equal(version(a), 2);
  const s = await get(sc, '/swr/x5');
  assert.ok(!isHit(s), cacheStatus(s));
  assert.equal(version(s), 2);
  // draft:x55:item does not match draft:x5:*: its answer was stored (version 1 is what the cache holds)
  const b = await get(sc, '/item/x55');
  assert.ok(isHit(b), `a non-matching in-flight read was not stored: ${cacheStatus(b)}`);
  assert.equal(version(b), 1);
  assert.equal(await skippedStores(sc), 2);
});

test('coalescing: waiters that joined before the invalidation get the leader\'s answer (not stored); a read after it does not wait for that answer', async (t) => {
  const { up, sc, token } = await withAdmin(t);

  const leader = await heldRead(up, sc, '/item/c1');
  const waiter = get(sc, '/item/c1');
  waiter.catch(() => {});
  await sleep(1500); // the waiter joins the leader's fill (checked below by its Cache-Status); a busy machine needs the margin
  assert.equal(up.reads('/item/c1'), 1);
  up.bump('c1');
  assert.equal((await admin(sc.adminUrl, token, '/admin/invalidate', { event: 'draft_updated', params: { draft_id: 'c1' } })).status, 200);

  // a read that arrives now must not wait for the older answer still in flight: it goes upstream itself
  const late = await Promise.race([get(sc, '/item/c1'), sleep(10_000).then(() => null)]);
  assert.ok(late !== null, 'a read after the invalidation waited for the fill that started before it');
  assert.equal(version(late), 2);
  assert.equal(up.reads('/item/c1'), 2);

  up.release('/item/c1');
  const [l, w] = await Promise.all([leader.reply, waiter]);
  assert.equal(version(l), 1);
  assert.equal(version(w), 1, 'a coalesced waiter gets the leader\'s answer');
  assert.match(cacheStatus(w), /detail=coalesced/);
  const after = await get(sc, '/item/c1');
  assert.ok(isHit(after), `the read started after the invalidation should have been stored: ${cacheStatus(after)}`);
  assert.equal(version(after), 2);
  assert.equal(await skippedStores(sc), 1);
});

test('stale-while-revalidate: a background refresh in flight during an invalidation is not stored', async (t) => {
  const { up, sc, token } = await withAdmin(t);

  assert.equal(version(await get(sc, '/swr/r1')), 1);
  await sleep(1300); // past the 1 s ttl, within stale-while-revalidate
  up.hold('/swr/r1');
  const stale = await get(sc, '/swr/r1');
  assert.match(cacheStatus(stale), /detail=stale-while-revalidate/);
  await waitFor('the background refresh to reach the upstream', () => up.held('/swr/r1') === 1, 10_000, 10);
  up.bump('r1');
  assert.equal((await admin(sc.adminUrl, token, '/admin/invalidate', { event: 'draft_updated', params: { draft_id: 'r1' } })).status, 200);
  up.release('/swr/r1');
  // the refresh has ended once it is counted as refused (without the fix it never is: it is stored by then)
  await waitFor('the refresh to be refused', async () => (await skippedStores(sc)) === 1, 5_000, 20).catch(() => {});
  const next = await get(sc, '/swr/r1');
  assert.ok(!isHit(next), `the refresh stored an answer older than the invalidation: ${cacheStatus(next)}`);
  assert.equal(version(next), 2);
  assert.equal(await skippedStores(sc), 1);
});
