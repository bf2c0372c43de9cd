/**
 * Content-coding negotiation, shared by the compression filter and the response cache.
 *
 * API (for the cache, which stores the encoded variant once and serves it to every client):
 *
 *   negotiate(acceptEncoding, available) -> 'gzip' | 'br' | 'identity' | null
 *       Which coding to send, by RFC 9110 §12.5.3. `available` lists the codings we could produce, in the
 *       operator's order of preference (policy `compression.algorithm`), e.g. ['br', 'gzip'], or for a cache entry
 *       stored as gzip just ['gzip']. `identity` is always considered available (we can always decode or not
 *       encode). Rules:
 *         - no Accept-Encoding header, or an empty one: 'identity' (like nginx, never compress unasked);
 *         - each coding's q is its own entry's q, else the `*` entry's q, else 0; `x-gzip` counts as gzip;
 *         - identity's q is its own entry's q, else the `*` entry's q; not named at all, it is acceptable but
 *           below every coding the client listed (so "gzip;q=0.5" still gets gzip);
 *         - the coding with the highest q > 0 wins; ties go to the earlier one in `available` (policy order);
 *         - identity wins only when its q is strictly higher than the best coding's ("gzip;q=0.5, identity"
 *           chooses identity);
 *         - null: nothing is acceptable ("gzip;q=0, identity;q=0" or "*;q=0" with no coding available).
 *       What to do with null: send identity anyway. That is what nginx does (it never answers 406 for
 *       Accept-Encoding) and what RFC 9110 §12.5.3 recommends ("the origin server SHOULD send a response without
 *       any content coding"); a 406 would break clients over a header they rarely get right. The compression
 *       filter does exactly this; the cache should too.
 *
 *   isCompressible(contentType, policy) -> boolean
 *       Whether a Content-Type is in `policy.types` (media type only, parameters ignored, case-insensitive;
 *       `text/*` and `application/*+json` style wildcards). `text/event-stream` is only compressible when the list
 *       names it exactly: a wildcard never turns on compression of server-sent events.
 *
 *   decoderFor(encoding) -> Transform
 *       A streaming decoder (zlib's async API, runs on the libuv pool) for 'gzip' (also x-gzip), 'br' or
 *       'deflate'; a PassThrough for 'identity'. So a cache hit stored as gzip is served to an identity-only
 *       client as `entryBody -> decoderFor('gzip') -> res` (drop Content-Encoding and Content-Length, keep Vary).
 *       Throws on an unknown coding.
 */
