/**
 * The example draft service: a stand-in for the real CapCutAPI draft service (Flask, port 9101; the real one is
 * in ../shared/capcut-service/) that the demo, the fast tests and the benchmarks put bridge-sidecar in front of.
 * Same paths, methods, bodies and answers as the real service (errors are HTTP 200 `success:false`), plus the
 * MCP bridge's `POST /mcp`. A plain node:http server, no framework. What it serves is listed in ./README.md.
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
import { handleRpc, rpcError } from './jsonrpc';
import { buildOperations, fail, toBuffer, POST_OPERATIONS, WRITE_OPERATIONS, type Args, type CallContext, type Outcome } from './operations';
import { upgradeToEcho } from './websocket';

export interface DraftServiceOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Work time added to every draft-service call (not to /__stats or the test extras). Default 0. */
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
const HTML_HEADERS = { 'content-type': 'text/html; charset=utf-8' } as const;
// Above the sidecar's default client_max_body_size (50MB), so the sidecar's own 413 is what tests see.
const BODY_LIMIT = 64 * 1024 * 1024;

type Reply = { status: number; body: Buffer; replayed?: boolean; html?: boolean };

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
  routes.set('/', { op: 'index', method: 'GET', args: 'query' });
  for (const op of POST_OPERATIONS) routes.set(`/${op}`, { op, method: 'POST', args: 'body' });
  routes.set('/mcp', { op: 'jsonrpc', method: 'POST', args: 'rpc' });
  return routes;
}

/** Flask's own pages for an unknown path and a wrong method (HTML, not the JSON envelope). */
const NOT_FOUND_HTML = Buffer.from('<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n');
const METHOD_NOT_ALLOWED_HTML = Buffer.from('<!doctype html>\n<html lang=en>\n<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n<p>The method is not allowed for the requested URL.</p>\n');
const INDEX_JSON = Buffer.from(JSON.stringify({ error: '', output: { message: 'CapCutAPI 服务运行正常', version: '1.1.0', available_endpoints: ['GET /', 'POST /create_draft', 'POST /add_video', 'POST /add_text', 'POST /query_script'] }, success: true }));
/** `GET /api/drafts/preview/<draft_id>`: the service's HTML preview page (200 even for an unknown draft). */
const PREVIEW_PREFIX = '/api/drafts/preview/';
const PREVIEW_ROUTE: ApiRoute = { op: 'preview', method: 'GET', args: 'query' };
const INDEX_HTML = Buffer.from('<!doctype html>\n<html><head><title>CapCutAPI</title></head><body><h1>CapCutAPI 1.1.0</h1></body></html>\n');

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

  function send(res: ServerResponse, reply: Reply): void {
    if (res.destroyed) return;
    const headers: Record<string, string | number> = { ...(reply.html ? HTML_HEADERS : JSON_HEADERS), 'content-length': reply.body.length };
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

  /** Runs an operation: every answer is HTTP 200, errors included, as the real service does. */
  function runOp(route: ApiRoute, args: Args, req: IncomingMessage): Reply {
    if (route.op === 'index') {
      const json = req.headers.accept === 'application/json';
      return { status: 200, body: json ? INDEX_JSON : INDEX_HTML, html: !json };
    }
    if (route.op === 'preview') {
      const id = decodeURIComponent((req.url ?? '').split('?')[0]!.slice(PREVIEW_PREFIX.length));
      const draft = store.get(id);
      const tracks = draft ? (draft.doc.tracks as unknown[]).length : 0;
      const html = `<!doctype html>\n<html><head><title>草稿预览 ${id.replace(/[<>&"]/g, '')}</title></head><body><h1>${draft ? '草稿预览' : '草稿素材'}</h1><p>tracks: ${tracks}</p></body></html>\n`;
      return { status: 200, body: Buffer.from(html), html: true };
    }
    const outcome: Outcome = ops.get(route.op)!(args, callContext(req));
    return { status: 200, body: toBuffer(outcome) };
  }

  /** The call itself, once it holds a slot and its service time has passed. */
  async function work(route: ApiRoute, req: IncomingMessage, query: string): Promise<Reply> {
    if (route.args === 'query') {
      req.resume();
      return runOp(route, Object.fromEntries(new URLSearchParams(query)), req);
    }
    const raw = await readBody(req);
    if (raw === 'too-large') return { status: 413, body: jsonBuffer({ success: false, error: `body over ${BODY_LIMIT} bytes` }) };
    let parsed: unknown = {};
    if (raw.length > 0) {
      try {
        parsed = JSON.parse(raw.toString('utf8'));
      } catch (e) {
        // the real service's handlers catch Flask's 400 and answer it as an error envelope
        if (route.args === 'rpc') return { status: 500, body: jsonBuffer(rpcError(null, -32603, `Internal error: ${e instanceof Error ? e.message : String(e)}`)) };
        return { status: 200, body: jsonBuffer(fail(`处理请求时发生错误: 400 Bad Request: The browser (or proxy) sent a request that this server could not understand.`)) };
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
      reply = { status: answer.status, body: answer.body === null ? Buffer.alloc(0) : jsonBuffer(answer.body) };
    } else if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return { status: 200, body: jsonBuffer(fail(`处理请求时发生错误: 'list' object has no attribute 'get'`)) };
    } else {
      reply = runOp(route, parsed as Args, req);
    }
    if (idemKey) idempotency.set(idemKey, reply);
    return reply;
  }

  async function throttled(route: ApiRoute, req: IncomingMessage, res: ServerResponse, query: string, serviceTime: number): Promise<void> {
    if (gate) await gate.acquire();
    try {
      if (serviceTime > 0) await new Promise((r) => setTimeout(r, serviceTime));
      send(res, await work(route, req, query));
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

    const route = routes.get(path) ?? (path.startsWith(PREVIEW_PREFIX) && path.length > PREVIEW_PREFIX.length ? PREVIEW_ROUTE : undefined);
    if (!route) {
      if (extras.handle(req, res, path, query)) return;
      req.resume();
      send(res, { status: 404, body: NOT_FOUND_HTML, html: true });
      return;
    }
    if (req.method !== route.method && !(req.method === 'HEAD' && route.method === 'GET')) {
      req.resume();
      res.setHeader('allow', route.method === 'GET' ? 'GET, HEAD, OPTIONS' : 'OPTIONS, POST');
      send(res, { status: 405, body: METHOD_NOT_ALLOWED_HTML, html: true });
      return;
    }
    const override = req.headers['x-service-time-ms'];
    const serviceTime = typeof override === 'string' && override !== '' && Number.isFinite(Number(override)) ? Math.max(0, Number(override)) : defaultServiceTime;
    if (!gate && serviceTime <= 0 && route.args === 'query') {
      // The fast path for reads without service time: no promise, no body to wait for.
      req.resume();
      send(res, runOp(route, query ? Object.fromEntries(new URLSearchParams(query)) : {}, req));
      return;
    }
    throttled(route, req, res, query, serviceTime).catch((err: unknown) => {
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
