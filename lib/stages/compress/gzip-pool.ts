/**
 * Reusable gzip compressors. Creating a zlib stream per response (deflateInit: ~260 KB of state, a native
 * handle, external-memory accounting that V8 turns into GC work) costs more CPU than compressing a 5-10 KB JSON
 * answer itself. So gzip responses borrow a long-lived compressor from a small per-process pool instead:
 *
 *   response body chunk --write--> pooled zlib (async, libuv pool) --'data'--> this response's Transform
 *   end of body ----------flush(Z_FINISH)--> gzip trailer of this member; reset() (deflateReset) -> back to pool
 *
 * Each response is one complete gzip member (header, deflate data, trailer), exactly what a fresh stream makes.
 * A compressor is used by one response at a time; a response that ends early (client gone, upstream error)
 * closes its compressor instead of returning it, since its state is mid-member. The pool keeps at most
 * MAX_IDLE compressors per level (~260 KB each); more concurrent responses simply create more, which are closed
 * when they come back to a full pool.
 *
 * Still zlib's asynchronous API: every write and flush runs on the libuv thread pool.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { constants, createGzip, type Gzip, type ZlibReset } from 'node:zlib';

const MAX_IDLE = 32;

/** A pooled compressor and where its output currently goes. */
interface Compressor {
  /** Node's Gzip has reset() (deflateReset); @types/node declares it apart. */
  readonly z: Gzip & ZlibReset;
  sink: GzipMember | null;
  /** Closed or failed: never pooled, never reset again. */
  dead: boolean;
}

const idle = new Map<number, Compressor[]>();

function acquire(level: number): Compressor {
  const free = idle.get(level);
  for (let c = free?.pop(); c !== undefined; c = free?.pop()) if (!c.dead) return c;
  const z = createGzip({ level }) as Gzip & ZlibReset;
  const made: Compressor = { z, sink: null, dead: false };
  z.on('data', (chunk: Buffer) => made.sink?.deliver(chunk));
  z.on('error', (err: Error) => {
    made.dead = true;
    made.sink?.destroy(err);
  });
  z.on('close', () => { made.dead = true; });
  return made;
}

function retire(c: Compressor): void {
  c.sink = null;
  if (c.dead) return;
  c.dead = true;
  c.z.close();
}

function release(level: number, c: Compressor): void {
  if (c.dead) return;
  c.sink = null;
  let free = idle.get(level);
  if (free === undefined) idle.set(level, (free = []));
  if (free.length < MAX_IDLE) free.push(c);
  else retire(c);
}

/** How many compressors sit idle (for tests). */
export function idleCompressors(level: number): number {
  return idle.get(level)?.length ?? 0;
}

/** Counts the bytes of one response (see filter.ts). */
export interface ByteSink {
  in(n: number): void;
  out(n: number): void;
}

/** One response's gzip member, written through a borrowed compressor. */
export class GzipMember extends Transform {
  private c: Compressor | null;

  constructor(
    private readonly level: number,
    private readonly counts: ByteSink | null,
  ) {
    super();
    this.c = acquire(level);
    this.c.sink = this;
  }

  /** Output of the compressor for this member. */
  deliver(chunk: Buffer): void {
    this.counts?.out(chunk.length);
    this.push(chunk);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const c = this.c;
    if (c === null) return cb(new Error('gzip member already finished'));
    this.counts?.in(chunk.length);
    // the write callback runs after the output for this chunk was delivered (pushed) above
    c.z.write(chunk, (err) => cb(err ?? undefined));
  }

  override _flush(cb: TransformCallback): void {
    const c = this.c;
    if (c === null) return cb();
    c.z.flush(constants.Z_FINISH, () => {
      // destroyed while the flush was on the pool: _destroy already retired the compressor
      if (this.c !== c || c.dead) return cb();
      // the trailer has been delivered: the compressor is between members again
      this.c = null;
      c.sink = null;
      c.z.reset();
      release(this.level, c);
      cb();
    });
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    const c = this.c;
    if (c !== null) {
      // ended mid-member (client gone, upstream error): the state cannot be reused
      this.c = null;
      retire(c);
    }
    cb(err);
  }
}
