/**
 * Who is calling, as a key for per-user limits and `identity` route params.
 *
 * In order: the policy's identity header, else the `sub` claim of `Authorization: Bearer <JWT>` (decoded, NOT
 * verified: it only picks a bucket, it grants nothing), else the client address (the first X-Forwarded-For hop
 * only when the policy trusts the proxy in front, else the socket peer).
 *
 * Keys cannot collide across kinds or be chosen to land in someone else's bucket:
 *  - each kind has its own prefix (`h:`, `jwt:`, `ip:`);
 *  - a value that is long or has characters outside a small safe set is replaced by its SHA-256, under a
 *    different prefix (`h#`, `jwt#`), so a raw value can never equal a hashed one;
 *  - the result is at most ~50 characters whatever the client sends (memory and Redis key size stay bounded).
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { IdentityPolicy } from '../policy/types';
import type { IncomingHttpHeaders } from 'node:http';

/** What identity needs of a request (a RequestContext has it; `explain` builds one from a described request). */
export interface IdentitySource {
  readonly req: { readonly headers: IncomingHttpHeaders; readonly socket: { readonly remoteAddress?: string } };
}

/** Raw values up to this length made of SAFE characters are used as they are (readable in logs/Redis). */
const MAX_RAW = 40;
const SAFE = /^[A-Za-z0-9._@+-]+$/;
/** A JWT bigger than this is not decoded (a key only; do not spend CPU on attacker-sized tokens). */
const MAX_JWT = 8192;

/** Bounded, collision-free key for a value of one kind. */
export function identityKey(kind: 'h' | 'jwt', value: string): string {
  if (value.length <= MAX_RAW && SAFE.test(value)) return kind + ':' + value;
  return kind + '#' + createHash('sha256').update(value).digest('base64url').slice(0, 32);
}

/** The `sub` claim of a bearer JWT, or null when there is none or the token is not a decodable JWT. */
export function jwtSubject(authorization: string | undefined): string | null {
  if (!authorization || authorization.length > MAX_JWT) return null;
  if (authorization.length < 8 || authorization.slice(0, 7).toLowerCase() !== 'bearer ') return null;
  const token = authorization.slice(7).trim();
  const a = token.indexOf('.');
  const b = a === -1 ? -1 : token.indexOf('.', a + 1);
  if (a <= 0 || b === -1) return null;
  try {
    const payload: unknown = JSON.parse(Buffer.from(token.slice(a + 1, b), 'base64url').toString('utf8'));
    if (typeof payload !== 'object' || payload === null) return null;
    const sub = (payload as Record<string, unknown>).sub;
    if (typeof sub === 'string' && sub.length > 0) return sub;
    if (typeof sub === 'number' && Number.isFinite(sub)) return String(sub);
    return null;
  } catch {
    return null;
  }
}

/** `::ffff:10.0.0.1` and `10.0.0.1` are one client. */
function normaliseAddress(addr: string): string {
  return addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr.toLowerCase();
}

/** The client address: first X-Forwarded-For hop when trusted and well-formed, else the socket peer. */
export function clientAddress(ctx: IdentitySource, trustForwardedFor: boolean): string {
  if (trustForwardedFor) {
    const xff = ctx.req.headers['x-forwarded-for'];
    const raw = Array.isArray(xff) ? xff[0] : xff;
    if (raw) {
      const comma = raw.indexOf(',');
      let first = (comma === -1 ? raw : raw.slice(0, comma)).trim();
      // "[2001:db8::1]:443" / "1.2.3.4:5678" forms some proxies write
      if (first.startsWith('[')) first = first.slice(1, first.indexOf(']') === -1 ? undefined : first.indexOf(']'));
      else if (first.indexOf(':') !== -1 && first.indexOf(':') === first.lastIndexOf(':')) first = first.slice(0, first.indexOf(':'));
      if (isIP(first)) return normaliseAddress(first);
    }
  }
  const peer = ctx.req.socket.remoteAddress;
  return peer ? normaliseAddress(peer) : 'unknown';
}

/** The caller's identity key (always non-null: the client address is the last resort). */
export function resolveIdentity(ctx: IdentitySource, policy: IdentityPolicy | null): string {
  if (policy) {
    if (policy.header) {
      const v = ctx.req.headers[policy.header];
      const value = Array.isArray(v) ? v[0] : v;
      if (value) {
        const trimmed = value.trim();
        if (trimmed) return identityKey('h', trimmed);
      }
    }
    if (policy.jwt_sub) {
      const sub = jwtSubject(ctx.req.headers.authorization);
      if (sub !== null) return identityKey('jwt', sub);
    }
  }
  return 'ip:' + clientAddress(ctx, policy?.trust_forwarded_for ?? false);
}
