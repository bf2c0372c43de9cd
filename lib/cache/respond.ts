/**
 * Writing a cached entry to a client: the stored head plus what is computed per request (Age, Cache-Status,
 * Via, Content-Length, this request's rate-limit fields), 304 for a satisfied conditional GET/HEAD, and the
 * body from memory or streamed from L3.
 */
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { EntryMeta } from './entry';
import type { Headers } from './http-semantics';
import { conditionalMatches } from './http-semantics';
import { VIA_TOKEN } from './admission';
import { isClientVisible } from './response-fields';

export const CACHE_NAME = 'bridge-sidecar';

/** A body sent as consecutive parts, never joined (a replayed JSON-RPC answer: before its id, the id, after it). */
export type BodyParts = readonly Buffer[];

/** What a hit sends: the stored body, or parts of it around a replaced id. */
export type HitBody = Buffer | BodyParts;

export function hitBodyLength(body: HitBody): number {
  if (Buffer.isBuffer(body)) return body.length;
  let n = 0;
  for (const part of body) n += part.length;
  return n;
}

/** End `res` with `body`; parts go out as one write (corked: end uncorks), as a single buffer would. */
function endWith(res: ServerResponse, body: HitBody): void {
  if (Buffer.isBuffer(body)) {
    res.end(body);
    return;
  }
  res.cork();
  const last = body.length - 1;
  for (let i = 0; i < last; i++) res.write(body[i]);
  res.end(body[last]);
}

/** Fields of a 304 (RFC 9110 §15.4.5 keeps the rest of the stored head too, minus the content framing). */
const DROPPED_ON_304 = new Set(['content-length', 'content-encoding', 'content-range', 'transfer-encoding']);

/** The stored fields as a header object, built once per entry (entries are immutable). */
const headCache = new WeakMap<EntryMeta, Record<string, string | string[]>>();

