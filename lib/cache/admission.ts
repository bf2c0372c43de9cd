/**
 * Turning an upstream response into a stored entry: may it be stored (RFC 9111 §3 plus the route's rules),
 * under which key (Vary), with which freshness, and how a 304 refreshes an existing entry (§4.3.4).
 * Shared by the response filter (misses, revalidations) and the background refresher.
 */
import type { CacheEntry, EntryMeta } from './entry';
import { headerValue, storedFields, storedRequest } from './entry';
import type { Headers, RouteRules } from './http-semantics';
import { NOT_UPDATED_BY_304, freshness, initialAge, notStorableReason } from './http-semantics';
import { parseVary, varyKey } from './keys';
import { probeJson, probeWindow } from './json-probe';
import type { IdentityTail } from '../core/identity-tail';
import { decodeBody } from './body-coding';
import { storableResult } from './jsonrpc';
import type { JsonScalar } from '../policy/types';

/** The fields store_if reads (paths into the response JSON) and the value each must equal, in the same order. */
export interface StoreIf {
  readonly paths: ReadonlyArray<readonly string[]>;
  readonly values: readonly JsonScalar[];
}

/** `{"response.success": true}` -> paths [["success"]], values [true]; keys without `response.` are taken as-is. */
export function compileStoreIf(s: Readonly<Record<string, JsonScalar>> | null): StoreIf | null {
  if (s === null) return null;
  const entries = Object.entries(s);
  if (entries.length === 0) return null;
  return {
    paths: entries.map(([k]) => (k.startsWith('response.') ? k.slice(9) : k).split('.')),
    values: entries.map(([, v]) => v),
  };
}

/** What the cache knows about the request whose response it may store. */
export interface StoreRequest {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly headers: Headers;
  readonly body: Buffer | null;
  readonly params: Readonly<Record<string, string>>;
  readonly baseKey: string;
  /** Our clock when the request went upstream (for the RFC 9111 age calculation). */
  readonly requestTime: number;
  readonly rules: RouteRules;
  readonly storeIf: StoreIf | null;
  /** The client asked (and the policy lets it) not to store. */
  readonly noStore: boolean;
  /** The route caches JSON-RPC answers (key-shape.ts): only `result` answers are stored without a store_if. */
  readonly jsonrpc?: boolean;
}

/** Why the response head rules out storing, or null when the body may be stored. */
export function headNotStorable(status: number, headers: Headers, r: StoreRequest): string | null {
  if (r.method !== 'GET' && r.method !== 'POST') return 'method';
  if (r.noStore) return 'request-no-store';
  // an event stream is a live feed (MCP notifications, SSE-framed JSON-RPC answers), never a reusable answer
  const type = headers['content-type'];
  if (type !== undefined && /^\s*text\/event-stream/i.test(Array.isArray(type) ? type[0] : type)) return 'event-stream';
  return notStorableReason(status, headers, r.headers['authorization'] !== undefined, r.rules);
}

/** The Vary names used for the key: the response's, plus Accept-Encoding when the body is encoded. */
export function keyVary(headers: Headers): string[] {
  const names = parseVary(headers['vary']);
  if (headers['content-encoding'] !== undefined && !names.includes('accept-encoding')) {
    // the compressor chose an encoding from Accept-Encoding: never serve gzip to a client that did not ask
    names.push('accept-encoding');
    names.sort();
  }
  return names;
}

/**
 * store_if: every listed response JSON field equals its value. A body that is not JSON fails. The fields are
 * read with a probe that stops once it has them (see json-probe.ts): a 300 KB draft is not parsed whole to read
 * the `success` at its front.
 */
export function storeIfPasses(storeIf: StoreIf | null, headers: Headers, body: Buffer, jsonrpc = false, identityTail: IdentityTail | null = null): boolean {
  if (storeIf === null) return jsonrpc ? isJsonRpcResult(headers, body) : true;
  // an encoded body whose identity bytes the compressor kept the end of: the fields may be read there, undecoded
  let found = identityTail === null || headers['content-encoding'] === undefined ? null : probeIdentityTail(identityTail, storeIf);
  if (found === null) {
    const raw = decodeBody(headers, body);
    if (raw === null) return false;
    found = probeJson(raw, storeIf.paths);
  }
  if (found === null) return false;
  return storeIf.values.every((v, i) => found[i] === v);
}

