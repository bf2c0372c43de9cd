/**
 * JSON-RPC 2.0 answers in the cache (what MCP clients speak on /mcp).
 *
 * A JSON-RPC answer depends on the method and its params, never on the id: the id only pairs the answer with
 * the request on the client's side. So the key is the method plus a canonical form of params (object keys
 * sorted, so their order does not matter), and a stored answer is replayed with the current request's id put
 * in place of the stored one, byte for byte as the client sent it (string, number or null); every other byte
 * stays as stored. Notifications (no id: the server answers 202 with no body) and batches (arrays) are never
 * answered from the cache.
 */
import { memberSpan, memberSpans, type Span } from './json-probe';

export type JsonRpcRequest =
  | { readonly kind: 'call'; readonly method: string; readonly params: unknown }
  | { readonly kind: 'notification' }
  | { readonly kind: 'batch' }
  | { readonly kind: 'invalid' };

const NOTIFICATION: JsonRpcRequest = { kind: 'notification' };
const BATCH: JsonRpcRequest = { kind: 'batch' };
const INVALID: JsonRpcRequest = { kind: 'invalid' };

/** What kind of JSON-RPC message a parsed request body is. */
export function classifyJsonRpc(json: unknown): JsonRpcRequest {
  if (Array.isArray(json)) return BATCH;
  if (json === null || typeof json !== 'object') return INVALID;
  const o = json as Record<string, unknown>;
  if (typeof o.method !== 'string') return INVALID;
  if (!('id' in o)) return NOTIFICATION;
  const id = o.id;
  if (id !== null && typeof id !== 'string' && typeof id !== 'number') return INVALID;
  return { kind: 'call', method: o.method, params: o.params };
}

/** JSON with object keys sorted at every depth: equal values give equal text, whatever the key order. */
export function canonicalJson(v: unknown): string {
  if (v === undefined) return 'null';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']';
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k])).join(',') + '}';
}

/** The part of a cache key a JSON-RPC call contributes: method and canonical params. */
export function jsonRpcKeyPart(method: string, params: unknown): string {
  return 'jsonrpc:' + method + '\n' + canonicalJson(params);
}

/** The raw bytes of the request's `id` value, exactly as the client sent them; null when there is none. */
export function rawId(body: Buffer | null): Buffer | null {
  if (body === null) return null;
  const s = memberSpan(body, 'id');
  return s === null ? null : body.subarray(s.start, s.end);
}

/**
 * Where a stored answer's top-level id is. Finding it walks the whole answer (to check it is one JSON object, and
 * for the last of duplicated ids): for an MCP tool's answer of 100 KB that is ~200 µs, on every hit. Stored bodies
 * are never changed, so it is found once per body (held weakly: it goes with the entry).
 */
const idSpans = new WeakMap<Buffer, Span | null>();

/**
 * The stored answer with its `id` replaced by `id` (raw JSON bytes), as the parts to send one after the other:
 * the bytes before the stored id, the new id, the bytes after it. None is a copy, so a hit on a 300 KB MCP answer
 * copies nothing (joined, it was a fresh 300 KB buffer per hit). The stored body itself when the ids are equal;
 * null when it has no top-level id (then it must not be replayed as a JSON-RPC answer).
 */
export function withIdParts(stored: Buffer, id: Buffer): Buffer | [Buffer, Buffer, Buffer] | null {
  const s = idSpanOf(stored);
  if (s === null) return null;
  if (s.end - s.start === id.length && stored.subarray(s.start, s.end).equals(id)) return stored;
  return [stored.subarray(0, s.start), id, stored.subarray(s.end)];
}

/** Where the stored answer's top-level id is, found once per body; null when it has none. */
export function idSpanOf(stored: Buffer): Span | null {
  let s = idSpans.get(stored);
  if (s === undefined) idSpans.set(stored, (s = memberSpan(stored, 'id')));
  return s;
}

/** withIdParts joined into one buffer (for a body that is encoded again after the replacement). */
export function withId(stored: Buffer, id: Buffer): Buffer | null {
  const parts = withIdParts(stored, id);
  return parts === null || Buffer.isBuffer(parts) ? parts : Buffer.concat(parts);
}

/**
 * A JSON-RPC answer that may be stored: a result (not an error) with a top-level id (a hit replaces it with the
 * request's own). One walk of the answer; where its id is, is kept for the hits on this very body.
 */
export function storableResult(body: Buffer): boolean {
  const spans = memberSpans(body, ['result', 'id']);
  if (spans === null) return false;
  idSpans.set(body, spans[1]);
  return spans[0] !== null && spans[1] !== null;
}
