/**
 * Hostile values that reach cache keys, rate-limit buckets and the admin surface, end to end: malformed JSON on a
 * body-keyed route, path traversal and control characters in key params (L3 files stay inside the L3 dir, a purge
 * of `draft:*` leaves other routes alone), cache poisoning through unkeyed headers and through Vary, identities
 * crafted to collide with another user's bucket, and admin endpoints without a token or on the proxy port.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer, type Server } from 'node:http';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { send, postJson } from './helpers';

let up: DraftService;
let sc: SidecarProcess;
let work: string;
let l3dir: string;
const TOKEN = 'rel-admin-token';

/** Every file under dir (recursive), as absolute paths. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p)); else out.push(p);
  }
  return out;
}

before(async () => {
  up = await startDraftService({ port: 0, host: '127.0.0.1' });
  work = mkdtempSync(join(tmpdir(), 'rel-keys-'));
  l3dir = join(work, 'l3');
  writeFileSync(join(work, 'token'), TOKEN + '\n');
  sc = await startSidecar(`version: 1
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 0, log_level: warn, admin_token_file: ${join(work, 'token')} }
upstream: { url: "http://127.0.0.1:${up.port}" }
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m }
  - name: type_lists
    match: { method: GET, path: "/{type_list}" }
    params: { type_list: path.type_list }
    cache: { key: "static:{type_list}", ttl: 5m }
rate_limiting:
  identity: { header: x-user-id }
  scope: pod
  per_user: { requests_per_minute: 3, burst_size: 1 }
cache:
  l1: { size: 16MB, ttl: 5m }
  l3: { path: ${l3dir}, size: 64MB, ttl: 1h }
`);
});
after(async () => {
  await sc?.stop();
  await up?.close();
  rmSync(work, { recursive: true, force: true });
});

test('a malformed JSON body on a body-keyed route is not matched by it: passed through to the upstream, never cached, never a crash', async () => {
  const before = up.stats().byPath['/query_script'] ?? 0;
  for (const body of ['{"draft_id": "dft_000001", "force_update": false', '{"draft_id": ', 'null', '[1,2', '\u0000\u0001', '{"force_update": false, "draft_id": {"$gt": ""}}']) {
    const r = await send(sc.url, { method: 'POST', path: '/query_script', headers: { 'content-type': 'application/json', 'x-user-id': `json-fuzz-${body.length}-${body.charCodeAt(2)}` }, body });
    assert.ok(r.status < 500, `${JSON.stringify(body)}: ${r.status}`);
    assert.doesNotMatch(String(r.headers['cache-status'] ?? ''), /hit|stored/, `${JSON.stringify(body)} was cached`);
  }
  assert.equal((up.stats().byPath['/query_script'] ?? 0) - before, 6, 'each one went to the upstream');
  assert.equal((await send(sc.adminUrl, { path: '/healthz' })).status, 200);
});

test('path traversal, NUL and glob characters in a key param: keys stay confined (L3 files inside the L3 dir) and a purge of draft:* leaves other routes alone', async () => {
  const hostile = ['../../etc/passwd', 'a\u0000b', '*', '42:*', '..', '/', 'draft:1:script', '%2e%2e%2f'];
  for (const id of hostile) {
    const r1 = await postJson(sc.url, '/query_script', { draft_id: id, force_update: false }, { 'x-user-id': `trav-${hostile.indexOf(id)}` });
    assert.ok(r1.status === 200, `${JSON.stringify(id)}: ${r1.status}`);
    const r2 = await postJson(sc.url, '/query_script', { draft_id: id, force_update: false }, { 'x-user-id': `trav2-${hostile.indexOf(id)}` });
    assert.match(String(r2.headers['cache-status']), /hit/, `${JSON.stringify(id)}: the second is a hit on its own key`);
    assert.equal(r2.body, r1.body);
  }
  // a legit draft and another route's entry
  assert.equal((await postJson(sc.url, '/query_script', { draft_id: 'dft_000001', force_update: false }, { 'x-user-id': 'legit' })).status, 200);
  assert.equal((await send(sc.url, { path: '/get_font_types', headers: { 'x-user-id': 'legit-b' } })).status, 200);
  // L3 writes are behind a write queue: wait until files appear, then check every one is inside the L3 dir
  const root = resolve(l3dir);
  for (let i = 0; i < 50 && filesUnder(root).filter((f) => f.endsWith('.e')).length < hostile.length + 2; i++) await new Promise((r) => setTimeout(r, 100));
  const files = filesUnder(root);
  assert.ok(files.filter((f) => f.endsWith('.e')).length >= hostile.length + 2, `L3 entries: ${files.length}`);
  for (const f of files) assert.ok(resolve(f).startsWith(root + '/'), `${f} escapes ${root}`);
  assert.throws(() => statSync(join(root, '..', '..', 'etc', 'passwd.e')));

  // a purge of draft:42:* must not hit "draft:42:*"-the-literal's neighbours; draft:* must leave static:* alone
  const purge = (pattern: string) => send(sc.adminUrl, { method: 'POST', path: '/admin/purge', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ pattern }) });
  const p1 = await purge('draft:*');
  assert.equal(p1.status, 200);
  const fonts = await send(sc.url, { path: '/get_font_types', headers: { 'x-user-id': 'legit2' } });
  assert.match(String(fonts.headers['cache-status']), /hit/, 'static:* survived a purge of draft:*');
  const again = await postJson(sc.url, '/query_script', { draft_id: '42:*', force_update: false }, { 'x-user-id': 'legit3' });
  assert.match(String(again.headers['cache-status']), /fwd=miss/, 'the hostile draft keys were purged with draft:*');
});

/** A sidecar caching GET /page (key "page", L1) in front of `upstream`; both are stopped after the test. */
async function pageCacheBefore(t: TestContext, upstream: Server): Promise<SidecarProcess> {
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => upstream.close(() => r())));
  const port = (upstream.address() as { port: number }).port;
  const sc = await startSidecar(`version: 1
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 0, log_level: warn }
upstream: { url: "http://127.0.0.1:${port}" }
routes:
  - name: page
    match: { method: GET, path: /page }
    cache: { key: "page", ttl: 5m }
cache:
  l1: { size: 16MB, ttl: 5m }
`);
  t.after(() => sc.stop());
  return sc;
}

