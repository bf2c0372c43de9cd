/**
 * The pooled gzip compressors (lib/stages/compress/gzip-pool.ts): each response is a complete gzip member even
 * when the compressor served others before; a response that ends mid-member never returns its compressor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { buffer } from 'node:stream/consumers';
import { gunzipSync } from 'node:zlib';
import { GzipMember, idleCompressors } from '../../lib/stages/compress/gzip-pool';

const LEVEL = 7; // a level no other test in this process uses, so the idle count is ours

function body(i: number, size: number): Buffer {
  let s = '';
  while (s.length < size) s += JSON.stringify({ response: i, at: s.length, text: 'draft segment '.repeat(3) });
  return Buffer.from(s.slice(0, size));
}

async function member(data: Buffer, counts?: { in: number; out: number }): Promise<Buffer> {
  const sink = counts ? { in: (n: number) => { counts.in += n; }, out: (n: number) => { counts.out += n; } } : null;
  const pieces: Buffer[] = [];
  for (let o = 0; o < data.length; o += 4000) pieces.push(data.subarray(o, o + 4000));
  return buffer(Readable.from(pieces).pipe(new GzipMember(LEVEL, sink)));
}

test('sequential responses reuse one compressor and each is a whole gzip member', async () => {
  const first = body(0, 10_000);
  assert.ok(gunzipSync(await member(first)).equals(first));
  const idle = idleCompressors(LEVEL);
  assert.ok(idle >= 1, 'the compressor went back to the pool');
  for (let i = 1; i <= 20; i++) {
    const data = body(i, 500 + i * 3000);
    const counts = { in: 0, out: 0 };
    const gz = await member(data, counts);
    assert.ok(gunzipSync(gz).equals(data), `response ${i}`);
    assert.equal(counts.in, data.length);
    assert.equal(counts.out, gz.length);
  }
  assert.equal(idleCompressors(LEVEL), idle, 'no compressor created or lost while reusing');
});

test('concurrent responses on separate compressors never mix their bytes', async () => {
  const datas = Array.from({ length: 40 }, (_, i) => body(100 + i, 2000 + i * 700));
  const out = await Promise.all(datas.map((d) => member(d)));
  out.forEach((gz, i) => assert.ok(gunzipSync(gz).equals(datas[i]), `response ${i}`));
  assert.ok(idleCompressors(LEVEL) <= 32, 'the idle pool is bounded');
});

test('a response destroyed mid-member does not return its compressor; the pool keeps working', async () => {
  await member(body(0, 5000));
  const idle = idleCompressors(LEVEL);
  const m = new GzipMember(LEVEL, null);
  assert.equal(idleCompressors(LEVEL), idle - 1, 'borrowed');
  const src = new Readable({ read() {} });
  src.push(body(1, 20_000));
  const done = pipeline(src, m, async function* (chunks) { for await (const _ of chunks) yield _; });
  setTimeout(() => src.destroy(new Error('client went away')), 50);
  await assert.rejects(done, /client went away/);
  assert.equal(idleCompressors(LEVEL), idle - 1, 'the half-used compressor was closed, not returned');
  const data = body(2, 30_000);
  assert.ok(gunzipSync(await member(data)).equals(data));
});

test('a response destroyed while its final flush is on the thread pool does not reuse or reset a closed compressor', async () => {
  const idle0 = idleCompressors(LEVEL);
  for (let i = 0; i < 20; i++) {
    const m = new GzipMember(LEVEL, null);
    m.on('error', () => {});
    m.resume();
    m.end(body(i, 20_000)); // write, then _flush(Z_FINISH) on the pool
    await new Promise<void>((r) => setImmediate(r));
    await new Promise<void>((r) => setTimeout(r, i % 3)); // destroy at different points of the flush
    m.destroy(new Error('client went away'));
    await new Promise<void>((r) => (m.closed ? r() : m.once('close', () => r())));
  }
  await new Promise<void>((r) => setTimeout(r, 100)); // let every pending zlib callback run
  assert.ok(idleCompressors(LEVEL) <= idle0 + 1);
  // the pool still hands out working compressors
  for (let i = 0; i < 5; i++) {
    const data = body(50 + i, 12_000);
    assert.ok(gunzipSync(await member(data)).equals(data));
  }
});
