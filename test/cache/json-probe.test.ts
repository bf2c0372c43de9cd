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
  for (const bad of ['', '{', '{"success" true}', '{"success": tru}', '{"a": [1, 2}', '<html>', '{"success": "unterminated}', '{"a":1,,"success":true,"o":{}}', '{"k\u0001":1}']) {
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

test('a duplicated key: the first occurrence counts on the forward walk, the last when read from the end (documented)', () => {
  // the object ends in a container: the forward walk reads it, and the first occurrence counts
  assert.deepEqual(probeJson(Buffer.from('{"success":false,"success":true,"output":{}}'), [['success']]), [false]);
  // among the trailing scalar members: read from the end, the last occurrence counts (as JSON.parse)
  assert.deepEqual(probeJson(Buffer.from('{"success":false,"success":true}'), [['success']]), [true]);
});

test('the real service\'s answer: success after the whole draft is read from the end, not by walking the draft', () => {
  // Flask's jsonify sorts keys: {"error", "output", "success"}. What precedes the trailing members read from
  // the end is not read at all: a draft that is not even JSON there shows it
  const draft = '{"tracks": [' + Array.from({ length: 3000 }, (_, i) => `{"id": ${i}, "text": "${'x'.repeat(80)}"}`).join(',') + ']';
  const notJsonBefore = Buffer.from(`{"error": "", "output": ${draft.slice(0, -200)} <cut>, "success": true}`);
  assert.deepEqual(probeJson(notJsonBefore, [['success']]), [true]);
  assert.deepEqual(probeJson(Buffer.from(`{"error":"no such draft","output":"","success":false}`), [['success'], ['error']]), [false, 'no such draft']);
  // a wanted field that is not among the trailing scalars: the forward walk reads the document, and refuses
  // one that is not JSON before the field
  assert.equal(probeJson(notJsonBefore, [['success'], ['output', 'tracks']]), null);
  assert.deepEqual(probeJson(Buffer.from(`{"error": "", "output": ${draft}}, "success": true}`), [['success'], ['output', 'tracks']]), [true, CONTAINER]);
});

test('read from the end: strings with escaped quotes and backslashes, numbers, literals, white space', () => {
  const cases: Array<[string, string[], unknown[]]> = [
    ['{"o":{},"s":"a\\\\"}', ['s'], ['a\\']],
    ['{"o":{},"s":"say \\"hi\\""}', ['s'], ['say "hi"']],
    ['{"o":{},"k\\"q":1}', ['k"q'], [1]],
    ['{"o":{},"s":"\\\\\\"","t":"\\\\"}', ['s', 't'], ['\\"', '\\']],
    ['{"o":[] , "n" : -1.5e3 ,\n "t":true,"f":false,"z":null }\n', ['n', 't', 'f', 'z'], [-1500, true, false, null]],
    ['{"o":{},"e":""}', ['e'], ['']],
  ];
  for (const [text, keys, want] of cases) {
    assert.deepEqual(probeJson(Buffer.from(text), keys.map((k) => [k])), want, text);
    assert.deepEqual(want, keys.map((k) => (JSON.parse(text) as Record<string, unknown>)[k]), `the case itself: ${text}`);
  }
});

test('the service\'s answer shape, any members before the trailing scalars: probe = JSON.parse (property test)', () => {
  fc.assert(
    fc.property(
      fc.dictionary(key, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }),
      fc.dictionary(key, fc.oneof(fc.string(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null)), { minKeys: 1, maxKeys: 4 }),
      fc.array(key, { minLength: 1, maxLength: 3 }),
      (front, tail, wanted) => {
        const members = [...Object.entries(front).filter(([k]) => !Object.hasOwn(tail, k)), ...Object.entries(tail)];
        const text = '{' + members.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',') + '}';
        const doc = JSON.parse(text) as Record<string, unknown>;
        const got = probeJson(Buffer.from(text), wanted.map((k) => [k]));
        assert.ok(got !== null, text);
        assert.deepEqual(got.map((v) => (v === 0 ? 0 : v)), wanted.map((k) => expected(doc, [k])).map((v) => (v === 0 ? 0 : v)), text);
      },
    ),
    { numRuns: 3000, seed: 7 },
  );
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
