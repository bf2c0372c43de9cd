/**
 * WriteBehind: background writes never delay the caller, run in batches of batchSize or after batchTimeoutMs,
 * stay bounded (drop oldest / refuse new, counted), and a failing or hanging task never reaches the request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WriteBehind } from '../../lib/cache/write-behind';
import { WorkerMetrics } from '../../lib/observe/metrics';
import { silentLogger } from '../../lib/observe/logger';
import { waitFor, sleep } from '../helpers/ports';
import { metricValue } from './helpers';

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

test('enqueue returns at once and never runs the task in the caller\'s stack', async () => {
  const wb = new WriteBehind({ batchSize: 1, batchTimeoutMs: 1000 });
  let ran = false;
  assert.equal(wb.enqueue(() => { ran = true; }), true);
  assert.equal(ran, false, 'not run synchronously even when a batch is full');
  await wb.flush();
  assert.equal(ran, true);
  await wb.close();
});

test('runs full batches of batchSize concurrently, one batch at a time', async () => {
  const wb = new WriteBehind({ batchSize: 4, batchTimeoutMs: 60_000 });
  let running = 0;
  let peak = 0;
  const gates: Array<ReturnType<typeof deferred>> = [];
  for (let i = 0; i < 8; i++) {
    const d = deferred();
    gates.push(d);
    wb.enqueue(async () => {
      running++;
      peak = Math.max(peak, running);
      await d.promise;
      running--;
    });
  }
  await waitFor('first batch running', () => running === 4, 5000, 5);
  assert.equal(wb.pending, 4, 'the second batch waits for the first');
  for (let i = 0; i < 4; i++) gates[i].resolve();
  await waitFor('second batch running', () => running === 4 && wb.pending === 0, 5000, 5);
  for (let i = 4; i < 8; i++) gates[i].resolve();
  await wb.flush();
  assert.equal(peak, 4);
  assert.equal(wb.completed, 8);
  await wb.close();
});

test('a partial batch waits for batchTimeoutMs, then runs', async () => {
  const wb = new WriteBehind({ batchSize: 10, batchTimeoutMs: 1500 });
  let ran = 0;
  wb.enqueue(() => { ran++; });
  wb.enqueue(() => { ran++; });
  await sleep(30);
  assert.equal(ran, 0, 'not before the batch timeout');
  await waitFor('partial batch ran', () => ran === 2, 10_000, 10);
  await wb.close();
});

test('when full it drops the OLDEST pending task and counts it', async () => {
  const m = new WorkerMetrics(undefined, { defaultMetrics: false });
  const wb = new WriteBehind({ name: 'l2', batchSize: 100, batchTimeoutMs: 60_000, maxPending: 3, metrics: m });
  const ran: number[] = [];
  for (let i = 0; i < 5; i++) wb.enqueue(() => { ran.push(i); });
  assert.equal(wb.pending, 3);
  assert.equal(wb.dropped, 2);
  await wb.flush();
  assert.deepEqual(ran, [2, 3, 4]);
  assert.equal(await metricValue(m, 'bridge_sidecar_write_behind_dropped_total', { queue: 'l2' }), 2);
  await wb.close();
});

test('overflow: refuse_new keeps the pending tasks and refuses the newcomer', async () => {
  const wb = new WriteBehind({ batchSize: 100, batchTimeoutMs: 60_000, maxPending: 2, overflow: 'refuse_new' });
  const ran: number[] = [];
  assert.equal(wb.enqueue(() => { ran.push(0); }), true);
  assert.equal(wb.enqueue(() => { ran.push(1); }), true);
  assert.equal(wb.enqueue(() => { ran.push(2); }), false);
  await wb.flush();
  assert.deepEqual(ran, [0, 1]);
  assert.equal(wb.dropped, 1);
  await wb.close();
});

test('task errors (thrown or rejected) are counted, never thrown, and later tasks still run', async () => {
  const m = new WorkerMetrics(undefined, { defaultMetrics: false });
  const wb = new WriteBehind({ name: 'inv', batchSize: 2, batchTimeoutMs: 10, metrics: m, log: silentLogger });
  let ok = 0;
  assert.doesNotThrow(() => wb.enqueue(() => { throw new Error('sync boom'); }));
  wb.enqueue(() => Promise.reject(new Error('async boom')));
  wb.enqueue(async () => { ok++; });
  await wb.flush();
  assert.equal(ok, 1);
  assert.equal(wb.errors, 2);
  assert.equal(await metricValue(m, 'bridge_sidecar_write_behind_errors_total', { queue: 'inv' }), 2);
  await wb.close();
});

test('a hanging task times out, counts as an error and stops holding the queue', async () => {
  const wb = new WriteBehind({ batchSize: 1, batchTimeoutMs: 10, taskTimeoutMs: 100 });
  let after = false;
  wb.enqueue(() => new Promise<void>(() => undefined));
  wb.enqueue(() => { after = true; });
  await waitFor('task after the hung one ran', () => after, 10_000, 10);
  assert.equal(wb.errors, 1);
  await wb.close();
});

test('close() runs what is pending, then refuses new tasks as dropped', async () => {
  const wb = new WriteBehind({ batchSize: 10, batchTimeoutMs: 60_000 });
  let ran = 0;
  for (let i = 0; i < 3; i++) wb.enqueue(() => { ran++; });
  await wb.close();
  assert.equal(ran, 3);
  assert.equal(wb.enqueue(() => { ran++; }), false);
  assert.equal(wb.dropped, 1);
  await sleep(20);
  assert.equal(ran, 3);
});

test('reconfigure applies a smaller bound and batch size to the live queue', async () => {
  const wb = new WriteBehind({ batchSize: 100, batchTimeoutMs: 60_000, maxPending: 10 });
  const ran: number[] = [];
  for (let i = 0; i < 6; i++) wb.enqueue(() => { ran.push(i); });
  wb.reconfigure({ maxPending: 4, batchSize: 2 });
  assert.equal(wb.pending <= 4, true);
  await waitFor('full batches run after the batch size shrank', () => ran.length === 4, 5000, 5);
  assert.deepEqual(ran, [2, 3, 4, 5]);
  assert.equal(wb.dropped, 2);
  await wb.close();
});
