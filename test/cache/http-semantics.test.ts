/**
 * RFC 9111 / RFC 5861 behaviour of the cache, each rule through the real request path: the upstream answers
 * with the headers a test names; the test sends requests and counts what reached the upstream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policy, request, startSidecar, startUpstream, type UpstreamReply } from './harness';
import { parseCacheControl, freshness } from '../../lib/cache/http-semantics';
import { ManualClock } from '../helpers/clock';

function rig(extraRoute = '', cacheExtra = '') {
  return `
routes:
  - name: any
    match: { path: "/*" }
    cache: { key: "get", ttl: 1m ${extraRoute} }
cache:
  l1: { size: 1MB }
  ${cacheExtra}
`;
}

type Replies = Record<string, (n: number, h: Record<string, string | string[] | undefined>) => UpstreamReply>;

/**
 * An upstream answering `replies` by path and an in-process sidecar in front of it. With `clock`, the sidecar's
 * cache runs on it and the upstream's Date header is taken from it, so a test moves time with clock.advance().
 */
async function setup(t: { after(fn: () => unknown): void }, replies: Replies, extraRoute = '', cacheExtra = '', clock?: ManualClock) {
  const perPath = new Map<string, number>();
  const up = await startUpstream((req) => {
    const path = (req.url ?? '/').split('?')[0];
    const n = (perPath.get(path) ?? 0) + 1;
    perPath.set(path, n);
    const fn = replies[path];
    const reply = fn ? fn(n, req.headers) : { status: 404, body: 'no' };
    return clock ? { ...reply, headers: { date: clock.httpDate(), ...reply.headers } } : reply;
  });
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, rig(extraRoute, cacheExtra)), { clock });
  t.after(() => sc.close());
  const get = (path: string, headers: Record<string, string> = {}) => request(sc.url, { path, headers });
  return { up, sc, get, hits: (p: string) => perPath.get(p) ?? 0 };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('parseCacheControl: quoted values, case, first occurrence wins', () => {
  const d = parseCacheControl('Max-Age=60, private="set-cookie, x", max-age=5, no-cache');
  assert.equal(d.get('max-age'), '60');
  assert.equal(d.get('private'), 'set-cookie, x');
  assert.ok(d.has('no-cache'));
});

test('freshness: s-maxage over max-age over Expires over route ttl; invalid Expires = stale', () => {
  const rules = { ttl: 7000, staleWhileRevalidate: 0, staleIfError: 0, override: false };
  const now = Date.parse('Wed, 01 Jan 2025 00:00:00 GMT');
  assert.equal(freshness({ 'cache-control': 's-maxage=5, max-age=9' }, now, rules).lifetime, 5000);
  assert.equal(freshness({ 'cache-control': 'max-age=9' }, now, rules).lifetime, 9000);
  assert.equal(freshness({ expires: 'Wed, 01 Jan 2025 00:00:30 GMT', date: 'Wed, 01 Jan 2025 00:00:00 GMT' }, now, rules).lifetime, 30_000);
  assert.equal(freshness({ expires: '0' }, now, rules).lifetime, 0);
  assert.equal(freshness({}, now, rules).lifetime, 7000);
  assert.equal(freshness({ 'cache-control': 'max-age=abc' }, now, rules).lifetime, 0);
});

test('no-store and private responses are not stored', async (t) => {
  const { get, hits } = await setup(t, {
    '/ns': () => ({ headers: { 'cache-control': 'no-store, max-age=60' }, body: 'a' }),
    '/pv': () => ({ headers: { 'cache-control': 'private, max-age=60' }, body: 'b' }),
  });
  for (let i = 0; i < 2; i++) { await get('/ns'); await get('/pv'); }
  assert.equal(hits('/ns'), 2);
  assert.equal(hits('/pv'), 2);
  assert.match(String((await get('/ns')).headers['cache-status']), /fwd=miss; detail=no-store/);
});

test('override_upstream stores despite no-store/private, with the route ttl', async (t) => {
  const { get, hits } = await setup(t, {
    '/ns': () => ({ headers: { 'cache-control': 'no-store' }, body: 'a' }),
  }, ', override_upstream: true');
  await get('/ns');
  const b = await get('/ns');
  assert.match(String(b.headers['cache-status']), /hit/);
  assert.equal(hits('/ns'), 1);
});

