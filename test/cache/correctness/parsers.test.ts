/**
 * Strict HTTP-date / Expires / Age parsing, and which cache directives apply to this cache (RFC 9110 §5.6.7,
 * RFC 9111 §5.1, §5.3, §5.2.2.4, §5.2.2.7, RFC 9213).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAge, parseExpires, parseHttpDate } from '../../../lib/cache/http-date';
import { freshness, notStorableReason } from '../../../lib/cache/http-semantics';
import { responseDirectives, qualifiedFieldNames } from '../../../lib/cache/response-fields';
import { storedFields } from '../../../lib/cache/entry';

const NOV_6_1994 = Date.UTC(1994, 10, 6, 8, 49, 37);
const NOW_2026 = Date.UTC(2026, 11, 5, 12, 0, 0);

test('HTTP-date: the three forms give the same instant', () => {
  assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT', NOW_2026), NOV_6_1994);
  assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', NOW_2026), NOV_6_1994);
  assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994', NOW_2026), NOV_6_1994);
  assert.equal(parseHttpDate('Sun Nov 16 08:49:37 1994', NOW_2026), Date.UTC(1994, 10, 16, 8, 49, 37));
});

test('HTTP-date: RFC 850 two-digit years — more than 50 years ahead means the last century', () => {
  // in 2026: "30" is 2030 (4 years ahead), "76" is 2076 (50 years ahead, not more), "94" would be 2094: 1994
  assert.equal(new Date(parseHttpDate('Monday, 01-Jan-30 00:00:00 GMT', NOW_2026)).getUTCFullYear(), 2030);
  assert.equal(new Date(parseHttpDate('Tuesday, 01-Jan-76 00:00:00 GMT', NOW_2026)).getUTCFullYear(), 2076);
  assert.equal(new Date(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', NOW_2026)).getUTCFullYear(), 1994);
  assert.equal(new Date(parseHttpDate('Wednesday, 01-Jan-00 00:00:00 GMT', NOW_2026)).getUTCFullYear(), 2000);
  // what the lenient Date.parse did: "0" was a date (1 Jan 2000), so `Expires: 0` could never mean "expired"
  assert.ok(!Number.isNaN(Date.parse('0')));
  assert.ok(Number.isNaN(parseHttpDate('0', NOW_2026)));
});

test('HTTP-date: anything else is not a date', () => {
  for (const bad of [
    '0', '-1', 'tomorrow', '2026-12-05T12:00:00Z', 'Sun, 06 Nov 1994 08:49:37 UTC', 'Sun, 6 Nov 1994 08:49:37 GMT',
    'sun, 06 nov 1994 08:49:37 GMT', 'Sun, 31 Feb 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 24:00:00 GMT',
    ' Sun, 06 Nov 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT', '',
  ]) assert.ok(Number.isNaN(parseHttpDate(bad, NOW_2026)), bad);
});

test('Expires: more than one line, or an invalid value, is already expired', () => {
  assert.equal(parseExpires('Sun, 06 Nov 1994 08:49:37 GMT'), NOV_6_1994);
  assert.equal(parseExpires(['Sun, 06 Nov 1994 08:49:37 GMT']), NOV_6_1994);
  assert.ok(Number.isNaN(parseExpires(['Sun, 06 Nov 2094 08:49:37 GMT', 'Sun, 06 Nov 2094 08:49:37 GMT'])));
  const rules = { ttl: 60_000, staleWhileRevalidate: 0, staleIfError: 0, override: false };
  const date = 'Sat, 05 Dec 2026 12:00:00 GMT';
  assert.equal(freshness({ date, expires: 'Sat, 05 Dec 2026 12:10:00 GMT' }, NOW_2026, rules).lifetime, 600_000);
  assert.equal(freshness({ date, expires: 'next week' }, NOW_2026, rules).lifetime, 0);
  assert.equal(freshness({ date, expires: '2026-12-06T12:00:00Z' }, NOW_2026, rules).lifetime, 0);
  assert.equal(freshness({ date, expires: ['Sat, 05 Dec 2026 12:10:00 GMT', 'Sat, 05 Dec 2026 12:10:00 GMT'] }, NOW_2026, rules).lifetime, 0);
});

test('Age: a non-negative integer; a list counts its first member; anything else is ignored', () => {
  assert.equal(parseAge('7200'), 7200);
  assert.equal(parseAge('7200, 0'), 7200);
  assert.equal(parseAge(['30', '0']), 30);
  assert.equal(parseAge('7200.0'), null);
  assert.equal(parseAge('-5'), null);
  assert.equal(parseAge('soon'), null);
  assert.equal(parseAge(''), null);
  assert.equal(parseAge(undefined), null);
  assert.equal(parseAge('99999999999'), 2 ** 31);
});

test('qualified no-cache / private keep only the named fields out; unqualified ones keep the whole answer out', () => {
  const rules = { ttl: 60_000, staleWhileRevalidate: 0, staleIfError: 0, override: false };
  const q = { 'cache-control': 'max-age=60, no-cache="Set-Cookie", private="X-User, X-Plan"', 'set-cookie': 'sid=1', 'x-user': 'alice', 'x-plan': 'gold', 'content-type': 'text/plain' };
  assert.deepEqual([...qualifiedFieldNames(responseDirectives(q).cc)!].sort(), ['set-cookie', 'x-plan', 'x-user']);
  assert.equal(notStorableReason(200, q, false, rules), null);
  assert.equal(freshness(q, NOW_2026, rules).lifetime, 60_000);
  assert.equal(freshness(q, NOW_2026, rules).mustRevalidate, false);
  assert.deepEqual(storedFields(q, '1.1 bridge-sidecar'), [['cache-control', q['cache-control']], ['content-type', 'text/plain']]);
  assert.equal(notStorableReason(200, { 'cache-control': 'private' }, false, rules), 'private');
  assert.equal(freshness({ 'cache-control': 'max-age=60, no-cache' }, NOW_2026, rules).lifetime, 0);
  assert.equal(notStorableReason(200, { 'cache-control': 'max-age=60', 'set-cookie': 'a=1' }, false, rules), 'set-cookie');
  assert.equal(notStorableReason(200, { 'cache-control': 'max-age=60', 'set-cookie2': 'a=1' }, false, rules), 'set-cookie');
  assert.equal(notStorableReason(200, { 'cache-control': 'max-age=60, private="Set-Cookie2"', 'set-cookie2': 'a=1' }, false, rules), null);
});

test('per-client and hop-by-hop fields are never stored', () => {
  const f = storedFields({
    'mcp-session-id': 's-1', 'set-cookie': ['a=1', 'b=2'], 'set-cookie2': 'c=3', connection: 'close, x-conn', 'x-conn': '1',
    'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', 'content-type': 'application/json', etag: '"v1"',
  }, '1.1 bridge-sidecar');
  assert.deepEqual(f, [['content-type', 'application/json'], ['etag', '"v1"']]);
});

test('targeted cache control: Bridge-Sidecar-Cache-Control > CDN-Cache-Control > Cache-Control (and Expires)', () => {
  const rules = { ttl: 1_000, staleWhileRevalidate: 0, staleIfError: 0, override: false };
  const cc = { 'cache-control': 'no-store', expires: 'Sat, 05 Dec 2026 11:00:00 GMT' };
  assert.equal(notStorableReason(200, cc, false, rules), 'no-store');
  assert.equal(notStorableReason(200, { ...cc, 'cdn-cache-control': 'max-age=30' }, false, rules), null);
  assert.equal(freshness({ ...cc, 'cdn-cache-control': 'max-age=30' }, NOW_2026, rules).lifetime, 30_000);
  const own = { ...cc, 'cdn-cache-control': 'max-age=30', 'bridge-sidecar-cache-control': 'max-age=300' };
  assert.equal(responseDirectives(own).source, 'bridge-sidecar-cache-control');
  assert.equal(freshness(own, NOW_2026, rules).lifetime, 300_000);
  assert.equal(notStorableReason(200, { 'cache-control': 'max-age=600', 'bridge-sidecar-cache-control': 'no-store' }, false, rules), 'no-store');
  // an empty targeted field is no instruction: the next one applies
  assert.equal(responseDirectives({ 'bridge-sidecar-cache-control': '', 'cache-control': 'max-age=5' }).source, 'cache-control');
  // the sidecar's own field is stored (a 304 refresh recomputes freshness from it) but never shown to a client
  assert.ok(storedFields(own, '1.1 bridge-sidecar').some(([k]) => k === 'bridge-sidecar-cache-control'));
});
