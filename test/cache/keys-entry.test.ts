/** Keys (templates, encoding, tags, globs) and the binary entry format. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { KeyTemplate, encodeKeyParam, globToRegExp, patternMatcher, tagForPattern, tagsOf, varyKey } from '../../lib/cache/keys';
import { CorruptEntryError, decodeEntry, encodeEntry, storedFields } from '../../lib/cache/entry';
import { makeEntry } from './fixtures';

test('templates fill from params; a missing param means not cacheable', () => {
  const t = new KeyTemplate('draft:{draft_id}:script');
  assert.deepEqual(t.params, ['draft_id']);
  assert.equal(t.fill({ draft_id: '42' }), 'draft:42:script');
  assert.equal(t.fill({}), null);
});

test('encoded param values never contain key syntax, globs, separators or control characters', () => {
  fc.assert(fc.property(fc.string({ unit: 'grapheme' }), (s) => {
    const e = encodeKeyParam(s);
    assert.match(e, /^[A-Za-z0-9_\-%]*$/);
    assert.equal(decodeURIComponent(e), s, 'the encoding is reversible, so distinct values never share a key');
  }), { numRuns: 500 });
  assert.equal(encodeKeyParam('a:b*c?[d]/../\n'), 'a%3Ab%2Ac%3F%5Bd%5D%2F%2E%2E%2F%0A');
});

test('tags and pattern tags: the literal prefix of a glob names the index set', () => {
  assert.deepEqual(tagsOf('draft:42:script#abc'), ['draft', 'draft:42', 'draft:42:script']);
  assert.equal(tagForPattern('draft:42:*'), 'draft:42');
  assert.equal(tagForPattern('user:7:drafts:*'), 'user:7:drafts');
  assert.equal(tagForPattern('draft:42:script'), 'draft:42:script');
  assert.equal(tagForPattern('*:script'), null);
  assert.equal(tagForPattern('dr*'), null);
  // every key a pattern matches carries the pattern's tag
  for (const [pattern, key] of [['draft:42:*', 'draft:42:script#aa.bb'], ['user:7:drafts:*', 'user:7:drafts:list#x']]) {
    assert.ok(patternMatcher(pattern)(key));
    assert.ok(tagsOf(key).includes(tagForPattern(pattern)!));
  }
});

test('globs: * ? [] and escapes; a plain key matches all its variants', () => {
  assert.ok(globToRegExp('a?c').test('abc'));
  assert.ok(!globToRegExp('a?c').test('abbc'));
  assert.ok(globToRegExp('t:[0-9]').test('t:5'));
  assert.ok(!globToRegExp('t:[^0-9]').test('t:5'));
  assert.ok(globToRegExp('x\\*').test('x*'));
  assert.ok(patternMatcher('draft:42:script')('draft:42:script#0123.4567'));
  assert.ok(!patternMatcher('draft:42:*')('draft:%2A:script#a'), 'a client-sent "*" is a literal %2A, not a wildcard');
  assert.ok(!patternMatcher('draft:42:*')('draft:421:script#a'));
});

test('vary keys: equal for equivalent Accept-Encoding lists, different for different values', () => {
  const a = varyKey('k#1', ['accept-encoding'], { 'accept-encoding': 'gzip, br' });
  const b = varyKey('k#1', ['accept-encoding'], { 'accept-encoding': 'br,gzip' });
  const c = varyKey('k#1', ['accept-encoding'], { 'accept-encoding': 'identity' });
  assert.equal(a, b);
  assert.notEqual(a, c);
});

test('entry encoding round-trips; any flipped byte or truncation is detected', () => {
  const e = makeEntry('k', 'hello body', { etag: '"1"' });
  const buf = encodeEntry(e);
  const back = decodeEntry(buf);
  assert.equal(back.body!.toString(), 'hello body');
  assert.deepEqual(back.meta, { ...e.meta, bodySha256: createHash('sha256').update('hello body').digest('hex') });
  for (let i = 0; i < buf.length; i += 7) {
    const bad = Buffer.from(buf);
    bad[i] ^= 0x01;
    assert.throws(() => decodeEntry(bad), CorruptEntryError, `flip at ${i}`);
  }
  assert.throws(() => decodeEntry(buf.subarray(0, buf.length - 1)), CorruptEntryError);
  assert.throws(() => decodeEntry(Buffer.concat([buf, Buffer.from('x')])), CorruptEntryError);
});

test('the body digest is computed when an entry is first encoded for L2 or L3, not on the answer\'s path', () => {
  const body = Buffer.from('{"error":"","output":{},"success":true}'.padEnd(50_000, ' '));
  const e = makeEntry('k', body);
  assert.equal(e.meta.bodySha256, '', 'storing an answer (before its head is released) computes no digest');
  const back = decodeEntry(encodeEntry(e));
  assert.equal(back.meta.bodySha256, createHash('sha256').update(body).digest('hex'));
  // an entry read back from a tier is written again with the digest it has, byte for byte the same
  assert.deepEqual(encodeEntry(back), encodeEntry(e));
  // and the reader still rejects a body that is not the one the digest was made of
  const bad = encodeEntry(e);
  bad[bad.length - 1] ^= 0x01;
  assert.throws(() => decodeEntry(bad), CorruptEntryError);
});

test('stored fields drop hop-by-hop, Connection-named, Set-Cookie, rate-limit fields and our own Via', () => {
  const f = storedFields({
    connection: 'x-hop', 'x-hop': '1', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', 'set-cookie': ['a=1'],
    ratelimit: 'r', 'ratelimit-policy': 'p', 'retry-after': '1', 'x-ratelimit-limit': '9', age: '3', 'content-type': 'text/plain',
    via: '1.0 front, 1.1 bridge-sidecar',
  }, '1.1 bridge-sidecar');
  assert.deepEqual(f, [['content-type', 'text/plain'], ['via', '1.0 front']]);
});
