/**
 * HTTP caching rules (RFC 9111, RFC 5861) for a shared cache in front of one origin.
 *
 * Hand-written rather than `http-cache-semantics`: that package models a client-side cache of whole request
 * and response objects, while this cache also stores POST reads that a route names, takes its default
 * freshness from the route's ttl, lets a route override the upstream, and keeps stale-window ends in its own
 * binary entry header. The rules here are small and each has a test in test/cache/http-semantics.test.ts.
 */

import type { Directives, Headers } from './cache-control';
import { deltaSeconds, parseCacheControl } from './cache-control';
import { parseAge, parseExpires, parseHttpDate } from './http-date';
import { SETS_CLIENT_STATE, isUnqualified, qualifiedFieldNames, responseDirectives } from './response-fields';

export type { Directives, Headers } from './cache-control';
export { parseCacheControl, deltaSeconds } from './cache-control';
export { parseHttpDate } from './http-date';

function first(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

/** Status codes this cache stores with only the route's ttl (heuristically cacheable, RFC 9110 §15.1). */
const HEURISTIC_STATUS = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);
/** Further final statuses it stores only when the upstream gives explicit freshness. */
const EXPLICIT_ONLY_STATUS = new Set([302, 307]);

export interface RouteRules {
  /** Freshness when the upstream gives none (ms). */
  readonly ttl: number;
  readonly staleWhileRevalidate: number;
  readonly staleIfError: number;
  /** The route's word wins over the upstream's Cache-Control / Expires / Set-Cookie. */
  readonly override: boolean;
}

export interface Freshness {
  /** ms the response is fresh for, counted from its generation (current age is subtracted by the caller). */
  readonly lifetime: number;
  /** Stale may never be served (no-cache, must-revalidate, proxy-revalidate, s-maxage). */
  readonly mustRevalidate: boolean;
  /** How long after going stale it may be served while one background refresh runs. */
  readonly staleWhileRevalidate: number;
  /** How long after going stale it may be served when the upstream fails. */
  readonly staleIfError: number;
}

/** Why a response is not stored, or null when it may be. */
export function notStorableReason(
  status: number,
  res: Headers,
  requestHasAuthorization: boolean,
  rules: RouteRules,
): string | null {
  if (!HEURISTIC_STATUS.has(status) && !EXPLICIT_ONLY_STATUS.has(status)) return 'status';
  const vary = res['vary'];
  if (vary !== undefined && (Array.isArray(vary) ? vary.join(',') : vary).split(',').some((v) => v.trim() === '*')) return 'vary-star';
  if (rules.override) return null;
  const { cc, source } = responseDirectives(res);
  if (cc.has('no-store')) return 'no-store';
  // a qualified private="X" only keeps the named fields out of the cache (RFC 9111 §5.2.2.7)
  if (isUnqualified(cc, 'private')) return 'private';
  // an answer that sets a cookie was made for one client, unless the origin names the cookie field in a
  // qualified no-cache/private: then the rest is shared and the cookie never stored (see response-fields.ts)
  const named = qualifiedFieldNames(cc);
  for (const f of SETS_CLIENT_STATE) if (res[f] !== undefined && (named === null || !named.has(f))) return 'set-cookie';
  // RFC 9111 §3.5: a shared cache stores a response to an authorised request only when the origin says so
  if (requestHasAuthorization && !cc.has('public') && !cc.has('s-maxage') && !cc.has('must-revalidate')) return 'authorization';
  if (EXPLICIT_ONLY_STATUS.has(status) && !hasExplicitFreshness(cc, res, source === 'cache-control')) return 'status';
  return null;
}

function hasExplicitFreshness(cc: Directives, res: Headers, expiresCounts: boolean): boolean {
  return cc.has('s-maxage') || cc.has('max-age') || (expiresCounts && res['expires'] !== undefined);
}