test('cache poisoning through unkeyed headers: an attacker first with X-Forwarded-Host / X-Original-URL does not change what the next client gets', async (t) => {
  // an upstream that reflects X-Forwarded-Host into its body and routes by X-Original-URL / X-Rewrite-URL (as some
  // frameworks do): the worst case for unkeyed headers
  let hits = 0;
  const reflect: Server = createServer((req, res) => {
    hits++;
    const effective = (req.headers['x-original-url'] ?? req.headers['x-rewrite-url'] ?? req.url) as string;
    const body = JSON.stringify({ host: req.headers['x-forwarded-host'], path: effective });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  const s2 = await pageCacheBefore(t, reflect);
  // X-Forwarded-Host: the sidecar sets it from Host (no trusted proxy in front), so the attacker's value never
  // reaches the upstream and never lands in the stored copy
  const evil = await send(s2.url, { path: '/page', headers: { 'x-forwarded-host': 'evil.example' } });
  assert.equal(evil.status, 200);
  assert.doesNotMatch(evil.body, /evil\.example/);
  const victim = await send(s2.url, { path: '/page' });
  assert.match(String(victim.headers['cache-status']), /hit/);
  assert.doesNotMatch(victim.body, /evil\.example/);
  assert.match(victim.body, /"host":"127\.0\.0\.1:\d+"/);
  // X-Original-URL / X-Rewrite-URL: not part of the key, so on a cached route the sidecar does not pass them on:
  // the attacker's first request (a miss, stored) is answered for the request line's path, and so is the
  // victim's hit after it
  for (const [name, path] of [['x-original-url', '/page?v=2'], ['x-rewrite-url', '/page?v=3']] as const) {
    const steer = await send(s2.url, { path, headers: { [name]: '/admin' } });
    assert.match(String(steer.headers['cache-status']), /fwd=miss/);
    assert.match(steer.body, /"path":"\/page\?v=\d"/, `${name} did not reach the upstream`);
    const victim2 = await send(s2.url, { path });
    assert.match(String(victim2.headers['cache-status']), /hit/);
    assert.doesNotMatch(victim2.body, /admin/);
  }
  const other = await send(s2.url, { path: '/admin' });
  assert.doesNotMatch(String(other.headers['cache-status'] ?? ''), /hit/);
  assert.ok(hits >= 4);
});

test('cache poisoning through Vary: a variant stored for one Accept-Language is never served for another', async (t) => {
  const reflect: Server = createServer((req, res) => {
    const lang = String(req.headers['accept-language'] ?? 'none');
    res.writeHead(200, { 'content-type': 'application/json', vary: 'Accept-Language' });
    res.end(JSON.stringify({ lang }));
  });
  const s2 = await pageCacheBefore(t, reflect);
  const evil = await send(s2.url, { path: '/page', headers: { 'accept-language': 'xx-EVIL' } });
  assert.match(evil.body, /xx-EVIL/);
  const victim = await send(s2.url, { path: '/page', headers: { 'accept-language': 'en' } });
  assert.match(victim.body, /"lang":"en"/);
  const none = await send(s2.url, { path: '/page' });
  assert.match(none.body, /"lang":"none"/);
  assert.match(String((await send(s2.url, { path: '/page', headers: { 'accept-language': 'en' } })).headers['cache-status']), /hit/);
});

test('identities crafted to collide with another user\'s bucket (x-user-id "ip:127.0.0.1", 10 KB values) get their own buckets', async () => {
  // the address-based identity of this client is ip:127.0.0.1; exhaust it (3 a minute) without a header
  const noHeader = [];
  for (let i = 0; i < 5; i++) noHeader.push((await send(sc.url, { path: '/get_mask_types' })).status);
  assert.ok(noHeader.includes(429), `the address bucket was exhausted: ${noHeader}`);
  // a header user named like the address bucket is a different bucket (header identities are namespaced)
  const spoof = (await send(sc.url, { path: '/get_mask_types', headers: { 'x-user-id': 'ip:127.0.0.1' } })).status;
  assert.equal(spoof, 200, 'x-user-id "ip:127.0.0.1" was charged to the address bucket');
  // a very long id: accepted or refused, never a crash, and it does not share a bucket with its prefix
  const long = 'u'.repeat(10_000);
  const l1 = await send(sc.url, { path: '/get_mask_types', headers: { 'x-user-id': long } });
  assert.ok(l1.status === 200 || l1.status === 400 || l1.status === 431, `long id: ${l1.status}`);
  for (let i = 0; i < 4; i++) await send(sc.url, { path: '/get_mask_types', headers: { 'x-user-id': 'victim' } });
  const victimLimited = (await send(sc.url, { path: '/get_mask_types', headers: { 'x-user-id': 'victim' } })).status;
  assert.equal(victimLimited, 429);
  // "victim" exhausted: "victim " / "Victim" / "victim\t" are other users, and do not consume victim's bucket either way
  assert.equal((await send(sc.url, { path: '/get_mask_types', headers: { 'x-user-id': 'Victim' } })).status, 200);
  assert.equal((await send(sc.adminUrl, { path: '/healthz' })).status, 200);
});

test('admin endpoints: 401 without or with a wrong token, and on the proxy port they are plain upstream paths, never executed', async () => {
  const body = JSON.stringify({ pattern: '*' });
  assert.equal((await send(sc.adminUrl, { method: 'POST', path: '/admin/purge', body })).status, 401);
  assert.equal((await send(sc.adminUrl, { method: 'POST', path: '/admin/purge', body, headers: { authorization: 'Bearer wrong' } })).status, 401);
  assert.equal((await send(sc.adminUrl, { method: 'POST', path: '/admin/purge', body, headers: { authorization: `Basic ${TOKEN}` } })).status, 401);
  assert.equal((await send(sc.adminUrl, { method: 'POST', path: '/admin/invalidate', body: '{"event":"draft_updated","params":{"draft_id":"dft_000001"}}' })).status, 401);
  assert.equal((await send(sc.adminUrl, { path: '/debug/heap' })).status, 401);
  // a cached entry that a purge would remove
  await postJson(sc.url, '/query_script', { draft_id: 'dft_000777', force_update: false }, { 'x-user-id': 'adm' });
  const before = up.stats().byPath['/admin/purge'] ?? 0;
  const onProxy = await send(sc.url, { method: 'POST', path: '/admin/purge', body, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'x-user-id': 'adm2' } });
  assert.equal(onProxy.status, 404, 'the upstream answered its own 404 for /admin/purge');
  assert.equal((up.stats().byPath['/admin/purge'] ?? 0) - before, 1, 'proxied to the upstream as a plain path');
  const still = await postJson(sc.url, '/query_script', { draft_id: 'dft_000777', force_update: false }, { 'x-user-id': 'adm3' });
  assert.match(String(still.headers['cache-status']), /hit/, 'nothing was purged');
});
