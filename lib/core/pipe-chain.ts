/**
 * An answer's body through the response filters' Transforms to the client: what `stream.pipeline` does for this
 * one shape (a source, Transforms, a sink), for less per answer.
 *
 * Why not `stream.pipeline`: on node 20 each call makes an AbortController, and on success it destroys the
 * streams that have not yet emitted 'close' with a fresh ERR_STREAM_DESTROYED and aborts the controller with a
 * DOMException. Each error captures a stack. A cached miss's profile had those three in the worker's top ten
 * (bench/RESULTS.md, issue 19, session 21); `bench/pipe-chain.ts` times the two on one machine.
 *
 * Same contract as pipeline for this use: data flows with backpressure (`pipe`); the first error or premature
 * close of any stream destroys every stream (the source's destroy ends the upstream exchange) and is reported;
 * otherwise `done()` once the sink has finished. `done` is called once.
 */
import { finished, type Readable, type Transform, type Writable } from 'node:stream';

export function pipeChain(source: Readable, transforms: readonly Transform[], sink: Writable, done: (err: Error | null) => void): void {
  const streams: (Readable | Writable)[] = [source, ...transforms, sink];
  let called = false;
  const fail = (err: Error | null | undefined): void => {
    if (called || !err) return;
    called = true;
    for (const s of streams) s.destroy();
    done(err);
  };
  let from: Readable = source;
  for (const t of transforms) {
    from.pipe(t);
    finished(from, fail);
    from = t;
  }
  from.pipe(sink);
  finished(from, fail);
  finished(sink, (err) => {
    if (err) fail(err);
    else if (!called) {
      called = true;
      done(null);
    }
  });
}
