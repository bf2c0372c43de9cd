/**
 * The client's request body: read whole when a route needs it (or to keep it for a retry), or streamed to the
 * upstream through a size limit. Both refuse a body over server.client_max_body_size with 413.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import type { RequestContext } from '../../core/context';
import { sendProblem } from '../problem';

/** Bodies up to this size are kept in memory when the request may need replaying on a retry. */
export const REPLAY_BODY_LIMIT = 64 * 1024;

export { BodyTooLarge, readBody } from '../../util/read-body';

/**
 * 413 with Connection: close, so an unread body cannot be taken for the connection's next request. With `req`
 * (a body read whole, refused part-way), the rest of the body is read and dropped before the connection closes
 * (endAnswer), so a client still sending gets the 413 rather than a reset.
 */
export function refuseTooLarge(res: ServerResponse, detail: string, req: IncomingMessage | null = null): void {
  sendProblem(res, 413, 'body-too-large', 'Content Too Large', detail, null, true, req);
}

/**
 * Counts a streamed (chunked) body and fails the exchange with 413 once it passes the limit. It never emits an
 * error (nothing would handle it): past the limit it aborts the upstream request, answers 413 with
 * Connection: close, and reads and drops the rest of the body before the connection closes (endAnswer's
 * lingering close), so a client still sending gets the 413 rather than a reset.
 */
export function sizeLimiter(limit: number, ctx: RequestContext, abortUpstream: () => void): Transform {
  let size = 0;
  let over = false;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (over) return cb();
      size += chunk.length;
      if (size > limit) {
        over = true;
        // the upstream must never see a truncated body as if it were whole: abort its request first
        abortUpstream();
        // the rest is drained from the request itself (refuseTooLarge with the request: endAnswer unpipes it)
        refuseTooLarge(ctx.res, `request body exceeds client_max_body_size (${limit})`, ctx.req);
        return cb();
      }
      cb(null, chunk);
    },
  });
}
