/**
 * Test rig for the cache: a real upstream (node:http, programmable, counting requests) and a real sidecar
 * request path built from a policy YAML by the same builder a worker uses (lib/stages/chain.ts's stages,
 * lib/server/pipeline.ts's snapshot, lib/server/handler.ts's RequestHandler, the upstream leg), with the pod's
 * services as in the single process. Nothing is mocked.
 */
import http, { type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parsePolicy } from '../../lib/policy/load';
import type { LoadedPolicy } from '../../lib/policy/types';
import { buildPipeline } from '../../lib/server/pipeline';
import { RequestHandler } from '../../lib/server/handler';
import { registerPrimaryServices } from '../../lib/server/primary/services';
import { createStageComponents } from '../../lib/stages/chain';
import { createUpstreamLeg } from '../../lib/stages/upstream';
import { SingleCoordinator } from '../../lib/server/ipc';
import { WorkerMetrics } from '../../lib/observe/metrics';
import { silentLogger } from '../../lib/observe/logger';
import { RedisConnection } from '../../lib/redis/client';
import type { Runtime } from '../../lib/core/component';
import type { Coordinator } from '../../lib/core/ipc';
import type { CacheComponent } from '../../lib/stages/cache/component';
import type { Invalidator } from '../../lib/cache/invalidation/engine';
import { systemClock, type Clock } from '../../lib/core/clock';
import { tempDir as makeTempDir } from '../helpers/temp-dir';

export interface UpstreamReply {
  status?: number;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Destroy the socket instead of answering. */
  hangUp?: boolean;
}

export type UpstreamHandler = (req: IncomingMessage, body: Buffer, n: number) => UpstreamReply | Promise<UpstreamReply>;

export interface TestUpstream {
  port: number;
  url: string;
  /** Requests received so far. */
  count: number;
  /** Every request's method, url and headers. */
  log: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }>;
  handler: UpstreamHandler;
  close(): Promise<void>;
}

export async function startUpstream(handler: UpstreamHandler, port = 0): Promise<TestUpstream> {
  const up: TestUpstream = {
    port: 0, url: '', count: 0, log: [], handler,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
  const server: Server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void answer(Buffer.concat(chunks)).catch((err: unknown) => {
      // a throwing test handler: say so and drop the connection, so the request fails instead of hanging
      console.error('test upstream handler failed:', err);
      res.destroy();
    }));
    const answer = async (body: Buffer): Promise<void> => {
      const n = ++up.count;
      up.log.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: body.toString() });
      const reply = await up.handler(req, body, n);
      if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
      if (reply.hangUp) { req.socket.destroy(); return; }
      const b = reply.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(reply.body) ? reply.body : Buffer.from(reply.body);
      res.writeHead(reply.status ?? 200, { 'content-length': String(b.length), ...(reply.headers ?? {}) });
      res.end(b);
    };
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  up.port = (server.address() as AddressInfo).port;
  up.url = `http://127.0.0.1:${up.port}`;
  return up;
}

export interface Sidecar {
  url: string;
  port: number;
  cache: CacheComponent;
  /** The events stage's invalidator (raises, applies, and its background cleanup: idle()). */
  invalidator: Invalidator;
  metrics: WorkerMetrics;
  redis: RedisConnection | null;
  close(): Promise<void>;
}

export interface SidecarOptions {
  /** Redis for L2: a URL or cluster seeds ("host:port"). */
  redisUrl?: string;
  redisCluster?: string[];
  fsync?: boolean;
  /** The sidecar's wall clock (default: the system's); a ManualClock lets a test move time without sleeping. */
  clock?: Clock;
  /**
   * The stages' channel and worker index, for a test of what a worker sends to its siblings (default: one
   * process, no siblings). It is handed the in-process channel the primary's services answer on.
   */
  worker?: (primary: SingleCoordinator) => { coordinator: Coordinator; workerIndex: number };
}

export function loadPolicy(yaml: string): LoadedPolicy {
  const r = parsePolicy(yaml, 'test-policy.yaml');
  if (!r.ok) throw new Error('bad test policy: ' + JSON.stringify(r.errors));
  return r.loaded;
}

/** A sidecar (in this process) in front of `upstreamUrl`, with the cache from `policyYaml`. */
export async function startSidecar(policyYaml: string, opts: SidecarOptions = {}): Promise<Sidecar> {
  const loaded = loadPolicy(policyYaml);
  const metrics = new WorkerMetrics(undefined, { defaultMetrics: false });
  let redis: RedisConnection | null = null;
  if (loaded.policy.redis) {
    redis = new RedisConnection(loaded.policy.redis, silentLogger);
    const r = redis;
    await waitUntil(() => r.healthy, 10_000);
  }
  const coordinator = new SingleCoordinator();
  const worker = opts.worker?.(coordinator) ?? { coordinator, workerIndex: null };
  const rt: Runtime = { coordinator: worker.coordinator, log: silentLogger, metrics, redis: () => redis, clock: opts.clock ?? systemClock, workerIndex: worker.workerIndex };
  const services = registerPrimaryServices(coordinator, silentLogger);
  for (const s of services) s.configure(loaded);
  const components = createStageComponents(rt, { cache: { fsync: opts.fsync ?? false } });
  const cache = components.cache;
  const pipeline = buildPipeline(loaded, null, components.ordered);
  const proxy = createUpstreamLeg(loaded.policy.upstream, metrics);
  const handler = new RequestHandler(pipeline, proxy, rt);
  const server = http.createServer(handler.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  if (cache.tiers.l3) await cache.tiers.l3.ready;
  return {
    url: `http://127.0.0.1:${port}`, port, cache, invalidator: components.events.invalidator, metrics, redis,
    async close() {
      await cache.flush();
      await Promise.all(components.ordered.map((c) => c.close()));
      await Promise.all(services.map((s) => s.close()));
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      proxy.close();
      await redis?.close();
    },
  };
}

export async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function tempDir(t: { after(fn: () => void | Promise<void>): void }): string {
  return makeTempDir(t, 'bridge-cache-');
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request to the sidecar over a fresh connection (no pooling surprises between tests). */
export function request(url: string, opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(opts.path ?? '/', url);
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.body !== undefined) {
      headers['content-length'] = String(Buffer.byteLength(opts.body));
      headers['content-type'] ??= 'application/json';
    }
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: opts.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(20_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function policy(upstreamUrl: string, extra: string): string {
  return `version: 1\nupstream: { url: "${upstreamUrl}", pool: { retries: 0, read_timeout: 5s, connect_timeout: 1s } }\n${extra}`;
}
