import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TokenBucket } from '../../lib/stages/ratelimit/token-bucket';
import { SlidingWindow } from '../../lib/stages/ratelimit/sliding-window';
import { LocalStore } from '../../lib/stages/ratelimit/store';
import { ManualClock } from '../../lib/stages/ratelimit/clock';
import { grantSize } from '../../lib/stages/ratelimit/protocol';

function takeN(l: { take(n: number, now: number): number }, n: number, now: number): number {
  let admitted = 0;
  for (let i = 0; i < n; i++) admitted += l.take(1, now);
  return admitted;
}

test('token bucket: starts full, admits its burst at once, then refuses', () => {
  const b = new TokenBucket(5, 10, 0);
  assert.equal(takeN(b, 15, 0), 10);
  assert.equal(b.available(0), 0);
  assert.equal(b.msUntil(1, 0), 200);
});

test('token bucket: refills at its rate and never above its capacity', () => {
  const b = new TokenBucket(5, 10, 0);
  takeN(b, 10, 0);
  assert.equal(b.available(199), 0);
  assert.equal(b.available(200), 1);
  assert.equal(takeN(b, 5, 1000), 5);
  assert.equal(b.available(60_000), 10, 'capped at capacity after a long pause');
  assert.equal(b.msUntilFull(60_000), 0);
});

test('token bucket: partial batch takes, refunds capped at capacity, reconfigure keeps state', () => {
  const b = new TokenBucket(10, 10, 0);
  assert.equal(b.take(7, 0), 7);
  assert.equal(b.take(7, 0), 3, 'a batch gets what is there');
  b.refund(4, 0);
  assert.equal(b.available(0), 4);
  b.refund(100, 0);
  assert.equal(b.available(0), 10, 'refund never exceeds capacity');
  b.take(8, 0);
  b.reconfigure(100, 50, 0);
  assert.equal(b.available(0), 2, 'a reload does not hand out a fresh burst');
  assert.equal(b.available(100), 12, 'and refills at the new rate');
  b.reconfigure(100, 5, 100);
  assert.equal(b.available(100), 5, 'clamped to a smaller capacity');
});

test('sliding window: burst at once, then one request per 60/L seconds', () => {
  const w = SlidingWindow.perMinute(60, 10, 0);
  assert.equal(takeN(w, 20, 0), 10);
  assert.equal(w.msUntil(1, 0), 1000);
  assert.equal(takeN(w, 5, 999), 0);
  assert.equal(takeN(w, 5, 1000), 1);
  assert.equal(takeN(w, 5, 3000), 2);
});

test('sliding window edge: the budget spent at 0:59 is not fresh again at 1:01 (unlike a fixed window)', () => {
  // budget = 60 at once (burst 60) within 60/min
  const w = SlidingWindow.perMinute(60, 60, 0);
  assert.equal(takeN(w, 60, 59_000), 60, 'whole budget at 0:59');
  const second = takeN(w, 60, 61_000);
  // a fixed per-minute window would reset at 1:00 and admit all 60 again
  assert.ok(second <= 2, `at 1:01 only what accrued in 2 s is admitted, got ${second}`);
  assert.equal(takeN(w, 60, 119_000), 58, 'the allowance slides back in over the following minute');
});

test('sliding window: any span of W seconds admits at most burst + L*W/60 (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 600 }),
      fc.integer({ min: 1, max: 50 }),
      fc.array(fc.integer({ min: 0, max: 300_000 }), { minLength: 1, maxLength: 400 }),
      (rpm, burst, times) => {
        times.sort((a, b) => a - b);
        const w = SlidingWindow.perMinute(rpm, burst, 0);
        const admitted = times.filter((t) => w.take(1, t) === 1);
        // check every window starting at an admitted request
        for (let i = 0; i < admitted.length; i++) {
          for (const span of [1000, 10_000, 60_000]) {
            let n = 0;
            for (let j = i; j < admitted.length && admitted[j]! < admitted[i]! + span; j++) n++;
            if (n > burst + (rpm * span) / 60_000 + 1e-9 && n > burst) return false;
          }
        }
        return true;
      },
    ),
    { numRuns: 200 },
  );
});

test('sliding window: refund gives back exactly, reconfigure keeps the used share', () => {
  const w = SlidingWindow.perMinute(60, 10, 0);
  takeN(w, 10, 0);
  w.refund(3, 0);
  assert.equal(w.available(0), 3);
  w.reconfigure(2, 10, 0); // 120/min; 7 used of 10 stay used
  assert.equal(w.available(0), 3);
  assert.equal(w.available(500), 4, 'refills at the new rate (2/s)');
});

test('grant size: a batch never takes more than half of what is left (at least one)', () => {
  assert.equal(grantSize(10, 100), 10);
  assert.equal(grantSize(80, 100), 50);
  assert.equal(grantSize(5, 1), 1);
  assert.equal(grantSize(5, 0), 0);
});

test('store: per-user windows are bounded in number and forgotten once full again', () => {
  const clock = new ManualClock(0);
  const s = new LocalStore(clock.now, 100);
  for (let i = 0; i < 1000; i++) s.takeOne([1, 'u' + i, 1, 1, 10]);
  assert.ok(s.userCount <= 100, 'LRU max');
  assert.equal(s.takeOne([1, 'u999', 1, 1, 10])[0], 1);
  clock.advance(60_000);
  s.takeOne([1, 'fresh', 1, 1, 10]);
  // entries whose TTL (time until full) passed are dropped lazily; a fresh window behaves the same
  assert.equal(s.takeOne([1, 'u999', 20, 1, 10])[0], 5, 'full again: half of 10 in one batch');
});

test('store: a per-user key and a per-endpoint key with the same text are different limits', () => {
  const s = new LocalStore(new ManualClock(0).now);
  assert.equal(s.takeOne([1, 'x', 1, 1, 1])[0], 1);
  assert.equal(s.takeOne([1, 'x', 1, 1, 1])[0], 0);
  assert.equal(s.takeOne([2, 'x', 1, 1, 1])[0], 1);
  assert.equal(s.takeOne([0, 'x', 1, 1, 1])[0], 1);
});