/** RFC 9111 §4.2.1 freshness lifetime, with the route's ttl standing in for the heuristic. */
export function freshness(res: Headers, responseTime: number, rules: RouteRules): Freshness {
  if (rules.override) {
    return { lifetime: rules.ttl, mustRevalidate: false, staleWhileRevalidate: rules.staleWhileRevalidate, staleIfError: rules.staleIfError };
  }
  // a targeted field (Bridge-Sidecar-Cache-Control, CDN-Cache-Control) replaces Cache-Control and Expires here
  const { cc, source } = responseDirectives(res);
  let lifetime: number;
  const sMaxAge = deltaSeconds(cc, 's-maxage');
  const maxAge = deltaSeconds(cc, 'max-age');
  if (sMaxAge !== null) lifetime = sMaxAge;
  else if (maxAge !== null) lifetime = maxAge;
  else if (source === 'cache-control' && res['expires'] !== undefined) {
    const expires = parseExpires(res['expires'], responseTime);
    const date = parseHttpDate(first(res['date']), responseTime);
    // an invalid Expires (e.g. "0"), or more than one, means already expired
    lifetime = Number.isNaN(expires) ? 0 : Math.max(0, expires - (Number.isNaN(date) ? responseTime : date));
  } else lifetime = rules.ttl;
  // a qualified no-cache="X" only keeps X out of what is stored (RFC 9111 §5.2.2.4); the rest is reused
  const noCache = isUnqualified(cc, 'no-cache');
  if (noCache) lifetime = 0;
  const mustRevalidate = noCache || cc.has('must-revalidate') || cc.has('proxy-revalidate') || sMaxAge !== null;
  const swr = deltaSeconds(cc, 'stale-while-revalidate');
  const sie = deltaSeconds(cc, 'stale-if-error');
  return {
    lifetime,
    mustRevalidate,
    staleWhileRevalidate: mustRevalidate ? 0 : (swr ?? rules.staleWhileRevalidate),
    staleIfError: mustRevalidate ? 0 : (sie ?? rules.staleIfError),
  };
}

/**
 * RFC 9111 §4.2.3 corrected initial age (ms): how old the response already was when it reached us.
 * requestTime/responseTime are our clock when the request left and the response head arrived.
 */
export function initialAge(res: Headers, requestTime: number, responseTime: number): number {
  const date = parseHttpDate(first(res['date']), responseTime);
  const apparent = Number.isNaN(date) ? 0 : Math.max(0, responseTime - date);
  const ageValue = (parseAge(res['age']) ?? 0) * 1000;
  const corrected = ageValue + Math.max(0, responseTime - requestTime);
  return Math.max(apparent, corrected);
}

/** What the client's own request headers ask of the cache. */
export interface RequestDirectives {
  /** Go to the upstream even with a fresh entry (no-cache, Pragma: no-cache, max-age=0). */
  readonly noCache: boolean;
  /** Do not store the response (request no-store). */
  readonly noStore: boolean;
  /** Answer only from cache, 504 otherwise. */
  readonly onlyIfCached: boolean;
}

const NO_DIRECTIVES: RequestDirectives = { noCache: false, noStore: false, onlyIfCached: false };

/**
 * A client's Cache-Control is honoured only when the policy says so (`cache.honor_client_no_cache`): otherwise
 * anyone could bust the cache at will. only-if-cached is always honoured (it can only avoid upstream work).
 */
export function requestDirectives(req: Headers, honourClient: boolean): RequestDirectives {
  const cc = req['cache-control'];
  const pragma = req['pragma'];
  if (cc === undefined && pragma === undefined) return NO_DIRECTIVES;
  const d = parseCacheControl(cc);
  const onlyIfCached = d.has('only-if-cached');
  if (!honourClient) return onlyIfCached ? { ...NO_DIRECTIVES, onlyIfCached } : NO_DIRECTIVES;
  const pragmaNoCache = cc === undefined && pragma !== undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(Array.isArray(pragma) ? pragma.join(',') : pragma);
  return {
    noCache: d.has('no-cache') || deltaSeconds(d, 'max-age') === 0 || pragmaNoCache,
    noStore: d.has('no-store'),
    onlyIfCached,
  };
}

/** Weak comparison of entity tags (RFC 9110 §8.8.3.2) against an If-None-Match list. */
export function ifNoneMatchMatches(ifNoneMatch: string, etag: string | null): boolean {
  if (etag === null) return false;
  const trimmed = ifNoneMatch.trim();
  if (trimmed === '*') return true;
  const opaque = etag.replace(/^W\//, '');
  for (const tag of trimmed.split(',')) {
    if (tag.trim().replace(/^W\//, '') === opaque) return true;
  }
  return false;
}

/**
 * Whether the client's conditional GET/HEAD is satisfied by a representation with these validators, i.e. the
 * answer is 304 (RFC 9110 §13.2.2: If-None-Match takes precedence over If-Modified-Since).
 */
export function conditionalMatches(req: Headers, etag: string | null, lastModified: string | null, date: string | null): boolean {
  const inm = first(req['if-none-match']);
  if (inm !== undefined) return ifNoneMatchMatches(inm, etag);
  const ims = parseHttpDate(first(req['if-modified-since']));
  if (Number.isNaN(ims)) return false;
  const lm = parseHttpDate(lastModified ?? date ?? undefined);
  if (Number.isNaN(lm)) return false;
  return lm <= ims;
}

/** Header fields a 304 must not overwrite in the stored response (RFC 9111 §3.2). */
export const NOT_UPDATED_BY_304 = new Set(['content-length', 'content-encoding', 'transfer-encoding', 'content-range']);
