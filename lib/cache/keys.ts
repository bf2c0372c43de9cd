/**
 * Cache keys. A key has two parts:
 *
 *   draft:42:script#3f9c1a0b7e2d4c6a
 *   └─ readable ──┘ └─ variant ─────┘
 *
 * - The readable part is the route's `cache.key` template filled from the route params. Invalidation and purge
 *   patterns are globs on it (`draft:42:*`), so it stays human-readable. Param values are percent-encoded so a
 *   value can never add a `:` segment, a glob character (`* ? [ ]`), a `/`, `..` or a control character: a
 *   client sending `draft_id: "*"` gets the key `draft:%2A:script`, which the pattern `draft:42:*` never hits.
 * - The variant part is a hash of everything else that makes responses differ: method, path, query, the body
 *   fields the route matched on (a JSON-RPC route: method + canonical params; a route naming no body field: the
 *   digest of the whole body, see key-shape.ts), every route param and the JSON type of those read from the body
 *   (so `{"draft_id": 4242}` and `{"draft_id": "4242"}` are two entries, both named `draft:4242:script`, and
 *   both removed by `draft:4242:*`), and (for the second level, see below) the request headers the stored
 *   response names in `Vary`.
 *
 * Vary is only known once a response exists, so a response that varies is stored in two levels: the base key
 * holds a small "vary marker" listing the header names, and the entry itself lives at `base.<hash of those
 * headers' values>`. A lookup that finds a marker computes the second key and looks again.
 */
import * as crypto from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { CompiledRoute } from '../routes/router';
import { getPath } from '../routes/router';

export const VARIANT_SEPARATOR = '#';

/** Characters allowed raw in a param value inside a key; everything else is percent-encoded (UTF-8). */
const SAFE = /^[A-Za-z0-9_\-]*$/;

export function encodeKeyParam(value: string): string {
  if (SAFE.test(value)) return value;
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += (byte < 0x80 && /[A-Za-z0-9_\-]/.test(c)) ? c : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** A key template compiled once per policy: literal pieces and param names, alternating. */
export class KeyTemplate {
  private readonly pieces: ReadonlyArray<string | { param: string }>;
  readonly params: readonly string[];

  constructor(readonly source: string) {
    const pieces: Array<string | { param: string }> = [];
    const re = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
    let last = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(source)) !== null) {
      if (m.index > last) pieces.push(source.slice(last, m.index));
      pieces.push({ param: m[1] });
      last = m.index + m[0].length;
    }
    if (last < source.length) pieces.push(source.slice(last));
    this.pieces = pieces;
    this.params = pieces.flatMap((p) => (typeof p === 'string' ? [] : [p.param]));
  }

  /** The readable key, or null when a param the template needs is missing (the request is not cached). */
  fill(params: Readonly<Record<string, string>>): string | null {
    let out = '';
    for (const p of this.pieces) {
      if (typeof p === 'string') {
        out += p;
      } else {
        const v = params[p.param];
        if (v === undefined || v === '') return null;
        out += encodeKeyParam(v);
      }
    }
    return out;
  }
}

export interface VariantInput {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly json: unknown;
  readonly params: Readonly<Record<string, string>>;
  /** Set when the entry is per user (identity params, or a per-credential variant). */
  readonly identity: string | null;
  /** What the body adds to the key beyond the matched fields (JSON-RPC method + params, or a whole-body digest; key-shape.ts). */
  readonly bodyPart?: string | null;
}

/** crypto.hash (one-shot, Node >= 20.12) is about twice as fast as createHash for short strings. */
const oneShot = (crypto as unknown as { hash?: (alg: string, data: string, enc: 'hex') => string }).hash;

/**
 * Recent request shapes and their hashes: the hit path asks for the same few shapes again and again, and a
 * Map lookup costs a fraction of a sha256 (~1.3 µs of a ~29 µs L1 hit). Bounded: emptied when full.
 */
const hashMemo = new Map<string, string>();
const HASH_MEMO_MAX = 4096;

/** 64 bits of sha256: a collision an attacker could aim at another user's entry is out of reach. */
function hash16(s: string): string {
  let h = hashMemo.get(s);
  if (h !== undefined) return h;
  h = (oneShot ? oneShot('sha256', s, 'hex') : crypto.createHash('sha256').update(s).digest('hex')).slice(0, 16);
  if (hashMemo.size >= HASH_MEMO_MAX) hashMemo.clear();
  hashMemo.set(s, h);
  return h;
}

/**
 * The base key: readable part + hash of the request's shape. HEAD is keyed as GET (a HEAD is answered from
 * the stored GET response, RFC 9111 §4).
 */
export function baseKey(readable: string, route: CompiledRoute, input: VariantInput): string {
  const method = input.method === 'HEAD' ? 'GET' : input.method;
  let s = method + '\n' + input.path + '\n' + normaliseQuery(input.query) + '\n';
  for (const p of route.bodyMatchPaths) s += p.join('.') + '=' + JSON.stringify(getPath(input.json, p) ?? null) + '\n';
  const names = Object.keys(input.params).sort();
  for (const n of names) s += n + '=' + input.params[n] + '\n';
  // Params are strings, but a JSON body can send 4242 or "4242", and an upstream may treat them as two things
  // (the draft service answers "not found" to the number): the JSON type of each body param is in the variant.
  for (const [n, src] of route.params) if (src.kind === 'body') s += n + ':' + jsonType(getPath(input.json, src.path)) + '\n';
  if (input.identity !== null) s += 'identity=' + input.identity + '\n';
  if (input.bodyPart) s += input.bodyPart + '\n';
  return readable + VARIANT_SEPARATOR + hash16(s);
}

