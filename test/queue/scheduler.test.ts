/**
 * The admission scheduler on its own: limit, weighted-fair dequeue, shedding (class_full, queue_full,
 * queue_timeout, displaced), reloads in place, and its metrics. The "upstream" is a fake of fixed concurrency:
 * each admitted request holds its slot for a service time (real timers) or until the test releases it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Priority } from '../../lib/policy/types';
import { ShedError, type Release } from '../../lib/core/stage';
import { AdmissionScheduler } from '../../lib/stages/queue/scheduler';
import { metricValue, schedulerWithMetrics, settings, settle, tick } from './helpers';

const OK = { ok: true, latencyMs: 10 };

function isRelease(r: unknown): r is Release {
  return typeof r === 'function';
}

test('admits up to the limit at once, queues the rest, and a release admits the next', async () => {
  const { s } = schedulerWithMetrics({ maxInFlight: 2 });
  const a = s.acquire('medium', null);
  const b = s.acquire('medium', null);
  assert.ok(isRelease(a) && isRelease(b), 'free slots are granted synchronously');
  const c = settle(s.acquire('medium', null));
  await tick();
  assert.equal(c.done, false, 'third request waits');
  assert.equal(s.inFlight, 2);
  assert.equal(s.queued, 1);
  a(OK);
  await c.promise;
  assert.ok(isRelease(c.result));
  assert.equal(s.inFlight, 2);
  assert.equal(s.queued, 0);
  // a release is counted once however often it is called
  a(OK);
  a(OK);
  assert.equal(s.inFlight, 2);
  b(OK);
  c.result!(OK);
  assert.equal(s.inFlight, 0);
});

test('weighted-fair dequeue: 3:2:1 over a saturated queue, interleaved', async () => {
  const { s } = schedulerWithMetrics({ maxInFlight: 1 });
  const hold = s.acquire('high', null) as Release;
  const order: Priority[] = [];
  const pending: Array<Promise<void>> = [];
  for (const p of ['high', 'medium', 'low'] as Priority[]) {
    for (let i = 0; i < 120; i++) {
      pending.push((s.acquire(p, null) as Promise<Release>).then((r) => {
        order.push(p);
        r(OK);
      }));
    }
  }
  hold(OK);
  await Promise.all(pending);
  // while all three classes wait (the first 180 dispatches: 90 high, 60 medium, 30 low), shares are exact
  const first = order.slice(0, 180);
  const count = (p: Priority) => first.filter((x) => x === p).length;
  assert.deepEqual([count('high'), count('medium'), count('low')], [90, 60, 30]);
  // interleaved, not in runs: low appears within every 6 dispatches
  for (let i = 0; i + 6 <= 180; i += 6) assert.ok(first.slice(i, i + 6).includes('low'), `low served in window ${i}`);
  assert.equal(order.length, 360);
});

/**
 * Sustained overload against a fake upstream with 4 slots and 5 ms service time: an open-loop producer keeps
 * every class queue non-empty; completions per class follow the weights within ±10 %.
 */
test('under sustained overload each class gets its weighted share of upstream slots (±10 %)', async () => {
  const { s } = schedulerWithMetrics({ maxInFlight: 4, sizes: { high: 50, medium: 50, low: 50 } });
  const served: Record<Priority, number> = { high: 0, medium: 0, low: 0 };
  let shed = 0;
  let measuring = false;
  const run = (p: Priority) => {
    const r = s.acquire(p, null);
    const go = (release: Release) => {
      setTimeout(() => {
        if (measuring) served[p]++;
        release(OK);
      }, 5);
    };
    if (isRelease(r)) go(r);
    else r.then(go, (e: unknown) => {
      assert.ok(e instanceof ShedError);
      shed++;
    });
  };
  // producer: every 2 ms add 4 requests of each class (far above the ~800/s the fake upstream serves)
  const producer = setInterval(() => {
    for (let i = 0; i < 4; i++) for (const p of ['high', 'medium', 'low'] as Priority[]) run(p);
  }, 2);
  await new Promise((r) => setTimeout(r, 300));
  measuring = true;
  await new Promise((r) => setTimeout(r, 2000));
  measuring = false;
  clearInterval(producer);
  s.close();
  const total = served.high + served.medium + served.low;
  assert.ok(total > 60, `enough dispatches to judge (${total})`);
  assert.ok(shed > 0, 'the producer did overload the queue');
  const share = (p: Priority) => served[p] / total;
  for (const [p, want] of [['high', 3 / 6], ['medium', 2 / 6], ['low', 1 / 6]] as Array<[Priority, number]>) {
    assert.ok(Math.abs(share(p) - want) <= want * 0.1, `${p}: share ${share(p).toFixed(3)} vs ${want.toFixed(3)} (${JSON.stringify(served)})`);
  }
});

