/**
 * JIT warm-up before readiness: a fresh process runs its request path in V8's interpreter until the hot
 * functions are compiled, so the first real requests after /readyz were slow (p99 tens of ms, warm ~4 ms).
 * Before a worker listens (and so before /readyz can turn 200), it sends a copy of its own pipeline a few
 * thousand synthetic requests (./synthetic-requests.ts) over loopback, against a stub upstream in the same
 * process. The copy is built for this alone, from the same classes: its own components, metrics registry,
 * silent logger, coordinator and L1 (no L2/L3, no Redis, no tracing), so no real metric, cache entry, limit
 * or log line is touched. Bounded by `server.jit_warmup.requests` and `.max_time`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import type { EndpointLimitPolicy, LoadedPolicy, Policy, RateLimitPolicy } from '../policy/types';
import { SingleCoordinator } from '../server/ipc';
import { WorkerMetrics } from '../observe/metrics';
import { silentLogger, type Logger } from '../observe/logger';
import type { Runtime } from '../core/component';
import { systemClock } from '../core/clock';
import { registerPrimaryServices } from '../server/primary/services';
import { createStageComponents } from '../stages/chain';
import { buildPipeline } from '../server/pipeline';
import { RequestHandler } from '../server/handler';
import { createUpstreamLeg } from '../stages/upstream';
import { syntheticRequests, type SyntheticRequest } from './synthetic-requests';
import { setV8Flags, v8FlagsFor } from './v8-flags';

/** Requests in flight at once: enough to exercise the concurrent paths, few enough to stay cheap. */
const CONCURRENCY = 16;

/** Variants of each route per round (./synthetic-requests.ts). */
const VARIANTS = 4;

export interface WarmupOutcome {
  requests: number;
  errors: number;
  /** Requests that reached the stub upstream: pass-through and cache fills. */
  upstream: number;
  ms: number;
}

/** A stub upstream: answers everything at once with a small cacheable JSON body (what the routes expect). */
async function startStub(): Promise<{ server: Server; port: number; answered(): number }> {
  const body = Buffer.from(JSON.stringify({ success: true, output: { warmup: true, text: 'x'.repeat(900) } }));
  let answered = 0;
  const server = createServer({ keepAliveTimeout: 10_000 }, (req, res) => {
    answered++;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length), 'cache-control': 'public, max-age=60' });
      res.end(body);
    });
  });
  return { server, port: await listenLocal(server), answered: () => answered };
}

/**
 * The warm-up's requests, round after round: a round of new variants (cached routes miss and fill: the store
 * path), then the same round again (they hit), then new variants again. With one fixed round, only its first
 * pass filled and the fill path stayed cold, which is what the first seconds of real traffic mostly take.
 */
function rounds(policy: Policy): () => SyntheticRequest {
  let round = 0;
  let current = syntheticRequests(policy, VARIANTS);
  let i = 0;
  return () => {
    if (i === current.length) {
      round++;
      i = 0;
      if (round % 2 === 0) current = syntheticRequests(policy, VARIANTS, (round / 2) * VARIANTS);
    }
    return current[i++]!;
  };
}

/**
 * `exclusive`: in a cluster worker a plain listen(0) goes through the primary, which hands every worker that
 * asks for "127.0.0.1:0" (per listen index) the same shared port and round-robins connections over them. Then
 * one worker's warm-up requests reached its sibling's stub, or, once the sibling's own stub had closed, the
 * sibling's real listener when that too asked for port 0 (tests do), and were counted in its real metrics.
 * An exclusive handle is this process's own port, shared with no one.
 */
export function listenLocal(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => resolve((server.address() as AddressInfo).port));
  });
}

/** The policy with the upstream moved to the stub and everything that reaches outside the process taken out. */
function warmupPolicy(p: Policy, stubPort: number): Policy {
  return {
    ...p,
    server: { ...p.server, workers: 0, log_level: 'fatal' },
    upstream: { ...p.upstream, url: `http://127.0.0.1:${stubPort}`, protocol: 'http:', host: '127.0.0.1', port: stubPort },
    redis: null,
    rate_limiting: p.rate_limiting === null ? null : dryRun(p.rate_limiting),
    cache: p.cache === null ? null : { ...p.cache, l2: null, l3: null, warmup: null, invalidation: null },
    tracing: null,
    profiling: null,
    auto_tuning: null,
  };
}

/**
 * Every limit in dry-run: the limiter's code runs and decides, but admits. A few thousand requests from one
 * identity in a second would otherwise be refused after the first burst, and the warm-up would have compiled
 * the 429 path instead of the one real traffic takes.
 */
function dryRun(r: RateLimitPolicy): RateLimitPolicy {
  const perEndpoint: Record<string, EndpointLimitPolicy> = {};
  for (const [k, v] of Object.entries(r.per_endpoint)) perEndpoint[k] = { ...v, dry_run: true };
  return {
    ...r,
    global: r.global === null ? null : { ...r.global, dry_run: true },
    per_user: r.per_user === null ? null : { ...r.per_user, dry_run: true },
    per_endpoint: perEndpoint,
  };
}

