/**
 * The cache stage through the real request path (pipeline + proxy) against a real upstream: L1 hits, POST
 * reads with store_if, keys, Cache-Status/Age, coalescing, safety rules.
 */
import { test } from 'node:test';
import type { IncomingHttpHeaders } from 'node:http';
import assert from 'node:assert/strict';
import { policy, request, startSidecar, startUpstream } from './harness';

const ROUTES = `
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m, store_if: { "response.success": true } }
  - name: static
    match: { method: GET, path: "/get_font_types" }
    cache: { key: "static:fonts", ttl: 1m }
  - name: pattern
    match: { method: GET, path: "/api/patterns/get/{id}" }
    params: { id: path.id }
    cache: { key: "template:{id}", ttl: 1m }
cache:
  l1: { size: 1MB }
`;

test('GET: miss then L1 hit with Cache-Status and Age; one upstream request', async (t) => {
  // Date has whole seconds (and node's own may lag on a busy machine): up to a second of apparent age before the
  // entry is stored. A Date at the next whole second leaves none, so Age counts only the time since the store.
  const date = () => new Date(Math.ceil(Date.now() / 1000) * 1000).toUTCString();
  const up = await startUpstream(() => ({ headers: { 'content-type': 'application/json', date: date() }, body: '{"fonts":["a"]}' }));
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, ROUTES));
  t.after(() => sc.close());
  const a = await request(sc.url, { path: '/get_font_types' });
  assert.equal(a.status, 200);
  assert.equal(a.headers['cache-status'], 'bridge-sidecar; fwd=miss; stored');
  const b = await request(sc.url, { path: '/get_font_types' });
  assert.equal(b.status, 200);
  assert.equal(b.body, '{"fonts":["a"]}');
  assert.match(String(b.headers['cache-status']), /^bridge-sidecar; hit; ttl=\d+; detail=l1$/);
  assert.equal(b.headers['age'], '0');
  assert.equal(b.headers['content-length'], String('{"fonts":["a"]}'.length));
  assert.match(String(b.headers['via']), /1\.1 bridge-sidecar/);
  assert.equal(up.count, 1);
});

test('POST read: key from body param, store_if refuses success:false, other draft is a separate entry', async (t) => {
  const up = await startUpstream((_req, body) => {
    const j = JSON.parse(body.toString());
    if (j.draft_id === 'bad') return { headers: { 'content-type': 'application/json' }, body: '{"success":false,"error":"x"}' };
    return { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ success: true, draft: j.draft_id }) };
  });
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, ROUTES));
  t.after(() => sc.close());
  const q = (id: string, force = false) => request(sc.url, { method: 'POST', path: '/query_script', body: JSON.stringify({ draft_id: id, force_update: force }) });
  // the body decides (store_if) and is held whole: the head waits for it and says what happened
  assert.equal((await q('42')).headers['cache-status'], 'bridge-sidecar; fwd=miss; stored');
  const hit = await q('42');
  assert.match(String(hit.headers['cache-status']), /hit; ttl=\d+; detail=l1/);
  assert.equal(JSON.parse(hit.body).draft, '42');
  assert.equal(up.count, 1);
  await q('43');
  assert.equal(up.count, 2);
  assert.equal(JSON.parse((await q('43')).body).draft, '43');
  assert.equal(up.count, 2);
  // success:false is never stored, and Cache-Status says so
  assert.equal((await q('bad')).headers['cache-status'], 'bridge-sidecar; fwd=miss; detail=store_if');
  assert.equal((await q('bad')).headers['cache-status'], 'bridge-sidecar; fwd=miss; detail=store_if');
  assert.equal(up.count, 4);
  // the readable key is the template filled with the param
  assert.ok([...sc.cache.tiers.l1!.keys()].some((k) => k.startsWith('draft:42:script#')));
  // force_update: true matches no cache route: always upstream
  await q('42', true);
  await q('42', true);
  assert.equal(up.count, 6);
  // and, as an unsafe request's non-error answer on a route without a cache section, it invalidates the
  // stored answers for its target URI (RFC 9111 §4.4): the cached read of draft 42 is gone
  assert.ok(![...sc.cache.tiers.l1!.keys()].some((k) => k.startsWith('draft:42:script#')));
});

