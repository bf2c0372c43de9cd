/**
 * The adaptive limit against a simulated upstream whose latency grows past a concurrency knee: `knee` servers
 * with a jittered service time and a FIFO in front of them, like a service with its own worker pool. Time is
 * simulated (injected clock), so a two-minute run takes milliseconds and the result is deterministic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GradientLimiter, type GradientOptions } from '../../lib/stages/queue/gradient';
import { AdmissionScheduler } from '../../lib/stages/queue/scheduler';
import type { Release } from '../../lib/core/stage';
import { settings, schedulerWithMetrics, metricValue } from './helpers';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface SimResult {
  /** Time-weighted mean of the limit outside probes, per phase. */
  meanLimit: number[];
  /** Completed requests per simulated second, per phase. */
  throughput: number[];
  limiter: GradientLimiter;
  /** Limit at the end of each simulated second. */
  trace: number[];
}

/**
 * Runs the limiter in front of the simulated upstream with unlimited demand (the sidecar's queue never
 * empties) unless `offered` caps how many requests may be in flight.
 * phases: [{ seconds, knee }]: the upstream's capacity may change between phases.
 */
function simulate(phases: Array<{ seconds: number; knee: number; offered?: number }>, opts: GradientOptions = {}, baseMs = 50, jitterMs = 5, seed = 1): SimResult {
  const rnd = mulberry32(seed);
  let now = 0;
  const limiter = new GradientLimiter({ ...opts, now: () => now, random: rnd });
  let inFlight = 0;
  let busy = 0;
  const upstreamQueue: number[] = []; // start times of requests waiting inside the upstream
  const completions: Array<{ at: number; startedAt: number }> = []; // sorted by at
  const schedule = (startedAt: number) => {
    const at = now + baseMs + (rnd() * 2 - 1) * jitterMs;
    let i = completions.length;
    while (i > 0 && completions[i - 1].at > at) i--;
    completions.splice(i, 0, { at, startedAt });
  };
  const meanLimit: number[] = [];
  const throughput: number[] = [];
  const trace: number[] = [];
  let phaseEnd = 0;
  for (const phase of phases) {
    const phaseStart = phaseEnd;
    phaseEnd += phase.seconds * 1000;
    // measure over the second half of the phase, once the limit had time to settle
    const measureFrom = phaseStart + (phase.seconds * 1000) / 2;
    let area = 0;
    let areaTime = 0;
    let done = 0;
    let nextTrace = Math.ceil(now / 1000) * 1000 || 1000;
    for (let guard = 0; guard < 10_000_000; guard++) {
      const cap = Math.min(limiter.limit, phase.offered ?? Infinity);
      while (inFlight < cap) {
        inFlight++;
        if (busy < phase.knee) {
          busy++;
          schedule(now);
        } else upstreamQueue.push(now);
      }
      const next = completions.shift();
      if (!next) break;
      const dt = next.at - now;
      if (now >= measureFrom && !limiter.probing) {
        area += limiter.limit * dt;
        areaTime += dt;
      }
      now = next.at;
      while (now >= nextTrace) {
        trace.push(limiter.limit);
        nextTrace += 1000;
      }
      if (now >= measureFrom) done++;
      const before = inFlight;
      inFlight--;
      limiter.onSample(now - next.startedAt, next.startedAt, before);
      const waiting = upstreamQueue.shift();
      if (waiting !== undefined) {
        // the freed server takes the next queued request; its latency counts from its admission
        const at = now + baseMs + (rnd() * 2 - 1) * jitterMs;
        let i = completions.length;
        while (i > 0 && completions[i - 1].at > at) i--;
        completions.splice(i, 0, { at, startedAt: waiting });
      } else busy--;
      if (busy > phase.knee) {
        // capacity shrank between phases: the extra servers finish what they hold, then stop
      }
      if (now >= phaseEnd) break;
    }
    meanLimit.push(areaTime > 0 ? area / areaTime : NaN);
    throughput.push(done / ((phaseEnd - measureFrom) / 1000));
  }
  return { meanLimit, throughput, limiter, trace };
}

test('converges just above the knee of an upstream with 8 servers and 50 ms service time', (t) => {
  // starts far above the knee: it must come down to it
  const r = simulate([{ seconds: 120, knee: 8 }], { initialLimit: 40 });
  t.diagnostic(`mean limit ${r.meanLimit[0].toFixed(2)}, throughput ${r.throughput[0].toFixed(1)}/s, minRTT ${r.limiter.minRttMs.toFixed(1)} ms`);
  const mean = r.meanLimit[0];
  assert.ok(mean >= 7.2 && mean <= 10, `mean limit ${mean.toFixed(2)} within [0.9, 1.25] x knee (trace ${r.trace.slice(-10).join(',')})`);
  // at the knee the upstream is fully used: throughput near 8 / 50 ms = 160/s
  assert.ok(r.throughput[0] >= 0.9 * 160, `throughput ${r.throughput[0].toFixed(1)}/s`);
  assert.ok(r.limiter.minRttMs >= 44 && r.limiter.minRttMs <= 52, `minRTT ${r.limiter.minRttMs.toFixed(1)} ms`);
});

