/**
 * The L1 hit's head: the entry's stored fields are prepared once and written with what varies per hit (Age,
 * Cache-Status, Content-Length, the request's own extra fields). One prepared list serves every hit of an
 * entry, so what one hit adds must never show up in the next one, and an extra field that names a stored one
 * replaces it rather than adding a second line. Real node:http server and client over a socket.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendHit, headFor, sendEntry } from '../../lib/cache/respond';
import type { EntryMeta } from '../../lib/cache/entry';
import { makeEntry } from './fixtures';
import { policy, request, startSidecar, startUpstream } from './harness';

type Serve = (res: http.ServerResponse, req: http.IncomingMessage) => void;

/** A server whose handler each test swaps; replies read with their raw header lines (repeats visible). */
async function server(t: { after(fn: () => unknown): void }): Promise<{ get(serve: Serve, method?: string): Promise<{ raw: string[]; body: string }> }> {
  let current: Serve = (res) => res.end();
  const s = http.createServer((req, res) => current(res, req));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => s.close(r)));
  const port = (s.address() as AddressInfo).port;
  return {
    get(serve, method = 'GET') {
      current = serve;
      return new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/', method, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ raw: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
        });
        req.on('error', reject);
        req.end();
      });
    },
  };
}

/** The values of one field, every line of it, from raw headers. */
function lines(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
}

function entry(): { meta: EntryMeta; body: Buffer } {
  const e = makeEntry('k', 'hello', { etag: '"v1"', 'x-app': 'a', via: '1.1 edge' });
  return { meta: e.meta, body: e.body! };
}

test('hits of one entry each carry their own Age, Cache-Status and extra fields, never the previous hit\'s', async (t) => {
  const srv = await server(t);
  const { meta, body } = entry();
  const at = meta.storedAt;
  const first = await srv.get((res) => {
    assert.equal(sendHit(res, 'GET', meta, [['ratelimit-remaining', '9'], ['x-first-only', '1']], 'bridge-sidecar; hit; ttl=60; detail=l1', at + 5_000, body), true);
  });
  assert.deepEqual(lines(first.raw, 'age'), ['5']);
  assert.deepEqual(lines(first.raw, 'cache-status'), ['bridge-sidecar; hit; ttl=60; detail=l1']);
  assert.deepEqual(lines(first.raw, 'ratelimit-remaining'), ['9']);
  assert.deepEqual(lines(first.raw, 'x-first-only'), ['1']);
  assert.equal(first.body, 'hello');

  const second = await srv.get((res) => {
    assert.equal(sendHit(res, 'GET', meta, null, 'bridge-sidecar; hit; ttl=58; detail=l1', at + 7_000, body), true);
  });
  assert.deepEqual(lines(second.raw, 'age'), ['7']);
  assert.deepEqual(lines(second.raw, 'cache-status'), ['bridge-sidecar; hit; ttl=58; detail=l1']);
  assert.deepEqual(lines(second.raw, 'ratelimit-remaining'), []);
  assert.deepEqual(lines(second.raw, 'x-first-only'), []);
  // the stored fields, once each, and our hop joined to the stored Via
  assert.deepEqual(lines(second.raw, 'etag'), ['"v1"']);
  assert.deepEqual(lines(second.raw, 'x-app'), ['a']);
  assert.deepEqual(lines(second.raw, 'via'), ['1.1 edge, 1.1 bridge-sidecar']);
  assert.deepEqual(lines(second.raw, 'content-length'), ['5']);
});

test('the prepared head writes what the general path (headFor) writes, field for field', async (t) => {
  const srv = await server(t);
  const { meta, body } = entry();
  const now = meta.storedAt + 3_000;
  const extra: Array<readonly [string, string]> = [['ratelimit-limit', '10']];
  const fast = await srv.get((res) => { sendHit(res, 'GET', meta, extra, 'bridge-sidecar; hit', now, body); });
  const slow = await srv.get((res) => sendEntry(res, 'GET', headFor(meta, extra, 'bridge-sidecar; hit', now, false), body, null));
  const fields = (raw: string[]) => {
    const out: string[] = [];
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() !== 'date') out.push(`${raw[i]!.toLowerCase()}: ${raw[i + 1]}`);
    return out.sort();
  };
  assert.deepEqual(fields(fast.raw), fields(slow.raw));
  assert.equal(fast.body, slow.body);
});

