/**
 * store_if on a compressed answer reads its fields from the identity body's last bytes, which the compression
 * stage keeps as the body passes (lib/core/identity-tail.ts, lib/cache/json-probe.ts probeWindow), instead of
 * decoding the whole stored gzip body. The window must decide exactly as the whole body would, or not at all.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { IdentityTail } from '../../lib/core/identity-tail';
import { probeJson, probeWindow } from '../../lib/cache/json-probe';
import { compileStoreIf, storeIfPasses } from '../../lib/cache/admission';
import { policy, request, startSidecar, startUpstream } from './harness';

/** The last `n` bytes of `text` as a window, with the body's first non-blank byte. */
function windowOf(text: string, n: number): [Buffer, number] {
  const b = Buffer.from(text);
  return [b.subarray(Math.max(0, b.length - n)), b[b.length - b.toString().trimStart().length] ?? -1];
}

test('the kept tail is the body\'s last bytes, however the chunks fall', () => {
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 12 }), (chunks) => {
    const t = new IdentityTail();
    for (const c of chunks) t.add(Buffer.from(c));
    const all = Buffer.concat(chunks);
    const { bytes, whole } = t.view();
    assert.deepEqual(bytes, all.subarray(Math.max(0, all.length - IdentityTail.KEEP)));
    assert.equal(whole, all.length <= IdentityTail.KEEP);
    assert.equal(t.total, all.length);
  }), { numRuns: 300 });
  const t = new IdentityTail();
  t.add(Buffer.from('  \n'));
  t.add(Buffer.from(' {"a":1}'));
  assert.equal(t.first, 0x7b, 'the first byte that is not white space');
});

test('a window decides like the whole body, or returns null: the real service\'s answer shape (property test)', () => {
  const scalar = fc.oneof(fc.string({ maxLength: 40 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null));
  let decided = 0;
  fc.assert(fc.property(
    fc.jsonValue({ maxDepth: 3 }), fc.dictionary(fc.constantFrom('success', 'error', 'code', 'a\\"b', 'x'), scalar, { maxKeys: 4 }),
    fc.integer({ min: 1, max: 200 }), fc.constantFrom('success', 'error', 'code'),
    (output, trailing, n, wanted) => {
      const text = JSON.stringify({ output, ...trailing });
      const whole = probeJson(Buffer.from(text), [[wanted]]);
      const [tail, first] = windowOf(text, n);
      const got = probeWindow(tail, first, [[wanted]]);
      if (got !== null) {
        decided++;
        assert.deepEqual(got, whole, `${text} (last ${n} bytes)`);
      }
    },
  ), { numRuns: 3000, seed: 11 });
  assert.ok(decided > 500, `the window decided ${decided} of 3000 cases`);
});

test('a window refuses what begins before it: the wanted value or key, or a backslash run at its start', () => {
  const paths = [['s']];
  // the value's opening quote is before the window
  assert.equal(probeWindow(Buffer.from('abc"}'), 0x7b, paths), null);
  // {"s":"a\"b"} cut to \"b"}: the quote after the backslash run at the start may or may not be escaped
  assert.equal(probeWindow(Buffer.from('\\"b"}'), 0x7b, paths), null);
  // {"s":12345} cut to 45}: the number may go on before the window
  assert.equal(probeWindow(Buffer.from('45}'), 0x7b, paths), null);
  // the key's opening quote is before the window
  assert.equal(probeWindow(Buffer.from('s":true}'), 0x7b, paths), null);
  // the wanted member whole in the window: decided, whatever the cut member before it holds
  assert.deepEqual(probeWindow(Buffer.from('\\","s":true}'), 0x7b, paths), [true]);
  assert.deepEqual(probeWindow(Buffer.from('}},"error":"","s":true}'), 0x7b, paths), [true]);
  // not an object, or the field is further back than the window: null (the caller decodes the body)
  assert.equal(probeWindow(Buffer.from('"s":true}'), 0x5b, paths), null);
  assert.equal(probeWindow(Buffer.from('"x"}'), 0x7b, paths), null);
});

test('storeIfPasses reads an encoded body\'s fields from the kept tail, and decodes only when the tail cannot say', () => {
  const rule = compileStoreIf({ 'response.success': true });
  const answer = JSON.stringify({ error: '', output: { text: 'x'.repeat(20_000) }, success: true });
  const tail = new IdentityTail();
  for (let i = 0; i < answer.length; i += 1000) tail.add(Buffer.from(answer.slice(i, i + 1000)));
  const gz = { 'content-encoding': 'gzip' };
  // stand-in bytes that are not gzip at all: only the tail can have decided
  assert.equal(storeIfPasses(rule, gz, Buffer.from('not gzip'), false, tail), true);
  assert.equal(storeIfPasses(rule, gz, Buffer.from('not gzip'), false, null), false, 'without the tail the body is decoded (and fails)');
  // the field further back than the tail: decoded from the body
  const early = JSON.stringify({ success: true, output: { text: 'x'.repeat(20_000) } });
  const t2 = new IdentityTail();
  t2.add(Buffer.from(early));
  assert.equal(storeIfPasses(rule, gz, zlib.gzipSync(early), false, t2), true);
});

test('through the sidecar with compression: store_if decides a gzip answer from the identity body\'s end', async (t) => {
  const draft = { draft_id: 'd1', tracks: [{ type: 'text', segments: Array.from({ length: 800 }, (_, i) => ({ id: `t${i}`, text: `caption ${i}` })) }] };
  let success = false;
  const up = await startUpstream(() => ({
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ error: success ? '' : 'draft busy', output: draft, success }),
  }));
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, `
routes:
  - name: query_script
    match: { method: POST, path: /query_script }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}", ttl: 1m, store_if: { "response.success": true } }
compression: { enabled: true, algorithm: gzip, threshold: 1KB }
cache:
  l1: { size: 8MB }
`));
  t.after(() => sc.close());
  const ask = () => request(sc.url, { method: 'POST', path: '/query_script', headers: { 'accept-encoding': 'gzip' }, body: '{"draft_id":"d1","force_update":false}' });
  const first = await ask();
  assert.equal(first.headers['content-encoding'], 'gzip');
  assert.ok(Buffer.byteLength(JSON.stringify(draft)) > IdentityTail.KEEP * 4, 'an answer much longer than the kept tail');
  await ask();
  assert.equal(up.count, 2, 'success:false (read from the end of the gzip answer) was not stored');
  success = true;
  await ask();
  const hit = await ask();
  assert.equal(up.count, 3, 'success:true was stored, and the next read is a hit');
  assert.match(String(hit.headers['cache-status']), /hit/);
});
