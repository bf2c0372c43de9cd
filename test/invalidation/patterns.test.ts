/** Pattern filling and the X-Invalidate header format (pure functions). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidationRules, parseInvalidateHeader, cleanParams, matcherOf } from '../../lib/cache/invalidation/patterns';

const rules = new InvalidationRules({
  triggers: ['draft_updated', 'template_modified', 'user_preference_changed'],
  patterns: ['draft:{draft_id}:*', 'user:{user_id}:drafts:*', 'template:{template_id}:*'],
  cascade: true,
  async: true,
});

test('an event fills only the patterns whose placeholders it has', () => {
  assert.deepEqual(rules.fill({ draft_id: '42' }), ['draft:42:*']);
  assert.deepEqual(rules.fill({ draft_id: '42', user_id: '7' }), ['draft:42:*', 'user:7:drafts:*']);
  assert.deepEqual(rules.fill({ template_id: 't1' }), ['template:t1:*']);
  assert.deepEqual(rules.fill({ other: 'x' }), []);
  assert.deepEqual(rules.fill({ draft_id: '' }), []);
});

test('a param value can never widen a pattern', () => {
  const [p] = rules.fill({ draft_id: '*' });
  assert.equal(p, 'draft:%2A:*');
  const m = matcherOf([p]);
  assert.equal(m('draft:42:script#0123456789abcdef'), false);
  assert.equal(m('draft:%2A:script#0123456789abcdef'), true);
  const [q] = rules.fill({ draft_id: '1:x' });
  assert.equal(matcherOf([q])('draft:1:x:script'), false);
});

test('matcherOf matches whole keys and readable parts of variant keys', () => {
  const m = matcherOf(['draft:42:*', 'user:7:drafts:*']);
  assert.equal(m('draft:42:script#0123456789abcdef.fedcba9876543210'), true);
  assert.equal(m('user:7:drafts:list#0123456789abcdef'), true);
  assert.equal(m('draft:420:script#0123456789abcdef'), false);
  assert.equal(m('user:70:drafts:list'), false);
});

test('X-Invalidate: several events, quoted and percent-encoded values, junk skipped', () => {
  assert.deepEqual(parseInvalidateHeader('draft_updated; draft_id=42; user_id=7, template_modified; template_id="t%2C1"'), [
    { event: 'draft_updated', params: { draft_id: '42', user_id: '7' } },
    { event: 'template_modified', params: { template_id: 't,1' } },
  ]);
  assert.deepEqual(parseInvalidateHeader(['a; x=1', 'b']), [{ event: 'a', params: { x: '1' } }, { event: 'b', params: {} }]);
  assert.deepEqual(parseInvalidateHeader(' , bad event; x=1, ok; =3; y; 9z=1; z=%E0%A4%A'), [{ event: 'ok', params: { z: '%E0%A4%A' } }]);
});

test('admin params: strings, numbers and booleans only', () => {
  assert.deepEqual(cleanParams({ a: 'x', b: 42, c: true }), { a: 'x', b: '42', c: 'true' });
  assert.deepEqual(cleanParams(undefined), {});
  assert.equal(cleanParams({ a: { nested: 1 } }), null);
  assert.equal(cleanParams(['x']), null);
});

test('L1Sweeper: requests of one turn share a pass; each gets its own removals and params', async () => {
  const { L1Cache } = await import('../../lib/cache/l1');
  const { L1Sweeper } = await import('../../lib/cache/invalidation/local');
  const l1 = new L1Cache(64 * 1024 * 1024);
  const put = (key: string, params: Record<string, string>) => {
    const now = Date.now();
    l1.set(key, { meta: { v: 1, key, kind: 'response', vary: [], status: 200, headers: [], storedAt: now, initialAge: 0, freshUntil: now + 60_000, swrUntil: 0, sieUntil: 0, mustRevalidate: false, etag: null, lastModified: null, params, request: null, bodyLength: 1, bodySha256: '' }, body: Buffer.from('x') }, 60_000);
  };
  put('draft:42:script#0123456789abcdef', { draft_id: '42', user_id: '7' });
  put('draft:42:script#0123456789abcdef.fedcba9876543210', { draft_id: '42', user_id: '7' });
  put('draft:420:script#0123456789abcdef', { draft_id: '420' });
  put('user:7:drafts:list#0123456789abcdef', { user_id: '7' });
  put('template:t1:pattern#0123456789abcdef', { template_id: 't1' });
  put('static:fonts#0123456789abcdef', {});
  const sw = new L1Sweeper({ l1 } as never);
  const [a, b, c, d] = await Promise.all([
    sw.remove(['draft:42:*'], true),
    sw.remove(['user:7:drafts:*', 'draft:42:*'], false),
    sw.remove(['template:t1:pattern'], true),
    sw.remove(['*:fonts'], true),
  ]);
  assert.equal(a.l1, 2);
  assert.deepEqual(a.params, [{ draft_id: '42', user_id: '7' }, { draft_id: '42', user_id: '7' }]);
  assert.equal(b.l1, 3);
  assert.deepEqual(b.params, []);
  assert.equal(c.l1, 1);
  assert.equal(d.l1, 1);
  assert.deepEqual([...l1.keys()], ['draft:420:script#0123456789abcdef']);
});
