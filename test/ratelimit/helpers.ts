/**
 * Shared bits of the rate-limit tests: policies from YAML (through the real loader), a Runtime for a component
 * in this process, request contexts for driving the component directly, and a fixed-rate sender.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { parsePolicy } from '../../lib/policy/load';
import type { LoadedPolicy } from '../../lib/policy/types';
import { SingleCoordinator } from '../../lib/server/ipc';
import { type Coordinator } from '../../lib/core/ipc';
import { WorkerMetrics } from '../../lib/observe/metrics';
import { silentLogger, type Logger } from '../../lib/observe/logger';
import type { Runtime } from '../../lib/core/component';
import type { RedisConnection } from '../../lib/redis/client';
import { RequestContext } from '../../lib/core/context';
import type { CompiledRoute } from '../../lib/routes/router';
import type { RateLimitDecision, RateLimitView } from '../../lib/stages/ratelimit';
import { systemClock } from '../../lib/core/clock';

export function policy(yaml: string): LoadedPolicy {
  const r = parsePolicy(yaml, 'test.yaml');
  if (!r.ok) throw new Error('bad test policy: ' + JSON.stringify(r.errors));
  return r.loaded;
}

/** A policy with the given rate_limiting (and optional redis) section, as YAML lines. */
export function rlPolicy(rateLimiting: string, extra = ''): LoadedPolicy {
  const indented = rateLimiting.trim().split('\n').map((l) => '  ' + l).join('\n');
  return policy(`version: 1\nupstream: { url: "http://127.0.0.1:9101" }\n${extra}\nrate_limiting:\n${indented}\n`);
}

export function runtime(opts: { coordinator?: Coordinator; redis?: RedisConnection | null; log?: Logger } = {}): Runtime & { metrics: WorkerMetrics } {
  const metrics = new WorkerMetrics(undefined, { defaultMetrics: false });
  const coordinator = opts.coordinator ?? new SingleCoordinator();
  return { coordinator, log: opts.log ?? silentLogger, metrics, redis: () => opts.redis ?? null, clock: systemClock, workerIndex: null };
}

/**
 * A request context over a plain request-shaped object: the component only reads headers, url, method and the
 * socket address, and the test needs millions of them without sockets.
 */
export function ctxFor(opts: { path?: string; headers?: Record<string, string>; identity?: string; route?: string; address?: string } = {}): RequestContext {
  const req = {
    method: 'POST',
    url: opts.path ?? '/',
    headers: opts.headers ?? {},
    socket: { remoteAddress: opts.address ?? '127.0.0.1' },
  } as unknown as IncomingMessage;
  const ctx = new RequestContext(req, {} as ServerResponse, 0);
  if (opts.identity !== undefined) ctx.identity = opts.identity;
  if (opts.route !== undefined) ctx.route = { name: opts.route } as CompiledRoute;
  return ctx;
}

export async function decide(stage: RateLimitView, ctx: RequestContext): Promise<RateLimitDecision> {
  return stage.check(ctx);
}

/** |actual - expected| <= 5 % of expected */
export function within5(actual: number, expected: number): boolean {
  return Math.abs(actual - expected) <= expected * 0.05;
}

/**
 * Open-loop fixed-rate sender in real time: `rate` checks per second for `durationMs`, each sent at its
 * scheduled time whatever the previous answers were (late ones are sent as soon as possible, not dropped).
 * Returns admitted / refused counts and the slowest check.
 */
export async function fixedRate(
  stage: () => RateLimitView,
  ctx: () => RequestContext,
  rate: number,
  durationMs: number,
  onDecision?: (d: RateLimitDecision, ms: number, ctx: RequestContext) => void,
): Promise<{ admitted: number; refused: number; sent: number; maxMs: number }> {
  const total = Math.floor((rate * durationMs) / 1000);
  const start = performance.now();
  let admitted = 0;
  let refused = 0;
  let maxMs = 0;
  const inflight: Array<Promise<void>> = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const t0 = performance.now();
    const c = ctx();
    const done = (d: RateLimitDecision): void => {
      const ms = performance.now() - t0;
      if (ms > maxMs) maxMs = ms;
      if (d.allowed) admitted++;
      else refused++;
      onDecision?.(d, ms, c);
    };
    const d = stage().check(c);
    if (d instanceof Promise) inflight.push(d.then(done));
    else done(d);
    if (inflight.length > 1000) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  return { admitted, refused, sent: total, maxMs };
}

/**
 * CPU burners: one busy-looping process per core (at least 2), each ending by itself after `ms` and killed by the
 * test when it is done, so a pod's primary and workers compete for the CPU the way a loaded node makes them.
 */
export function burnCpus(ms: number, t: { after(fn: () => unknown): void }): void {
  for (let i = 0; i < Math.max(2, availableParallelism()); i++) {
    const p = spawn(process.execPath, ['-e', `const end = Date.now() + ${ms}; while (Date.now() < end) {}`], { stdio: 'ignore' });
    t.after(() => { if (p.exitCode === null) p.kill('SIGKILL'); });
  }
}