export function storedHead(meta: EntryMeta): Record<string, string | string[]> {
  let h = headCache.get(meta);
  if (h === undefined) {
    h = {};
    for (const [k, v] of meta.headers) {
      if (!isClientVisible(k)) continue;
      const prev = h[k];
      h[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    headCache.set(meta, h);
  }
  return h;
}

/** Current age in whole seconds (RFC 9111 §4.2.3). */
export function ageSeconds(meta: EntryMeta, now: number): number {
  return Math.max(0, Math.floor((meta.initialAge + (now - meta.storedAt)) / 1000));
}

/** Remaining freshness in whole seconds, negative when stale (Cache-Status `ttl`). */
export function ttlSeconds(meta: EntryMeta, now: number): number {
  return Math.floor((meta.freshUntil - now) / 1000);
}

export function isConditional(req: Headers): boolean {
  return req['if-none-match'] !== undefined || req['if-modified-since'] !== undefined;
}

export function satisfiesConditional(method: string, req: Headers, meta: EntryMeta): boolean {
  if ((method !== 'GET' && method !== 'HEAD') || !isConditional(req)) return false;
  const date = storedHead(meta)['date'];
  return conditionalMatches(req, meta.etag, meta.lastModified, (Array.isArray(date) ? date[0] : date) ?? null);
}

/**
 * The full head for serving `meta`: stored fields, then this request's extra fields (rate limits), Via, Age
 * and Cache-Status. `conditional304` turns it into a 304 head.
 */
export function headFor(
  meta: EntryMeta,
  extra: ReadonlyArray<readonly [string, string]> | null,
  cacheStatus: string,
  now: number,
  conditional304: boolean,
  /** The length of the body actually sent, when it is not the stored one (a JSON-RPC answer with another id). */
  bodyLength: number = meta.bodyLength,
): { status: number; headers: Record<string, string | string[]> } {
  const headers: Record<string, string | string[]> = Object.assign({}, storedHead(meta));
  if (extra !== null) for (const [k, v] of extra) headers[k] = v;
  const via = headers['via'];
  headers['via'] = via === undefined ? VIA_TOKEN : `${Array.isArray(via) ? via.join(', ') : via}, ${VIA_TOKEN}`;
  headers['age'] = String(ageSeconds(meta, now));
  headers['cache-status'] = cacheStatus;
  if (conditional304) {
    for (const k of DROPPED_ON_304) delete headers[k];
    return { status: 304, headers };
  }
  headers['content-length'] = String(bodyLength);
  return { status: meta.status, headers };
}

/**
 * What every hit of one entry writes the same, built on its first serve and kept with it (entries are
 * immutable): the stored fields as a flat [name, value, ...] list in the shape writeHead takes, with Via already
 * joined to ours, followed by three reserved pairs (Age, Cache-Status, Content-Length) filled in per hit.
 */
interface PreparedHead {
  readonly list: Array<string | string[]>;
  /** Where the reserved pairs start. */
  readonly fixed: number;
  /** The names in the fixed part: an extra field of one of these names replaces it (the general path). */
  readonly names: ReadonlySet<string>;
  readonly contentLength: string;
}

/** The per-hit fields: never taken from the stored ones. */
const PER_HIT = new Set(['via', 'age', 'cache-status', 'content-length']);

const prepared = new WeakMap<EntryMeta, PreparedHead>();

function preparedHead(meta: EntryMeta): PreparedHead {
  let p = prepared.get(meta);
  if (p === undefined) {
    const stored = storedHead(meta);
    const list: Array<string | string[]> = [];
    for (const k in stored) if (!PER_HIT.has(k)) list.push(k, stored[k]!);
    const via = stored['via'];
    list.push('via', via === undefined ? VIA_TOKEN : `${Array.isArray(via) ? via.join(', ') : via}, ${VIA_TOKEN}`);
    const fixed = list.length;
    list.push('age', '', 'cache-status', '', 'content-length', '');
    p = { list, fixed, names: new Set(Object.keys(stored)), contentLength: String(meta.bodyLength) };
    prepared.set(meta, p);
  }
  return p;
}

/**
 * Answer a hit whose whole body is at hand and that is not a 304: the entry's prepared head with this hit's
 * Age, Cache-Status, Content-Length and extra fields (rate limits), written in one writeHead, then the body.
 * Returns false, having written nothing, when an extra field would replace a stored one: headFor's path does that.
 */
export function sendHit(
  res: ServerResponse,
  method: string,
  meta: EntryMeta,
  extra: ReadonlyArray<readonly [string, string]> | null,
  cacheStatus: string,
  now: number,
  body: HitBody,
): boolean {
  const p = preparedHead(meta);
  let list = p.list;
  if (extra !== null) {
    for (const [k] of extra) if (p.names.has(k) || PER_HIT.has(k)) return false;
    list = list.slice();
    for (const [k, v] of extra) list.push(k, v);
  }
  // writeHead reads the list synchronously and keeps none of it, so the entry's own list takes this hit's values
  const f = p.fixed;
  list[f + 1] = String(ageSeconds(meta, now));
  list[f + 3] = cacheStatus;
  const length = hitBodyLength(body);
  list[f + 5] = length === meta.bodyLength ? p.contentLength : String(length);
  res.writeHead(meta.status, list);
  if (method === 'HEAD' || meta.status === 204 || meta.status === 304) res.end();
  else endWith(res, body);
  return true;
}

/** Send an entry. `body` is the whole body, or `stream` opens it (large L3 entries). */
export function sendEntry(
  res: ServerResponse,
  method: string,
  head: { status: number; headers: Record<string, string | string[]> },
  body: HitBody | null,
  stream: (() => Readable) | null,
): void {
  res.writeHead(head.status, head.headers);
  if (method === 'HEAD' || head.status === 304 || head.status === 204) {
    res.end();
    return;
  }
  if (body !== null) {
    endWith(res, body);
    return;
  }
  if (stream !== null) {
    const s = stream();
    s.on('error', () => res.destroy());
    res.on('close', () => s.destroy());
    s.pipe(res);
    return;
  }
  res.end();
}