import { PassThrough, type Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { CompressionPolicy } from '../../policy/types';

export type Coding = 'gzip' | 'br';
export type Choice = Coding | 'identity';

/** q-values of one Accept-Encoding value; -1 = not mentioned. */
interface Weights {
  gzip: number;
  br: number;
  identity: number;
  star: number;
}

/** The q of each coding we care about in an Accept-Encoding value (others are ignored). */
export function parseAcceptEncoding(value: string): Weights {
  const w: Weights = { gzip: -1, br: -1, identity: -1, star: -1 };
  let i = 0;
  const n = value.length;
  while (i < n) {
    let end = value.indexOf(',', i);
    if (end === -1) end = n;
    const item = value.slice(i, end);
    i = end + 1;
    const semi = item.indexOf(';');
    const coding = (semi === -1 ? item : item.slice(0, semi)).trim().toLowerCase();
    if (coding === '') continue;
    const q = semi === -1 ? 1 : parseQ(item.slice(semi + 1));
    switch (coding) {
      case 'gzip':
      case 'x-gzip':
        w.gzip = Math.max(w.gzip, q);
        break;
      case 'br': w.br = Math.max(w.br, q); break;
      case 'identity': w.identity = Math.max(w.identity, q); break;
      case '*': w.star = Math.max(w.star, q); break;
    }
  }
  return w;
}

/** The q parameter of "q=0.5" (other parameters are ignored); malformed q counts as 1, like most servers. */
function parseQ(params: string): number {
  for (const p of params.split(';')) {
    const eq = p.indexOf('=');
    if (eq === -1 || p.slice(0, eq).trim().toLowerCase() !== 'q') continue;
    const q = Number(p.slice(eq + 1).trim());
    if (!Number.isFinite(q)) return 1;
    return Math.min(1, Math.max(0, q));
  }
  return 1;
}

/** Below the smallest q a client can write (0.001). */
const UNLISTED_IDENTITY_Q = 0.0001;

/** See the file header. */
export function negotiate(acceptEncoding: string | string[] | undefined, available: readonly string[]): Choice | null {
  if (acceptEncoding === undefined) return 'identity';
  const value = Array.isArray(acceptEncoding) ? acceptEncoding.join(',') : acceptEncoding;
  if (value.trim() === '') return 'identity';
  const w = parseAcceptEncoding(value);
  let best: Coding | null = null;
  let bestQ = 0;
  for (const a of available) {
    if (a !== 'gzip' && a !== 'br') continue;
    const own = w[a];
    const q = own >= 0 ? own : w.star >= 0 ? w.star : 0;
    if (q > bestQ) {
      best = a;
      bestQ = q;
    }
  }
  // identity not named: acceptable, but below any coding the client listed (RFC 9110 gives it no q of its own)
  const identityQ = w.identity >= 0 ? w.identity : w.star >= 0 ? w.star : UNLISTED_IDENTITY_Q;
  if (best !== null && bestQ >= identityQ) return best;
  if (identityQ > 0) return 'identity';
  return best;
}

/** One entry of the types list, compiled. */
type TypeMatcher = (mediaType: string) => boolean;

function compileType(pattern: string): TypeMatcher {
  const p = pattern.trim().toLowerCase();
  if (!p.includes('*')) return (t) => t === p;
  // `*` stands for any run of characters within one part of the media type (never the slash)
  const re = new RegExp('^' + p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\/-]/g, '\\$&')).join('[^/]*') + '$');
  return (t) => re.test(t);
}

const SSE = 'text/event-stream';

/** A compiled `types` list: media type -> compressible, with a small memo (few distinct types per upstream). */
export class TypeList {
  private readonly matchers: TypeMatcher[];
  private readonly sseListed: boolean;
  private readonly memo = new Map<string, boolean>();

  constructor(types: readonly string[]) {
    this.matchers = types.map(compileType);
    this.sseListed = types.some((t) => t.trim().toLowerCase() === SSE);
  }

  /** `contentType` as sent (parameters allowed); undefined or empty is never compressible. */
  matches(contentType: string | string[] | undefined): boolean {
    if (contentType === undefined) return false;
    const raw = Array.isArray(contentType) ? contentType[0] ?? '' : contentType;
    let hit = this.memo.get(raw);
    if (hit !== undefined) return hit;
    hit = this.compute(raw);
    if (this.memo.size >= 256) this.memo.clear(); // bounded: Content-Type comes from the upstream
    this.memo.set(raw, hit);
    return hit;
  }

  private compute(raw: string): boolean {
    const semi = raw.indexOf(';');
    const media = (semi === -1 ? raw : raw.slice(0, semi)).trim().toLowerCase();
    if (media === '') return false;
    if (media === SSE) return this.sseListed;
    return this.matchers.some((m) => m(media));
  }
}

const lists = new WeakMap<readonly string[], TypeList>();

/** The compiled list for a policy's `types` (compiled once per policy: the policy is frozen). */
export function typeListFor(policy: CompressionPolicy): TypeList {
  let l = lists.get(policy.types);
  if (l === undefined) {
    l = new TypeList(policy.types);
    lists.set(policy.types, l);
  }
  return l;
}

/** See the file header. */
export function isCompressible(contentType: string | string[] | undefined, policy: CompressionPolicy): boolean {
  return typeListFor(policy).matches(contentType);
}

/** See the file header. */
export function decoderFor(encoding: string): Transform {
  switch (encoding.trim().toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return createGunzip();
    case 'br':
      return createBrotliDecompress();
    case 'deflate':
      return createInflate();
    case 'identity':
    case '':
      return new PassThrough();
    default:
      throw new Error(`no decoder for content coding "${encoding}"`);
  }
}