/**
 * V8 compiles typed-array and Buffer accesses without a detached-buffer check for as long as no ArrayBuffer in the
 * process has ever been detached (its ArrayBufferDetaching protector). The first detach anywhere throws away every
 * optimised function that relied on it, all at once. A worker always meets one sooner or later: undici parses
 * answers in WebAssembly memory, and the first upstream answer read in a larger chunk than any before (64 KB here)
 * grows that memory, which detaches its old buffer. After the warm-up, that came with the first large answer of
 * real traffic: 20–40 of the functions the warm-up had optimised (node's HTTP parser callbacks, streams, timers
 * and async hooks, the sidecar's handler) were thrown away at once and compiled again (bench/RESULTS.md, "Start-up:
 * what the figures mean", session 22). Detaching a buffer of our own before the warm-up compiles anything spends
 * that once, now; the checks it brings are a compare per access.
 */
function settleArrayBufferDetaching(): void {
  const spent = new ArrayBuffer(8);
  structuredClone(spent, { transfer: [spent] });
}

export async function warmUpJit(loaded: LoadedPolicy, log: Logger): Promise<WarmupOutcome | null> {
  const s = loaded.policy.server.jit_warmup;
  if (!s.enabled || s.requests <= 0) return null;
  settleArrayBufferDetaching();
  const t0 = performance.now();
  const deadline = t0 + s.max_time;
  const stub = await startStub();
  const policy = warmupPolicy(loaded.policy, stub.port);
  const copy: LoadedPolicy = { ...loaded, policy };
  const rt: Runtime = {
    coordinator: new SingleCoordinator(), log: silentLogger,
    metrics: new WorkerMetrics(policy.metrics.buckets, { defaultMetrics: false }), redis: () => null,
    clock: systemClock, workerIndex: null,
  };
  const services = registerPrimaryServices(rt.coordinator, silentLogger);
  const components = createStageComponents(rt);
  const leg = createUpstreamLeg(policy.upstream, rt.metrics);
  const server = createServer({ keepAliveTimeout: 10_000, noDelay: true });
  let client: Pool | null = null;
  let sent = 0, errors = 0, stopped = false;
  // baseline code from the first call for what the warm-up meets first, and only for that (./v8-flags.ts)
  const v8Flags = v8FlagsFor(loaded.policy);
  setV8Flags(v8Flags, true);
  try {
    // Collect the warm-up's own registry first, as a scrape would. A collection changes the layout of objects that
    // the request path's optimised code meets too: the resource counters' reset-then-increment turns a prom-client
    // counter's `value` field from constant to mutable. Left to the first real scrape, that threw away the
    // optimised getPath, match, baseKey and five more about 5 s after /readyz (bench/RESULTS.md, issue 19,
    // session 20); done here, nothing optimised depends on it yet.
    await rt.metrics.registry.getMetricsAsJSON();
    for (const svc of services) svc.configure(copy);
    const handler = new RequestHandler(buildPipeline(copy, null, components.ordered), leg, rt);
    server.on('request', handler.handle);
    const port = await listenLocal(server);
    client = new Pool(`http://127.0.0.1:${port}`, { connections: CONCURRENCY, pipelining: 1 });
    const pool = client;
    const nextRequest = rounds(policy);
    // the bound is hard: requests still in flight at the deadline are dropped, not waited for
    let hardStop: NodeJS.Timeout | null = null;
    const bounded = new Promise<void>((resolve) => { hardStop = setTimeout(resolve, Math.max(0, deadline - performance.now()) + 50); });
    const loop = new Promise<void>((resolve) => {
      let inFlight = 0;
      const next = (): void => {
        if (sent >= s.requests || performance.now() >= deadline) {
          if (inFlight === 0) resolve();
          return;
        }
        sent++;
        const r = nextRequest();
        inFlight++;
        const failed = () => { if (!stopped) errors++; };
        pool.request({ method: r.method as 'GET', path: r.path, headers: r.headers, body: r.body })
          .then((res) => res.body.dump(), failed)
          .then(() => { inFlight--; next(); }, () => { failed(); inFlight--; next(); });
      };
      for (let i = 0; i < CONCURRENCY; i++) next();
    });
    await Promise.race([loop, bounded]);
    stopped = true;
    if (hardStop !== null) clearTimeout(hardStop);
  } catch (err) {
    // the warm-up is an optimisation: if it breaks, the worker starts cold rather than not at all
    log.warn({ err: err instanceof Error ? err.message : String(err) }, 'jit warm-up failed; starting cold');
  } finally {
    await client?.destroy().catch(() => undefined);
    server.closeAllConnections();
    server.close();
    leg.close();
    await Promise.allSettled([...components.ordered.map((c) => c.close()), ...services.map((x) => x.close())]);
    stub.server.closeAllConnections();
    stub.server.close();
    setV8Flags(v8Flags, false);
  }
  const outcome = { requests: sent, errors, upstream: stub.answered(), ms: Math.round(performance.now() - t0) };
  log.info({ jit_warmup: outcome, v8_flags: v8Flags }, 'jit warm-up done');
  return outcome;
}