function probeIdentityTail(tail: IdentityTail, storeIf: StoreIf): ReturnType<typeof probeJson> {
  const { bytes, whole } = tail.view();
  return whole ? probeJson(bytes, storeIf.paths) : probeWindow(bytes, tail.first, storeIf.paths);
}

/** A JSON-RPC route stores only success answers (`result`), unless its store_if says otherwise. */
function isJsonRpcResult(headers: Headers, body: Buffer): boolean {
  const raw = decodeBody(headers, body);
  // the id must be there too: a hit replaces it with the request's own
  return raw !== null && storableResult(raw);
}

export const VIA_TOKEN = '1.1 bridge-sidecar';

export interface Built {
  readonly key: string;
  readonly entry: CacheEntry;
  /** Vary marker to write at the base key, when the response varies. */
  readonly marker: CacheEntry | null;
}

/** Build the entry (and vary marker) for a storable response; null when it is not worth storing. */
export function buildEntry(r: StoreRequest, status: number, headers: Headers, body: Buffer, responseTime: number): Built | null {
  // the body's digest is left to the first write to a lower tier (EntryMeta.bodySha256)
  const meta = buildMeta(r, status, headers, body.length, '', responseTime);
  if (meta === null) return null;
  return { key: meta.key, entry: { meta, body }, marker: markerFor(r.baseKey, meta) };
}

/** The meta of an entry (body length and digest given), or null when it would be useless (stale on arrival). */
export function buildMeta(r: StoreRequest, status: number, headers: Headers, bodyLength: number, bodySha256: string, responseTime: number): EntryMeta | null {
  const vary = keyVary(headers);
  const key = vary.length ? varyKey(r.baseKey, vary, r.headers) : r.baseKey;
  const fields = storedFields(headers, VIA_TOKEN);
  const f = freshness(headers, responseTime, r.rules);
  const age0 = r.rules.override ? 0 : initialAge(headers, r.requestTime, responseTime);
  const freshUntil = responseTime + f.lifetime - age0;
  const swrUntil = f.staleWhileRevalidate > 0 ? freshUntil + f.staleWhileRevalidate : 0;
  const sieUntil = f.staleIfError > 0 ? freshUntil + f.staleIfError : 0;
  const etag = headerValue(fields, 'etag');
  const lastModified = headerValue(fields, 'last-modified');
  if (freshUntil <= responseTime && etag === null && lastModified === null && Math.max(swrUntil, sieUntil) <= responseTime) return null;
  return {
    v: 1,
    key,
    kind: 'response',
    vary,
    status,
    headers: fields,
    storedAt: responseTime,
    initialAge: age0,
    freshUntil,
    swrUntil,
    sieUntil,
    mustRevalidate: f.mustRevalidate,
    etag,
    lastModified,
    params: r.params,
    request: storedRequest(r.method, r.path, r.query, r.headers, vary, r.body),
    bodyLength,
    bodySha256,
  };
}

export function markerFor(baseKey: string, meta: EntryMeta): CacheEntry | null {
  if (meta.vary.length === 0) return null;
  const empty = Buffer.alloc(0);
  return {
    meta: {
      ...meta,
      key: baseKey,
      kind: 'vary',
      status: 0,
      headers: [],
      request: null,
      bodyLength: 0,
      bodySha256: '',
      external: undefined,
    },
    body: empty,
  };
}

/** RFC 9111 §4.3.4: a 304 updates the stored header fields and freshness; the body stays. */
export function refreshWith304(old: CacheEntry, r: StoreRequest, headers304: Headers, responseTime: number): Built | null {
  const merged: Record<string, string | string[]> = {};
  for (const [k, v] of old.meta.headers) {
    const prev = merged[k];
    merged[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  for (const name in headers304) {
    const v = headers304[name];
    const n = name.toLowerCase();
    if (v === undefined || NOT_UPDATED_BY_304.has(n)) continue;
    merged[n] = v;
  }
  if (headNotStorable(old.meta.status, merged, r) !== null) return null;
  const meta = buildMeta({ ...r, baseKey: r.baseKey }, old.meta.status, merged, old.meta.bodyLength, old.meta.bodySha256, responseTime);
  if (meta === null || old.body === null) return null;
  return { key: meta.key, entry: { meta, body: old.body }, marker: markerFor(r.baseKey, meta) };
}