test('store_if on a streamed (chunked) answer: its head goes out before the body ends, the store is decided after', async (t) => {
  const http = await import('node:http');
  let finish: (() => void) | null = null;
  let n = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      n++;
      res.writeHead(200, { 'content-type': 'application/json' }); // no Content-Length: chunked
      res.write('{"success":true,');
      finish = () => res.end('"draft":"7"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const { port } = server.address() as import('node:net').AddressInfo;
  const sc = await startSidecar(policy(`http://127.0.0.1:${port}`, ROUTES));
  t.after(() => sc.close());
  const body = JSON.stringify({ draft_id: '7', force_update: false });
  const first = await new Promise<{ status: string; body: string }>((resolve, reject) => {
    const req = http.request(`${sc.url}/query_script`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(body.length) } }, (res) => {
      // the head arrived while the upstream still holds the rest of the body: only now let it end
      const status = String(res.headers['cache-status']);
      finish!();
      let b = '';
      res.on('data', (c: Buffer) => { b += c.toString(); });
      res.on('end', () => resolve({ status, body: b }));
    });
    req.on('error', reject);
    req.end(body);
  });
  assert.equal(first.status, 'bridge-sidecar; fwd=miss', 'undecided when the head went out');
  assert.equal(JSON.parse(first.body).draft, '7');
  const again = await request(sc.url, { method: 'POST', path: '/query_script', body });
  assert.match(String(again.headers['cache-status']), /^bridge-sidecar; hit;/, 'stored once the body passed store_if');
  assert.equal(n, 1);
});

test('route_cache_requests_total: each request on a cached route counted once, as hit, stale, miss or bypass', async (t) => {
  let now = Date.now();
  const clock = { now: () => now };
  const up = await startUpstream(() => ({ headers: { 'content-type': 'text/plain' }, body: 'p' }));
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, `
routes:
  - name: pattern
    match: { method: GET, path: "/api/patterns/get/{id}" }
    params: { id: path.id }
    cache: { key: "template:{id}", ttl: 1m, stale_while_revalidate: 10m }
  - name: plain
    match: { method: GET, path: /plain }
cache:
  l1: { size: 1MB }
  honor_client_no_cache: true
`), { clock });
  t.after(() => sc.close());
  const get = (headers: Record<string, string> = {}) => request(sc.url, { path: '/api/patterns/get/1', headers });
  const counts = async () => {
    const text = await sc.metrics.registry.getSingleMetricAsString('bridge_sidecar_route_cache_requests_total');
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/endpoint="pattern",result="(\w+)"\} (\d+)/g)) out[m[1]] = Number(m[2]);
    return out;
  };
  assert.deepEqual(await counts(), { hit: 0, stale: 0, miss: 0, bypass: 0 }, 'every result at 0 from the start');
  assert.match(String((await get()).headers['cache-status']), /fwd=miss; stored/);
  assert.match(String((await get()).headers['cache-status']), /^bridge-sidecar; hit/);
  assert.match(String((await get()).headers['cache-status']), /^bridge-sidecar; hit/);
  // the client's no-cache goes upstream: a bypass, and not a miss as well
  assert.match(String((await get({ 'cache-control': 'no-cache' })).headers['cache-status']), /fwd=request/);
  now += 2 * 60_000; // past the ttl, within stale-while-revalidate
  assert.match(String((await get()).headers['cache-status']), /stale-while-revalidate/);
  await request(sc.url, { path: '/plain' });
  assert.deepEqual(await counts(), { hit: 2, stale: 1, miss: 1, bypass: 1 });
  assert.doesNotMatch(await sc.metrics.registry.getSingleMetricAsString('bridge_sidecar_route_cache_requests_total'), /endpoint="plain"/);
});

test('a POST with no cache route is never cached', async (t) => {
  const up = await startUpstream(() => ({ headers: { 'cache-control': 'max-age=600' }, body: 'ok' }));
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, ROUTES));
  t.after(() => sc.close());
  for (let i = 0; i < 3; i++) await request(sc.url, { method: 'POST', path: '/mcp/add_video', body: '{"draft_id":"1"}' });
  assert.equal(up.count, 3);
});

test('param values cannot inject key segments or globs: they are percent-encoded', async (t) => {
  const up = await startUpstream((req) => ({ body: 'for ' + req.url }));
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, ROUTES));
  t.after(() => sc.close());
  await request(sc.url, { path: '/api/patterns/get/a%3Ab*c' });
  await request(sc.url, { path: '/api/patterns/get/..%2F..%2Fetc' });
  const keys = [...sc.cache.tiers.l1!.keys()].map((k) => k.split('#')[0]).sort();
  assert.deepEqual(keys, ['template:%2E%2E%2F%2E%2E%2Fetc', 'template:a%3Ab%2Ac']);
  // a purge of template:a* must not reach into other keys by way of an injected ':'
  assert.equal(await sc.cache.purge('template:a%3A*'), 1);
});

