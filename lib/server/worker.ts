/**
 * One proxy process: the client listener, the stage components, and the pipeline for the policy in force.
 * Runs as a cluster worker (server.workers >= 1) or inside the single process (server.workers: 0).
 */
import cluster from 'node:cluster';
import { createServer, type Server } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import type { LoadedPolicy } from '../policy/types';
import type { Coordinator } from '../core/ipc';
import { WorkerMetrics } from '../observe/metrics';
import type { Logger } from '../observe/logger';
import { RedisHolder } from './redis-holder';
import { type Runtime } from '../core/component';
import { createStageComponents, type StageComponents } from '../stages/chain';
import { buildPipeline, type Pipeline } from './pipeline';
import { RequestHandler } from './handler';
import { createUpstreamLeg, type UpstreamLeg } from '../stages/upstream';
import { warmUpJit } from '../perf/jit-warmup';
import { applySteadyV8Flags } from '../perf/v8-flags';
import { watchMemory } from '../perf/overload-worker';
import { systemClock } from '../core/clock';
import { listenOn } from './listen';

/**
 * While draining, the listener keeps accepting until no new connection has come for this long (see shutdown()).
 * Endpoint removal reaches clients some time after SIGTERM; a connection that arrives meanwhile is served (with
 * Connection: close) instead of being refused or, worse, reset after it was accepted.
 */
const LISTEN_QUIET_MS = 500;

export interface ProxyWorker {
  readonly server: Server;
  readonly runtime: Runtime;
  readonly handler: RequestHandler;
  readonly components: StageComponents;
  readonly proxy: UpstreamLeg;
  /** Address actually bound (port 0 resolves here). */
  address(): { host: string; port: number };
  applyPolicy(next: LoadedPolicy): void;
  /**
   * Drain: answer with Connection: close, stop accepting once clients have stopped connecting (at once with
   * `siblingsListen`: the other workers take the new connections), close idle keep-alives, let in-flight requests
   * finish (up to drain_timeout), release.
   */
  shutdown(opts?: { siblingsListen?: boolean }): Promise<void>;
}

/**
 * This process's stable slot in the pod: the primary gives every worker an index 0..N-1 in its environment and
 * gives a restarted worker's replacement the same one. null outside a cluster worker.
 */
function workerIndex(): number | null {
  if (!cluster.isWorker) return null;
  const fromEnv = process.env.BRIDGE_SIDECAR_WORKER_INDEX;
  return fromEnv !== undefined ? Number(fromEnv) : (cluster.worker?.id ?? 0);
}

