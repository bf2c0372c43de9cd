/**
 * Rig for the cache-correctness tests: a real `bridge-sidecar serve` process in front of a real upstream that
 * answers like an MCP server in JSON mode (JSON-RPC 2.0 over POST /mcp, a session id per client, paged
 * tools/list, 202 for notifications) and like a plain origin on every other path (the test gives the reply).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basicPolicy, startSidecar, type SidecarProcess } from '../../helpers/sidecar';
import { request, type Reply } from '../harness';

export interface Origin {
  port: number;
  /** Requests that reached the origin, by "METHOD path". */
  seen: string[];
  /** Replies for plain paths: path -> handler. */
  routes: Map<string, (req: IncomingMessage, body: Buffer, res: ServerResponse) => void>;
  close(): Promise<void>;
}

const PAGES: Record<string, { tools: string[]; next?: string }> = {
  '': { tools: ['create_draft', 'add_video'], next: 'page-2' },
  'page-2': { tools: ['save_draft'] },
};

export async function startOrigin(): Promise<Origin> {
  const o: Origin = { port: 0, seen: [], routes: new Map(), close: async () => {} };
  let sessions = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = (req.url ?? '/').split('?')[0];
      o.seen.push(`${req.method} ${path}`);
      const custom = o.routes.get(path);
      if (custom) return custom(req, body, res);
      if (path === '/mcp' && req.method === 'POST') return mcp(req, body, res, () => `session-${++sessions}`);
      res.writeHead(404, { 'content-length': '0' });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  o.port = (server.address() as AddressInfo).port;
  o.close = () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); });
  return o;
}

function mcp(req: IncomingMessage, body: Buffer, res: ServerResponse, newSession: () => string): void {
  const msg = JSON.parse(body.toString()) as unknown;
  const session = (req.headers['mcp-session-id'] as string | undefined) ?? newSession();
  const answer = (m: { id?: unknown; method: string; params?: { cursor?: string } }) => {
    if (m.method === 'tools/list') {
      const page = PAGES[m.params?.cursor ?? ''];
      if (page === undefined) return { jsonrpc: '2.0', id: m.id, error: { code: -32602, message: 'bad cursor' } };
      return { jsonrpc: '2.0', id: m.id, result: { tools: page.tools.map((name) => ({ name })), ...(page.next ? { nextCursor: page.next } : {}) } };
    }
    return { jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'no such method' } };
  };
  if (Array.isArray(msg)) {
    const out = Buffer.from(JSON.stringify(msg.map(answer)));
    res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': session, 'content-length': String(out.length) });
    return void res.end(out);
  }
  const m = msg as { id?: unknown; method: string };
  if (!('id' in m)) {
    res.writeHead(202, { 'mcp-session-id': session, 'content-length': '0' });
    return void res.end();
  }
  const out = Buffer.from(JSON.stringify(answer(m as never)));
  res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': session, 'content-length': String(out.length), 'cache-control': 'max-age=60' });
  res.end(out);
}

export type { Reply } from '../harness';

/** One request over a fresh connection. */
export function send(port: number, method: string, path: string, opts: { headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return request(`http://127.0.0.1:${port}`, { method, path, ...opts });
}

export const rpc = (port: number, id: unknown, method: string, params?: unknown, headers: Record<string, string> = {}) =>
  send(port, 'POST', '/mcp', { headers: { accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }) });

export const MCP_ROUTE = `
  - name: mcp_tools_list
    match: { method: POST, path: /mcp, jsonrpc_method: tools/list }
    cache: { key: "mcp:tools", ttl: 1m }`;

/** A sidecar in front of `originPort` with the given routes and cache section. */
export async function sidecar(t: { after(fn: () => unknown): void }, originPort: number, routes: string, extra = '', server: Record<string, string | number> = {}): Promise<SidecarProcess> {
  const sc = await startSidecar(basicPolicy(originPort, `routes:${routes}\ncache:\n  l1: { size: 8MB }\n${extra}`, server));
  t.after(() => sc.stop());
  return sc;
}

/** The value of one sample of the sidecar's /metrics, 0 when absent. */
export async function metric(sc: SidecarProcess, name: string, labels: Record<string, string>): Promise<number> {
  const text = (await send(sc.adminPort, 'GET', '/metrics')).body;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    const inside = line.slice(name.length + 1, line.indexOf('}'));
    if (Object.entries(labels).every(([k, v]) => inside.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}
