/**
 * The primary's wait for its workers at start-up (lib/server/primary/supervisor.ts StartGate): settled by the
 * 'worker:listening' report that completes the count, failed at once by a worker that cannot bind, bounded.
 * The whole start-up with real worker processes is covered by test/core/workers.test.ts and
 * test/cli/port-in-use.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StartGate } from '../../lib/server/primary/supervisor';
import { ListenError } from '../../lib/server/listen';

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

test('resolves on the report that completes the count, and leaves no timer behind', { timeout: 60_000 }, async () => {
  let listening = 0;
  const gate = new StartGate(() => listening);
  const before = timers();
  let settled = false;
  // a 10-minute bound: were the gate waiting for its timer, the test would time out instead of passing
  const waiting = gate.wait(2, 600_000).then(() => { settled = true; });
  listening = 1;
  gate.changed();
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, false, 'resolved with 1 of 2 workers listening');
  listening = 2;
  gate.changed();
  await waiting;
  assert.equal(timers(), before, 'the bound timer is cleared once the gate settles');
});

test('already complete when the wait starts: resolves at once', { timeout: 60_000 }, async () => {
  const gate = new StartGate(() => 3);
  await gate.wait(3, 600_000);
});

test('a worker that cannot bind fails the start with a ListenError, even if the others listen', { timeout: 60_000 }, async () => {
  let listening = 0;
  const gate = new StartGate(() => listening);
  const waiting = gate.wait(2, 600_000);
  listening = 1;
  gate.changed();
  gate.failed('cannot listen on 127.0.0.1:80 (server.listen): permission denied');
  gate.failed('a second message is not the one reported');
  listening = 2;
  gate.changed();
  await assert.rejects(waiting, (e: unknown) => e instanceof ListenError && e.message === 'cannot listen on 127.0.0.1:80 (server.listen): permission denied');
});

test('a failure reported before the wait starts fails it at once', { timeout: 60_000 }, async () => {
  const gate = new StartGate(() => 0);
  gate.failed('cannot listen');
  await assert.rejects(gate.wait(1, 600_000), ListenError);
});

test('workers that never report: rejected after the bound, naming how many listened', async () => {
  const gate = new StartGate(() => 1);
  await assert.rejects(gate.wait(2, 50), /^Error: only 1 of 2 workers started listening within 0.05 s$/);
});
