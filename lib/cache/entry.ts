/**
 * The stored form of a cached response, shared by all tiers.
 *
 * Binary layout (L2 values and L3 files; L1 keeps the decoded object):
 *
 *   "BSC1" | u32 BE metaLength | sha256(meta) (32 bytes) | meta (UTF-8 JSON) | body (raw bytes)
 *
 * `meta` carries the response head and everything the cache needs to judge it (times, validators), the route
 * params (for cascading invalidation) and the request that produced it (to replay it for warm-up and
 * background refresh), plus the body's length and sha256. A reader checks the meta digest, the body length
 * and the body digest: anything torn or corrupted is rejected, never served.
 */
import { createHash } from 'node:crypto';
import { parseCacheControl } from './cache-control';
import { connectionTokens, isStoredField, qualifiedFieldNames, responseDirectives } from './response-fields';

export { isStoredField } from './response-fields';

export const MAGIC = Buffer.from('BSC1', 'latin1');
export const PREFIX_BYTES = 4 + 4 + 32;
/** A meta block larger than this is certainly corrupt (keeps a bad length from allocating gigabytes). */
export const MAX_META_BYTES = 16 * 1024 * 1024;

export interface StoredRequest {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  /** The request headers needed to replay it (the Vary-named ones and content-type), lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  /** The request body as UTF-8 text or base64, or null. */
  readonly body: string | null;
  readonly bodyEncoding: 'utf8' | 'base64';
}

export interface EntryMeta {
  readonly v: 1;
  readonly key: string;
  /** 'vary': a marker at the base key naming the headers the real entry varies on (see keys.ts). */
  readonly kind: 'response' | 'vary';
  /** Header names of the response's Vary (lower-case, sorted). */
  readonly vary: readonly string[];
  readonly status: number;
  /** Stored response fields, lower-case names, repeated names as separate pairs. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** Our clock (epoch ms) when the response arrived. */
  readonly storedAt: number;
  /** RFC 9111 corrected initial age (ms). */
  readonly initialAge: number;
  /** Epoch ms: fresh until, then stale. Already corrected for the initial age. */
  readonly freshUntil: number;
  /** Epoch ms up to which a stale copy may be served while one refresh runs (<= freshUntil: never). */
  readonly swrUntil: number;
  /** Epoch ms up to which a stale copy may be served when the upstream fails (<= freshUntil: never). */
  readonly sieUntil: number;
  readonly mustRevalidate: boolean;
  readonly etag: string | null;
  readonly lastModified: string | null;
  readonly params: Readonly<Record<string, string>>;
  readonly request: StoredRequest | null;
  readonly bodyLength: number;
  /**
   * The body's sha256 (hex), checked by every L2 and L3 reader. '' in an entry stored from an answer until it is
   * first encoded for a lower tier (encodeEntry fills it in): only those tiers need it, and computing it when the
   * entry is stored would hold the answer (~170 µs for a 300 KB draft) on routes with no lower tier.
   */
  readonly bodySha256: string;
  /** The body is not in this record but in a separate file beside it (large L3 entries, see l3.ts). */
  readonly external?: boolean;
}

export interface CacheEntry {
  readonly meta: EntryMeta;
  /** The whole body, or null for a large L3 entry that is streamed from its file (see l3.ts). */
  readonly body: Buffer | null;
}

/** How long the entry is worth keeping (ms from now): until its last stale window ends, or while it can revalidate. */
export function retentionMs(meta: EntryMeta, now: number, tierTtl: number): number {
  const staleEnd = Math.max(meta.freshUntil, meta.swrUntil, meta.sieUntil);
  const canRevalidate = meta.etag !== null || meta.lastModified !== null;
  const until = canRevalidate ? now + tierTtl : Math.min(staleEnd, now + tierTtl);
  return Math.max(0, until - now);
}

export function sha256hex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * Bytes made from an entry on its first serve and kept as long as it lives (a JSON-RPC replay's compressed halves,
 * a decoded body: lib/cache/jsonrpc-replay.ts). They are counted in its size (see l1.ts chargeDerived), or an L1
 * full of replayed answers would hold up to twice its budget. Entries are immutable, so the count lives beside them.
 */
const derived = new WeakMap<CacheEntry, number>();

export function derivedBytes(e: CacheEntry): number {
  return derived.get(e) ?? 0;
}

export function addDerivedBytes(e: CacheEntry, bytes: number): void {
  derived.set(e, derivedBytes(e) + bytes);
}

/** The approximate memory an entry holds: body, header strings, key and meta overhead, and what was derived from it. */
export function entrySize(e: CacheEntry): number {
  let n = 256 + e.meta.key.length * 2;
  for (const [k, v] of e.meta.headers) n += (k.length + v.length) * 2 + 32;
  if (e.meta.request?.body) n += e.meta.request.body.length * 2;
  return n + (e.body?.length ?? 0) + derivedBytes(e);
}

export function encodeMeta(meta: EntryMeta): Buffer {
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const prefix = Buffer.allocUnsafe(PREFIX_BYTES);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32BE(json.length, 4);
  createHash('sha256').update(json).digest().copy(prefix, 8);
  return Buffer.concat([prefix, json]);
}

/** Digests of stored bodies, computed on an entry's first write to a lower tier (bodies are never changed). */
const bodyDigests = new WeakMap<Buffer, string>();

function bodyDigest(body: Buffer): string {
  let d = bodyDigests.get(body);
  if (d === undefined) bodyDigests.set(body, (d = sha256hex(body)));
  return d;
}

