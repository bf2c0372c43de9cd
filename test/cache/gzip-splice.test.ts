/**
 * A JSON-RPC hit on a stored gzip answer: the answer with the request's own id, as gzip, made from pieces
 * compressed once (lib/cache/gzip-splice.ts) instead of decoding and compressing the whole answer per hit.
 * Every body made here is checked by zlib and by the real gzip program.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { GzipSplice, crc32ByTable } from '../../lib/cache/gzip-splice';
import { replayBody } from '../../lib/cache/jsonrpc-replay';
import { makeEntry } from './fixtures';
import { policy, startSidecar, startUpstream } from './harness';

/** What the real gzip program makes of `body` (it checks the CRC and the length in the trailer). */
function gunzipWithGzip(body: Buffer): Buffer {
  return execFileSync('gzip', ['-dc'], { input: body });
}

test('the spliced body is one gzip member that zlib, a streaming decoder and gzip(1) all read as the answer with the new id', async () => {
  const shapes: Array<[string, string]> = [
    ['{"jsonrpc":"2.0","result":{},"id":', '}'],
    ['{"jsonrpc":"2.0","id":', ',"result":{"content":[{"type":"text","text":"' + 'caption \\"x\\" '.repeat(20_000) + '"}]}}'],
    ['{"result":{"text":"' + 'abc'.repeat(30_000) + '"},"id":', '}\n'],
  ];
  for (const [before, after] of shapes) {
    const sp = new GzipSplice(Buffer.from(before), Buffer.from(after));
    for (const id of ['1', '"call-2"', 'null', '1.5e3', `"${'i'.repeat(2000)}"`]) {
      const body = Buffer.concat(sp.parts(Buffer.from(id))!);
      const want = before + id + after;
      assert.equal(zlib.gunzipSync(body).toString(), want);
      assert.equal((await buffer(Readable.from([body]).pipe(zlib.createGunzip()))).toString(), want);
      assert.equal(gunzipWithGzip(body).toString(), want);
    }
  }
});

test('property: any before, id and after splice to exactly their concatenation, CRC and length checked', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 3000 }), fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.uint8Array({ maxLength: 3000 }), (a, id, b) => {
    const body = Buffer.concat(new GzipSplice(Buffer.from(a), Buffer.from(b)).parts(Buffer.from(id))!);
    assert.deepEqual(zlib.gunzipSync(body), Buffer.concat([a, id, b]));
  }), { numRuns: 300 });
});

test('an insert longer than one stored block is refused (the replay then encodes the whole answer again)', () => {
  const sp = new GzipSplice(Buffer.from('{"id":'), Buffer.from('}'));
  assert.equal(sp.parts(Buffer.alloc(65_536, 0x31)), null);
  assert.notEqual(sp.parts(Buffer.alloc(65_535, 0x31)), null);
});

test('the table CRC-32 (node before 20.15) is zlib\'s', () => {
  assert.equal(crc32ByTable(Buffer.from('123456789'), 0), 0xcbf43926);
  const zcrc = (zlib as { crc32?: (d: Buffer, v?: number) => number }).crc32;
  if (zcrc !== undefined) {
    const data = Buffer.from('{"jsonrpc":"2.0","result":{"draft":"x"},"id":7}'.repeat(500));
    assert.equal(crc32ByTable(data, 0), zcrc(data));
    assert.equal(crc32ByTable(data.subarray(100), crc32ByTable(data.subarray(0, 100), 0)), zcrc(data));
  }
});

test('a stored gzip answer is replayed for each id as parts around it, with nothing compressed per hit', () => {
  const raw = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'x'.repeat(50_000) }] } }));
  const entry = makeEntry('k', zlib.gzipSync(raw), { 'content-encoding': 'gzip', 'content-type': 'application/json' });
  const first = replayBody(entry, Buffer.from('"call-2"'));
  const second = replayBody(entry, Buffer.from('3'));
  assert.ok(Array.isArray(first) && Array.isArray(second), 'parts, not a body compressed again');
  assert.equal(first[0], second[0], 'the compressed front is made once per entry and shared by every hit');
  assert.equal(first[3], second[3], 'and so is the compressed back');
  assert.equal(JSON.parse(zlib.gunzipSync(Buffer.concat(first)).toString()).id, 'call-2');
  assert.equal(JSON.parse(gunzipWithGzip(Buffer.concat(second)).toString()).id, 3);
  // the stored id: the stored bytes themselves
  assert.equal(replayBody(entry, Buffer.from('1')), entry.body);
});

test('through the sidecar with brotli: a JSON-RPC hit for a client that also accepts gzip is spliced gzip, one that does not gets br', async (t) => {
  const text = JSON.stringify({ error: '', output: { segments: Array.from({ length: 400 }, (_, i) => ({ id: `t${i}`, text: `caption ${i}` })) }, success: true });
  const up = await startUpstream((_req, body) => ({
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: (JSON.parse(body.toString()) as { id: unknown }).id, result: { content: [{ type: 'text', text }] } }),
  }));
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, `
routes:
  - name: mcp_tools_call
    match: { method: POST, path: /mcp, jsonrpc_method: tools/call }
    cache: { key: "mcp:call", ttl: 1m }
compression: { enabled: true, algorithm: "br, gzip", threshold: 1KB }
cache:
  l1: { size: 8MB }
`));
  t.after(() => sc.close());
  const call = async (id: unknown, acceptEncoding: string) => {
    const r = await fetch(`${sc.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'accept-encoding': acceptEncoding },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'query_script', arguments: { draft_id: 'd1' } } }),
    });
    const raw = Buffer.from(await r.arrayBuffer()); // fetch decodes gzip and br itself
    return { coding: r.headers.get('content-encoding'), cache: r.headers.get('cache-status') ?? '', answer: JSON.parse(raw.toString()) as { id: unknown; result: { content: Array<{ text: string }> } } };
  };
  const fill = await call(1, 'br, gzip');
  assert.equal(fill.coding, 'br', 'the operator prefers br: the stored variant is br');
  const hit = await call('call-2', 'br, gzip');
  assert.match(hit.cache, /hit/);
  assert.equal(hit.coding, 'gzip', 'the hit is spliced gzip, not br encoded again');
  assert.equal(hit.answer.id, 'call-2');
  assert.equal(hit.answer.result.content[0]!.text, text);
  const brOnly = await call(3, 'br');
  assert.equal(brOnly.coding, 'br', 'a client that accepts only br still gets br');
  assert.equal(brOnly.answer.id, 3);
  assert.equal(up.count, 2, 'the br-only client has its own variant (one fill); every other answer was a hit');
});
