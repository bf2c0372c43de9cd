/**
 * L1's tag index (lib/cache/tag-index.ts) lets an invalidation visit only the keys under its patterns' tags.
 * L3's index is kept by tag the same way. What must hold: the index follows the entries through everything that adds or drops one (store, store again,
 * delete, LRU eviction, expiry, resize, clear), and a sweep removes exactly what a walk of every key would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { L1Cache } from '../../lib/cache/l1';
import { L1Sweeper, removeFromL3 } from '../../lib/cache/invalidation/local';
import { L3Cache } from '../../lib/cache/l3';
import { tempDir } from './harness';
import { matcherOf } from '../../lib/cache/invalidation/patterns';
import { tagsOf } from '../../lib/cache/keys';
import type { CacheEntry } from '../../lib/cache/entry';
import type { Tiers } from '../../lib/cache/tiers';

function entry(key: string, bytes = 100): CacheEntry {
  const now = Date.now();
  return {
    meta: { v: 1, key, kind: 'response', vary: [], status: 200, headers: [], storedAt: now, initialAge: 0, freshUntil: now + 60_000, swrUntil: 0, sieUntil: 0, mustRevalidate: false, etag: null, lastModified: null, params: {}, request: null, bodyLength: bytes, bodySha256: '' },
    body: Buffer.alloc(bytes, 120),
  };
}

/** Every tag of every live key maps to exactly the live keys that carry it, and nothing else is indexed. */
function assertIndexFollows(l1: L1Cache): void {
  const want = new Map<string, Set<string>>();
  for (const key of l1.keys()) for (const tag of tagsOf(key)) (want.get(tag) ?? want.set(tag, new Set()).get(tag)!).add(key);
  for (const [tag, keys] of want) {
    const live = l1.keysTagged(tag).filter((k) => l1.has(k));
    assert.deepEqual(new Set(live), keys, `tag ${tag}`);
  }
  assert.equal(l1.taggedCount, want.size, 'no tag is left indexed without a live key');
}

test('the tag index follows L1 through stores, deletes, evictions, expiry, resize and clear', async () => {
  const l1 = new L1Cache(60_000);
  for (let d = 0; d < 200; d++) {
    l1.set(`draft:${d}:script#v1`, entry(`draft:${d}:script#v1`), 60_000);
    if (d % 3 === 0) l1.set(`draft:${d}:script#v2`, entry(`draft:${d}:script#v2`), 60_000);
    if (d % 5 === 0) l1.set(`user:${d % 7}:drafts`, entry(`user:${d % 7}:drafts`), 60_000);
  }
  assert.ok(l1.size < 267, `the budget evicted some (${l1.size} held)`);
  assertIndexFollows(l1);

  l1.set('draft:199:script#v1', entry('draft:199:script#v1', 200), 60_000); // stored again: one key, not two
  l1.delete('draft:198:script#v1');
  l1.set('static:fonts', entry('static:fonts'), 1);
  await sleep(20);
  assert.equal(l1.get('static:fonts'), undefined, 'expired');
  assertIndexFollows(l1);

  l1.set('static:short', entry('static:short'), 1);
  await sleep(20);
  l1.resize(20_000); // the expired entry is not moved, and the smaller budget evicts more
  assertIndexFollows(l1);
  assert.deepEqual(l1.keysTagged('static:short'), []);

  l1.clear();
  assert.equal(l1.taggedCount, 0);
});

test('a sweep through the index removes exactly what a walk of every key removes', async () => {
  const patterns = [['draft:42:*'], ['draft:4*'], ['user:3:*', 'draft:7:script'], ['draft:1?:script'], ['*:script'], ['nothing:here:*']];
  for (const p of patterns) {
    const l1 = new L1Cache(64 * 1024 * 1024);
    for (let d = 0; d < 100; d++) {
      for (const k of [`draft:${d}:script#a`, `draft:${d}:script#b`, `draft:${d}:assets`, `user:${d % 10}:drafts`]) l1.set(k, entry(k, 10), 60_000);
    }
    const match = matcherOf(p);
    const expected = [...l1.keys()].filter(match).sort();
    const removed = await new L1Sweeper({ l1 } as unknown as Tiers).remove(p, false);
    assert.deepEqual([...removed.keys].sort(), expected, p.join(' '));
    assert.equal(removed.l1, expected.length);
    assert.equal([...l1.keys()].filter(match).length, 0);
    assertIndexFollows(l1);
  }
});

/** Every tag of every key L3 indexes lists exactly the keys that carry it. */
function assertL3IndexFollows(l3: L3Cache, gone: readonly string[]): void {
  const want = new Map<string, Set<string>>();
  for (const key of l3.keys()) for (const tag of tagsOf(key)) (want.get(tag) ?? want.set(tag, new Set()).get(tag)!).add(key);
  for (const [tag, keys] of want) assert.deepEqual(new Set(l3.keysTagged(tag)), keys, `tag ${tag}`);
  for (const key of gone) for (const tag of tagsOf(key)) assert.ok(!l3.keysTagged(tag).includes(key), `${key} left the index`);
}

test("L3's tag index follows its entries (store, delete, detach, eviction, restart) and removes what a walk would", async (t) => {
  const dir = tempDir(t);
  const l3 = new L3Cache({ dir, maxBytes: 64 * 1024 * 1024, ttl: 60_000 });
  await l3.ready;
  for (let d = 0; d < 30; d++) {
    for (const k of [`draft:${d}:script#a`, `draft:${d}:assets`, `user:${d % 4}:drafts`]) await l3.set(k, entry(k, 10), 60_000);
  }
  await l3.delete('draft:3:assets');
  l3.detach('draft:4:script#a');
  await l3.unlinked();
  assertL3IndexFollows(l3, ['draft:3:assets', 'draft:4:script#a']);

  await l3.resize(1); // evicts everything but what fits in one byte: nothing
  assertL3IndexFollows(l3, ['draft:5:assets']);
  await l3.resize(64 * 1024 * 1024);
  for (let d = 0; d < 30; d++) for (const k of [`draft:${d}:script#a`, `draft:${d}:assets`]) await l3.set(k, entry(k, 10), 60_000);

  // a restart indexes what it finds on disk
  const again = new L3Cache({ dir, maxBytes: 64 * 1024 * 1024, ttl: 60_000 });
  await again.ready;
  assertL3IndexFollows(again, []);
  for (const p of [['draft:7:*'], ['draft:1*'], ['*:assets'], ['user:2:*', 'draft:9:script']]) {
    const match = matcherOf(p);
    const expected = [...again.keys()].filter(match).sort();
    const removed = await removeFromL3({ l3: again } as unknown as Tiers, p, false);
    assert.deepEqual([...removed.keys].sort(), expected, p.join(' '));
    assert.equal([...again.keys()].filter(match).length, 0);
    assertL3IndexFollows(again, expected);
  }
  await again.unlinked();
});
