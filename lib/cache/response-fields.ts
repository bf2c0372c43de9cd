/**
 * Which response fields belong to one client and which cache directives apply to this cache: the one place
 * that lists them.
 *
 * Per-client fields are never stored and never replayed to another client: a stored `Mcp-Session-Id` handed
 * out on a hit moves the receiving MCP client into the session of whoever filled the entry (the SDK client
 * adopts any session id it is given), and a stored cookie logs the next client in as the first.
 */
import type { Directives, Headers } from './cache-control';
import { parseCacheControl } from './cache-control';
import { HOP_BY_HOP } from '../util/hop-by-hop';

/** Fields that carry one client's state: never stored, never replayed. */
export const PER_CLIENT = new Set(['mcp-session-id', 'set-cookie', 'set-cookie2']);

/** Fields whose presence means the answer was made for one client (not stored without the origin's leave). */
export const SETS_CLIENT_STATE = ['set-cookie', 'set-cookie2'] as const;

/**
 * Fields recomputed for every answer (never taken from a stored one): rate-limit state, Age, Cache-Status,
 * Content-Length; this sidecar's own targeted cache control (never shown to clients).
 */
export const RECOMPUTED = new Set([
  'ratelimit', 'ratelimit-policy', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'retry-after',
  'age', 'cache-status', 'content-length',
]);

/** The targeted field aimed at this sidecar alone; it wins over CDN-Cache-Control and Cache-Control. */
export const OWN_CACHE_CONTROL = 'bridge-sidecar-cache-control';
/** RFC 9213 targeted field for CDNs and other shared caches in the origin's own service. */
export const CDN_CACHE_CONTROL = 'cdn-cache-control';

/** Names in Connection (they are hop-by-hop too); null when there is no Connection field. */
export function connectionTokens(headers: Headers): ReadonlySet<string> | null {
  const c = headers['connection'];
  if (c === undefined) return null;
  return new Set((Array.isArray(c) ? c.join(',') : c).split(',').map((s) => s.trim().toLowerCase()).filter(Boolean));
}

/**
 * Field names a qualified `no-cache="A, B"` or `private="C"` names (lower-case): RFC 9111 §5.2.2.4 and
 * §5.2.2.7 let the rest of the answer be stored and reused, without these fields.
 */
export function qualifiedFieldNames(cc: Directives): ReadonlySet<string> | null {
  let out: Set<string> | null = null;
  for (const d of ['no-cache', 'private']) {
    const arg = cc.get(d);
    if (arg === undefined || arg === '') continue;
    for (const n of arg.split(',')) {
      const name = n.trim().toLowerCase();
      if (name !== '') (out ??= new Set()).add(name);
    }
  }
  return out;
}

/** Unqualified `no-cache` / `private`: the whole answer is affected. */
export function isUnqualified(cc: Directives, name: 'no-cache' | 'private'): boolean {
  return cc.get(name) === '';
}

/**
 * The cache directives this cache obeys (RFC 9213 §2.2): `Bridge-Sidecar-Cache-Control` when it has a valid,
 * non-empty value, else `CDN-Cache-Control`, else `Cache-Control`. With a targeted field, Cache-Control and
 * Expires are ignored for this cache (they stay in the answer for the caches after it).
 */
export interface ResponseDirectives {
  readonly cc: Directives;
  /** Which field they came from. */
  readonly source: 'bridge-sidecar-cache-control' | 'cdn-cache-control' | 'cache-control';
}

export function responseDirectives(headers: Headers): ResponseDirectives {
  for (const source of [OWN_CACHE_CONTROL, CDN_CACHE_CONTROL] as const) {
    const v = headers[source];
    if (v === undefined) continue;
    const cc = parseCacheControl(v);
    if (cc.size > 0) return { cc, source };
  }
  return { cc: parseCacheControl(headers['cache-control']), source: 'cache-control' };
}

/**
 * Whether a response field may be stored (and so replayed). `named` are the fields a qualified
 * no-cache/private names.
 */
export function isStoredField(name: string, conn: ReadonlySet<string> | null, named: ReadonlySet<string> | null = null): boolean {
  if (HOP_BY_HOP.has(name) || PER_CLIENT.has(name) || RECOMPUTED.has(name)) return false;
  if (name.startsWith('x-ratelimit-')) return false;
  if (named !== null && named.has(name)) return false;
  return conn === null || !conn.has(name);
}

/** Whether a stored field is sent to a client on a hit (the sidecar's own targeted field never is). */
export function isClientVisible(name: string): boolean {
  return name !== OWN_CACHE_CONTROL;
}
