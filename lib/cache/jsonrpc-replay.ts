/**
 * A stored JSON-RPC answer replayed for another request: the stored bytes with the request's own id (see
 * jsonrpc.ts), encoded again when the stored body was compressed.
 */
import type { CacheEntry } from './entry';
import { storedHead } from './respond';
import { decodeBody, encodeBody } from './body-coding';
import { withId, withIdParts } from './jsonrpc';
import type { BodyParts } from './respond';

/** Decoded bodies of compressed entries (entries are immutable; the memo goes with the entry). */
const decoded = new WeakMap<CacheEntry, Buffer | null>();

/**
 * The body to send for `entry` to the request whose raw id is `id` (uncompressed: the stored bytes around the new id,
 * not copied); null when it cannot be made.
 */
export function replayBody(entry: CacheEntry, id: Buffer): Buffer | BodyParts | null {
  const body = entry.body;
  if (body === null) return null;
  const head = storedHead(entry.meta);
  if (head['content-encoding'] === undefined) return withIdParts(body, id);
  let raw = decoded.get(entry);
  if (raw === undefined) {
    raw = decodeBody(head, body);
    decoded.set(entry, raw);
  }
  if (raw === null) return null;
  const replaced = withId(raw, id);
  if (replaced === null) return null;
  return replaced === raw ? body : encodeBody(head, replaced);
}
