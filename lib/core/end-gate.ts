/**
 * Holding the end of a response body until a stage's work is done (ResponseHead.endAfter).
 *
 * With a Content-Length a client has the whole answer once it has every byte, so holding only the end of the
 * stream (`res.end()`) would not hold it back: the last chunk itself is kept until the promise settles.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { ResponseHead } from './stage';

/** A stage's part of ResponseHead.endAfter: the end waits for every promise given (each must settle, bounded by its stage). */
export function holdEndUntil(head: ResponseHead, done: Promise<unknown>): void {
  const before = head.endAfter;
  head.endAfter = before === undefined ? done : Promise.all([before, done]);
}

/** ResponseHead.endAfter for a body that goes through Transforms: the last stage of that pipeline. */
export class EndGate extends Transform {
  private last: Buffer | null = null;

  constructor(private readonly until: Promise<unknown>) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const prev = this.last;
    this.last = chunk;
    if (prev !== null) cb(null, prev);
    else cb();
  }

  override _flush(cb: TransformCallback): void {
    const release = (): void => {
      if (this.last !== null) this.push(this.last);
      this.last = null;
      cb();
    };
    this.until.then(release, release);
  }
}
