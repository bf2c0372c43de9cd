/**
 * JSON-RPC keys and id substitution, whole-body digests, the URI index: the pure pieces of the cache's
 * correctness for real clients.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson, classifyJsonRpc, jsonRpcKeyPart, rawId, storableResult, withId, withIdParts } from '../../../lib/cache/jsonrpc';
import { bodyKeyPart, bodyKeying, describeKey } from '../../../lib/cache/key-shape';
import { UriIndex, sameOriginUri, uriOf } from '../../../lib/cache/uri-index';
import { memberSpan } from '../../../lib/cache/json-probe';
import type { RoutePolicy } from '../../../lib/policy/types';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../../helpers/sidecar';

test('canonical params: key order does not matter, values do', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } }), '{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}');
  assert.equal(jsonRpcKeyPart('tools/list', { cursor: 'p2', x: 1 }), jsonRpcKeyPart('tools/list', { x: 1, cursor: 'p2' }));
  assert.notEqual(jsonRpcKeyPart('tools/list', { cursor: 'p2' }), jsonRpcKeyPart('tools/list', { cursor: 'p1' }));
  assert.notEqual(jsonRpcKeyPart('tools/list', { cursor: 'p2' }), jsonRpcKeyPart('prompts/list', { cursor: 'p2' }));
  assert.notEqual(jsonRpcKeyPart('tools/list', { n: 1 }), jsonRpcKeyPart('tools/list', { n: '1' }));
});

test('classify: calls, notifications, batches', () => {
  assert.deepEqual(classifyJsonRpc({ jsonrpc: '2.0', id: 7, method: 'tools/list' }), { kind: 'call', method: 'tools/list', params: undefined });
  assert.deepEqual(classifyJsonRpc({ jsonrpc: '2.0', id: null, method: 'm', params: [1] }), { kind: 'call', method: 'm', params: [1] });
  assert.equal(classifyJsonRpc({ jsonrpc: '2.0', method: 'notifications/initialized' }).kind, 'notification');
  assert.equal(classifyJsonRpc([{ jsonrpc: '2.0', id: 1, method: 'tools/list' }]).kind, 'batch');
  assert.equal(classifyJsonRpc({ jsonrpc: '2.0', id: {}, method: 'm' }).kind, 'invalid');
  assert.equal(classifyJsonRpc('x').kind, 'invalid');
});

test('id substitution is byte-exact: string, number, null; the rest stays as stored', () => {
  const stored = Buffer.from('{"result":{"tools":[{"name":"a","id":1}]} , "jsonrpc":"2.0","id":7}\n');
  const storedText = stored.toString();
  // the same stored body for request after request (the id's place is found once per body): each gets its own
  for (const req of ['{"jsonrpc":"2.0","id":43,"method":"tools/list"}', '{"id":"abc\\u0041\\"x","method":"m"}', '{"id":null,"method":"m"}', '{"id":1.50e2,"method":"m"}']) {
    const id = rawId(Buffer.from(req))!;
    const out = withId(stored, id)!;
    const wantId = JSON.parse(req).id as unknown;
    assert.deepEqual(JSON.parse(out.toString()).id, wantId);
    assert.equal(out.toString(), storedText.replace('"id":7}', `"id":${id.toString()}}`));
  }
  assert.equal(stored.toString(), storedText, 'the stored answer itself is never changed');
  // the nested "id" fields of the result are untouched; a stored body without a top-level id is not reusable
  assert.equal(withId(Buffer.from('{"result":{"id":3}}'), Buffer.from('9')), null);
  assert.equal(withId(Buffer.from('not json'), Buffer.from('9')), null);
  assert.equal(rawId(Buffer.from('{"method":"m"}')), null);
  // a duplicated member: the last counts, as for JSON.parse
  assert.deepEqual(memberSpan(Buffer.from('{"id":1,"id":22}'), 'id'), { start: 13, end: 15 });
  // trailing garbage makes the document something other than one JSON object
  assert.equal(memberSpan(Buffer.from('{"id":1} {"id":2}'), 'id'), null);
});

test('a hit sends the stored answer around the new id without copying it: three views of the stored bytes', () => {
  const stored = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 7, result: { content: [{ type: 'text', text: 'x'.repeat(300_000) }] } }));
  const id = rawId(Buffer.from('{"jsonrpc":"2.0","id":"call-8","method":"tools/call"}'))!;
  const parts = withIdParts(stored, id);
  assert.ok(Array.isArray(parts), 'another id: the parts, not one buffer');
  const [before, newId, after] = parts;
  // before and after share the stored answer's memory (a joined copy would not): nothing of 300 KB is copied per hit
  assert.equal(before.buffer, stored.buffer);
  assert.equal(after.buffer, stored.buffer);
  assert.equal(newId.toString(), '"call-8"');
  assert.equal(JSON.parse(Buffer.concat(parts).toString()).id, 'call-8');
  assert.equal(Buffer.concat(parts).toString(), withId(stored, id)!.toString());
  // the same id as stored: the stored body itself
  assert.equal(withIdParts(stored, Buffer.from('7')), stored);
  assert.equal(withIdParts(Buffer.from('{"result":{}}'), id), null);
});

test('storable: a result with a top-level id, one walk; its id is then replaced like any other', () => {
  const stored = Buffer.from('{"jsonrpc":"2.0","result":{"content":[{"type":"text","text":"{\\"id\\": 5}"}]},"id":12}');
  assert.equal(storableResult(stored), true);
  assert.equal(withId(stored, Buffer.from('"req-9"'))!.toString(), stored.toString().replace('"id":12}', '"id":"req-9"}'));
  assert.equal(storableResult(Buffer.from('{"jsonrpc":"2.0","error":{"code":-32601,"message":"x"},"id":1}')), false, 'an error answer');
  assert.equal(storableResult(Buffer.from('{"jsonrpc":"2.0","result":{}}')), false, 'no id to replace');
  assert.equal(storableResult(Buffer.from('{"result":{},"id":1} {"id":2}')), false, 'not one JSON object');
  assert.equal(storableResult(Buffer.from('{"result":{},"id":1,"id":2}')), true);
  assert.equal(withId(Buffer.from('{"result":{},"id":1,"id":2}'), Buffer.from('7'))!.toString(), '{"result":{},"id":1,"id":7}', 'the last of duplicated ids, as JSON.parse reads it');
});


function route(over: Omit<Partial<RoutePolicy>, 'match'> & { match?: Partial<RoutePolicy['match']> }): RoutePolicy {
  return {
    name: 'r', params: {}, priority: null, emits: [],
    cache: { key: 'k', ttl: 60_000, store_if: null, stale_while_revalidate: 0, stale_if_error: 0, override_upstream: false, jsonrpc: false },
    ...over,
    match: { method: 'POST', path: '/x', query: null, headers: null, body: null, jsonrpc_method: null, ...(over.match ?? {}) },
  } as RoutePolicy;
}

test('key shape: JSON-RPC, named body fields, or the whole body digest', () => {
  const rpc = route({ match: { jsonrpc_method: 'tools/list' } });
  assert.equal(bodyKeying(rpc).kind, 'jsonrpc');
  assert.equal(bodyKeyPart(bodyKeying(rpc), { id: 1, method: 'tools/list', params: { cursor: 'a' } }, null), bodyKeyPart(bodyKeying(rpc), { params: { cursor: 'a' }, method: 'tools/list', id: 99 }, null));
  const named = route({ params: { draft_id: 'body.draft_id' }, match: { body: { force_update: false } } });
  assert.deepEqual(bodyKeying(named), { kind: 'fields', fields: ['force_update', 'draft_id'] });
  const catchAll = route({ match: { method: null, path: '/*' } });
  const k = bodyKeying(catchAll);
  assert.equal(k.kind, 'digest');
  assert.notEqual(bodyKeyPart(k, null, Buffer.from('{"a":1}')), bodyKeyPart(k, null, Buffer.from('{"a":2}')));
  assert.equal(bodyKeyPart(k, null, Buffer.alloc(0)), null);
  assert.equal(bodyKeying(route({ match: { method: 'GET' } })).kind, 'none');
  assert.match(describeKey(rpc), /JSON-RPC method \+ canonical params \(never id\)/);
  assert.match(describeKey(named), /body fields force_update, draft_id/);
  assert.match(describeKey(catchAll), /sha256 of the whole body/);
});

test('URI index: keys by URI, taken once, bounded', () => {
  const ix = new UriIndex(3);
  ix.add(uriOf('/a', 'y=2&x=1'), 'k1');
  ix.add(uriOf('/a', 'x=1&y=2'), 'k2');
  ix.add('/b', 'k3');
  assert.deepEqual(ix.take('/a?x=1&y=2').sort(), ['k1', 'k2']);
  assert.deepEqual(ix.take('/a?x=1&y=2'), []);
  ix.add('/c', 'k4');
  ix.add('/c', 'k5');
  ix.add('/c', 'k6'); // over the bound: the oldest (k3) is forgotten
  assert.deepEqual(ix.take('/b'), []);
  assert.equal(ix.size, 3);
  ix.add('/d', 'k6'); // a key moves with its entry
  assert.deepEqual(ix.take('/c').sort(), ['k4', 'k5']);
  assert.equal(sameOriginUri('/drafts/1?b=1&a=2', '/drafts', 'svc:80'), '/drafts/1?a=2&b=1');
  assert.equal(sameOriginUri('http://svc:80/x', '/', 'svc:80'), '/x');
  assert.equal(sameOriginUri('http://evil.example/x', '/', 'svc:80'), null);
  assert.equal(sameOriginUri('item/2', '/items/1', 'svc:80'), '/items/item/2');
});

test('bridge-sidecar validate --keys prints what each cached route\'s key is made of', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-keys-'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, `version: 1
upstream: { url: "http://127.0.0.1:9101" }
routes:
  - name: mcp_tools_list
    match: { method: POST, path: /mcp, jsonrpc_method: tools/list }
    cache: { key: "mcp:tools", ttl: 1m }
  - name: search
    match: { method: POST, path: /search }
    cache: { key: "search", ttl: 1m }
  - name: plain
    match: { path: /other }
cache: { l1: {} }
`);
  const r = spawnSync(process.execPath, [CLI(), 'validate', '--keys', file], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^policy ok/);
  assert.deepEqual(lines.slice(1), [
    'cache mcp_tools_list: "mcp:tools" + method, path, query (sorted), JSON-RPC method + canonical params (never id), Vary-named request headers',
    'cache search: "search" + method, path, query (sorted), sha256 of the whole body, Vary-named request headers',
  ]);
});
