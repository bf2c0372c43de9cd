/**
 * The store_if probe reads the same field values JSON.parse + a property read would, for any JSON document
 * without duplicate keys; it refuses what is not JSON up to the fields it needs; and it stops reading once it has
 * them (so a broken tail after them is not looked at, as documented).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CONTAINER, probeJson } from '../../lib/cache/json-probe';
import { storeIfPasses, compileStoreIf } from '../../lib/cache/admission';

// inherited names (at, length, constructor, __proto__) must read as absent, as in the document's own data
const key = fc.oneof(fc.constantFrom('success', 'output', 'a', 'b', '0', '1', '01', 'é', 'q"k', 'back\\slash', 'at', 'length', 'constructor', '__proto__', 'toString'), fc.string({ maxLength: 4 }));

/** JSON.parse + a property read of the document's own data: object members, array elements by index. */
function expected(doc: unknown, path: readonly string[]): unknown {
  let v: unknown = doc;
  for (const k of path) {
    if (Array.isArray(v)) v = /^(0|[1-9]\d*)$/.test(k) ? v[Number(k)] : undefined;
    else if (v !== null && typeof v === 'object' && Object.hasOwn(v, k)) v = (v as Record<string, unknown>)[k];
    else return undefined;
  }
  return v !== null && typeof v === 'object' ? CONTAINER : v;
}

test('probe = JSON.parse + property read, for any document and paths (property test)', () => {
  fc.assert(
    fc.property(
      fc.jsonValue({ maxDepth: 4 }),
      fc.array(fc.array(key, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 4 }),
      fc.constantFrom('', ' ', '\n  '),
      (doc, paths, indent) => {
        const text = JSON.stringify(doc, null, indent === '' ? undefined : indent);
        if (text === undefined) return;
        const got = probeJson(Buffer.from(text), paths);
        assert.ok(got !== null, `valid JSON refused: ${text}`);
        const want = paths.map((p) => expected(JSON.parse(text), p));
        // -0 and 0 are the same JSON number; compare as JSON.parse would give them
        assert.deepEqual(got.map((v) => (v === 0 ? 0 : v)), want.map((v) => (v === 0 ? 0 : v)), text);
      },
    ),
    { numRuns: 5000, seed: 42 },
  );
});

test('paths into objects found along the way, array indexes, nested fields', () => {
  const doc = Buffer.from('{ "success" : true, "output": {"items": [ {"id": "x"}, {"id": "y", "n": -1.5e2} ], "s": "a\\"b"}, "z": null }');
  assert.deepEqual(probeJson(doc, [['success'], ['output', 'items', '1', 'id'], ['output', 'items', '1', 'n'], ['output', 's'], ['z'], ['missing'], ['output', 'items']]),
    [true, 'y', -150, 'a"b', null, undefined, CONTAINER]);
});

test('not JSON (before the fields are found) is refused', () => {
  for (const bad of ['', '{', '{"success" true}', '{"success": tru}', '{"a": [1, 2}', '<html>', '{"success": "unterminated}', '{"a":1,,"success":true}', '{"k\u0001":1}']) {
    assert.equal(probeJson(Buffer.from(bad), [['success']]), null, bad);
  }
});

test('stops at the last wanted field: a 300 KB value after it is not read', () => {
  const big = '{"success":true,"output":' + JSON.stringify({ tracks: Array.from({ length: 3000 }, (_, i) => ({ id: i, text: 'x'.repeat(80) })) }) + '}';
  assert.ok(big.length > 250_000);
  const truncated = Buffer.from(big.slice(0, 1000)); // the tail is cut off: only a probe that stops early accepts it
  assert.deepEqual(probeJson(truncated, [['success']]), [true]);
  // a field after the big value is still found (the value is skipped, not parsed)
  const after = Buffer.from('{"output":' + big.slice(25, -1) + ',"success":false}');
  assert.deepEqual(probeJson(after, [['success']]), [false]);
});

test('a duplicated key: the first occurrence counts (documented)', () => {
  assert.deepEqual(probeJson(Buffer.from('{"success":false,"success":true}'), [['success']]), [false]);
});

test('storeIfPasses: gzip bodies are decoded first; success:false and non-JSON are refused', async () => {
  const { gzipSync } = await import('node:zlib');
  const rule = compileStoreIf({ 'response.success': true });
  const ok = Buffer.from('{"success":true,"output":{}}');
  assert.equal(storeIfPasses(rule, {}, ok), true);
  assert.equal(storeIfPasses(rule, { 'content-encoding': 'gzip' }, gzipSync(ok)), true);
  assert.equal(storeIfPasses(rule, {}, Buffer.from('{"success":false,"error":"no such draft"}')), false);
  assert.equal(storeIfPasses(rule, {}, Buffer.from('not json')), false);
  assert.equal(storeIfPasses(rule, {}, Buffer.from('{"output":{}}')), false, 'a missing field is not equal');
  assert.equal(storeIfPasses(compileStoreIf({ 'response.output.state': 'done', 'response.success': true }), {},
    Buffer.from('{"success":true,"output":{"state":"done"}}')), true);
});
