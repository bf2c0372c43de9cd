/**
 * The MCP bridge's `POST /mcp`, as the real bridge answers it (JSON-RPC 2.0, no sessions, no batches):
 * `initialize`, `tools/list`, `tools/call {name, arguments}` with name one of create_draft, add_video, add_text,
 * save_draft, health_check, and `notifications/initialized` (204). A tool call is the draft-service call with
 * `arguments` as its body; its answer comes back as text content. In the real deployment the bridge is its own
 * process in front of the service; the stand-in serves it on the same port so one process is enough for tests.
 */
import { TOOLS, TOOLS_BY_NAME } from './catalog';
import { toEnvelope, type Args, type CallContext, type Operation } from './operations';

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;

type Id = string | number | null;
export interface RpcResponse {
  jsonrpc: '2.0';
  id: Id;
  result?: unknown;
  error?: { code: number; message: string };
}

/** The answer and its HTTP status (the real bridge answers protocol errors with 400, notifications with 204). */
export interface RpcReply {
  status: number;
  body: RpcResponse | null;
}

export function rpcError(id: Id, code: number, message: string): RpcResponse {
  return { jsonrpc: '2.0', id, error: { code, message } };
}

const TOOLS_LIST = { tools: TOOLS.map(({ name, description, inputSchema }) => ({ name, description, inputSchema })) };
const INITIALIZE = {
  protocolVersion: '2024-11-05',
  capabilities: { tools: {} },
  serverInfo: { name: 'capcut-http-mcp-bridge', version: '1.0.0' },
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function handleRpc(body: unknown, ops: ReadonlyMap<string, Operation>, ctx: CallContext): RpcReply {
  if (!isObject(body)) return { status: 400, body: rpcError(null, PARSE_ERROR, 'Parse error') };
  const id: Id = typeof body.id === 'string' || typeof body.id === 'number' ? body.id : null;
  if (body.jsonrpc !== '2.0') return { status: 400, body: rpcError(id, INVALID_REQUEST, 'Invalid Request') };
  if (typeof body.method !== 'string' || !body.method) return { status: 400, body: rpcError(id, INVALID_REQUEST, 'Missing method') };
  const params = isObject(body.params) ? body.params : {};
  switch (body.method) {
    case 'initialize':
      return { status: 200, body: { jsonrpc: '2.0', id, result: INITIALIZE } };
    case 'tools/list':
      return { status: 200, body: { jsonrpc: '2.0', id, result: TOOLS_LIST } };
    case 'tools/call':
      return { status: 200, body: { jsonrpc: '2.0', id, result: callTool(params, ops, ctx) } };
    case 'notifications/initialized':
      return { status: 204, body: null };
    default:
      return { status: 400, body: rpcError(id, METHOD_NOT_FOUND, `Method not found: ${body.method}`) };
  }
}

function callTool(params: Args, ops: ReadonlyMap<string, Operation>, ctx: CallContext): unknown {
  const tool = typeof params.name === 'string' ? TOOLS_BY_NAME.get(params.name) : undefined;
  if (!tool) return { content: [{ type: 'text', text: `工具调用失败: 未知的工具: ${String(params.name)}` }], isError: true };
  // the real bridge asks the service's /health, which does not exist: its health check always says unhealthy
  const args = isObject(params.arguments) ? params.arguments : {};
  const answer = tool.endpoint === null
    ? { status: 'unhealthy', timestamp: Date.now() / 1000, capcut_api: 'unavailable', error: '404 Client Error: NOT FOUND for url: /health' }
    : toEnvelope(ops.get(tool.endpoint.slice(1))!(args, ctx));
  return { content: [{ type: 'text', text: JSON.stringify(answer, null, 2) }] };
}
