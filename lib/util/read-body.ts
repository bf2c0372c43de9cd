/** Reading a request body whole, with a size limit: the proxy's buffered bodies, the admin port, the webhook. */
import type { IncomingMessage, ServerResponse } from 'node:http';

export class BodyTooLarge extends Error {}

/**
 * The whole body, or a BodyTooLarge rejection as soon as it passes `limit`. Past the limit the rest is left
 * unread (the request is paused): the caller answers (413 with Connection: close) or destroys the connection.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}

/** How much of a refused body is still read (and dropped) after the answer, and for how long (nginx: lingering_time). */
export const LINGER_BYTES = 64 * 1024 * 1024;
export const LINGER_MS = 10_000;

/**
 * End an answer: `res.end(body)`, or with `lingerOn` (a request answered before its body was read, e.g. 413),
 * nginx's lingering close: the body is written (the head, already written with Connection: close and its
 * Content-Length, tells the client the answer is complete), the rest of the request body is read and dropped,
 * then the response ends and Node closes the connection. Closing with the body unread makes the kernel reset the
 * connection, and a client still sending (curl, fetch, any client that writes the whole body first) gets that
 * reset instead of the answer. Bounded: past LINGER_BYTES or LINGER_MS the connection is closed anyway.
 */
export function endAnswer(res: ServerResponse, body: string | Buffer | undefined, lingerOn: IncomingMessage | null): void {
  if (lingerOn === null) {
    res.end(body);
    return;
  }
  if (body !== undefined) res.write(body);
  const req = lingerOn;
  let done = false;
  let read = 0;
  const finish = (cut: boolean): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    res.end();
    if (cut) req.socket.destroy();
  };
  const timer = setTimeout(() => finish(true), LINGER_MS);
  timer.unref();
  if (req.readableEnded) return finish(false);
  // the request is this function's now: off any pipe (a streamed body's size limit, whose destination the aborted
  // upstream destroys: the pipe's cleanup would pause the request with the body unread) and any other reader
  req.unpipe();
  req.removeAllListeners('data');
  req.on('data', (c: Buffer) => {
    read += c.length;
    if (read > LINGER_BYTES) finish(true);
  });
  req.once('end', () => finish(false));
  req.once('error', () => finish(true));
  req.socket.once('close', () => clearTimeout(timer));
  req.resume();
}
