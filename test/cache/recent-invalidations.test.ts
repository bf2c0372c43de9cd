/**
 * RecentInvalidations (lib/cache/recent-invalidations.ts) on a stepped clock: which fills it blocks, how its
 * age and count bounds fold old entries into a conservative barrier, and what a check costs (printed, never
 * asserted).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentInvalidations } from '../../lib/cache/recent-invalidations';

function clocked(windowMs = 10_000, capacity = 8): { r: RecentInvalidations; step: (ms: number) => number } {
  let now = 1000;
  const r = new RecentInvalidations(windowMs, capacity, () => now);
  return { r, step: (ms) => (now += ms) };
}

test('a fill started before a matching invalidation is blocked; one started after, or of another key, is not', () => {
  const { r, step } = clocked();
  const before = r.now();
  step(5);
  r.record(['draft:42:*']);
  step(5);
  const after = r.now();
  assert.equal(r.blocks('draft:42:script#0123456789abcdef', before), true);
  assert.equal(r.blocks('draft:42:script', before), true);
  assert.equal(r.blocks('draft:420:script#0123456789abcdef', before), false, 'another draft');
  assert.equal(r.blocks('user:7:drafts:list', before), false, 'another key space');
  assert.equal(r.blocks('draft:42:script#0123456789abcdef', after), false, 'started after the invalidation');
});

test('a fill that started at the very moment of the invalidation is blocked (ties are conservative)', () => {
  const { r } = clocked();
  const at = r.now();
  r.record(['template:t1:*']);
  assert.equal(r.blocks('template:t1:pattern', at), true);
});

test('exact keys, several patterns in one record, and only the invalidations newer than the fill count', () => {
  const { r, step } = clocked();
  r.record(['user:7:drafts:list']);
  step(1);
  const start = r.now();
  step(1);
  r.record(['draft:1:*', 'template:x:*']);
  assert.equal(r.blocks('user:7:drafts:list#00', start), false, 'that invalidation came before the fill');
  assert.equal(r.blocks('template:x:pattern', start), true);
  assert.equal(r.blocks('draft:1:script', start), true);
});

test('age bound: entries older than the window fold into a barrier that blocks every older fill', () => {
  const { r, step } = clocked(10_000, 8);
  const old = r.now();
  step(1);
  r.record(['draft:1:*']);
  const afterFirst = r.now() + 0.5;
  step(20_000); // the first entry is now older than the window
  r.record(['draft:2:*']);
  assert.equal(r.size, 1, 'the first entry was folded');
  assert.equal(r.blocks('user:9:drafts:list', old), true, 'a fill older than a folded invalidation is blocked whatever its key');
  assert.equal(r.blocks('draft:1:script', afterFirst), false, 'a fill after the folded one is judged by the remaining entries');
  assert.equal(r.blocks('draft:2:script', afterFirst), true);
});

test('count bound: past capacity the oldest entries fold into the barrier; nothing that should be blocked gets through', () => {
  const { r, step } = clocked(1_000_000, 4);
  const starts: number[] = [];
  for (let i = 0; i < 10; i++) {
    starts.push(r.now());
    step(1);
    r.record([`draft:${i}:*`]);
    step(1);
  }
  assert.equal(r.size, 4);
  // every fill of draft i started before its invalidation stays blocked, folded or not
  for (let i = 0; i < 10; i++) assert.equal(r.blocks(`draft:${i}:script`, starts[i]), true, `draft ${i}`);
  // a fill started after the last one is free
  step(1);
  assert.equal(r.blocks('draft:3:script', r.now()), false);
});

test('blockStartedBefore: everything in flight is blocked, later fills are not', () => {
  const { r, step } = clocked();
  const inFlight = r.now();
  step(3);
  r.blockStartedBefore();
  step(3);
  assert.equal(r.blocks('anything:at:all', inFlight), true);
  assert.equal(r.blocks('anything:at:all', r.now()), false);
});

test('figures: cost of a check with no invalidation since the fill, and with 100 recent non-matching ones', () => {
  const r = new RecentInvalidations(60_000, 1024);
  const key = 'draft:dft_000042:script#0123456789abcdef';
  const N = 1_000_000;
  let blocked = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) if (r.blocks(key, r.now())) blocked++;
  const quiet = Number(process.hrtime.bigint() - t0) / N;
  const fixed = r.now();
  const t2 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) if (r.blocks(key, fixed)) blocked++;
  const bare = Number(process.hrtime.bigint() - t2) / N;
  const start = r.now() - 1;
  for (let i = 0; i < 100; i++) r.record([`draft:other${i}:*`]);
  const M = 100_000;
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < M; i++) if (r.blocks(key, start)) blocked++;
  const busy = Number(process.hrtime.bigint() - t1) / M;
  assert.equal(blocked, 0);
  console.log(`RecentInvalidations.blocks: ${bare.toFixed(1)} ns per check with nothing recent (${quiet.toFixed(0)} ns with the performance.now() that takes the fill's start); ${busy.toFixed(0)} ns with 100 newer non-matching invalidations`);
});

test('storedBefore: a copy whose answer arrived at or before a remembered invalidation was raised is old; after it, or of another key, is not', () => {
  const { r } = clocked();
  r.record(['draft:42:*'], 50_000);
  assert.equal(r.storedBefore('draft:42:script#0123456789abcdef', 49_999), true, 'stored before the raise');
  assert.equal(r.storedBefore('draft:42:script#0123456789abcdef', 50_000), true, 'ties are conservative');
  assert.equal(r.storedBefore('draft:42:script#0123456789abcdef', 50_001), false, 'stored after the raise');
  assert.equal(r.storedBefore('draft:43:script#0123456789abcdef', 1), false, 'another key');
  r.record(['user:7:*'], 40_000); // raised earlier (another pod's, arriving late): judged by its own time
  assert.equal(r.storedBefore('user:7:drafts:list', 45_000), false);
  assert.equal(r.storedBefore('user:7:drafts:list', 39_000), true);
  assert.equal(r.storedBefore('draft:42:script', 45_000), true, 'the later draft invalidation still counts');
});

test('storedBefore forgets what was folded: only remembered invalidations judge a copy', () => {
  const { r, step } = clocked(10_000, 8);
  r.record(['draft:1:*'], 1_000);
  step(20_000);
  r.record(['draft:2:*'], 21_000);
  assert.equal(r.storedBefore('draft:1:script', 500), false, 'folded: the tiers\' own removals judged it');
  assert.equal(r.storedBefore('draft:2:script', 20_500), true);
});
