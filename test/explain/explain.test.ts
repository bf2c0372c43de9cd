/**
 * `bridge-sidecar explain --policy FILE`: the real CLI on the shipped example policy (the draft service's
 * routes) and on small policies, and a real sidecar answering the same requests, so what explain says is
 * checked against what the proxy does (route label in /metrics, Cache-Status on the wire).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { CLI, startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { repoRoot } from '../helpers/repo';
import { http, parseMetrics, total } from '../observe/helpers';

const EXAMPLE = () => join(repoRoot(), 'examples', 'policy.yaml');

function explain(args: string[]): { code: number; out: string; err: string; json: () => any } {
  const r = spawnSync(process.execPath, [CLI(), 'explain', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) };
}

const JSON_HEADER = ['-H', 'content-type: application/json'];

test('the draft service\'s routes in examples/policy.yaml: the route, why the earlier ones did not match, params, key, queue class', () => {
  const read = explain(['--policy', EXAMPLE(), '-X', 'POST', ...JSON_HEADER, '-H', 'x-user-id: alice', '-d', '{"draft_id":"dft_000042","force_update":false}', '/query_script']);
  assert.equal(read.code, 0, read.err);
  assert.match(read.out, /2\. route: query_script\n\s+✓ query_script: every condition holds/);
  assert.match(read.out, /params: draft_id="dft_000042"/);
  assert.match(read.out, /key: draft:dft_000042:script#[0-9a-f]{16}/);
  assert.match(read.out, /l2: bridge:c:draft:dft_000042:script#/);
  assert.match(read.out, /store: stored if .*response\.success == true/);
  assert.match(read.out, /queue: class medium/);
  assert.match(read.out, /per_user \(h:alice\): 600\/min, burst 120, counts upstream requests only/);

  const list = explain(['--policy', EXAMPLE(), '--json', '/get_font_types']);
  assert.equal(list.code, 0, list.err);
  const l = list.json();
  assert.equal(l.routing.route, 'get_font_types');
  assert.equal(l.cache.key.readable, 'static:font');
  assert.equal(l.routing.tried[0].why, 'method: wants POST, the request is GET');
  assert.equal(l.queue.class, 'low');
  assert.equal(l.routing.tried.at(-1).matched, true);
  assert.ok(l.routing.tried.slice(0, -1).every((t: { matched: boolean; why: string }) => !t.matched && t.why.length > 0));

  const write = explain(['--policy', EXAMPLE(), '--json', '-X', 'POST', ...JSON_HEADER, '-d', '{"draft_id":"d1","video_url":"x"}', '/add_video']);
  const w = write.json();
  assert.equal(w.routing.route, 'add_video');
  assert.deepEqual(w.events, ['draft_updated']);
  assert.equal(w.queue.class, 'high');
  assert.equal(w.routing.params.draft_id, 'd1');
  assert.ok(w.limits.limits.some((x: { scope: string; key: string }) => x.scope === 'per_endpoint' && x.key === '/add_video'));
  assert.match(w.cache.why, /add_video has no `cache` section/);

  const unmatched = explain(['--policy', EXAMPLE(), '--json', '-X', 'DELETE', '/nothing/here']);
  assert.equal(unmatched.json().routing.route, null);
  assert.equal(unmatched.json().routing.endpoint_label, 'other');
});

test('a POST that is not cached says why: no cache section, or store_if refusing the answer it got', () => {
  const fresh = explain(['--policy', EXAMPLE(), '-X', 'POST', ...JSON_HEADER, '-d', '{"draft_id":"d1","force_update":true}', '/query_script']);
  assert.match(fresh.out, /✗ query_script: body: wants force_update = false, the body has true/);
  assert.match(fresh.out, /route: query_script_fresh/);
  assert.match(fresh.out, /cache: route query_script_fresh has no `cache` section: never looked up, never stored/);

  const dir = mkdtempSync(join(tmpdir(), 'explain-'));
  const failed = join(dir, 'answer.http');
  writeFileSync(failed, 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"success":false,"error":"draft not found"}');
  const r = explain(['--policy', EXAMPLE(), '--response', failed, '-X', 'POST', ...JSON_HEADER, '-d', '{"draft_id":"d1","force_update":false}', '/query_script']);
  assert.match(r.out, /store: not stored: store_if does not hold for this answer \(wants response\.success == true\)/);
  const ok = join(dir, 'ok.http');
  writeFileSync(ok, 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"success":true,"output":{}}');
  assert.match(explain(['--policy', EXAMPLE(), '--response', ok, '-X', 'POST', ...JSON_HEADER, '-d', '{"draft_id":"d1","force_update":false}', '/query_script']).out, /store: stored for 300 s/);
  const priv = join(dir, 'private.http');
  writeFileSync(priv, 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: private\r\n\r\n{"success":true}');
  assert.match(explain(['--policy', EXAMPLE(), '--response', priv, '-X', 'POST', ...JSON_HEADER, '-d', '{"draft_id":"d1","force_update":false}', '/query_script']).out, /not stored: the answer says Cache-Control: private/);
});

test('bad input: clear errors and exit codes', () => {
  assert.equal(explain(['/x']).code, 2, 'no policy source');
  const bad = explain(['--policy', EXAMPLE(), '-H', 'no colon', '/x']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /header "no colon" is not "Name: value"/);
  const dir = mkdtempSync(join(tmpdir(), 'explain-'));
  writeFileSync(join(dir, 'p.yaml'), 'version: 1\nupstream: { url: 5 }\n');
  const invalid = explain(['--policy', join(dir, 'p.yaml'), '/x']);
  assert.equal(invalid.code, 1);
  assert.match(invalid.err, /p\.yaml:\d+:\d+:/);
  writeFileSync(join(dir, 'req.http'), 'GET /get_mask_types HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br;q=0, gzip\r\n\r\n');
  const raw = explain(['--policy', EXAMPLE(), '--raw', join(dir, 'req.http'), '--json']);
  assert.equal(raw.code, 0, raw.err);
  assert.equal(raw.json().routing.route, 'get_mask_types');
  assert.equal(raw.json().compression.coding, 'gzip');
});

// ---- against the proxy itself ----------------------------------------------------------------------------------

const RPC_POLICY = (port: number) => `version: 1
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 0, log_level: warn }
upstream: { url: "http://127.0.0.1:${port}", pool: { retries: 0 } }
routes:
  - name: tools_list
    match: { method: POST, path: /mcp, jsonrpc_method: tools/list }
    cache: { key: "mcp:tools:list", ttl: 1h }
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m, store_if: { "response.success": true } }
  - name: other_mcp
    match: { method: POST, path: /mcp }
cache: { l1: { size: 8MB } }
compression: { enabled: true, algorithm: [br, gzip], threshold: 16 }
`;

let svc: DraftService;
let sc: SidecarProcess;
before(async () => {
  svc = await startDraftService({ seedDrafts: 5 });
  sc = await startSidecar(RPC_POLICY(svc.port), { timeoutMs: 60_000 });
});
after(async () => {
  await sc?.stop();
  await svc?.close();
});

function cacheStatus(h: Record<string, string | string[] | undefined>): string {
  return String(h['cache-status'] ?? '').replace(/^bridge-sidecar; /, '');
}

test('a JSON-RPC call: explain names the route and key, and the proxy does what it says (miss, then a hit under that key)', async () => {
  const call = { jsonrpc: '2.0', id: 7, method: 'tools/list' };
  const e = explain(['--policy', sc.policyFile, '--json', '-X', 'POST', ...JSON_HEADER, '-d', JSON.stringify(call), '/mcp']).json();
  assert.equal(e.routing.route, 'tools_list');
  assert.equal(e.cache.lookup, true);
  assert.match(e.cache.why, /JSON-RPC call tools\/list: keyed by method \+ params \(never the id\)/);
  // the same call with another id has the same key: the id is never part of it
  const e2 = explain(['--policy', sc.policyFile, '--json', '-X', 'POST', ...JSON_HEADER, '-d', JSON.stringify({ ...call, id: 'x-99' }), '/mcp']).json();
  assert.equal(e2.cache.key.base, e.cache.key.base);

  const first = await http(sc.url + '/mcp', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(call) });
  assert.match(cacheStatus(first.headers), /^fwd=miss/);
  const second = await http(sc.url + '/mcp', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...call, id: 'x-99' }) });
  assert.match(cacheStatus(second.headers), /^hit/);
  assert.equal(JSON.parse(second.text).id, 'x-99');

  // a notification: explain says it is never answered from the cache, with the Cache-Status the proxy sends
  const note = { jsonrpc: '2.0', method: 'tools/list' };
  const n = explain(['--policy', sc.policyFile, '--json', '-X', 'POST', ...JSON_HEADER, '-d', JSON.stringify(note), '/mcp']).json();
  assert.equal(n.cache.lookup, false);
  assert.match(n.cache.why, /notification/);
  const sent = await http(sc.url + '/mcp', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(note) });
  assert.equal(cacheStatus(sent.headers), n.cache.status);
});

test('explain\'s route, metrics label and bypass status are the proxy\'s', async () => {
  const cases: Array<{ path: string; body: unknown; method?: string }> = [
    { path: '/query_script', body: { draft_id: 'dft_000001', force_update: false } },
    { path: '/query_script', body: { force_update: false } }, // no draft_id: the key cannot be filled
    { path: '/mcp', body: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } } },
  ];
  for (const c of cases) {
    const e = explain(['--policy', sc.policyFile, '--json', '-X', 'POST', ...JSON_HEADER, '-d', JSON.stringify(c.body), c.path]).json();
    const before = total(parseMetrics((await http(sc.adminUrl + '/metrics')).text), 'bridge_sidecar_http_requests_total', { endpoint: e.routing.endpoint_label });
    const r = await http(sc.url + c.path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(c.body) });
    const afterCount = total(parseMetrics((await http(sc.adminUrl + '/metrics')).text), 'bridge_sidecar_http_requests_total', { endpoint: e.routing.endpoint_label });
    assert.equal(afterCount, before + 1, `the proxy counted ${JSON.stringify(c.body)} under ${e.routing.endpoint_label}`);
    if (e.cache.status !== null) assert.equal(cacheStatus(r.headers), e.cache.status);
    if (e.cache.key === null && e.cache.status === null) assert.equal(r.headers['cache-status'], undefined, 'no cache involvement');
  }
});

test('compression: explain\'s coding is the one the proxy uses for that Accept-Encoding', async () => {
  for (const ae of ['gzip', 'br, gzip', 'br;q=0, gzip;q=0.5', 'identity']) {
    const e = explain(['--policy', sc.policyFile, '--json', '-H', `accept-encoding: ${ae}`, '/get_font_types']).json();
    const r = await http(sc.url + '/get_font_types', { headers: { 'accept-encoding': ae } });
    assert.equal(r.headers['content-encoding'] ?? null, e.compression.coding, `Accept-Encoding: ${ae}`);
  }
});