function jsonType(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/** Query parameters sorted by name, so `?a=1&b=2` and `?b=2&a=1` share an entry. */
export function normaliseQuery(query: string): string {
  if (query === '') return '';
  const parts = query.split('&').filter((p) => p !== '');
  if (parts.length < 2) return parts.join('&');
  return parts.sort().join('&');
}

/** Header names from a Vary value, lower-case, sorted, deduplicated; ['*'] for `Vary: *`. */
export function parseVary(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const raw = (Array.isArray(value) ? value.join(',') : value).split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
  if (raw.includes('*')) return ['*'];
  return [...new Set(raw)].sort();
}

/**
 * Accept-Encoding reduced to the set of codings the sidecar can produce that the client accepts (q > 0): `gzip`,
 * `br`, `*` meaning both. Any coding stored under that set is one this client accepts, so "gzip", "gzip, deflate"
 * and "deflate, gzip, zstd" share one stored gzip variant instead of one copy each (store the encoded
 * variant once, serve it to every client that accepts it). Clients accepting neither share the identity variant.
 */
function producibleCodings(header: string): string {
  let gzip = false;
  let br = false;
  for (const raw of header.split(',')) {
    const [token, ...params] = raw.split(';');
    const coding = token.trim().toLowerCase();
    const q = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith('q='));
    if (q !== undefined && Number(q.slice(2)) === 0) continue;
    if (coding === 'gzip' || coding === 'x-gzip') gzip = true;
    else if (coding === 'br') br = true;
    else if (coding === '*') gzip = br = true;
  }
  return br ? (gzip ? 'br,gzip' : 'br') : gzip ? 'gzip' : '';
}

/** Request header value normalised for variant matching (whitespace; Accept-Encoding: see producibleCodings). */
function normaliseHeaderValue(name: string, v: string | string[] | undefined): string {
  if (v === undefined) return '';
  const s = Array.isArray(v) ? v.join(', ') : v;
  if (name === 'accept-encoding') return producibleCodings(s);
  return s.trim().replace(/\s+/g, ' ');
}

/** The second-level key of a response that varies on `names`. */
export function varyKey(base: string, names: readonly string[], headers: Record<string, string | string[] | undefined>): string {
  let s = '';
  for (const n of names) s += n + ':' + normaliseHeaderValue(n, headers[n]) + '\n';
  return base + '.' + hash16(s);
}

/** The readable part of a key (before the variant separator). */
export function readablePart(key: string): string {
  const i = key.indexOf(VARIANT_SEPARATOR);
  return i === -1 ? key : key.slice(0, i);
}

/**
 * Tags an entry is indexed under in L2, so invalidation can find keys without KEYS/SCAN: every `:`-prefix of
 * the readable part. `draft:42:script` -> `draft`, `draft:42`, `draft:42:script`.
 */
export function tagsOf(key: string): string[] {
  const readable = readablePart(key);
  const tags: string[] = [];
  let i = readable.indexOf(':');
  while (i !== -1) {
    tags.push(readable.slice(0, i));
    i = readable.indexOf(':', i + 1);
  }
  tags.push(readable);
  return tags;
}

/**
 * The most specific tag that covers every key a glob pattern can match: the literal prefix up to its last `:`
 * (`draft:42:*` -> `draft:42`; `draft:42:script` -> `draft:42:script`), or null when the pattern starts with
 * a glob (`*`) and no tag covers it.
 */
export function tagForPattern(pattern: string): string | null {
  const firstGlob = pattern.search(/[*?[\\]/);
  if (firstGlob === -1) return readablePart(pattern);
  const literal = pattern.slice(0, firstGlob);
  const colon = literal.lastIndexOf(':');
  if (colon <= 0) return null;
  return literal.slice(0, colon);
}

/** Redis-style glob (`*`, `?`, `[abc]`, `[^a]`, `\x`) compiled to an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '\\' && i + 1 < glob.length) re += escapeRe(glob[++i]);
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end === -1) { re += '\\['; continue; }
      let cls = glob.slice(i + 1, end);
      if (cls.startsWith('^')) cls = '^' + cls.slice(1).replace(/[\\\]]/g, '\\$&');
      else cls = cls.replace(/[\\\]^]/g, '\\$&');
      re += '[' + cls + ']';
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(re + '$', 's');
}

/** Characters with a meaning in a RegExp (and `/`): escaped one at a time as the glob is read. */
const RE_SPECIAL = new Set('.*+?^${}()|[]\\/');

function escapeRe(c: string): string {
  return RE_SPECIAL.has(c) ? '\\' + c : c;
}

/**
 * A purge/invalidation pattern matches a key when it matches the whole key, or the readable part (so
 * `draft:42:script` removes every variant of that entry).
 */
export function patternMatcher(pattern: string): (key: string) => boolean {
  let m = compiledPatterns.get(pattern);
  if (m === undefined) {
    const re = globToRegExp(pattern);
    m = (key) => re.test(key) || re.test(readablePart(key));
    compiledPatterns.set(pattern, m);
  }
  return m;
}

/**
 * Compiled patterns by their text. One invalidation event compiles the same patterns in each of its steps (the
 * recent-invalidations record, the L1 sweep, the disk sweep, the L2 removal) and a busy draft repeats its event;
 * bounded, since event patterns carry ids from requests.
 */
const compiledPatterns = new LRUCache<string, (key: string) => boolean>({ max: 1024 });
