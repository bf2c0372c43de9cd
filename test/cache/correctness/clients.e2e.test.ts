/**
 * Cached answers are right for the client that gets them: JSON-RPC ids, sessions, params, bodies, per-client
 * fields, strict parsers, one count per hit. Each test goes through a real sidecar process to a real origin.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MCP_ROUTE, metric, rpc, send, sidecar, startOrigin } from './rig';

test('a cached JSON-RPC answer carries the id of the request it answers (number, string, null), byte for byte', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  const sc = await sidecar(t, o.port, MCP_ROUTE);
  const a = await rpc(sc.port, 7, 'tools/list');
  assert.equal(JSON.parse(a.body).id, 7);
  // a result answer of known length is held whole: its head waits for it and says it was stored
  assert.equal(a.headers['cache-status'], 'bridge-sidecar; fwd=miss; stored');
  for (const id of [43, 'req-"43"', null]) {
    const b = await rpc(sc.port, id, 'tools/list');
    assert.match(String(b.headers['cache-status']), /; hit;/, 'served from the cache');
    assert.deepEqual(JSON.parse(b.body), { ...JSON.parse(a.body), id });
  }
  assert.equal(o.seen.filter((s) => s === 'POST /mcp').length, 1);
});

test('a cached answer never replays another client\'s Mcp-Session-Id', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  const sc = await sidecar(t, o.port, MCP_ROUTE);
  const a = await rpc(sc.port, 1, 'tools/list', undefined, { 'mcp-session-id': 'session-A' });
  assert.equal(a.headers['mcp-session-id'], 'session-A');
  const b = await rpc(sc.port, 2, 'tools/list', undefined, { 'mcp-session-id': 'session-B' });
  assert.match(String(b.headers['cache-status']), /; hit;/);
  assert.notEqual(b.headers['mcp-session-id'], 'session-A');
  assert.equal(b.headers['mcp-session-id'], undefined);
});

test('JSON-RPC params are part of the key; notifications and batches are never answered from the cache', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  const sc = await sidecar(t, o.port, MCP_ROUTE);
  const p1 = await rpc(sc.port, 1, 'tools/list');
  assert.deepEqual(JSON.parse(p1.body).result.tools.map((x: { name: string }) => x.name), ['create_draft', 'add_video']);
  const p2 = await rpc(sc.port, 2, 'tools/list', { cursor: 'page-2' });
  assert.deepEqual(JSON.parse(p2.body).result.tools.map((x: { name: string }) => x.name), ['save_draft']);
  // key order in params does not matter
  const p2again = await rpc(sc.port, 3, 'tools/list', { cursor: 'page-2' });
  assert.match(String(p2again.headers['cache-status']), /; hit;/);
  // a notification gets the server's 202 with no body, not a cached answer
  const note = await send(sc.port, 'POST', '/mcp', { body: JSON.stringify({ jsonrpc: '2.0', method: 'tools/list' }) });
  assert.equal(note.status, 202);
  assert.equal(note.body, '');
  // a batch goes to the server, and is answered as a batch
  const batch = await send(sc.port, 'POST', '/mcp', { body: JSON.stringify([{ jsonrpc: '2.0', id: 9, method: 'tools/list' }]) });
  assert.ok(Array.isArray(JSON.parse(batch.body)));
  assert.equal(o.seen.filter((s) => s === 'POST /mcp').length, 4);
});

test('only result answers are stored, never JSON-RPC errors', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  const sc = await sidecar(t, o.port, MCP_ROUTE);
  const e1 = await rpc(sc.port, 1, 'tools/list', { cursor: 'nope' });
  assert.ok(JSON.parse(e1.body).error);
  assert.equal(e1.headers['cache-status'], 'bridge-sidecar; fwd=miss; detail=jsonrpc-error');
  const e2 = await rpc(sc.port, 2, 'tools/list', { cursor: 'nope' });
  assert.doesNotMatch(String(e2.headers['cache-status']), /; hit;/);
  assert.equal(o.seen.length, 2);
});

test('POSTs with different bodies never share an entry when the key names no body field', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  o.routes.set('/search', (_req, body, res) => {
    const out = JSON.stringify({ echo: JSON.parse(body.toString()) });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(out.length) });
    res.end(out);
  });
  const sc = await sidecar(t, o.port, `
  - name: everything
    match: { path: "/*" }
    cache: { key: "all", ttl: 1m }`);
  const a = await send(sc.port, 'POST', '/search', { body: '{"q":"cats"}' });
  const b = await send(sc.port, 'POST', '/search', { body: '{"q":"dogs"}' });
  assert.deepEqual(JSON.parse(b.body), { echo: { q: 'dogs' } });
  const a2 = await send(sc.port, 'POST', '/search', { body: '{"q":"cats"}' });
  assert.match(String(a2.headers['cache-status']), /; hit;/);
  assert.equal(a2.body, a.body);
});

test('a hit is counted once, also when the answer varies on Accept-Encoding', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  o.routes.set('/doc', (_req, _body, res) => {
    const out = 'x'.repeat(4000);
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(out.length), 'cache-control': 'max-age=60' });
    res.end(out);
  });
  const sc = await sidecar(t, o.port, `
  - name: doc
    match: { method: GET, path: /doc }
    cache: { key: "doc", ttl: 1m }`, 'compression: { enabled: true, threshold: 1KB }\n');
  await send(sc.port, 'GET', '/doc', { headers: { 'accept-encoding': 'gzip' } });
  const before = await metric(sc, 'bridge_sidecar_cache_requests_total', { layer: 'l1', result: 'hit' });
  for (let i = 0; i < 3; i++) {
    const r = await send(sc.port, 'GET', '/doc', { headers: { 'accept-encoding': 'gzip' } });
    assert.match(String(r.headers['cache-status']), /; hit;/);
  }
  const after = await metric(sc, 'bridge_sidecar_cache_requests_total', { layer: 'l1', result: 'hit' });
  assert.equal(after - before, 3);
});

test('strict parsers: Expires that is not an HTTP-date, or two Expires lines, is expired; Age is an integer, the first of a list', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  const reply = (headers: Record<string, string | string[]>) => (_req: unknown, _b: Buffer, res: import('node:http').ServerResponse) => {
    res.setHeader('content-length', '2');
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.writeHead(200);
    res.end('ok');
  };
  const far = new Date(Date.now() + 3600_000).toUTCString();
  o.routes.set('/iso-expires', reply({ expires: new Date(Date.now() + 3600_000).toISOString() }));
  o.routes.set('/two-expires', reply({ expires: [far, far] }));
  o.routes.set('/rfc850-60', reply({ expires: 'Thursday, 01-Jan-60 00:00:00 GMT' }));
  o.routes.set('/age-list', reply({ 'cache-control': 'max-age=3600', age: '7200, 0' }));
  o.routes.set('/age-decimal', reply({ 'cache-control': 'max-age=3600', age: '7200.0' }));
  const sc = await sidecar(t, o.port, `
  - name: any
    match: { method: GET, path: "/*" }
    cache: { key: "get", ttl: 1m }`);
  const twice = async (path: string) => { await send(sc.port, 'GET', path); return String((await send(sc.port, 'GET', path)).headers['cache-status']); };
  assert.doesNotMatch(await twice('/iso-expires'), /; hit;/, 'an ISO date is not an HTTP-date: expired');
  assert.doesNotMatch(await twice('/two-expires'), /; hit;/, 'two Expires lines: expired');
  assert.match(await twice('/rfc850-60'), /; hit;/, '01-Jan-60 is 2060, not 1960');
  assert.doesNotMatch(await twice('/age-list'), /; hit;/, 'Age 7200 (first of the list) is past max-age 3600');
  assert.match(await twice('/age-decimal'), /; hit;/, 'Age 7200.0 is not an integer: ignored');
});

test('qualified no-cache / private: the answer is reused without the named fields; Set-Cookie2 is per client', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  let n = 0;
  const reply = (headers: Record<string, string>) => (_req: unknown, _b: Buffer, res: import('node:http').ServerResponse) => {
    n++;
    res.writeHead(200, { 'content-length': '2', ...headers, 'x-n': String(n) });
    res.end('ok');
  };
  o.routes.set('/cookie', reply({ 'cache-control': 'max-age=60, no-cache="Set-Cookie"', 'set-cookie': 'sid=first-client' }));
  o.routes.set('/user', reply({ 'cache-control': 'max-age=60, private="X-User"', 'x-user': 'alice' }));
  o.routes.set('/cookie2', reply({ 'cache-control': 'max-age=60', 'set-cookie2': 'sid=first-client' }));
  const sc = await sidecar(t, o.port, `
  - name: any
    match: { method: GET, path: "/*" }
    cache: { key: "get", ttl: 1m }`);
  await send(sc.port, 'GET', '/cookie');
  const c = await send(sc.port, 'GET', '/cookie');
  assert.match(String(c.headers['cache-status']), /; hit;/);
  assert.equal(c.headers['set-cookie'], undefined);
  await send(sc.port, 'GET', '/user');
  const u = await send(sc.port, 'GET', '/user');
  assert.match(String(u.headers['cache-status']), /; hit;/);
  assert.equal(u.headers['x-user'], undefined);
  await send(sc.port, 'GET', '/cookie2');
  const c2 = await send(sc.port, 'GET', '/cookie2');
  assert.doesNotMatch(String(c2.headers['cache-status']), /; hit;/, 'an answer that sets a cookie was made for one client');
});

test('Bridge-Sidecar-Cache-Control tunes this cache alone and never reaches the client', async (t) => {
  const o = await startOrigin();
  t.after(() => o.close());
  o.routes.set('/tuned', (_req, _b, res) => {
    res.writeHead(200, { 'content-length': '2', 'cache-control': 'no-store', 'bridge-sidecar-cache-control': 'max-age=60' });
    res.end('ok');
  });
  const sc = await sidecar(t, o.port, `
  - name: any
    match: { method: GET, path: "/*" }
    cache: { key: "get", ttl: 1m }`);
  const first = await send(sc.port, 'GET', '/tuned');
  assert.equal(first.headers['bridge-sidecar-cache-control'], undefined);
  assert.equal(first.headers['cache-control'], 'no-store');
  const second = await send(sc.port, 'GET', '/tuned');
  assert.match(String(second.headers['cache-status']), /; hit;/);
  assert.equal(second.headers['bridge-sidecar-cache-control'], undefined);
  assert.equal(second.headers['cache-control'], 'no-store', 'browsers and later caches still get the origin\'s own word');
});
