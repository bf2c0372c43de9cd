/**
 * The example draft service: a stand-in for the real "MCP Bridge" draft service (a Python bridge in front of
 * a Flask CapCutAPI, port 9101) that the demo, the tests and the benchmarks put bridge-sidecar in front of.
 * A plain node:http server, no framework. What it serves is listed in ./README.md.
 *
 * Two knobs make it behave like the real thing under load: a service time per call (`serviceTimeMs`, or the
 * `X-Service-Time-Ms` request header) and a cap on its own concurrency (`maxConcurrency`; excess calls wait
 * in a FIFO, like a Flask server with N threads).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TYPE_LISTS } from './catalog';
import { DraftStore } from './drafts';
import { Extras } from './extras';
import { FifoGate } from './gate';
import { IdempotencyStore } from './idempotency';
import { handleRpc, PARSE_ERROR, rpcError } from './jsonrpc';
import { buildOperations, toBuffer, WRITE_OPERATIONS, type Args, type CallContext, type Operation, type Outcome } from './operations';
import { upgradeToEcho } from './websocket';

export interface DraftServiceOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Work time added to every draft-service call (not to /health, /__stats or the test extras). Default 0. */
  serviceTimeMs?: number;
  /** At most this many calls worked on at once; others wait in FIFO order. Default: no cap. */
  maxConcurrency?: number;
  /** One line per request on stdout. */
  log?: boolean;
  /** Pre-seeded drafts dft_000001 ... Default 1000. */
  seedDrafts?: number;
  /** Duration of the background save started by save_draft. Default 3000 ms. */
  saveDurationMs?: number;
  /** Progress of a running save moves every this many ms. Default 1000. */
  progressStepMs?: number;
  /** How long an X-Idempotency-Key answer is replayed. Default 10 minutes. */
  idempotencyTtlMs?: number;
  /** When set, writes need `X-Api-Key: <apiKey>` (else 401). Default: any key or none is accepted. */
  apiKey?: string;
  /** Most drafts kept in memory. Default 20000. */
  maxDrafts?: number;
  /** Idle keep-alive timeout of client connections. Default 5000 ms (Node's default, like many app servers). */
  keepAliveTimeoutMs?: number;
}

export interface DraftServiceStats {
  /** Requests received (all paths except /__stats). */
  requests: number;
  /** Requests per path (without the query string). */
  byPath: Record<string, number>;
  /** Requests open right now, and the most that were open at once since the last reset. */
  inFlight: number;
  peakInFlight: number;
  /** Calls waiting for a slot under maxConcurrency right now. */
  queued: number;
}

export interface DraftService {
  readonly port: number;
  /** http://host:port */
  readonly url: string;
  stats(): DraftServiceStats;
  resetStats(): void;
  close(): Promise<void>;
}

const JSON_HEADERS = { 'content-type': 'application/json' } as const;
// Above the sidecar's default client_max_body_size (50MB), so the sidecar's own 413 is what tests see.
const BODY_LIMIT = 64 * 1024 * 1024;

type Reply = { status: number; body: Buffer; replayed?: boolean };

/** A draft-service call: which operation, and how its arguments are read. */
interface ApiRoute {
  readonly op: string;
  readonly method: 'GET' | 'POST';
  /** 'body': JSON body; 'query': query string; 'rpc': JSON-RPC dispatcher. */
  readonly args: 'body' | 'query' | 'rpc';
}

function buildRoutes(): Map<string, ApiRoute> {
  const routes = new Map<string, ApiRoute>();
  for (const kind of Object.keys(TYPE_LISTS)) routes.set(`/get_${kind}_types`, { op: `get_${kind}_types`, method: 'GET', args: 'query' });
  routes.set('/api/patterns/list', { op: 'list_patterns', method: 'GET', args: 'query' });
  for (const op of WRITE_OPERATIONS) routes.set(`/mcp/${op}`, { op, method: 'POST', args: 'body' });
  routes.set('/query_script', { op: 'query_script', method: 'POST', args: 'body' });
  routes.set('/query_draft_status', { op: 'query_draft_status', method: 'POST', args: 'body' });
  routes.set('/mcp', { op: 'jsonrpc', method: 'POST', args: 'rpc' });
  return routes;
}

