/**
 * The Cache-Status field (RFC 9211) this stage sends, and the same value kept on the request for the access
 * log. Only the wording of each case is decided by the file that knows the case (lookup, store filter).
 */
import type { RequestContext } from '../../core/context';
import type { ResponseHead } from '../../core/stage';
import { CACHE_NAME } from '../../cache/respond';

/** The request is not looked up (method, missing param, JSON-RPC notification, client no-cache...). */
export function bypass(ctx: RequestContext, status: string): void {
  ctx.cacheStatus = status;
  ctx.addHeader('cache-status', `${CACHE_NAME}; ${status}`);
}

/** On the upstream's head, before it is written. */
export function setStatus(ctx: RequestContext, head: ResponseHead, status: string): void {
  ctx.cacheStatus = status;
  head.headers['cache-status'] = `${CACHE_NAME}; ${status}`;
}

/** After the head went out: the log's value only (e.g. why a body was not stored after all). */
export function appendLogStatus(ctx: RequestContext, part: string): void {
  ctx.cacheStatus = (ctx.cacheStatus ?? '') + '; ' + part;
}
