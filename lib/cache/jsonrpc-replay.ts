/**
 * A stored JSON-RPC answer replayed for another request: the stored bytes with the request's own id (see
 * jsonrpc.ts). A gzip answer (what the compressor stores) is spliced around the new id (gzip-splice.ts); a br or
 * deflate one is sent as spliced gzip to a request that accepts gzip, and otherwise decoded, changed and encoded
 * again.
 */
import type { CacheEntry } from './entry';
import { storedHead, type BodyParts } from './respond';
import { codingOf, decodeBody, encodeBody } from './body-coding';
import { idSpanOf, withId, withIdParts } from './jsonrpc';
import { GzipSplice } from './gzip-splice';
import { chargeDerived } from './l1';

/** Decoded bodies of compressed entries (entries are immutable; the memo goes with the entry). */
const decoded = new WeakMap<CacheEntry, Buffer | null>();

/** An entry's answer cut at its id and its halves gzipped once, on its first replay (as gzip). */
interface Splice {
  readonly storedId: Buffer;
  readonly splice: GzipSplice;
}

/** null: the stored body does not decode, or has no top-level id. */
const splices = new WeakMap<CacheEntry, Splice | null>();

function spliceOf(head: Record<string, string | string[]>, body: Buffer): Splice | null {
  const raw = decodeBody(head, body);
  const span = raw === null ? null : idSpanOf(raw);
  if (raw === null || span === null) return null;
  // the id copied: a view would keep the whole decoded answer alive with the entry
  return { storedId: Buffer.from(raw.subarray(span.start, span.end)), splice: new GzipSplice(raw.subarray(0, span.start), raw.subarray(span.end)) };
}

/** The entry's splice, made on its first replay as gzip and counted in the entry's size in L1 from then on. */
function spliceFor(entry: CacheEntry, body: Buffer): Splice | null {
  let sp = splices.get(entry);
  if (sp === undefined) {
    splices.set(entry, (sp = spliceOf(storedHead(entry.meta), body)));
    if (sp !== null) chargeDerived(entry, sp.splice.bytes + sp.storedId.length);
  }
  return sp;
}

/** The stored answer's content coding, as replayBody takes it ('' for none). */
export function storedCoding(entry: CacheEntry): string {
  return codingOf(storedHead(entry.meta));
}

/**
 * A `br` or `deflate` answer replayed as gzip, for a request that also accepts gzip: spliced like a gzip entry
 * (the answer decoded and its halves compressed once per entry), so no hit compresses anything. The caller sends
 * it with Content-Encoding: gzip. null: the body does not decode, or has no top-level id.
 */
export function replayAsGzip(entry: CacheEntry, id: Buffer): BodyParts | null {
  const sp = entry.body === null ? null : spliceFor(entry, entry.body);
  return sp === null ? null : sp.splice.parts(id);
}

/**
 * The body to send for `entry` (stored in `coding`, storedCoding) to the request whose raw id is `id`: uncompressed,
 * the stored bytes around the new id (not copied); gzip, the pieces compressed once around the id as a stored
 * block; null when it cannot be made.
 */
export function replayBody(entry: CacheEntry, id: Buffer, coding: string = storedCoding(entry)): Buffer | BodyParts | null {
  const body = entry.body;
  if (body === null) return null;
  if (coding === '' || coding === 'identity') return withIdParts(body, id);
  if (coding === 'gzip' || coding === 'x-gzip') {
    const sp = spliceFor(entry, body);
    if (sp === null) return null;
    if (sp.storedId.equals(id)) return body;
    const parts = sp.splice.parts(id);
    if (parts !== null) return parts;
  }
  const head = storedHead(entry.meta);
  let raw = decoded.get(entry);
  if (raw === undefined) {
    raw = decodeBody(head, body);
    decoded.set(entry, raw);
    if (raw !== null) chargeDerived(entry, raw.length);
  }
  if (raw === null) return null;
  const replaced = withId(raw, id);
  if (replaced === null) return null;
  return replaced === raw ? body : encodeBody(head, replaced);
}