test('no class starves: low is served while high is kept full', async () => {
  const { s } = schedulerWithMetrics({ maxInFlight: 1, weights: { high: 50, medium: 2, low: 1 } });
  const hold = s.acquire('high', null) as Release;
  let lowServed = 0;
  let highServed = 0;
  const low = (s.acquire('low', null) as Promise<Release>).then((r) => {
    lowServed++;
    r(OK);
  });
  // high keeps arriving faster than it is served: each dispatch of high brings two more high requests
  let budget = 400;
  const high = (): void => {
    if (budget-- <= 0) return;
    void (s.acquire('high', null) as Promise<Release>).then((r) => {
      highServed++;
      high();
      high();
      r(OK);
    }, () => undefined);
  };
  high();
  high();
  hold(OK);
  await low;
  assert.equal(lowServed, 1);
  assert.ok(highServed <= 60, `low waited for at most ~one round of weights (high served ${highServed})`);
  s.close();
});

test('class_full and queue_full refuse at once with a whole Retry-After >= 1, counted by reason', async () => {
  const { s, m } = schedulerWithMetrics({ maxInFlight: 1, maxQueueSize: 3, sizes: { high: 2, medium: 2, low: 2 } });
  const hold = s.acquire('medium', null) as Release;
  const waiting = [settle(s.acquire('medium', null)), settle(s.acquire('medium', null))];
  const full = settle(s.acquire('medium', null));
  await full.promise;
  assert.ok(full.error instanceof ShedError);
  assert.equal((full.error as ShedError).reason, 'class_full');
  const third = settle(s.acquire('high', null)); // total 3 now
  await tick();
  assert.equal(third.done, false);
  // total is full: a high request displaces the newest medium (the lowest non-empty class below it)
  const over = settle(s.acquire('high', null));
  await tick();
  assert.equal(over.done, false, 'the newcomer is queued');
  assert.equal(waiting[1].done, true);
  assert.equal((waiting[1].error as ShedError).reason, 'displaced');
  const low = settle(s.acquire('low', null)); // total full, nothing below low
  await low.promise;
  assert.equal((low.error as ShedError).reason, 'queue_full');
  for (const e of [full.error, low.error, waiting[1].error] as ShedError[]) {
    assert.ok(Number.isInteger(e.retryAfter) && e.retryAfter >= 1, `retryAfter ${e.retryAfter}`);
  }
  assert.equal(await metricValue(m, 'bridge_sidecar_shed_total', { reason: 'class_full' }), 1);
  assert.equal(await metricValue(m, 'bridge_sidecar_shed_total', { reason: 'queue_full' }), 1);
  assert.equal(await metricValue(m, 'bridge_sidecar_shed_total', { reason: 'displaced' }), 1);
  assert.equal(await metricValue(m, 'bridge_sidecar_queue_length', { priority: 'high' }), 2);
  assert.equal(await metricValue(m, 'bridge_sidecar_queue_length', { priority: 'medium' }), 1);
  hold(OK);
  s.close();
});

test('displacement takes the NEWEST low request, and only when the whole queue is full', async () => {
  const { s } = schedulerWithMetrics({ maxInFlight: 1, maxQueueSize: 3 });
  const hold = s.acquire('low', null) as Release;
  const lows = [0, 1, 2].map((i) => ({ i, w: settle(s.acquire('low', null)) }));
  const order: number[] = [];
  for (const { i, w } of lows) void w.promise.then(() => { if (w.result) { order.push(i); w.result(OK); } });
  await tick();
  assert.ok(lows.every(({ w }) => !w.done));
  const med = settle(s.acquire('medium', null));
  await tick();
  assert.equal(lows[2].w.done, true, 'newest low displaced');
  assert.equal((lows[2].w.error as ShedError).reason, 'displaced');
  assert.equal(lows[0].w.done || lows[1].w.done, false, 'older lows stay');
  const high = settle(s.acquire('high', null));
  await tick();
  assert.equal((lows[1].w.error as ShedError).reason, 'displaced');
  // queue is now [low0, medium, high]: a low request cannot displace anyone
  const low3 = settle(s.acquire('low', null));
  await low3.promise;
  assert.equal((low3.error as ShedError).reason, 'queue_full');
  hold(OK);
  await high.promise;
  assert.ok(isRelease(high.result), 'high is served first');
  high.result(OK);
  await med.promise;
  (med.result as Release)(OK);
  await lows[0].w.promise;
  assert.deepEqual(order, [0]);
  s.close();
});

