/**
 * The admin port: /healthz, /readyz, /metrics, /policy, and the token-guarded endpoints that change state or
 * leak data (registered by the features that own them). Lives in the primary, or in the single process.
 *
 * Guarded endpoints need `Authorization: Bearer <token>` where the token is the content of
 * server.admin_token_file (re-read on each use, so a rotated Secret takes effect without a restart). With no
 * token file configured they answer 404, as if they did not exist.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { HostPort } from '../policy/types';
import type { Logger } from '../observe/logger';
import { listenOn } from './listen';
import { BodyTooLarge, endAnswer, readBody } from '../util/read-body';

export interface AdminRequest {
  req: IncomingMessage;
  url: URL;
  /** The JSON body for POSTs (bounded at 1 MB), else undefined. */
  body: unknown;
}

export interface AdminReply {
  status: number;
  body: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

export type AdminHandler = (r: AdminRequest) => AdminReply | Promise<AdminReply>;

interface Route {
  method: string;
  guarded: boolean;
  handler: AdminHandler;
}

const MAX_ADMIN_BODY = 1024 * 1024;

export class AdminServer {
  private routes = new Map<string, Route>();
  private server: Server | null = null;
  /** Function returning the admin token file path in force (from the policy), or null. */
  tokenFile: () => string | null = () => null;
  /** Why the token file could not be read at the last try, or null: logged once per change. */
  private tokenProblem: string | null = null;

  constructor(private readonly log: Logger) {}

  route(method: string, path: string, handler: AdminHandler, opts: { guarded?: boolean } = {}): void {
    this.routes.set(method + ' ' + path, { method, guarded: opts.guarded ?? false, handler });
  }

  /** `setting` names the policy key in a bind failure's message. */
  async listen(at: HostPort, setting = 'server.admin_listen'): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => {
      void this.dispatch(req, res);
    });
    this.server = server;
    await listenOn(server, at.host, at.port, setting);
    const a = server.address();
    return typeof a === 'object' && a ? { host: a.address, port: a.port } : { host: at.host, port: at.port };
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://admin');
    } catch {
      return send(res, { status: 400, body: { error: 'bad url' } });
    }
    const route = this.routes.get((req.method ?? 'GET') + ' ' + url.pathname)
      ?? (req.method === 'HEAD' ? this.routes.get('GET ' + url.pathname) : undefined);
    if (!route) {
      const other = [...this.routes.keys()].some((k) => k.endsWith(' ' + url.pathname));
      return send(res, other ? { status: 405, body: { error: 'method not allowed' } } : { status: 404, body: { error: 'not found' } });
    }
    if (route.guarded) {
      const verdict = this.authorize(req);
      if (verdict !== 'ok') {
        if (verdict === 'disabled') return send(res, { status: 404, body: { error: 'not found' } });
        this.log.warn({ path: url.pathname, client: req.socket.remoteAddress }, 'admin request refused: bad or missing token');
        return send(res, { status: 401, body: { error: 'unauthorized' }, headers: { 'www-authenticate': 'Bearer realm="bridge-sidecar-admin"' } });
      }
    }
    let body: unknown;
    if (req.method === 'POST' || req.method === 'PUT') {
      try {
        body = await readJson(req);
      } catch (e) {
        if (e instanceof BodyTooLarge) return send(res, { status: 413, body: { error: 'body over 1 MB' } }, false, req);
        return send(res, { status: 400, body: { error: e instanceof Error ? e.message : 'bad body' } });
      }
    }
    try {
      const reply = await route.handler({ req, url, body });
      send(res, reply, req.method === 'HEAD');
    } catch (e) {
      this.log.error({ err: e, path: url.pathname }, 'admin handler failed');
      send(res, { status: 500, body: { error: e instanceof Error ? e.message : String(e) } });
    }
  }

  private authorize(req: IncomingMessage): 'ok' | 'denied' | 'disabled' {
    const file = this.tokenFile();
    if (!file) return 'disabled';
    const token = this.readToken(file);
    if (token === null) return 'disabled';
    if (!token) return 'disabled';
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(auth);
    if (!m) return 'denied';
    // compare digests so the comparison takes the same time whatever the lengths
    const a = createHash('sha256').update(m[1].trim()).digest();
    const b = createHash('sha256').update(token).digest();
    return timingSafeEqual(a, b) ? 'ok' : 'denied';
  }

  /**
   * The token, or null when the file cannot be read. An unreadable file (a Secret not mounted, the demo on a
   * laptop) is an expected degraded state: one warning when it starts, one line when it ends, not an error per
   * request.
   */
  readToken(file: string): string | null {
    try {
      const token = readFileSync(file, 'utf8').trim();
      if (this.tokenProblem !== null) {
        this.log.info({ file }, 'admin token file readable again: guarded endpoints enabled');
        this.tokenProblem = null;
      }
      return token;
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
      if (this.tokenProblem !== why) {
        this.log.warn({ file, err: why }, 'admin token file unreadable: the guarded endpoints answer 404 until it is');
        this.tokenProblem = why;
      }
      return null;
    }
  }

  /** Says at start-up when the configured token file cannot be read (then only when that changes). */
  checkTokenFile(): void {
    const file = this.tokenFile();
    if (file) this.readToken(file);
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    await new Promise<void>((r) => s.close(() => r()));
    s.closeAllConnections();
  }
}

/** The JSON body, or undefined when empty. Past MAX_ADMIN_BODY: BodyTooLarge, the rest of the body left unread. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const raw = await readBody(req, MAX_ADMIN_BODY);
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new Error('body is not valid JSON');
  }
}

/** With `lingerOn` (a request refused before its body was read): Connection: close, after the rest of the body (endAnswer). */
function send(res: ServerResponse, reply: AdminReply, headOnly = false, lingerOn: IncomingMessage | null = null): void {
  if (res.headersSent) return;
  const isText = typeof reply.body === 'string' || Buffer.isBuffer(reply.body);
  const payload = isText ? (reply.body as string | Buffer) : JSON.stringify(reply.body, null, 2) + '\n';
  res.writeHead(reply.status, {
    'content-type': reply.contentType ?? (isText ? 'text/plain; charset=utf-8' : 'application/json'),
    'content-length': String(Buffer.byteLength(payload)),
    'cache-control': 'no-store',
    ...reply.headers,
    ...(lingerOn === null ? {} : { connection: 'close' }),
  });
  endAnswer(res, headOnly ? undefined : payload, lingerOn);
}
