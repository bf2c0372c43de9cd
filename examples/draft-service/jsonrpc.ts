/**
 * JSON-RPC 2.0 on `POST /mcp`, as MCP clients speak it: `initialize`, `ping`, `tools/list`,
 * `tools/call {name, arguments}`, and the tools' names called directly as methods (`capcut_add_video`).
 * Batches and notifications (no `id`) are handled as the spec says.
 */
import { TOOLS, TOOLS_BY_NAME } from './catalog';
import { toEnvelope, type Args, type CallContext, type Operation } from './operations';

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;

type Id = string | number | null;
export interface RpcResponse {
  jsonrpc: '2.0';
  id: Id;
  result?: unknown;
  error?: { code: number; message: string };
}

export function rpcError(id: Id, code: number, message: string): RpcResponse {
  return { jsonrpc: '2.0', id, error: { code, message } };
}

const TOOLS_LIST = { tools: TOOLS.map(({ name, description, inputSchema }) => ({ name, description, inputSchema })) };
const INITIALIZE = {
  protocolVersion: '2025-03-26',
  capabilities: { tools: { listChanged: false } },
  serverInfo: { name: 'capcut-draft-service (bridge-sidecar example)', version: '1.0.0' },
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Answers one parsed request body; null when there is nothing to answer (only notifications). */
export function handleRpc(body: unknown, ops: ReadonlyMap<string, Operation>, ctx: CallContext): RpcResponse | RpcResponse[] | null {
  if (Array.isArray(body)) {
    if (body.length === 0) return rpcError(null, INVALID_REQUEST, 'empty batch');
    const out = body.map((one) => handleOne(one, ops, ctx)).filter((r): r is RpcResponse => r !== null);
    return out.length ? out : null;
  }
  return handleOne(body, ops, ctx);
}

function handleOne(req: unknown, ops: ReadonlyMap<string, Operation>, ctx: CallContext): RpcResponse | null {
  if (!isObject(req) || req.jsonrpc !== '2.0' || typeof req.method !== 'string') {
    const id = isObject(req) && (typeof req.id === 'string' || typeof req.id === 'number') ? req.id : null;
    return rpcError(id, INVALID_REQUEST, 'not a JSON-RPC 2.0 request');
  }
  const isNotification = !('id' in req);
  const id: Id = typeof req.id === 'string' || typeof req.id === 'number' ? req.id : null;
  const params = req.params === undefined ? {} : req.params;
  if (!isObject(params)) return isNotification ? null : rpcError(id, INVALID_PARAMS, 'params must be an object');
  const res = dispatch(req.method, params, ops, ctx, id);
  return isNotification ? null : res;
}

function dispatch(method: string, params: Args, ops: ReadonlyMap<string, Operation>, ctx: CallContext, id: Id): RpcResponse {
  switch (method) {
    case 'initialize':
      return { jsonrpc: '2.0', id, result: INITIALIZE };
    case 'ping':
      return { jsonrpc: '2.0', id, result: {} };
    case 'tools/list':
      return { jsonrpc: '2.0', id, result: TOOLS_LIST };
    case 'tools/call': {
      const name = params.name;
      const tool = typeof name === 'string' ? TOOLS_BY_NAME.get(name) : undefined;
      if (!tool) return rpcError(id, INVALID_PARAMS, `unknown tool ${JSON.stringify(name)}`);
      const args = params.arguments === undefined ? {} : params.arguments;
      if (!isObject(args)) return rpcError(id, INVALID_PARAMS, 'arguments must be an object');
      const env = toEnvelope(ops.get(tool.operation)!(args, ctx));
      return { jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: JSON.stringify(env) }], structuredContent: env, isError: !env.success } };
    }
    default: {
      const tool = TOOLS_BY_NAME.get(method);
      if (!tool) return rpcError(id, METHOD_NOT_FOUND, `method ${method} not found`);
      return { jsonrpc: '2.0', id, result: toEnvelope(ops.get(tool.operation)!(params, ctx)) };
    }
  }
}
