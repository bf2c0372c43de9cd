/**
 * The official MCP TypeScript SDK, client and server, through a real sidecar process with compression, a rate
 * limit, a queue and a cached tools/list route. The server answers in JSON (`enableJsonResponse: true`) on
 * /mcp, and with SSE (progress notifications while a long tool runs) on /mcp-live.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { basicPolicy, startSidecar } from '../../helpers/sidecar';

const description = 'x'.repeat(600); // big enough pages that the compressor gzips them
const PAGES: Record<string, { names: string[]; next?: string }> = {
  '': { names: ['create_draft', 'add_video'], next: 'page-2' },
  'page-2': { names: ['save_draft', 'slow'] },
};

/** An MCP server process-equivalent: one SDK Server + transport per session, on two paths. */
async function startMcpOrigin() {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const counts = { toolsList: 0, deletes: 0 };
  let release: (() => void) | null = null;
  const released = new Promise<void>((r) => { release = r; });

  const newSession = async (json: boolean) => {
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: json,
      onsessioninitialized: (id) => { transports.set(id, transport); },
    });
    transport.onclose = () => { if (transport.sessionId) transports.delete(transport.sessionId); };
    const server = new Server({ name: 'draft-service', version: '1.0.0' }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, (req) => {
      counts.toolsList++;
      const page = PAGES[req.params?.cursor ?? ''];
      if (page === undefined) throw new Error('bad cursor');
      return { tools: page.names.map((name) => ({ name, description, inputSchema: { type: 'object' as const } })), ...(page.next ? { nextCursor: page.next } : {}) };
    });
    server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
      const token = req.params._meta?.progressToken;
      if (token !== undefined) {
        await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: 1, total: 2 } });
        // the call goes on only once the client has seen the first progress notification (or after 15 s)
        await Promise.race([released, new Promise((r) => setTimeout(r, 15_000))]);
        await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: 2, total: 2 } });
      }
      return { content: [{ type: 'text' as const, text: `ran ${req.params.name}` }] };
    });
    await server.connect(transport);
    return transport;
  };

  const httpServer = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const path = (req.url ?? '/').split('?')[0];
        const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) as unknown : undefined;
        const sid = req.headers['mcp-session-id'] as string | undefined;
        if (req.method === 'DELETE') counts.deletes++;
        let transport = sid !== undefined ? transports.get(sid) : undefined;
        if (transport === undefined && sid === undefined && req.method === 'POST') transport = await newSession(path === '/mcp');
        if (transport === undefined) {
          res.writeHead(404, { 'content-type': 'application/json' });
          return void res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }));
        }
        await transport.handleRequest(req, res, body);
      })().catch((err: unknown) => { res.destroy(err as Error); });
    });
  });
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', () => r()));
  return {
    port: (httpServer.address() as AddressInfo).port,
    counts,
    release: () => release?.(),
    close: async () => {
      for (const t of transports.values()) await t.close();
      httpServer.closeAllConnections();
      await new Promise<void>((r) => httpServer.close(() => r()));
    },
  };
}

test('MCP SDK clients through the sidecar: own ids, own sessions, right pages, live progress, DELETE ends a session', async (t) => {
  const origin = await startMcpOrigin();
  t.after(() => origin.close());
  const sc = await startSidecar(basicPolicy(origin.port, `
routes:
  - name: mcp_tools_list
    match: { method: POST, path: /mcp, jsonrpc_method: tools/list }
    cache: { key: "mcp:tools", ttl: 1m }
  - name: mcp
    match: { path: "/mcp*" }
rate_limiting:
  per_user: { requests_per_minute: 600, burst_size: 100 }
queues: { max_in_flight: 4, max_queue_size: 100, queue_timeout: 10s }
compression: { enabled: true, algorithm: gzip, threshold: 1KB }
cache:
  l1: { size: 8MB }
`));
  t.after(() => sc.stop());

  const connect = async (path: string) => {
    const client = new Client({ name: 'test-client', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(sc.url + path));
    await client.connect(transport);
    t.after(() => client.close());
    return { client, transport };
  };
  const a = await connect('/mcp');
  const b = await connect('/mcp');
  assert.ok(a.transport.sessionId && b.transport.sessionId && a.transport.sessionId !== b.transport.sessionId);
  const sessionA = a.transport.sessionId;
  const sessionB = b.transport.sessionId;

  // B sends a few requests first, so its ids differ from A's
  await b.client.ping();
  await b.client.ping();
  const names = (r: { tools: Array<{ name: string }> }) => r.tools.map((x) => x.name);
  const a1 = await a.client.listTools();
  assert.deepEqual(names(a1), ['create_draft', 'add_video']);
  const b1 = await b.client.listTools(); // from the cache, with B's own id (else the SDK drops it and times out)
  assert.deepEqual(names(b1), ['create_draft', 'add_video']);
  const b2 = await b.client.listTools({ cursor: b1.nextCursor });
  assert.deepEqual(names(b2), ['save_draft', 'slow']);
  const a2 = await a.client.listTools({ cursor: a1.nextCursor });
  assert.deepEqual(names(a2), ['save_draft', 'slow']);
  assert.equal(origin.counts.toolsList, 2, 'one upstream tools/list per page');
  assert.equal(a.transport.sessionId, sessionA, 'A kept its own session');
  assert.equal(b.transport.sessionId, sessionB, 'B kept its own session');

  // progress notifications of a long tool call arrive while it runs (SSE through the compressor and the queue)
  const live = await connect('/mcp-live');
  const progress: number[] = [];
  let doneBeforeFirstProgress = false;
  let finished = false;
  const call = live.client.callTool({ name: 'slow', arguments: {} }, undefined, {
    onprogress: (p) => {
      progress.push(p.progress);
      if (progress.length === 1) { doneBeforeFirstProgress = finished; origin.release(); }
    },
    timeout: 30_000,
  }).then((r) => { finished = true; return r; });
  const result = await call;
  assert.deepEqual(result.content, [{ type: 'text', text: 'ran slow' }]);
  assert.deepEqual(progress, [1, 2]);
  assert.equal(doneBeforeFirstProgress, false, 'the first progress notification came while the call was running');

  // DELETE /mcp ends A's session: the server forgets it, B's goes on
  await a.transport.terminateSession();
  assert.equal(origin.counts.deletes, 1);
  const after = await fetch(sc.url + '/mcp', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionA, 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'ping' }),
  });
  assert.equal(after.status, 404, 'the ended session is gone');
  await b.client.ping();
});
