/**
 * Stored bodies are kept as the compressor made them (gzip, br, deflate or identity). Reading fields of one
 * (store_if, JSON-RPC answers) decodes it; replaying a JSON-RPC answer with another id encodes it again.
 */
import { brotliCompressSync, brotliDecompressSync, constants, gunzipSync, gzipSync, inflateSync, deflateSync } from 'node:zlib';
import type { Headers } from './cache-control';

/** The body's content coding as stored (lower case; '' for none). */
export function codingOf(headers: Headers): string {
  const enc = headers['content-encoding'];
  return (Array.isArray(enc) ? enc.join(',') : enc ?? '').trim().toLowerCase();
}

/** The body without its content coding; null when the coding is unknown or the bytes do not decode. */
export function decodeBody(headers: Headers, body: Buffer): Buffer | null {
  const e = codingOf(headers);
  try {
    if (e === '' || e === 'identity') return body;
    if (e === 'gzip' || e === 'x-gzip') return gunzipSync(body);
    if (e === 'br') return brotliDecompressSync(body);
    if (e === 'deflate') return inflateSync(body);
  } catch {
    return null;
  }
  return null;
}

/** Encode `raw` with the coding `headers` name (the inverse of decodeBody); null for an unknown coding. */
export function encodeBody(headers: Headers, raw: Buffer): Buffer | null {
  const e = codingOf(headers);
  if (e === '' || e === 'identity') return raw;
  if (e === 'gzip' || e === 'x-gzip') return gzipSync(raw);
  if (e === 'br') return brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 4, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length } });
  if (e === 'deflate') return deflateSync(raw);
  return null;
}