const PATTERN_PREFIX = '/api/patterns/get/';
const PATTERN_ROUTE: ApiRoute = { op: 'get_pattern', method: 'GET', args: 'query' };

function readBody(req: IncomingMessage): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= BODY_LIMIT) chunks.push(c);
    });
    req.on('end', () => resolve(size > BODY_LIMIT ? 'too-large' : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function jsonBuffer(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

export async function startDraftService(opts: DraftServiceOptions = {}): Promise<DraftService> {
  const host = opts.host ?? '127.0.0.1';
  const defaultServiceTime = opts.serviceTimeMs ?? 0;
  const gate = opts.maxConcurrency && opts.maxConcurrency > 0 ? new FifoGate(opts.maxConcurrency) : null;
  const store = new DraftStore({
    seedDrafts: opts.seedDrafts ?? 1000,
    saveDurationMs: opts.saveDurationMs ?? 3000,
    progressStepMs: opts.progressStepMs ?? 1000,
    maxDrafts: opts.maxDrafts ?? 20_000,
  });
  const ops = buildOperations(store);
  const routes = buildRoutes();
  const idempotency = new IdempotencyStore(opts.idempotencyTtlMs ?? 10 * 60_000);
  const extras = new Extras();

  let requests = 0;
  let byPath = new Map<string, number>();
  let inFlight = 0;
  let peakInFlight = 0;

  const HEALTH = jsonBuffer({ status: 'ok' });

  function send(res: ServerResponse, reply: Reply): void {
    if (res.destroyed) return;
    const headers: Record<string, string | number> = { ...JSON_HEADERS, 'content-length': reply.body.length };
    if (reply.replayed) headers['x-idempotent-replay'] = 'true';
    res.writeHead(reply.status, headers);
    res.end(reply.body);
  }

  function statsNow(): DraftServiceStats {
    return { requests, byPath: Object.fromEntries(byPath), inFlight, peakInFlight, queued: gate ? gate.queued : 0 };
  }

  function callContext(req: IncomingMessage): CallContext {
    const user = req.headers['x-user-id'];
    return { userId: typeof user === 'string' && user ? user : 'anonymous' };
  }

  /** Runs an operation and maps its outcome to a reply (get_pattern's not-found is a 404, as the real API). */
  function runOp(route: ApiRoute, op: Operation, args: Args, req: IncomingMessage): Reply {
    const outcome: Outcome = op(args, callContext(req));
    if (route.op === 'get_pattern' && !Buffer.isBuffer(outcome) && !outcome.success) return { status: 404, body: toBuffer(outcome) };
    return { status: 200, body: toBuffer(outcome) };
  }

  /** The call itself, once it holds a slot and its service time has passed. */
  async function work(route: ApiRoute, req: IncomingMessage, query: string, patternId: string | null): Promise<Reply> {
    if (route.args === 'query') {
      const args: Args = patternId !== null ? { id: patternId } : Object.fromEntries(new URLSearchParams(query));
      req.resume();
      return runOp(route, ops.get(route.op)!, args, req);
    }
    const raw = await readBody(req);
    if (raw === 'too-large') return { status: 413, body: jsonBuffer({ success: false, error: `body over ${BODY_LIMIT} bytes` }) };
    let parsed: unknown = {};
    if (raw.length > 0) {
      try {
        parsed = JSON.parse(raw.toString('utf8'));
      } catch (e) {
        const msg = `malformed JSON body: ${e instanceof Error ? e.message : String(e)}`;
        return { status: 400, body: jsonBuffer(route.args === 'rpc' ? rpcError(null, PARSE_ERROR, msg) : { success: false, error: msg }) };
      }
    }
    const isWrite = route.args === 'rpc' || WRITE_OPERATIONS.has(route.op);
    if (isWrite && opts.apiKey !== undefined && req.headers['x-api-key'] !== opts.apiKey) {
      return { status: 401, body: jsonBuffer({ success: false, error: 'missing or wrong X-Api-Key' }) };
    }
    const idemHeader = isWrite ? req.headers['x-idempotency-key'] : undefined;
    const idemKey = typeof idemHeader === 'string' && idemHeader ? `${route.op}\0${String(req.headers['x-api-key'] ?? '')}\0${idemHeader}` : null;
    if (idemKey) {
      const previous = idempotency.get(idemKey);
      if (previous) return { ...previous, replayed: true };
    }
    let reply: Reply;
    if (route.args === 'rpc') {
      const answer = handleRpc(parsed, ops, callContext(req));
      reply = answer === null ? { status: 202, body: Buffer.alloc(0) } : { status: 200, body: jsonBuffer(answer) };
    } else if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return { status: 400, body: jsonBuffer({ success: false, error: 'body must be a JSON object' }) };
    } else {
      reply = runOp(route, ops.get(route.op)!, parsed as Args, req);
    }
    if (idemKey) idempotency.set(idemKey, reply);
    return reply;
  }

  async function throttled(route: ApiRoute, req: IncomingMessage, res: ServerResponse, query: string, patternId: string | null, serviceTime: number): Promise<void> {
    if (gate) await gate.acquire();
    try {
      if (serviceTime > 0) await new Promise((r) => setTimeout(r, serviceTime));
      send(res, await work(route, req, query, patternId));
    } finally {
      gate?.release();
    }
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? '' : url.slice(q + 1);

    if (path === '/__stats') {
      req.resume();
      if (req.method === 'POST' || req.method === 'DELETE') {
        const before = statsNow();
        requests = 0;
        byPath = new Map();
        peakInFlight = inFlight;
        send(res, { status: 200, body: jsonBuffer(before) });
      } else send(res, { status: 200, body: jsonBuffer(statsNow()) });
      return;
    }
    requests++;
    byPath.set(path, (byPath.get(path) ?? 0) + 1);
    if (++inFlight > peakInFlight) peakInFlight = inFlight;
    res.once('close', () => inFlight--);
    if (opts.log) {
      const t0 = performance.now();
      res.once('finish', () => process.stdout.write(`${req.method} ${url} ${res.statusCode} ${(performance.now() - t0).toFixed(1)}ms\n`));
    }

    if (path === '/health') {
      req.resume();
      send(res, { status: 200, body: HEALTH });
      return;
    }
    let route = routes.get(path);
    let patternId: string | null = null;
    if (!route && path.startsWith(PATTERN_PREFIX) && path.length > PATTERN_PREFIX.length) {
      route = PATTERN_ROUTE;
      patternId = decodeURIComponent(path.slice(PATTERN_PREFIX.length));
    }
    if (!route) {
      if (extras.handle(req, res, path, query)) return;
      req.resume();
      send(res, { status: 404, body: jsonBuffer({ success: false, error: `no route for ${req.method} ${path}` }) });
      return;
    }
    if (req.method !== route.method && !(req.method === 'HEAD' && route.method === 'GET')) {
      req.resume();
      res.setHeader('allow', route.method);
      send(res, { status: 405, body: jsonBuffer({ success: false, error: `${path} takes ${route.method}` }) });
      return;
    }
    const override = req.headers['x-service-time-ms'];
    const serviceTime = typeof override === 'string' && override !== '' && Number.isFinite(Number(override)) ? Math.max(0, Number(override)) : defaultServiceTime;
    if (!gate && serviceTime <= 0 && route.args === 'query') {
      // The fast path for reads without service time: no promise, no body to wait for.
      req.resume();
      const args: Args = patternId !== null ? { id: patternId } : query ? Object.fromEntries(new URLSearchParams(query)) : {};
      send(res, runOp(route, ops.get(route.op)!, args, req));
      return;
    }
    throttled(route, req, res, query, patternId, serviceTime).catch((err: unknown) => {
      if (!res.headersSent) send(res, { status: 500, body: jsonBuffer({ success: false, error: String(err) }) });
      else res.destroy();
    });
  }

  const sockets = new Set<Socket | Duplex>();
  const server = createServer({ keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5000 }, onRequest);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    requests++;
    const path = (req.url ?? '/').split('?')[0]!;
    byPath.set(path, (byPath.get(path) ?? 0) + 1);
    if (path !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    upgradeToEcho(req, socket, head);
  });
  server.on('clientError', (_err, socket: Duplex) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;

  return {
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    stats: statsNow,
    resetStats() {
      requests = 0;
      byPath = new Map();
      peakInFlight = inFlight;
    },
    close() {
      extras.stop();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