test('an extra field that names a stored one is left to the general path (it replaces, never repeats)', async (t) => {
  const srv = await server(t);
  const { meta, body } = entry();
  let took: boolean | null = null;
  const r = await srv.get((res) => {
    took = sendHit(res, 'GET', meta, [['x-app', 'b']], 'bridge-sidecar; hit', meta.storedAt, body);
    if (!took) sendEntry(res, 'GET', headFor(meta, [['x-app', 'b']], 'bridge-sidecar; hit', meta.storedAt, false), body, null);
  });
  assert.equal(took, false);
  assert.deepEqual(lines(r.raw, 'x-app'), ['b']);
});

test('HEAD: the head with the stored length, no body; a JSON-RPC body of another length gets its own length', async (t) => {
  const srv = await server(t);
  const { meta, body } = entry();
  const head = await srv.get((res) => { sendHit(res, 'HEAD', meta, null, 'bridge-sidecar; hit', meta.storedAt, body); }, 'HEAD');
  assert.deepEqual(lines(head.raw, 'content-length'), ['5']);
  assert.equal(head.body, '');
  const other = await srv.get((res) => { sendHit(res, 'GET', meta, null, 'bridge-sidecar; hit', meta.storedAt, Buffer.from('hello, world')); });
  assert.deepEqual(lines(other.raw, 'content-length'), ['12']);
  assert.equal(other.body, 'hello, world');
  // and the next hit of the stored body has the stored length again
  const again = await srv.get((res) => { sendHit(res, 'GET', meta, null, 'bridge-sidecar; hit', meta.storedAt, body); });
  assert.deepEqual(lines(again.raw, 'content-length'), ['5']);
});

test('a body in parts (a JSON-RPC answer around its new id) goes out whole with its summed length, on both paths', async (t) => {
  const srv = await server(t);
  const { meta } = entry();
  const parts = [Buffer.from('{"result":1,"id":'), Buffer.from('"call-8"'), Buffer.from('}')];
  const fast = await srv.get((res) => { assert.equal(sendHit(res, 'GET', meta, null, 'bridge-sidecar; hit', meta.storedAt, parts), true); });
  assert.equal(fast.body, '{"result":1,"id":"call-8"}');
  assert.deepEqual(lines(fast.raw, 'content-length'), ['26']);
  const slow = await srv.get((res) => sendEntry(res, 'GET', headFor(meta, [['x-app', 'b']], 'bridge-sidecar; hit', meta.storedAt, false, 26), parts, null));
  assert.equal(slow.body, '{"result":1,"id":"call-8"}');
  assert.deepEqual(lines(slow.raw, 'content-length'), ['26']);
});

test('through the sidecar: rate-limit fields on L1 hits are each request\'s own', async (t) => {
  const up = await startUpstream(() => ({ headers: { 'content-type': 'application/json', 'x-app': 'a' }, body: '{"ok":true}' }));
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, `
routes:
  - name: fonts
    match: { method: GET, path: /get_font_types }
    cache: { key: "fonts", ttl: 1m }
rate_limiting:
  identity: { header: x-user-id }
  per_user: { requests_per_minute: 600, burst_size: 100 }
cache:
  l1: { size: 1MB }
`));
  t.after(() => sc.close());
  const a = await request(sc.url, { path: '/get_font_types', headers: { 'x-user-id': 'alice' } });
  assert.equal(a.status, 200);
  const b = await request(sc.url, { path: '/get_font_types', headers: { 'x-user-id': 'alice' } });
  const c = await request(sc.url, { path: '/get_font_types', headers: { 'x-user-id': 'alice' } });
  for (const r of [b, c]) {
    assert.match(String(r.headers['cache-status']), /hit; ttl=\d+; detail=l1$/);
    assert.equal(r.headers['x-app'], 'a');
    assert.equal(r.body, '{"ok":true}');
  }
  assert.equal(up.count, 1);
  const remaining = (r: typeof b) => Number(/;r=(\d+);/.exec(String(r.headers['ratelimit']))?.[1]);
  assert.ok(Number.isFinite(remaining(b)) && Number.isFinite(remaining(c)), `rate-limit fields on hits: ${JSON.stringify(b.headers)}`);
  assert.ok(remaining(c) < remaining(b), `each hit has its own remaining count: ${remaining(b)} then ${remaining(c)}`);
});