export async function startProxyWorker(loaded: LoadedPolicy, coordinator: Coordinator, log: Logger): Promise<ProxyWorker> {
  // before anything below compiles the request path (lib/perf/v8-flags.ts)
  const v8Flags = applySteadyV8Flags(loaded.policy);
  if (v8Flags.length !== 0) log.info({ pid: process.pid, v8_flags: v8Flags }, 'v8 flags set for the request path');
  let policy = loaded;
  const metrics = new WorkerMetrics(loaded.policy.metrics.buckets);
  metrics.applyPolicy(loaded.policy);
  const redis = new RedisHolder(log);
  redis.configure(loaded);
  const runtime: Runtime = { coordinator, log, metrics, redis: () => redis.get(), clock: systemClock, workerIndex: workerIndex() };
  const components = createStageComponents(runtime);
  const proxy = createUpstreamLeg(loaded.policy.upstream, metrics);

  const build = (next: LoadedPolicy, previous: LoadedPolicy | null): Pipeline => buildPipeline(next, previous, components.ordered);
  const handler = new RequestHandler(build(loaded, null), proxy, runtime);

  const s = loaded.policy.server;
  const server = createServer({
    keepAliveTimeout: s.keepalive_timeout,
    requestTimeout: s.request_timeout,
    headersTimeout: Math.min(s.request_timeout, 60_000),
    // node only enforces headersTimeout/requestTimeout when it sweeps its connections,
    // every connectionsCheckingInterval (default 30 s): a slowloris client held a socket ~30 s past a 2 s
    // request_timeout. Sweep at a quarter of the timeout, between 100 ms and 1 s (cheap: one pass per worker).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(Math.min(s.request_timeout, 60_000) / 4))),
    // refuse oversized headers with 431 (node's default is 16 KB; nginx's large_client_header_buffers 4x8k)
    maxHeaderSize: 32 * 1024,
    // no Nagle delay on small JSON answers
    noDelay: true,
  }, handler.handle);
  server.maxConnections = s.worker_connections;
  // Expect: 100-continue is answered by the handler, after its size check (an oversize body gets 413, no 100)
  server.on('checkContinue', handler.handle);

  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    proxy.upgrade(req, socket, head, (err) => {
      log.warn({ err: err.message, path: req.url }, 'upgrade proxy failed');
      if (!socket.destroyed) socket.end('HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    });
  });
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    // node answers malformed requests with 400 by default; keep its codes (431, 408) and close the connection
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const reason = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    // end() only half-closes; a client that never closes its side kept the socket (and
    // a request whose body broke off) open. Give the answer a moment to be read, then close for good.
    setTimeout(() => socket.destroy(), 1000).unref();
  });

  // compile the request path before the first real request: the worker listens (and /readyz can turn 200)
  // only after this
  await warmUpJit(loaded, log);

  await listenOn(server, s.listen.host, s.listen.port, 'server.listen', 511);
  const memory = watchMemory(server, components.cache, metrics, coordinator, log, loaded.policy);

  const worker: ProxyWorker = {
    server,
    runtime,
    handler,
    components,
    proxy,
    address() {
      const a = server.address();
      return typeof a === 'object' && a ? { host: a.address, port: a.port } : { host: s.listen.host, port: s.listen.port };
    },
    applyPolicy(next: LoadedPolicy) {
      const previous = policy;
      policy = next;
      redis.configure(next);
      proxy.reconfigure(next.policy.upstream);
      server.maxConnections = next.policy.server.worker_connections;
      server.keepAliveTimeout = next.policy.server.keepalive_timeout;
      server.requestTimeout = next.policy.server.request_timeout;
      handler.swap(build(next, previous));
      memory.configure(next.policy);
    },
    async shutdown(opts = {}) {
      handler.draining = true;
      memory.close();
      const drainMs = policy.policy.server.drain_timeout;
      const started = Date.now();
      // shutdown's start counts as a connection: one may be on its way to this worker
      let lastConnection = started;
      const noteConnection = (): void => void (lastConnection = Date.now());
      server.on('connection', noteConnection);
      // Keep accepting (every answer says Connection: close) until clients have stopped opening connections, and
      // for at most half the drain timeout so the last ones accepted still have time to finish. Closing the
      // listener while clients still connect resets the connections it has accepted but not yet served: the
      // kernel's accept queue, and with cluster workers the primary's queue of connections not yet handed to a
      // worker (node closes them when the last worker stops listening).
      if (opts.siblingsListen !== true) await untilQuiet(() => lastConnection, LISTEN_QUIET_MS, drainMs / 2);
      // Not http.Server#close(): since Node 19 it also closes idle keep-alive connections at once, including
      // one accepted a moment ago whose request is not read yet.
      const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()));
      // Busy connections close after their current response (Connection: close). Idle keep-alive connections
      // are closed between requests, once no connection has come for LISTEN_QUIET_MS: one still idle then is a
      // keep-alive client that has not sent since, not a new one whose first request is on its way.
      const sweepIdle = (): void => {
        if (Date.now() - lastConnection >= LISTEN_QUIET_MS) server.closeIdleConnections();
      };
      sweepIdle();
      const idleSweep = setInterval(sweepIdle, 100);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), Math.max(0, drainMs - (Date.now() - started)))));
      const outcome = await Promise.race([closed.then(() => 'drained' as const), timeout]);
      clearTimeout(timer);
      clearInterval(idleSweep);
      server.off('connection', noteConnection);
      if (outcome === 'timeout') {
        log.warn({ drain_timeout_ms: drainMs }, 'drain timeout: closing remaining connections');
        server.closeAllConnections();
      }
      await Promise.allSettled(components.ordered.map((c) => c.close()));
      proxy.close();
      await redis.close();
    },
  };
  return worker;
}

/** Resolves once `quietMs` have passed since `last()` (a time in ms that may move on meanwhile), or after `maxMs`. */
function untilQuiet(last: () => number, quietMs: number, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  return new Promise<void>((resolve) => {
    const check = (): void => {
      const wait = Math.min(last() + quietMs, deadline) - Date.now();
      if (wait <= 0) resolve();
      else setTimeout(check, wait);
    };
    check();
  });
}
