/**
 * Creates the zlib stream for one response. Always the streaming (async) API: the deflate/brotli work runs on the
 * libuv thread pool (`queues.worker_threads`), never on the event loop.
 *
 * `level` is one number for both algorithms (policy `compression.level`, 0..11):
 *   gzip:   level clamped to 0..9 (6 = zlib's default, the guide's value). Ordinary responses borrow a pooled
 *           compressor (gzip-pool.ts); SSE streams get their own, with window and hash sized from Content-Length
 *           like nginx (deflateSizes).
 *   brotli: quality from the table below. Brotli quality 11 is for offline precompression (tens of times slower
 *           than gzip -6); on the fly the useful range is 3..6. The table maps the gzip scale so the same `level`
 *           costs about the same CPU: gzip 6 -> br 5, which is about gzip 6's speed with ~10-20 % smaller output
 *           for JSON. Levels 10 and 11 (meaningless for gzip) reach brotli's top qualities for operators who ask.
 *   brotli window: sized from Content-Length when known (BROTLI_PARAM_SIZE_HINT is set too), else 2^19 (512 KB,
 *           ngx_brotli's default), which bounds the encoder's memory per stream.
 *
 * `flushEachChunk` (server-sent events): every chunk written is flushed (Z_SYNC_FLUSH / BROTLI_OPERATION_FLUSH),
 * so the client can decode each event as soon as the upstream sends it.
 */
import type { Transform } from 'node:stream';
import { constants, createBrotliCompress, createGzip } from 'node:zlib';
import type { Coding } from './negotiate';
import { GzipMember, type ByteSink } from './gzip-pool';

/** Counter children for compression_bytes_total, bound once: the hot path only calls inc(n). */
export interface ByteCounters {
  readonly in: { inc(n: number): void };
  readonly out: { inc(n: number): void };
}

/** Brotli quality for levels 0..11 (see above). */
const BROTLI_QUALITY = [0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 10, 11] as const;

export function brotliQuality(level: number): number {
  const l = Math.min(11, Math.max(0, Math.round(level)));
  return BROTLI_QUALITY[l];
}

export function gzipLevel(level: number): number {
  return Math.min(9, Math.max(0, Math.round(level)));
}

/** Window bits for a body of `size` bytes (-1 unknown): no larger than the body needs. */
function brotliWindow(size: number): number {
  if (size < 0) return 19;
  let bits = constants.BROTLI_MIN_WINDOW_BITS; // 10
  while (bits < constants.BROTLI_DEFAULT_WINDOW && 1 << bits < size) bits++;
  return bits;
}

export interface EncoderOptions {
  readonly level: number;
  /** Content-Length of the identity body, or -1 when unknown (chunked). */
  readonly size: number;
  readonly flushEachChunk: boolean;
}

/**
 * Deflate window and hash sizes for a body of `size` bytes, as nginx's gzip filter picks them: a 7 KB answer
 * needs neither a 32 KB window nor a 32K-entry hash, and a smaller deflate state is cheaper to set up and holds
 * less memory per response (~70 KB instead of ~260 KB for 5-10 KB JSON). The output is the same gzip format;
 * only the longest match distance shrinks to what the body can use.
 */
function deflateSizes(size: number): { windowBits: number; memLevel: number } {
  let windowBits = 15;
  let memLevel = 8;
  if (size > 0) {
    while (windowBits > 9 && size < (1 << (windowBits - 1)) - 262) {
      windowBits--;
      memLevel--;
    }
  }
  return { windowBits, memLevel: Math.max(1, memLevel) };
}

export function createEncoder(coding: Coding, o: EncoderOptions, counters: ByteCounters | null = null): Transform {
  if (coding === 'gzip' && !o.flushEachChunk) {
    // the common case (a JSON answer): a pooled compressor, one gzip member per response (see gzip-pool.ts)
    return new GzipMember(gzipLevel(o.level), counters === null ? null : sinkFor(counters));
  }
  const z = coding === 'gzip'
    ? createGzip({
      level: gzipLevel(o.level),
      ...deflateSizes(o.size),
      flush: o.flushEachChunk ? constants.Z_SYNC_FLUSH : constants.Z_NO_FLUSH,
    })
    : createBrotliCompress({ params: brotliParams(o), flush: o.flushEachChunk ? constants.BROTLI_OPERATION_FLUSH : constants.BROTLI_OPERATION_PROCESS });
  if (counters !== null) countBytes(z, counters);
  return z;
}

function brotliParams(o: EncoderOptions): Record<number, number> {
  const params: Record<number, number> = {
    [constants.BROTLI_PARAM_QUALITY]: brotliQuality(o.level),
    [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
    [constants.BROTLI_PARAM_LGWIN]: brotliWindow(o.size),
  };
  if (o.size >= 0) params[constants.BROTLI_PARAM_SIZE_HINT] = Math.min(o.size, 0x3fffffff); // a uint32 hint
  return params;
}

function sinkFor(counters: ByteCounters): ByteSink {
  return { in: (n) => counters.in.inc(n), out: (n) => counters.out.inc(n) };
}

/**
 * Counts bytes in and out of a fresh zlib stream where zlib hands out its output (push), without a second
 * stream in the body path: "in" is the engine's own input count (bytesWritten) advanced since the last output.
 */
function countBytes(z: Transform, counters: ByteCounters): void {
  const zs = z as Transform & { bytesWritten: number };
  let seenIn = 0;
  const push = z.push;
  z.push = function countingPush(chunk: unknown, encoding?: BufferEncoding): boolean {
    const written = zs.bytesWritten;
    if (written > seenIn) {
      counters.in.inc(written - seenIn);
      seenIn = written;
    }
    if (chunk !== null && chunk !== undefined) counters.out.inc((chunk as Buffer).length);
    return push.call(this, chunk, encoding);
  };
}
