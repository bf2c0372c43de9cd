/**
 * The cache keys an encoded answer by the codings the sidecar can produce that the client accepts, so one stored
 * gzip variant serves every gzip-capable client, and no client gets a coding it did not accept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { varyKey } from '../../lib/cache/keys';

const key = (ae: string | undefined) => varyKey('draft:1:script', ['accept-encoding'], { 'accept-encoding': ae });

test('clients that accept gzip (and no br) share one variant whatever else they list', () => {
  const gzip = key('gzip');
  for (const ae of ['gzip, deflate', 'deflate, gzip, zstd', 'GZIP;q=0.5, deflate', 'x-gzip', 'gzip, br;q=0']) assert.equal(key(ae), gzip, ae);
});

test('br-capable, identity-only and q=0 clients get variants of their own', () => {
  const gzip = key('gzip');
  const both = key('gzip, br');
  assert.notEqual(both, gzip);
  assert.equal(key('br;q=0.9, gzip'), both);
  assert.equal(key('*'), both);
  assert.notEqual(key('br'), both);
  const identity = key(undefined);
  assert.equal(key(''), identity);
  assert.equal(key('deflate'), identity);
  assert.equal(key('gzip;q=0'), identity);
  assert.notEqual(identity, gzip);
});
