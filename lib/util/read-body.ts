/** Reading a request body whole, with a size limit: the proxy's buffered bodies, the admin port, the webhook. */
import type { IncomingMessage } from 'node:http';

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
