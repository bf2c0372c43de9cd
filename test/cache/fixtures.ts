/** Entries for tier-level tests, built the way the stage builds them. */
import { createHash } from 'node:crypto';
import { buildEntry, type StoreRequest } from '../../lib/cache/admission';
import type { CacheEntry } from '../../lib/cache/entry';

export function makeEntry(key: string, body: Buffer | string, headers: Record<string, string> = {}, ttl = 60_000): CacheEntry {
  const now = Date.now();
  const r: StoreRequest = {
    method: 'GET', path: '/x', query: '', headers: {}, body: null, params: { id: key }, baseKey: key,
    requestTime: now, rules: { ttl, staleWhileRevalidate: 0, staleIfError: 0, override: false }, storeIf: null, noStore: false,
  };
  const built = buildEntry(r, 200, { 'content-type': 'text/plain', ...headers }, Buffer.isBuffer(body) ? body : Buffer.from(body), now);
  if (built === null) throw new Error('not storable');
  return built.entry;
}

/** A body that proves its own integrity: "<key>|<version>|" then bytes derived from both. */
export function selfCheckingBody(key: string, version: number, length: number): Buffer {
  const head = Buffer.from(`${key}|${version}|`);
  const out = Buffer.alloc(Math.max(length, head.length + 1));
  head.copy(out);
  let seed = createHash('sha256').update(key + ':' + version).digest();
  for (let i = head.length; i < out.length; i += 32) {
    seed.copy(out, i, 0, Math.min(32, out.length - i));
    seed = createHash('sha256').update(seed).digest();
  }
  return out;
}

export function bodyIsSelfConsistent(body: Buffer): boolean {
  const text = body.subarray(0, 200).toString('latin1');
  const m = /^([^|]+)\|(\d+)\|/.exec(text);
  if (!m) return false;
  return selfCheckingBody(m[1], Number(m[2]), body.length).equals(body);
}