test('finds a large knee from a small initial limit (64 servers)', (t) => {
  const r = simulate([{ seconds: 60, knee: 64 }]);
  t.diagnostic(`mean limit ${r.meanLimit[0].toFixed(2)}, trace ${r.trace.slice(0, 12).join(',')}`);
  assert.ok(r.meanLimit[0] >= 64 * 0.9 && r.meanLimit[0] <= 64 * 1.25, `mean limit ${r.meanLimit[0].toFixed(1)}`);
  const reached = r.trace.findIndex((l) => l >= 64 * 0.9);
  assert.ok(reached >= 0 && reached <= 15, `reached the knee after ${reached} s`);
});

test('follows the upstream down when its capacity drops, and back up when it recovers', (t) => {
  const r = simulate([{ seconds: 60, knee: 32 }, { seconds: 60, knee: 8 }, { seconds: 60, knee: 32 }]);
  t.diagnostic(`mean limits ${r.meanLimit.map((x) => x.toFixed(2)).join(' / ')}`);
  const near = (v: number, knee: number) => v >= knee * 0.9 && v <= knee * 1.25;
  assert.ok(near(r.meanLimit[0], 32), `phase 1 ${r.meanLimit[0].toFixed(1)}`);
  assert.ok(near(r.meanLimit[1], 8), `phase 2 ${r.meanLimit[1].toFixed(1)}`);
  assert.ok(near(r.meanLimit[2], 32), `phase 3 ${r.meanLimit[2].toFixed(1)}`);
  assert.ok(r.throughput[1] >= 0.9 * 160, `phase 2 throughput ${r.throughput[1].toFixed(1)}/s`);
});

test('does not inflate the limit while traffic never reaches it', () => {
  const r = simulate([{ seconds: 60, knee: 100, offered: 5 }], { initialLimit: 20 });
  assert.ok(r.meanLimit[0] <= 20, `limit stayed at ${r.meanLimit[0]}`);
});

test('stays within its bounds', () => {
  const low = simulate([{ seconds: 30, knee: 1 }], { minLimit: 3, maxLimit: 50 });
  assert.ok(low.trace.every((l) => l >= 2), 'never below the probe limit');
  assert.ok(low.meanLimit[0] >= 3);
  const high = simulate([{ seconds: 30, knee: 500 }], { maxLimit: 50 });
  assert.ok(high.trace.every((l) => l <= 50));
  assert.equal(Math.round(high.meanLimit[0]), 50);
});

test('ignores exchanges that never reached the upstream (latency 0)', () => {
  let now = 0;
  const l = new GradientLimiter({ now: () => now, probeSamples: 3 });
  for (let i = 0; i < 5; i++) {
    now += 50;
    l.onSample(50, now - 50, 1);
  }
  assert.equal(l.probing, false);
  const rtt = l.minRttMs;
  for (let i = 0; i < 50; i++) l.onSample(0, now, 1);
  assert.equal(l.minRttMs, rtt);
});

test('the scheduler enforces the adaptive limit and exports it as bridge_sidecar_concurrency_limit', async () => {
  let now = 0;
  const { s, m } = schedulerWithMetrics({ maxInFlight: 'auto' }, { now: () => now, gradient: { probeSamples: 4, initialLimit: 6 } });
  assert.equal(s.limit, 2, 'starts by probing minRTT at the probe limit');
  assert.equal(await metricValue(m, 'bridge_sidecar_concurrency_limit'), 2);
  const held: Release[] = [];
  const waiters: Array<Promise<Release>> = [];
  for (let i = 0; i < 20; i++) {
    const r = s.acquire('medium', null);
    if (typeof r === 'function') held.push(r);
    else {
      r.catch(() => undefined); // refused by close() at the end
      waiters.push(r);
    }
  }
  assert.equal(held.length, 2);
  // complete requests one by one at 20 ms each until the probe ends
  for (let round = 0; round < 10 && s.adaptive!.probing; round++) {
    now += 20;
    const r = held.shift()!;
    r({ ok: true, latencyMs: 20 });
    await new Promise((res) => setImmediate(res));
    const next = waiters.shift();
    if (next) held.push(await next);
  }
  assert.equal(s.adaptive!.probing, false);
  assert.equal(s.limit, 6);
  assert.equal(await metricValue(m, 'bridge_sidecar_concurrency_limit'), 6);
  await new Promise((res) => setImmediate(res));
  assert.equal(s.inFlight, 6, 'the queue was pumped up to the new limit');
  for (const w of waiters) w.catch(() => undefined);
  s.close();
  // switching to a fixed limit on reload keeps the in-flight count
  const fixed = new AdmissionScheduler();
  fixed.configure(settings({ maxInFlight: 'auto' }));
  fixed.configure(settings({ maxInFlight: 3 }));
  assert.equal(fixed.limit, 3);
});
