/**
 * Header rewriting on the way up (what the upstream is told about the client) and on the way back (the
 * response head the stages then see).
 */
import type { RequestContext } from '../../core/context';
import type { ResponseHead } from '../../core/stage';
import type { Policy } from '../../policy/types';
import { stripRequestHopByHop } from '../../util/hop-by-hop';
import type { UpstreamAnswer } from '../../stages/upstream/types';
import { VIA } from '../problem';

/** Rewrite the client's request head in place for the upstream. Call after the body's framing was decided. */
export function rewriteRequestHeaders(policy: Policy, ctx: RequestContext): void {
  const req = ctx.req;
  stripRequestHopByHop(req.headers);
  // an upstream framework that routes by X-Original-URL / X-Rewrite-URL would answer another path than the
  // request line's, and the cache would store that answer under the request line's key for everyone (cache
  // poisoning). On routes the cache may store, the sidecar does not pass them on.
  if (ctx.route !== null && ctx.route.policy.cache !== null) {
    if (req.headers['x-original-url'] !== undefined) delete req.headers['x-original-url'];
    if (req.headers['x-rewrite-url'] !== undefined) delete req.headers['x-rewrite-url'];
  }
  const xff = req.headers['x-forwarded-for'];
  const addr = req.socket.remoteAddress ?? '';
  req.headers['x-forwarded-for'] = xff ? `${xff}, ${addr}` : addr;
  req.headers['x-forwarded-proto'] ??= 'http';
  // a client's own X-Forwarded-Host is kept only behind a trusted proxy (identity.trust_forwarded_for);
  // otherwise it is set from Host, so a client cannot make an upstream that reflects it put an attacker's host
  // into a cached answer another client then gets (cache poisoning)
  if (req.headers.host !== undefined) {
    if (policy.rate_limiting?.identity.trust_forwarded_for === true) req.headers['x-forwarded-host'] ??= req.headers.host;
    else req.headers['x-forwarded-host'] = req.headers.host;
  }
  const via = req.headers.via;
  req.headers.via = via ? `${via}, ${VIA}` : VIA;
}

/**
 * The head the client will get: the upstream's (the leg built it once, without hop-by-hop fields and with every
 * Expires line; it is edited in place, not copied), plus Via and the stages' headers.
 */
export function responseHeadFrom(up: UpstreamAnswer, ctx: RequestContext): ResponseHead {
  const headers = up.headers;
  const prevVia = headers.via;
  headers.via = prevVia ? `${prevVia}, ${VIA}` : VIA;
  if (ctx.extraHeaders) for (const [k, v] of ctx.extraHeaders) headers[k] = v;
  return { status: up.statusCode, headers };
}
