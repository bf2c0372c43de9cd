/**
 * The pod's counters move between processes whose monotonic clocks differ (the primary and the pod's only
 * worker): a snapshot carries "ms until full", so the receiving store holds the same state on its own clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalStore } from '../../lib/stages/ratelimit/store';
import { ManualClock } from '../../lib/stages/ratelimit/clock';
import { SCOPE_CODES } from '../../lib/stages/ratelimit/limits';
import type { TakeItem } from '../../lib/stages/ratelimit/protocol';

const G = SCOPE_CODES.global;
const U = SCOPE_CODES.per_user;
const E = SCOPE_CODES.per_endpoint;

test('snapshot then restore on another clock: same available tokens and refill, per scope', () => {
  const a = new ManualClock(1_000);
  const b = new ManualClock(987_654);
  const from = new LocalStore(a.now);
  const items: TakeItem[] = [[G, '', 7, 10, 10], [U, 'h:alice', 3, 1, 5], [E, '/w', 2, 2, 4], [U, 'h:idle', 0, 1, 5]];
  from.take(items);
  a.advance(250);
  const to = new LocalStore(b.now);
  to.restore(from.snapshot(), true);
  // never-used and full limits are not carried: the receiver's "never seen" is the same
  assert.equal(from.snapshot().length, 3);
  for (const [code, key] of [[G, ''], [U, 'h:alice'], [E, '/w']] as const) {
    const x = from.peek(code, key)!;
    const y = to.peek(code, key)!;
    assert.equal(y.available, x.available, `${code} ${key}`);
    assert.ok(Math.abs(y.msUntilFull - x.msUntilFull) <= 1, `${code} ${key}: ${y.msUntilFull} vs ${x.msUntilFull}`);
  }
  // and both refill alike from there
  a.advance(1000);
  b.advance(1000);
  assert.equal(to.peek(G, '')!.available, from.peek(G, '')!.available);
  assert.equal(to.peek(U, 'h:alice')!.available, from.peek(U, 'h:alice')!.available);
});

test('changes(): only the limits touched since the last call, each once; a user full again goes back as full', () => {
  const c = new ManualClock(0);
  const s = new LocalStore(c.now);
  let signals = 0;
  s.trackChanges(() => signals++);
  s.take([[G, '', 1, 10, 10], [U, 'h:a', 1, 1, 2]]);
  s.take([[G, '', 1, 10, 10]]);
  assert.equal(signals, 1, 'one signal until the changes are read');
  const first = s.changes();
  assert.deepEqual(first.map((x) => [x[0], x[1]]), [[G, ''], [U, 'h:a']]);
  assert.deepEqual(s.changes(), []);
  s.give([[U, 'h:a', 1, 1, 2]]);
  assert.equal(signals, 2);
  c.advance(10_000); // h:a is full again
  const primary = new LocalStore(new ManualClock(5).now);
  primary.restore(first, false);
  assert.equal(primary.peek(U, 'h:a')?.used, 0.5, 'one of two taken');
  primary.restore(s.changes(), false);
  const after = primary.peek(U, 'h:a');
  assert.equal(after?.used, 0, 'the user is full on the receiving side too');
  assert.equal(after?.msUntilFull, 0);
});
