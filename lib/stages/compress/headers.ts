/**
 * Response-head edits that compression needs: Vary merge, ETag weakening, no-transform detection.
 * Header values are as node gives them (string or string[] for repeated fields); names are lower-case.
 */
type HeaderValue = string | string[] | undefined;

function joined(v: HeaderValue): string {
  return v === undefined ? '' : Array.isArray(v) ? v.join(', ') : v;
}

/** True when a comma-separated header value lists `token` (case-insensitive, ignoring parameters). */
export function hasToken(v: HeaderValue, token: string): boolean {
  if (v === undefined) return false;
  const s = joined(v).toLowerCase();
  if (!s.includes(token)) return false; // fast path: most values never mention it
  for (const part of s.split(',')) {
    const eq = part.indexOf('=');
    if ((eq === -1 ? part : part.slice(0, eq)).trim() === token) return true;
  }
  return false;
}

/**
 * The Vary value with Accept-Encoding added once: kept as is when it already names it (any case) or is `*`
 * (varies on everything already); repeated Vary fields are folded into one.
 */
export function mergeVary(v: HeaderValue): string {
  if (v === undefined) return 'Accept-Encoding';
  const s = joined(v);
  if (hasToken(s, 'accept-encoding') || hasToken(s, '*')) return s;
  const trimmed = s.trim();
  return trimmed === '' ? 'Accept-Encoding' : `${trimmed}, Accept-Encoding`;
}

/**
 * A strong ETag made weak (`"x"` -> `W/"x"`): the encoded body is not byte-identical to the one the validator
 * names, but it is semantically the same representation (RFC 9110 §8.8.1). Weak tags are left alone.
 */
export function weakenEtag(etag: string): string {
  const t = etag.trim();
  return t.startsWith('W/') || t.startsWith('w/') ? t : `W/${t}`;
}
