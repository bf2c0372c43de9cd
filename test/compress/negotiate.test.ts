/**
 * The negotiation helpers on their own (they are also the API the response cache uses): Accept-Encoding by
 * RFC 9110 (q-values, `*`, identity;q=0), the types list with wildcards, Vary/ETag edits, and the streaming
 * decoders against real zlib output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { negotiate, isCompressible, decoderFor, mergeVary, weakenEtag, brotliQuality, gzipLevel } from '../../lib/stages/compress';
import type { CompressionPolicy } from '../../lib/policy/types';
import { DEFAULT_COMPRESSIBLE_TYPES } from '../../lib/policy/defaults';

const both = ['gzip', 'br'] as const;

test('no Accept-Encoding, or an empty one, means identity', () => {
  assert.equal(negotiate(undefined, both), 'identity');
  assert.equal(negotiate('', both), 'identity');
  assert.equal(negotiate('  ', both), 'identity');
});

test('a listed coding is chosen; unknown codings are ignored; x-gzip is gzip; case does not matter', () => {
  assert.equal(negotiate('gzip', both), 'gzip');
  assert.equal(negotiate('GZip', both), 'gzip');
  assert.equal(negotiate('x-gzip', both), 'gzip');
  assert.equal(negotiate('br', ['gzip']), 'identity');
  assert.equal(negotiate('zstd, deflate', both), 'identity');
  assert.equal(negotiate(['deflate', 'gzip'], both), 'gzip');
});

test('q-values: the highest wins, q=0 excludes, and the policy order breaks ties', () => {
  assert.equal(negotiate('gzip;q=0.5, br;q=0.9', both), 'br');
  assert.equal(negotiate('gzip;q=1, br;q=0.9', both), 'gzip');
  assert.equal(negotiate('gzip, br', ['gzip', 'br']), 'gzip');
  assert.equal(negotiate('gzip, br', ['br', 'gzip']), 'br');
  assert.equal(negotiate('br;q=0.5, gzip;q=0.5', ['br', 'gzip']), 'br');
  assert.equal(negotiate('gzip;q=0', both), 'identity');
  assert.equal(negotiate('gzip;q=0, br', both), 'br');
  assert.equal(negotiate('gzip ; q=0.000', both), 'identity');
  assert.equal(negotiate('gzip;level=1;q=0.2', ['gzip']), 'gzip');
});

test('`*` covers every coding not named, and identity unless identity is named', () => {
  assert.equal(negotiate('*', ['gzip', 'br']), 'gzip');
  assert.equal(negotiate('*', ['br', 'gzip']), 'br');
  assert.equal(negotiate('*;q=0.5, gzip;q=0', both), 'br');
  assert.equal(negotiate('*;q=0, identity', both), 'identity');
  assert.equal(negotiate('*;q=0', both), null);
});

test('identity: acceptable by default, preferred only when its q is higher, null when refused and nothing else fits', () => {
  assert.equal(negotiate('gzip;q=0.5, identity', both), 'identity');
  assert.equal(negotiate('gzip;q=0.5, identity;q=0.5', both), 'gzip');
  assert.equal(negotiate('identity;q=0', both), null);
  assert.equal(negotiate('gzip, identity;q=0', both), 'gzip');
  assert.equal(negotiate('gzip;q=0, identity;q=0', both), null);
  // a cache entry stored as gzip, a client that takes only br: identity (the cache decodes)
  assert.equal(negotiate('br', ['gzip']), 'identity');
});

const policy = (types: readonly string[]): CompressionPolicy => ({ enabled: true, algorithm: ['gzip'], level: 6, threshold: 1024, types });

test('isCompressible: the default list, wildcards, parameters and case', () => {
  const p = policy(DEFAULT_COMPRESSIBLE_TYPES);
  for (const t of ['application/json', 'application/json; charset=utf-8', 'Application/JSON', 'text/html', 'text/plain;charset=x',
    'application/problem+json', 'application/vnd.api+json', 'application/javascript', 'application/xml', 'application/atom+xml', 'image/svg+xml']) {
    assert.equal(isCompressible(t, p), true, t);
  }
  for (const t of ['image/png', 'application/octet-stream', 'video/mp4', 'application/zip', 'application/jsonx', '', 'json']) {
    assert.equal(isCompressible(t, p), false, t);
  }
  assert.equal(isCompressible(undefined, p), false);
});

test('text/event-stream is compressible only when the list names it, never through text/*', () => {
  assert.equal(isCompressible('text/event-stream', policy(DEFAULT_COMPRESSIBLE_TYPES)), false);
  assert.equal(isCompressible('text/event-stream; charset=utf-8', policy(['text/*'])), false);
  assert.equal(isCompressible('text/event-stream', policy(['text/*', 'text/event-stream'])), true);
  assert.equal(isCompressible('text/css', policy(['text/event-stream'])), false);
  assert.equal(isCompressible('application/vnd.x+json', policy(['application/*+json'])), true);
  assert.equal(isCompressible('application/json', policy(['application/*+json'])), false);
});

test('Vary: Accept-Encoding merged once, repeated fields folded, `*` kept', () => {
  assert.equal(mergeVary(undefined), 'Accept-Encoding');
  assert.equal(mergeVary('Origin'), 'Origin, Accept-Encoding');
  assert.equal(mergeVary('origin, accept-encoding'), 'origin, accept-encoding');
  assert.equal(mergeVary(['Origin', 'Accept-Encoding']), 'Origin, Accept-Encoding');
  assert.equal(mergeVary(['Origin', 'Cookie']), 'Origin, Cookie, Accept-Encoding');
  assert.equal(mergeVary('*'), '*');
  assert.equal(mergeVary(''), 'Accept-Encoding');
  assert.equal(mergeVary('X-Accept-Encoding-Foo'), 'X-Accept-Encoding-Foo, Accept-Encoding');
});

test('strong ETags become weak, weak ones stay', () => {
  assert.equal(weakenEtag('"abc"'), 'W/"abc"');
  assert.equal(weakenEtag('W/"abc"'), 'W/"abc"');
});

test('levels: gzip clamped to 0..9, brotli quality mapped from the gzip scale', () => {
  assert.equal(gzipLevel(6), 6);
  assert.equal(gzipLevel(11), 9);
  assert.equal(brotliQuality(6), 5);
  assert.equal(brotliQuality(1), 1);
  assert.equal(brotliQuality(11), 11);
  assert.ok(brotliQuality(9) < 10);
});

test('decoderFor streams gzip, br, deflate and identity back to the original bytes', async () => {
  const original = Buffer.from(JSON.stringify({ tracks: Array.from({ length: 500 }, (_, i) => ({ i, name: `clip ${i}` })) }));
  const cases: Array<[string, Buffer]> = [['gzip', gzipSync(original)], ['x-gzip', gzipSync(original)], ['br', brotliCompressSync(original)],
    ['deflate', deflateSync(original)], ['identity', original]];
  for (const [enc, encoded] of cases) {
    // feed it in small pieces, as a cache tier would stream it
    const pieces = [];
    for (let i = 0; i < encoded.length; i += 100) pieces.push(encoded.subarray(i, i + 100));
    const out = await buffer(Readable.from(pieces).pipe(decoderFor(enc)));
    assert.ok(out.equals(original), enc);
  }
  assert.throws(() => decoderFor('zstd'), /no decoder/);
});
