/**
 * The lease protocol when round trips to the pod's counters are slow, as on a machine whose cores are saturated:
 * two workers (the real RateLimitComponent each) lease from one lease service (the real one) over links that
 * deliver each message half a round trip later on a manual clock. Deterministic: no real time, no sockets; the
 * saturated-machine run over real sockets is in saturated.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SingleCoordinator } from '../../lib/server/ipc';
import { RateLimitComponent, RateLimitLeaseService, ManualClock } from '../../lib/stages/ratelimit';
import { silentLogger } from '../../lib/observe/logger';
import type { WorkerChannel } from '../../lib/core/ipc';
import type { RateLimitView } from '../../lib/stages/ratelimit';
import { ctxFor, rlPolicy, runtime, within5 } from './helpers';

/** Messages in flight, delivered when the manual clock reaches their time. */
class Wire {
  private queue: Array<{ at: number; run: () => void }> = [];
  constructor(readonly clock: ManualClock) {}
  after(ms: number, run: () => void): void {
    this.queue.push({ at: this.clock.t + ms, run });
  }
  /** Run what is due, in order of time. */
  deliver(): void {
    const due = this.queue.filter((m) => m.at <= this.clock.t).sort((a, b) => a.at - b.at);
    this.queue = this.queue.filter((m) => m.at > this.clock.t);
    for (const m of due) m.run();
  }
}

/** A worker's end of the IPC channel: the request reaches the primary half a round trip later, the answer as long after. */
function slowLink(wire: Wire, primary: SingleCoordinator, rttMs: number): WorkerChannel {
  return {
    role: 'worker',
    id: 1,
    request: ((topic: never, payload: never) => new Promise((resolve, reject) => {
      wire.after(rttMs / 2, () => {
        primary.request(topic, payload).then(
          (answer) => wire.after(rttMs / 2, () => resolve(answer)),
          (err: unknown) => wire.after(rttMs / 2, () => reject(err)),
        );
      });
    })) as WorkerChannel['request'],
    handle: () => {},
    broadcast: () => {},
    on: () => () => {},
  };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * A flood through two workers for `seconds` of manual time: each worker checks `perMs` requests every
 * millisecond (far above the limit), the links take `rttMs` per round trip. Returns the requests admitted by
 * the end of those seconds (a request still waiting for its batch then is not counted, nor is the time it
 * would take).
 */
async function flood(t: { after(fn: () => unknown): void }, yaml: string, rttMs: number, seconds: number, perMs = 2): Promise<number> {
  const clock = new ManualClock(1_000_000);
  const wire = new Wire(clock);
  const primary = new SingleCoordinator();
  const service = new RateLimitLeaseService(primary, silentLogger, clock.now);
  const stages: RateLimitView[] = [];
  const comps: RateLimitComponent[] = [];
  for (let w = 0; w < 2; w++) {
    const comp = new RateLimitComponent(runtime({ coordinator: slowLink(wire, primary, rttMs) }), { clock: clock.now });
    comps.push(comp);
    stages.push(comp.configure(rlPolicy(yaml), null)!);
  }
  t.after(async () => { for (const c of comps) await c.close(); await service.close(); });
  let admitted = 0;
  const pending: Array<Promise<void>> = [];
  const end = clock.t + seconds * 1000;
  while (clock.t < end) {
    for (const stage of stages) {
      for (let i = 0; i < perMs; i++) {
        const d = stage.check(ctxFor({ path: '/x', identity: 'h:any' }));
        if (d instanceof Promise) pending.push(d.then((x) => { if (x.allowed && clock.t <= end) admitted++; }));
        else if (d.allowed) admitted++;
      }
    }
    await turn();
    clock.advance(1);
    wire.deliver();
    for (const c of comps) c.leases.sweep();
    await turn();
  }
  // requests still waiting get their answers (not counted: the time is over) so nothing is left pending
  for (let i = 0; i < 10 * rttMs && pending.length > 0; i++) {
    clock.advance(1);
    wire.deliver();
    await turn();
  }
  await Promise.all(pending);
  return admitted;
}

test('slow round trips (a loaded machine): 2 workers still admit burst + rate x time, not what quarter-burst batches can carry', async (t) => {
  // 100/s with a burst of 20 and a 150 ms round trip: batches capped at a quarter of the burst (5 tokens) let two
  // workers take at most 2 x 5 per round trip, ~67/s, while the counters refill at 100/s and overflow their burst
  const admitted = await flood(t, 'global: { requests_per_second: 100, burst_size: 20 }', 150, 10);
  t.diagnostic(`admitted ${admitted}, expected ${20 + 100 * 10}`);
  assert.ok(admitted <= 20 + 100 * 10, `never more than the limit allows: ${admitted}`);
  assert.ok(within5(admitted, 20 + 100 * 10), `admitted ${admitted}, expected 1020`);
});

test('fast round trips: the same flood is exact, and no more is admitted than the limit allows', async (t) => {
  const admitted = await flood(t, 'global: { requests_per_second: 100, burst_size: 20 }', 2, 3);
  t.diagnostic(`admitted ${admitted}, expected 320`);
  assert.ok(admitted <= 320, `never more than the limit allows: ${admitted}`);
  assert.ok(within5(admitted, 320), `admitted ${admitted}`);
});
