/**
 * Upstream response heads in the shape the client's response is written from: lower-case names, hop-by-hop
 * fields (and those Connection names) dropped, duplicates folded the way node:http folds them for its own
 * IncomingMessage (Set-Cookie kept as a list, single-valued fields keep the first, the rest joined by ", "),
 * except that every Expires line is kept, as the cache needs them all.
 * Built once, from undici's raw [name, value, ...] buffers; the pipeline edits and writes this same object.
 */
import { isHopByHop } from '../../util/hop-by-hop';

/** Fields node:http keeps only the first of (lib/_http_incoming.js matchKnownFields). */
const SINGLE = new Set([
  'content-type', 'content-length', 'user-agent', 'referer', 'host', 'authorization', 'proxy-authorization',
  'if-modified-since', 'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag',
  'last-modified', 'server', 'age',
]);

/** Header names seen before, so the common ones are not lower-cased again for every response. */
const names = new Map<string, string>();

function lowerName(raw: Buffer): string {
  const s = raw.toString('latin1');
  let n = names.get(s);
  if (n === undefined) {
    n = s.toLowerCase();
    if (names.size < 1024) names.set(s, n);
  }
  return n;
}

export function answerHeaders(raw: Buffer[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = lowerName(raw[i]!);
    const value = raw[i + 1]!.toString('latin1');
    if (isHopByHop(name, undefined)) {
      if (name === 'connection') connection = connection === undefined ? value : `${connection}, ${value}`;
      continue;
    }
    const prev = out[name];
    if (prev === undefined) out[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(prev)) prev.push(value);
    // every Expires line is kept: the cache must see them all (several = expired)
    else if (name === 'expires') out[name] = [prev, value];
    else if (!SINGLE.has(name)) out[name] = `${prev}, ${value}`;
  }
  // fields the upstream's Connection names are its own hop-by-hop ones (rare: a delete here is fine)
  if (connection !== undefined && connection !== 'keep-alive' && connection !== 'close') {
    for (const name in out) if (isHopByHop(name, connection)) delete out[name];
  }
  return out;
}
