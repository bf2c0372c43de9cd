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
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { GzipSplice, crc32ByTable } from '../../lib/cache/gzip-splice';
import { replayBody } from '../../lib/cache/jsonrpc-replay';
import { L1Cache } from '../../lib/cache/l1';
import { entrySize } from '../../lib/cache/entry';
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

test('what a replay keeps with an entry counts in L1\'s size, so an L1 of replayed answers stays within its budget', () => {
  // random text: gzip keeps it near its size, so each entry's two compressed halves are about its body again
  const answer = (n: number) => Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: n, result: { text: randomBytes(30_000).toString('base64') } }));
  const entries = [1, 2, 3].map((n) => makeEntry(`k${n}`, zlib.gzipSync(answer(n)), { 'content-encoding': 'gzip', 'content-type': 'application/json' }));
  const stored = entrySize(entries[0]);
  const l1 = new L1Cache(Math.floor(stored * 3.5));
  for (const e of entries) l1.set(e.meta.key, e, 60_000);
  assert.equal(l1.size, 3);
  const before = l1.bytes;

  const parts = replayBody(entries[2], Buffer.from('"other"'));
  assert.ok(Array.isArray(parts), 'spliced');
  const kept = entrySize(entries[2]) - stored;
  assert.ok(kept > entries[2].body!.length / 2, `the halves (${kept} bytes) are counted in the entry's size`);
  assert.ok(l1.bytes <= l1.capacity, `L1 holds ${l1.bytes} of ${l1.capacity} bytes`);
  assert.equal(l1.has(entries[0].meta.key), false, 'the least recently used entry made room for them');
  assert.equal(l1.get(entries[2].meta.key), entries[2], 'the replayed entry is still held');
  assert.ok(l1.bytes > before - stored, 'and what L1 counts grew by what the replay keeps');

  // a decoded body kept for a deflate answer (replayed to a client that takes no gzip) is counted the same way
  const deflated = makeEntry('d', zlib.deflateSync(answer(4)), { 'content-encoding': 'deflate', 'content-type': 'application/json' });
  const l1b = new L1Cache(10 * stored);
  l1b.set(deflated.meta.key, deflated, 60_000);
  const bytes = l1b.bytes;
  assert.ok(Buffer.isBuffer(replayBody(deflated, Buffer.from('5'), 'deflate')));
  assert.equal(l1b.bytes, bytes + answer(4).length, 'the decoded answer is counted');
});
