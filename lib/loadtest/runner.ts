/**
 * Runs one load phase (a step, a soak, a baseline) on one or several threads and adds their ticks up.
 *
 * Threads split the rate and the connections; thread i's schedule is shifted by i/rate so the threads'
 * requests interleave evenly instead of leaving in bursts of N.
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startEngine, type EngineSpec, type Tick } from './engine';
import type { MixEntry } from './mix';
import { Tally } from './tally';
import { warmUpHttpClient } from './warmup';

export interface PhaseSpec {
  origin: string;
  basePath: string;
  mix: MixEntry[];
  mode: 'open' | 'closed';
  /** total requests per second (open loop) */
  rate: number;
  connections: number;
  durationMs: number;
  timeoutMs: number;
  threads: number;
  /** how often engines report (progress line, soak intervals) */
  tickMs?: number;
  /** first {seq} value, so successive phases keep {seq} unique */
  seqStart?: number;
  /** aborting closes the window early (Ctrl-C); the figures cover the shorter window */
  signal?: AbortSignal;
}

export interface PhaseResult {
  tally: Tally;
  /** epoch ms */
  startedAt: number;
  elapsedMs: number;
  /** the window the requests were scheduled in: durationMs, or less when stopped early */
  windowMs: number;
}

const START_LEAD_MS = 50;

export async function runPhase(spec: PhaseSpec, onTick?: (t: Tick, soFar: Tally) => void): Promise<PhaseResult> {
  const threads = Math.max(1, Math.min(spec.threads, spec.connections));
  const tally = new Tally();
  const take = (t: Tick) => {
    tally.add(t);
    onTick?.(t, tally);
  };
  const workers = threads > 1 ? await Promise.all(Array.from({ length: threads }, startWorker)) : [];
  if (threads === 1) await warmUpHttpClient();
  const startAt = performance.timeOrigin + performance.now() + START_LEAD_MS;
  const specs: EngineSpec[] = Array.from({ length: threads }, (_, i) => ({
    origin: spec.origin,
    basePath: spec.basePath,
    mix: spec.mix,
    mode: spec.mode,
    rate: spec.rate / threads,
    connections: Math.floor(spec.connections / threads) + (i < spec.connections % threads ? 1 : 0),
    durationMs: spec.durationMs,
    startAt,
    phaseMs: spec.mode === 'open' ? (i * 1000) / spec.rate : 0,
    timeoutMs: spec.timeoutMs,
    tickMs: spec.tickMs ?? 1000,
    seqStart: (spec.seqStart ?? 0) + i,
    seqStride: threads,
  }));
  if (threads === 1) {
    const engine = startEngine(specs[0], take);
    const stop = () => engine.stop();
    spec.signal?.addEventListener('abort', stop);
    if (spec.signal?.aborted) stop();
    try {
      await engine.done;
    } finally {
      spec.signal?.removeEventListener('abort', stop);
    }
  } else {
    const stop = () => workers.forEach((w) => w.postMessage({ type: 'stop' }));
    spec.signal?.addEventListener('abort', stop);
    try {
      await Promise.all(workers.map((w, i) => driveWorker(w, specs[i], take, spec.signal?.aborted === true)));
    } finally {
      spec.signal?.removeEventListener('abort', stop);
    }
  }
  return {
    tally,
    startedAt: startAt,
    elapsedMs: performance.timeOrigin + performance.now() - startAt,
    windowMs: tally.windowMs > 0 ? tally.windowMs : spec.durationMs,
  };
}

function startWorker(): Promise<Worker> {
  return new Promise((resolve, reject) => {
    const w = new Worker(join(__dirname, 'thread.js'));
    w.once('error', reject);
    w.once('message', (m: { type: string }) => {
      w.off('error', reject);
      if (m.type === 'ready') resolve(w);
      else reject(new Error('load-test thread did not start: ' + JSON.stringify(m)));
    });
  });
}

function driveWorker(w: Worker, spec: EngineSpec, take: (t: Tick) => void, stopAtOnce: boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    w.on('message', (m: { type: string; tick?: Tick; message?: string }) => {
      if (m.type === 'tick') take(m.tick!);
      else if (m.type === 'done') resolve();
      else if (m.type === 'error') reject(new Error('load-test thread failed: ' + m.message));
    });
    w.once('error', reject);
    w.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`load-test thread exited with ${code}`))));
    w.postMessage(spec);
    if (stopAtOnce) w.postMessage({ type: 'stop' });
  }).finally(() => w.terminate());
}