/** Serialise an entry with its body (L2 values, small L3 files); a digest not yet computed is computed here. */
export function encodeEntry(e: CacheEntry): Buffer {
  const body = e.body ?? EMPTY;
  const meta = e.meta.bodySha256 === '' ? { ...e.meta, bodySha256: bodyDigest(body) } : e.meta;
  const head = encodeMeta(meta);
  return body.length ? Buffer.concat([head, body]) : head;
}

const EMPTY = Buffer.alloc(0);

export class CorruptEntryError extends Error {}

/** Parse the prefix + meta of a buffer that starts with an encoded entry; throws CorruptEntryError. */
export function decodeMeta(buf: Buffer): { meta: EntryMeta; bodyOffset: number } {
  if (buf.length < PREFIX_BYTES || !buf.subarray(0, 4).equals(MAGIC)) throw new CorruptEntryError('bad magic');
  const len = buf.readUInt32BE(4);
  if (len > MAX_META_BYTES || PREFIX_BYTES + len > buf.length) throw new CorruptEntryError('truncated meta');
  const json = buf.subarray(PREFIX_BYTES, PREFIX_BYTES + len);
  const digest = createHash('sha256').update(json).digest();
  if (!digest.equals(buf.subarray(8, PREFIX_BYTES))) throw new CorruptEntryError('meta digest mismatch');
  let meta: EntryMeta;
  try {
    meta = JSON.parse(json.toString('utf8')) as EntryMeta;
  } catch {
    throw new CorruptEntryError('meta is not JSON');
  }
  if (meta === null || typeof meta !== 'object' || meta.v !== 1 || typeof meta.key !== 'string') throw new CorruptEntryError('meta version');
  return { meta, bodyOffset: PREFIX_BYTES + len };
}

/** Parse and verify a whole encoded entry; throws CorruptEntryError on any mismatch. */
export function decodeEntry(buf: Buffer): CacheEntry {
  const { meta, bodyOffset } = decodeMeta(buf);
  const body = buf.subarray(bodyOffset);
  if (body.length !== meta.bodyLength) throw new CorruptEntryError('body length mismatch');
  if (sha256hex(body) !== meta.bodySha256) throw new CorruptEntryError('body digest mismatch');
  return { meta, body };
}

/** Read the meta length from the fixed prefix (for readers that fetch the meta separately). */
export function metaLengthFromPrefix(prefix: Buffer): number {
  if (prefix.length < PREFIX_BYTES || !prefix.subarray(0, 4).equals(MAGIC)) throw new CorruptEntryError('bad magic');
  const len = prefix.readUInt32BE(4);
  if (len > MAX_META_BYTES) throw new CorruptEntryError('meta too large');
  return len;
}

// ---- which response fields are stored -------------------------------------------------------------------

/** Remove this proxy's own hop from a Via value ("1.1 bridge-sidecar" is re-added when serving). */
export function stripOwnVia(v: string, own: string): string {
  return v.split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== own).join(', ');
}

/**
 * The response fields to store, in order, with names lower-case: everything but the per-client, hop-by-hop and
 * recomputed fields (response-fields.ts) and the fields a qualified no-cache/private names.
 */
export function storedFields(
  headers: Record<string, string | string[] | undefined>,
  ownVia: string,
): Array<[string, string]> {
  const conn = connectionTokens(headers);
  const named = namedByDirectives(headers);
  const out: Array<[string, string]> = [];
  for (const rawName in headers) {
    const v = headers[rawName];
    if (v === undefined) continue;
    const name = rawName.toLowerCase();
    if (!isStoredField(name, conn, named)) continue;
    if (name === 'via') {
      const rest = stripOwnVia(Array.isArray(v) ? v.join(', ') : v, ownVia);
      if (rest !== '') out.push([name, rest]);
      continue;
    }
    if (Array.isArray(v)) for (const x of v) out.push([name, x]);
    else out.push([name, v]);
  }
  return out;
}

/**
 * Fields named by a qualified no-cache/private in any of the cache-control fields: also those of Cache-Control
 * when a targeted field decides freshness, since they say what is one client's.
 */
function namedByDirectives(headers: Record<string, string | string[] | undefined>): ReadonlySet<string> | null {
  const targeted = responseDirectives(headers);
  const a = qualifiedFieldNames(targeted.cc);
  if (targeted.source === 'cache-control') return a;
  const b = qualifiedFieldNames(parseCacheControl(headers['cache-control']));
  if (a === null) return b;
  if (b === null) return a;
  return new Set([...a, ...b]);
}

export function headerValue(fields: ReadonlyArray<readonly [string, string]>, name: string): string | null {
  for (const [k, v] of fields) if (k === name) return v;
  return null;
}

/** Replay data for a request (warm-up, background refresh). Bodies that are not UTF-8 are kept as base64. */
export function storedRequest(
  method: string,
  path: string,
  query: string,
  headers: Record<string, string | string[] | undefined>,
  names: readonly string[],
  body: Buffer | null,
): StoredRequest {
  const keep: Record<string, string> = {};
  for (const n of ['content-type', 'accept', ...names]) {
    const v = headers[n];
    if (v !== undefined) keep[n] = Array.isArray(v) ? v.join(', ') : v;
  }
  let text: string | null = null;
  let enc: 'utf8' | 'base64' = 'utf8';
  if (body && body.length) {
    text = body.toString('utf8');
    if (!Buffer.from(text, 'utf8').equals(body)) {
      text = body.toString('base64');
      enc = 'base64';
    }
  }
  return { method, path, query, headers: keep, body: text, bodyEncoding: enc };
}

export function requestBody(r: StoredRequest): Buffer | null {
  if (r.body === null) return null;
  return Buffer.from(r.body, r.bodyEncoding);
}