test('100 concurrent misses for one key -> exactly one upstream request, all get the body', async (t) => {
  const up = await startUpstream(() => ({ delayMs: 300, headers: { 'content-type': 'application/json' }, body: '{"success":true,"n":1}' }));
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, ROUTES));
  t.after(() => sc.close());
  const replies = await Promise.all(Array.from({ length: 100 }, () =>
    request(sc.url, { method: 'POST', path: '/query_script', body: '{"draft_id":"7","force_update":false}' })));
  assert.equal(up.count, 1);
  for (const r of replies) {
    assert.equal(r.status, 200);
    assert.equal(r.body, '{"success":true,"n":1}');
  }
  assert.ok(replies.filter((r) => String(r.headers['cache-status']).includes('detail=coalesced')).length >= 90);
});

test('coalescing does not share a non-cacheable answer: waiters go upstream themselves', async (t) => {
  const up = await startUpstream((_r, _b, n) => ({ delayMs: 200, status: n === 1 ? 500 : 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ success: n !== 1, n }) }));
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, ROUTES));
  t.after(() => sc.close());
  const replies = await Promise.all(Array.from({ length: 5 }, () =>
    request(sc.url, { method: 'POST', path: '/query_script', body: '{"draft_id":"9","force_update":false}' })));
  assert.equal(replies.filter((r) => r.status === 500).length, 1, 'only the leader sees its own 500');
  assert.equal(replies.filter((r) => r.status === 200).length, 4);
  assert.ok(up.count >= 2 && up.count <= 5);
});

test('a response for one user is never served to another when the route keys on identity', async (t) => {
  const up = await startUpstream((req) => ({ headers: { 'cache-control': 'max-age=60' }, body: 'drafts of ' + String(req.headers['x-user-id']) }));
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, `
rate_limiting: { identity: { header: x-user-id } }
routes:
  - name: my_drafts
    match: { method: GET, path: /my/drafts }
    params: { user: identity }
    cache: { key: "user:drafts", ttl: 1m }
cache:
  l1: { size: 1MB }
`));
  t.after(() => sc.close());
  const get = (u: string) => request(sc.url, { path: '/my/drafts', headers: { 'x-user-id': u } });
  assert.equal((await get('alice')).body, 'drafts of alice');
  assert.equal((await get('bob')).body, 'drafts of bob');
  const again = await get('alice');
  assert.equal(again.body, 'drafts of alice');
  assert.match(String(again.headers['cache-status']), /hit/);
  assert.equal((await get('bob')).body, 'drafts of bob');
  assert.equal(up.count, 2);
});

test('metrics: cache_requests_total by layer/result, cache_size_bytes, evictions counter registered', async (t) => {
  const up = await startUpstream(() => ({ body: 'm' }));
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, ROUTES));
  t.after(() => sc.close());
  await request(sc.url, { path: '/get_font_types' });
  await request(sc.url, { path: '/get_font_types' });
  const text = await sc.metrics.registry.metrics();
  assert.match(text, /bridge_sidecar_cache_requests_total\{layer="l1",result="miss"\} 1/);
  assert.match(text, /bridge_sidecar_cache_requests_total\{layer="l1",result="hit"\} 1/);
  assert.match(text, /bridge_sidecar_cache_size_bytes\{layer="l1"\} [1-9]\d*/);
  assert.match(text, /# TYPE bridge_sidecar_cache_evictions_total counter/);
});

test('with the compressor in front: gzip and identity bodies are separate variants, stored with their encoding', async (t) => {
  const { gunzipSync } = await import('node:zlib');
  const http = await import('node:http');
  const json = JSON.stringify({ success: true, pad: 'p'.repeat(4000) });
  const up = await startUpstream(() => ({ headers: { 'content-type': 'application/json', etag: '"e1"', 'cache-control': 'max-age=60' }, body: json }));
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, `${ROUTES}\ncompression: { enabled: true, algorithm: gzip, threshold: 1KB }\n`));
  t.after(() => sc.close());
  const raw = (headers: Record<string, string>) => new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    http.get(sc.url + '/get_font_types', { headers, agent: false }, (res) => {
      const c: Buffer[] = [];
      res.on('data', (d: Buffer) => c.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(c) }));
    }).on('error', reject);
  });
  // a conditional miss that is answered 304 must still store the encoded body with its Content-Encoding
  const cond = await raw({ 'accept-encoding': 'gzip', 'if-none-match': '"e1"' });
  assert.equal(cond.status, 304);
  const gz = await raw({ 'accept-encoding': 'gzip' });
  assert.match(String(gz.headers['cache-status']), /hit/);
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.equal(gunzipSync(gz.body).toString(), json);
  const plain = await raw({});
  assert.equal(plain.headers['content-encoding'], undefined, 'a client that did not ask for gzip never gets it');
  assert.equal(plain.body.toString(), json);
  const plain2 = await raw({});
  assert.match(String(plain2.headers['cache-status']), /hit/);
  assert.equal(plain2.body.toString(), json);
  assert.equal(up.count, 2);
});