test('queue_timeout refuses a request that waited too long and clears its queue entry', async () => {
  const { s, m } = schedulerWithMetrics({ maxInFlight: 1, queueTimeoutMs: 150 });
  const hold = s.acquire('high', null) as Release;
  const t0 = performance.now();
  const w = settle(s.acquire('low', null));
  const w2 = settle(s.acquire('high', null));
  await w.promise;
  await w2.promise;
  const waited = performance.now() - t0;
  assert.equal((w.error as ShedError).reason, 'queue_timeout');
  assert.equal((w2.error as ShedError).reason, 'queue_timeout');
  assert.ok((w.error as ShedError).retryAfter >= 1);
  assert.ok(waited >= 140, `refused only after the timeout (${waited.toFixed(0)} ms)`);
  assert.equal(s.queued, 0);
  assert.equal(await metricValue(m, 'bridge_sidecar_queue_length', { priority: 'low' }), 0);
  assert.equal(await metricValue(m, 'bridge_sidecar_shed_total', { reason: 'queue_timeout' }), 2);
  assert.equal(s.inFlight, 1, 'the holder is unaffected');
  hold(OK);
  assert.equal(s.inFlight, 0);
});

test('a reload applies new limit, sizes and weights to the live queue without dropping waiters', async () => {
  const { s, m } = schedulerWithMetrics({ maxInFlight: 1 });
  const hold = s.acquire('medium', null) as Release;
  const waiters = Array.from({ length: 5 }, () => settle(s.acquire('low', null)));
  await tick();
  assert.equal(s.queued, 5);
  assert.equal(await metricValue(m, 'bridge_sidecar_concurrency_limit'), 1);
  s.configure(settings({ maxInFlight: 4, sizes: { low: 1 } }));
  await tick();
  assert.equal(waiters.filter((w) => w.done && isRelease(w.result)).length, 3, 'three more slots admitted three waiters');
  assert.equal(s.queued, 2, 'the others keep their place although low max_size is now 1');
  assert.equal(await metricValue(m, 'bridge_sidecar_concurrency_limit'), 4);
  const refused = settle(s.acquire('low', null));
  await refused.promise;
  assert.equal((refused.error as ShedError).reason, 'class_full', 'new arrivals see the new size');
  // queues section removed: everyone waiting is admitted, releases still balance
  s.configure(null);
  await tick();
  assert.ok(waiters.every((w) => w.done && isRelease(w.result)));
  hold(OK);
  for (const w of waiters) (w.result as Release)(OK);
  assert.equal(s.inFlight, 0);
});

test('a fixed max_in_flight is divided among workers (ceil), as are the queue sizes', () => {
  const st = settings({ maxInFlight: 10, maxQueueSize: 1000, workers: 4 });
  assert.equal(st.maxInFlight, 3);
  assert.equal(st.maxQueueSize, 250);
  assert.equal(st.classes.high.maxSize, 50);
  assert.equal(settings({ maxInFlight: 10, workers: 0 }).maxInFlight, 10, 'workers: 0 is the single process');
});

test('queue_wait_seconds observes every admission, queued or not', async () => {
  const { s, m } = schedulerWithMetrics({ maxInFlight: 1 });
  const a = s.acquire('high', null) as Release;
  const b = settle(s.acquire('high', null));
  await new Promise((r) => setTimeout(r, 30));
  a(OK);
  await b.promise;
  (b.result as Release)(OK);
  assert.equal(await metricValue(m, 'bridge_sidecar_queue_wait_seconds', {}, 'bridge_sidecar_queue_wait_seconds_count'), 2);
  const sum = await metricValue(m, 'bridge_sidecar_queue_wait_seconds', {}, 'bridge_sidecar_queue_wait_seconds_sum');
  assert.ok(sum >= 0.02, `wait recorded (${sum})`);
});

test('close() refuses everyone still waiting', async () => {
  const s = new AdmissionScheduler();
  s.configure(settings({ maxInFlight: 1 }));
  s.acquire('low', null) as Release; // the free slot: granted at once
  const w = settle(s.acquire('low', null));
  s.close();
  await w.promise;
  assert.equal((w.error as ShedError).reason, 'shutdown');
});
