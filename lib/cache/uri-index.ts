/**
 * Which stored keys belong to which target URI, for RFC 9111 §4.4: a non-error answer to an unsafe request
 * invalidates the stored answers for its URI (and for same-origin Location / Content-Location). Keys are route
 * templates, not URIs, so without this index that would need a scan of every tier.
 *
 * Bounded: past `maxKeys` the oldest keys are forgotten (an entry that outlives its index line is only kept
 * until its own expiry; the bound keeps a flood of distinct URIs from growing memory without limit).
 */
import { normaliseQuery } from './keys';

export const DEFAULT_MAX_KEYS = 200_000;

/** The URI an entry is indexed under: path plus sorted query (the origin is always the one upstream). */
export function uriOf(path: string, query: string): string {
  const q = normaliseQuery(query);
  return q === '' ? path : path + '?' + q;
}

/**
 * A same-origin Location / Content-Location as an index URI, or null when it names another origin (RFC 9111
 * §4.4 only invalidates URIs of the same origin). `host` is the request's Host.
 */
export function sameOriginUri(value: string | undefined, requestPath: string, host: string | undefined): string | null {
  if (value === undefined || value === '') return null;
  let u: URL;
  let base: URL;
  try {
    base = new URL(requestPath, `http://${host ?? 'localhost'}`);
    u = new URL(value, base);
  } catch {
    return null;
  }
  if (u.origin !== base.origin) return null;
  return uriOf(u.pathname, u.search.slice(1));
}

export class UriIndex {
  private readonly byUri = new Map<string, Set<string>>();
  /** key -> uri, in insertion order (the oldest first, for the bound). */
  private readonly byKey = new Map<string, string>();

  constructor(private readonly maxKeys = DEFAULT_MAX_KEYS) {}

  get size(): number {
    return this.byKey.size;
  }

  add(uri: string, key: string): void {
    const prev = this.byKey.get(key);
    if (prev === uri) return;
    if (prev !== undefined) this.forget(key);
    this.byKey.set(key, uri);
    let keys = this.byUri.get(uri);
    if (keys === undefined) this.byUri.set(uri, (keys = new Set()));
    keys.add(key);
    if (this.byKey.size > this.maxKeys) {
      const oldest = this.byKey.keys().next().value;
      if (oldest !== undefined) this.forget(oldest);
    }
  }

  /** The keys stored for `uri`, removed from the index. */
  take(uri: string): string[] {
    const keys = this.byUri.get(uri);
    if (keys === undefined) return [];
    this.byUri.delete(uri);
    for (const k of keys) this.byKey.delete(k);
    return [...keys];
  }

  forget(key: string): void {
    const uri = this.byKey.get(key);
    if (uri === undefined) return;
    this.byKey.delete(key);
    const keys = this.byUri.get(uri);
    if (keys === undefined) return;
    keys.delete(key);
    if (keys.size === 0) this.byUri.delete(uri);
  }
}