test('max-age: fresh within, refetched after; Expires in the past is stale', async (t) => {
  const clock = new ManualClock();
  const { get, hits } = await setup(t, {
    '/m': (n) => ({ headers: { 'cache-control': 'max-age=1' }, body: 'v' + n }),
    '/e': (n) => ({ headers: { expires: 'Thu, 01 Jan 1970 00:00:00 GMT' }, body: 'e' + n }),
  }, '', '', clock);
  await get('/m');
  clock.advance(900);
  assert.equal((await get('/m')).body, 'v1');
  clock.advance(200);
  assert.equal((await get('/m')).body, 'v2');
  assert.equal(hits('/m'), 2);
  await get('/e');
  await get('/e');
  assert.equal(hits('/e'), 2);
});

test('the tiers keep an entry for its lifetime on the runtime clock, not on Date.now() (a clock 20 s behind the real one)', async (t) => {
  // the tiers once measured retention as freshUntil (runtime clock) - Date.now(): 20 s behind, a max-age=21 entry
  // was kept in L1 for at most 1 s of real time, and this test's second read went upstream
  const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000 - 20_000);
  const { get, hits } = await setup(t, { '/m': (n) => ({ headers: { 'cache-control': 'max-age=21' }, body: 'v' + n }) }, '', '', clock);
  await get('/m');
  await new Promise((r) => setTimeout(r, 1100));
  clock.advance(1000);
  assert.equal((await get('/m')).body, 'v1', 'fresh for 20 more seconds on the runtime clock');
  assert.equal(hits('/m'), 1);
});

test('route ttl applies when the upstream says nothing', async (t) => {
  const { get, hits } = await setup(t, { '/plain': (n) => ({ body: 'p' + n }) });
  await get('/plain');
  assert.equal((await get('/plain')).body, 'p1');
  assert.equal(hits('/plain'), 1);
});

test('Age: an upstream Age is added to the time spent in cache; max-age counts from it', async (t) => {
  const clock = new ManualClock();
  const { get, hits } = await setup(t, { '/aged': (n) => ({ headers: { 'cache-control': 'max-age=10', age: '8' }, body: 'a' + n }) }, '', '', clock);
  await get('/aged');
  clock.advance(1500);
  const b = await get('/aged');
  assert.equal(hits('/aged'), 1);
  assert.equal(b.headers['age'], '9', 'the upstream\'s 8 s plus 1.5 s in cache, rounded down');
  clock.advance(600);
  await get('/aged');
  assert.equal(hits('/aged'), 2, 'stale once the upstream age plus resident time passes max-age');
});

test('Vary: separate entries per header value; Vary: * is never stored', async (t) => {
  const { get, hits } = await setup(t, {
    '/v': (_n, h) => ({ headers: { vary: 'Accept-Language', 'cache-control': 'max-age=60' }, body: 'lang=' + String(h['accept-language']) }),
    '/star': () => ({ headers: { vary: '*', 'cache-control': 'max-age=60' }, body: 's' }),
  });
  assert.equal((await get('/v', { 'accept-language': 'en' })).body, 'lang=en');
  assert.equal((await get('/v', { 'accept-language': 'fr' })).body, 'lang=fr');
  const en = await get('/v', { 'accept-language': 'en' });
  const fr = await get('/v', { 'accept-language': 'fr' });
  assert.equal(en.body, 'lang=en');
  assert.equal(fr.body, 'lang=fr');
  assert.match(String(en.headers['cache-status']), /hit/);
  assert.equal(hits('/v'), 2);
  await get('/star');
  await get('/star');
  assert.equal(hits('/star'), 2);
});

test('Authorization: not stored unless public / s-maxage / must-revalidate', async (t) => {
  const { get, hits } = await setup(t, {
    '/a': () => ({ headers: { 'cache-control': 'max-age=60' }, body: 'secret' }),
    '/p': () => ({ headers: { 'cache-control': 'public, max-age=60' }, body: 'shared' }),
    '/s': () => ({ headers: { 'cache-control': 's-maxage=60' }, body: 'shared' }),
  });
  for (let i = 0; i < 2; i++) {
    await get('/a', { authorization: 'Bearer u' + i });
    await get('/p', { authorization: 'Bearer u' + i });
    await get('/s', { authorization: 'Bearer u' + i });
  }
  assert.equal(hits('/a'), 2);
  assert.equal(hits('/p'), 1);
  assert.equal(hits('/s'), 1);
});

