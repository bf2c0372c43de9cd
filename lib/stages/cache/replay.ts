/**
 * Answering from a stored entry: the body to send (a JSON-RPC answer takes the current request's id, byte for
 * byte, the rest as stored), the head (lib/cache/respond.ts), and 304 for a satisfied client conditional.
 */
import { Transform } from 'node:stream';
import type { RequestContext } from '../../core/context';
import type { ResponseHead } from '../../core/stage';
import type { Found } from '../../cache/tiers';
import type { CacheEntry } from '../../cache/entry';
import { CACHE_NAME, headFor, hitBodyLength, satisfiesConditional, sendEntry, sendHit, type HitBody } from '../../cache/respond';
import { rawId } from '../../cache/jsonrpc';
import { replayAsGzip, replayBody, storedCoding } from '../../cache/jsonrpc-replay';
import { negotiate } from '../compress/negotiate';

const GZIP = ['gzip'];

/** The stored body to send for this request: a JSON-RPC answer gets the request's own id. */
export function bodyFor(ctx: RequestContext, entry: CacheEntry | null, jsonrpc: boolean): HitBody | null {
  if (entry === null || !jsonrpc) return entry?.body ?? null;
  const id = rawId(ctx.body);
  if (id === null) return null;
  // a br or deflate answer would be encoded again on every hit: a client that accepts gzip gets it spliced instead
  const coding = storedCoding(entry);
  if ((coding === 'br' || coding === 'deflate') && negotiate(ctx.req.headers['accept-encoding'], GZIP) === 'gzip') {
    const parts = replayAsGzip(entry, id);
    if (parts !== null) {
      // an extra field of a stored name replaces it (headFor): the stored one names br or deflate
      ctx.addHeader('content-encoding', 'gzip');
      return parts;
    }
  }
  return replayBody(entry, id, coding);
}

/** Answer the request from `found` (the lookup answered: no upstream request). */
export function serve(ctx: RequestContext, found: Found, status: string, now: number, jsonrpc: boolean): void {
  const cond = satisfiesConditional(ctx.method, ctx.req.headers, found.meta);
  const body = bodyFor(ctx, found.entry, jsonrpc);
  const cacheStatus = `${CACHE_NAME}; ${status}`;
  if (cond || body === null || !sendHit(ctx.res, ctx.method, found.meta, ctx.extraHeaders, cacheStatus, now, body)) {
    const head = headFor(found.meta, ctx.extraHeaders, cacheStatus, now, cond, body === null ? undefined : hitBodyLength(body));
    sendEntry(ctx.res, ctx.method, head, body, found.stream ? found.stream.open : null);
  }
  ctx.responded = true;
  ctx.cacheStatus = status;
}

/**
 * Replace the upstream's head and body with a stored entry (a 304 to our revalidation, stale-if-error on a
 * 5xx), answering the client's own conditional (`clientConditional`, or the request's when it kept them).
 */
export function replaceWith(ctx: RequestContext, head: ResponseHead, entry: CacheEntry, status: string, now: number,
  jsonrpc: boolean, clientConditional: Record<string, string> | null): Transform {
  const cond = satisfiesConditional(ctx.method, clientConditional ?? ctx.req.headers, entry.meta);
  const replayed = bodyFor(ctx, entry, jsonrpc);
  const h = headFor(entry.meta, ctx.extraHeaders, `${CACHE_NAME}; ${status}`, now, cond, replayed === null ? undefined : hitBodyLength(replayed));
  for (const k of Object.keys(head.headers)) delete head.headers[k];
  Object.assign(head.headers, h.headers);
  head.status = h.status;
  ctx.cacheStatus = status;
  const body = ctx.method === 'HEAD' || cond ? null : replayed;
  return new Transform({
    transform(_chunk, _enc, cb) { cb(); },
    flush(cb) {
      if (body !== null) for (const part of Buffer.isBuffer(body) ? [body] : body) if (part.length) this.push(part);
      cb();
    },
  });
}
