/**
 * A gzip body for `before + insert + after` made per request without compressing anything: a JSON-RPC hit on a
 * stored gzip answer (the stored answer with the request's own id, lib/cache/jsonrpc-replay.ts).
 *
 * Decoding, changing and compressing the whole answer again took ~1.8 ms of the event loop per hit of a 300 KB
 * answer (gzipSync). Instead, once per stored entry, `before` is deflated ending in a sync flush (byte-aligned,
 * not final) and `after` by a fresh compressor (final). Per hit the id goes between them as one stored
 * (uncompressed) deflate block, and the trailer's CRC-32 is combined from the pieces' CRCs. The result is one
 * ordinary gzip member (RFC 1952) with one deflate stream (RFC 1951), valid for every decoder. `after` is
 * compressed on its own, so it refers back into nothing before it.
 */
import { constants, crc32 as zlibCrc32, deflateRawSync } from 'node:zlib';

/** ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown). */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
/** A stored block holds at most this many bytes (its LEN is 16 bits). */
const MAX_STORED = 0xffff;

export class GzipSplice {
  /** The gzip header and `before` deflated, ending byte-aligned (sync flush). */
  private readonly front: Buffer;
  /** `after` deflated by a fresh compressor, with the final block. */
  private readonly back: Buffer;
  private readonly beforeCrc: number;
  private readonly afterCrc: number;
  /** CRC-32's shift over `after.length` bytes, as 32 columns (see crcShift). */
  private readonly shift: Uint32Array;
  private readonly beforeLength: number;
  private readonly afterLength: number;

  constructor(before: Buffer, after: Buffer, level: number = constants.Z_DEFAULT_COMPRESSION) {
    this.front = Buffer.concat([GZIP_HEADER, deflateRawSync(before, { level, finishFlush: constants.Z_SYNC_FLUSH })]);
    this.back = deflateRawSync(after, { level });
    this.beforeCrc = crc32(before, 0);
    this.afterCrc = crc32(after, 0);
    this.shift = crcShift(after.length);
    this.beforeLength = before.length;
    this.afterLength = after.length;
  }

  /** The memory it holds (both compressed halves and the shift), for the cache's size accounting. */
  get bytes(): number {
    return this.front.length + this.back.length + this.shift.byteLength;
  }

  /** The gzip body of before + insert + after, as parts to write in order; null for an insert too long for one block. */
  parts(insert: Buffer): Buffer[] | null {
    const n = insert.length;
    if (n > MAX_STORED) return null;
    const stored = Buffer.allocUnsafe(5);
    stored[0] = 0; // BFINAL 0, BTYPE 00 (stored), padded to the byte boundary
    stored.writeUInt16LE(n, 1);
    stored.writeUInt16LE(~n & 0xffff, 3);
    const trailer = Buffer.allocUnsafe(8);
    const crc = (times(this.shift, crc32(insert, this.beforeCrc)) ^ this.afterCrc) >>> 0;
    trailer.writeUInt32LE(crc, 0);
    trailer.writeUInt32LE((this.beforeLength + n + this.afterLength) % 2 ** 32, 4);
    return [this.front, stored, insert, this.back, trailer];
  }
}

// ---- CRC-32 (the gzip trailer's) -------------------------------------------------------------------------------

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 of `data` continuing from `crc` (0 to start), by table: for node before 20.15, which has no zlib.crc32. */
export function crc32ByTable(data: Buffer, crc: number): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32 of `data` continuing from `crc` (0 to start): zlib's, native from node 20.15 / 22.2. */
const crc32: (data: Buffer, crc: number) => number = typeof zlibCrc32 === 'function' ? zlibCrc32 : crc32ByTable;

/** The 32x32 GF(2) matrix (columns as bits) times a vector. */
function times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i]!;
  return sum >>> 0;
}

function square(out: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < 32; n++) out[n] = times(mat, mat[n]!);
}

/**
 * The linear map that carries crc(A) to crc(A + B) xor crc(B) for any B of `length` bytes (zlib's
 * crc32_combine, whose operator is a matrix power; here applied to the 32 unit vectors once, so that each hit
 * pays one matrix-vector product).
 */
function crcShift(length: number): Uint32Array {
  const cols = new Uint32Array(32);
  for (let i = 0; i < 32; i++) cols[i] = (1 << i) >>> 0;
  if (length <= 0) return cols;
  const odd = new Uint32Array(32);
  const even = new Uint32Array(32);
  odd[0] = 0xedb88320; // the operator for one zero bit
  for (let n = 1, row = 1; n < 32; n++, row <<= 1) odd[n] = row >>> 0;
  square(even, odd); // two zero bits
  square(odd, even); // four
  let len = length;
  // the first square below gives one zero byte; then each step doubles, applied where `len` has a 1 bit
  for (;;) {
    square(even, odd);
    if (len & 1) for (let i = 0; i < 32; i++) cols[i] = times(even, cols[i]!);
    len = Math.floor(len / 2);
    if (len === 0) break;
    square(odd, even);
    if (len & 1) for (let i = 0; i < 32; i++) cols[i] = times(odd, cols[i]!);
    len = Math.floor(len / 2);
    if (len === 0) break;
  }
  return cols;
}