test('Set-Cookie responses are not stored; rate-limit and hop-by-hop fields are never replayed', async (t) => {
  const { get, hits } = await setup(t, {
    '/c': () => ({ headers: { 'set-cookie': 'sid=1', 'cache-control': 'max-age=60' }, body: 'c' }),
    '/r': () => ({ headers: { 'cache-control': 'max-age=60', ratelimit: '"u";r=5;t=1', 'ratelimit-policy': '"u";q=10;w=60', 'retry-after': '3', 'x-ratelimit-remaining': '5', 'x-keep': 'yes' }, body: 'r' }),
  });
  await get('/c');
  await get('/c');
  assert.equal(hits('/c'), 2);
  await get('/r');
  const b = await get('/r');
  assert.match(String(b.headers['cache-status']), /hit/);
  assert.equal(b.headers['x-keep'], 'yes');
  for (const f of ['ratelimit', 'ratelimit-policy', 'retry-after', 'x-ratelimit-remaining', 'set-cookie']) assert.equal(b.headers[f], undefined, f);
});

test('no-cache / must-revalidate: revalidated with ETag each time; 304 refreshes and serves the stored body', async (t) => {
  const { get, hits, up } = await setup(t, {
    '/nc': (_n, h) => (h['if-none-match'] === '"v1"'
      ? { status: 304, headers: { etag: '"v1"', 'cache-control': 'no-cache', 'x-fresh': 'new' } }
      : { headers: { etag: '"v1"', 'cache-control': 'no-cache', 'x-fresh': 'old' }, body: 'body-v1' }),
  });
  assert.equal((await get('/nc')).body, 'body-v1');
  const b = await get('/nc');
  assert.equal(b.status, 200);
  assert.equal(b.body, 'body-v1');
  assert.equal(b.headers['x-fresh'], 'new', '304 updated the stored header fields');
  assert.match(String(b.headers['cache-status']), /fwd=stale; fwd-status=304/);
  assert.equal(hits('/nc'), 2);
  assert.equal(up.log[1].headers['if-none-match'], '"v1"');
});

test('Last-Modified revalidation sends If-Modified-Since', async (t) => {
  const lm = 'Wed, 01 Jan 2025 00:00:00 GMT';
  const { get, up } = await setup(t, {
    '/lm': (_n, h) => (h['if-modified-since'] === lm
      ? { status: 304, headers: { 'last-modified': lm, 'cache-control': 'max-age=0' } }
      : { headers: { 'last-modified': lm, 'cache-control': 'max-age=0' }, body: 'lm-body' }),
  });
  await get('/lm');
  const b = await get('/lm');
  assert.equal(b.body, 'lm-body');
  assert.equal(up.log[1].headers['if-modified-since'], lm);
});

test("a client's conditional request is answered 304 from cache", async (t) => {
  const { get, hits } = await setup(t, { '/e': () => ({ headers: { etag: '"abc"', 'cache-control': 'max-age=60' }, body: 'x' }) });
  const first = await get('/e', { 'if-none-match': '"abc"' });
  assert.equal(first.status, 304, 'the miss was fetched unconditionally, stored, and answered 304');
  const b = await get('/e', { 'if-none-match': 'W/"abc"' });
  assert.equal(b.status, 304);
  assert.equal(b.body, '');
  const c = await get('/e', { 'if-none-match': '"other"' });
  assert.equal(c.status, 200);
  assert.equal(c.body, 'x');
  assert.equal(hits('/e'), 1);
});

test("a client's no-cache is ignored unless cache.honor_client_no_cache", async (t) => {
  const { get, hits } = await setup(t, { '/x': (n) => ({ headers: { 'cache-control': 'max-age=60' }, body: 'x' + n }) });
  await get('/x');
  await get('/x', { 'cache-control': 'no-cache' });
  await get('/x', { pragma: 'no-cache' });
  assert.equal(hits('/x'), 1);
});

test('honor_client_no_cache: a client no-cache goes upstream and refreshes the entry', async (t) => {
  const { get, hits } = await setup(t, { '/x': (n) => ({ headers: { 'cache-control': 'max-age=60' }, body: 'x' + n }) }, '', 'honor_client_no_cache: true');
  await get('/x');
  const b = await get('/x', { 'cache-control': 'no-cache' });
  assert.equal(b.body, 'x2');
  assert.equal((await get('/x')).body, 'x2');
  assert.equal(hits('/x'), 2);
});

test('stale-while-revalidate: serves stale at once, exactly one background refresh', async (t) => {
  const clock = new ManualClock();
  const { get, hits } = await setup(t, {
    '/swr': (n) => ({ delayMs: n > 1 ? 300 : 0, headers: { 'cache-control': 'max-age=1, stale-while-revalidate=30' }, body: 'v' + n }),
  }, '', '', clock);
  await get('/swr');
  clock.advance(1100);
  const stale = await Promise.all(Array.from({ length: 10 }, () => get('/swr')));
  for (const r of stale) {
    assert.equal(r.body, 'v1');
    assert.match(String(r.headers['cache-status']), /hit; ttl=-\d+; detail=stale-while-revalidate/);
  }
  const deadline = Date.now() + 15_000;
  while (hits('/swr') < 2 && Date.now() < deadline) await sleep(50);
  await sleep(300);
  assert.equal(hits('/swr'), 2, 'one background refresh for ten stale hits');
  assert.equal((await get('/swr')).body, 'v2');
});

test('stale-if-error: a 5xx or an unreachable upstream gets the stale copy; must-revalidate forbids it', async (t) => {
  let fail = false;
  const clock = new ManualClock();
  const { get, up } = await setup(t, {
    '/sie': (n) => (fail ? { status: 503, body: 'down' } : { headers: { 'cache-control': 'max-age=1, stale-if-error=60' }, body: 'good' + n }),
    '/mr': (n) => (fail ? { status: 503, body: 'down' } : { headers: { 'cache-control': 'max-age=1, must-revalidate, stale-if-error=60' }, body: 'mr' + n }),
  }, '', '', clock);
  await get('/sie');
  await get('/mr');
  clock.advance(1100);
  fail = true;
  const a = await get('/sie');
  assert.equal(a.status, 200);
  assert.equal(a.body, 'good1');
  assert.match(String(a.headers['cache-status']), /fwd=stale; fwd-status=503; ttl=-\d+; detail=stale-if-error/);
  assert.equal((await get('/mr')).status, 503);
  // the upstream disappears entirely: 502 from the proxy becomes the stale copy
  await up.close();
  const b = await get('/sie');
  assert.equal(b.status, 200);
  assert.equal(b.body, 'good1');
  assert.match(String(b.headers['cache-status']), /detail=stale-if-error/);
});

test('HEAD is answered from a stored GET', async (t) => {
  const { sc, get, hits } = await setup(t, { '/h': () => ({ headers: { 'cache-control': 'max-age=60' }, body: 'hello' }) });
  await get('/h');
  const h = await request(sc.url, { method: 'HEAD', path: '/h' });
  assert.equal(h.status, 200);
  assert.equal(h.headers['content-length'], '5');
  assert.equal(h.body, '');
  assert.equal(hits('/h'), 1);
});

test('responses to other statuses: 404 cached with ttl, 500 and 206 not', async (t) => {
  const { get, hits } = await setup(t, {
    '/404': () => ({ status: 404, body: 'nf' }),
    '/500': () => ({ status: 500, headers: { 'cache-control': 'max-age=60' }, body: 'err' }),
  });
  await get('/404'); await get('/404');
  await get('/500'); await get('/500');
  assert.equal(hits('/404'), 1);
  assert.equal(hits('/500'), 2);
});

test('stale-if-error when the request is shed by the admission queue', async (t) => {
  const replies: Replies = {
    '/slow': () => ({ delayMs: 1500, body: 'slow' }),
    '/sie': (n) => ({ headers: { 'cache-control': 'max-age=1, stale-if-error=60' }, body: 'kept' + n }),
  };
  const clock = new ManualClock();
  const { get, hits } = await setup(t, replies, '', '\nqueues: { max_in_flight: 1, max_queue_size: 10, queue_timeout: 200ms }', clock);
  await get('/sie');
  clock.advance(1100);
  const slow = get('/slow'); // holds the only upstream slot
  await sleep(100);
  const r = await get('/sie');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'kept1');
  assert.match(String(r.headers['cache-status']), /hit; ttl=-\d+; detail=stale-if-error/);
  assert.equal(hits('/sie'), 1);
  await slow;
});
