/**
 * The response side of the cache stage: on the upstream's head, decide what this answer does to the cache.
 *
 *   304 to our revalidation           -> refresh the stored entry and answer the client with it
 *   5xx, stale copy, stale-if-error   -> answer with the stale copy instead
 *   not storable (headNotStorable)    -> pass through; Cache-Status says why (`detail=<reason>`)
 *   storable                          -> pass the body through while storing it (store-transform.ts)
 *
 * What is storable is decided in lib/cache/admission.ts (method, status, Cache-Control, store_if, JSON-RPC
 * rules); this file applies the decision to one request and writes Cache-Status. Nothing is stored for a fill
 * whose upstream request started before an invalidation of its key reached this process (Tiers.recent): the
 * answer is still served, and handed to the waiters that joined before.
 */
import type { Transform } from 'node:stream';
import type { RequestContext } from '../../core/context';
import { HeldHead, type ResponseHead } from '../../core/stage';
import type { StoreRequest } from '../../cache/admission';
import { headNotStorable, refreshWith304 } from '../../cache/admission';
import type { CacheEntry } from '../../cache/entry';
import { conditionalMatches } from '../../cache/http-semantics';
import { isConditional, ttlSeconds } from '../../cache/respond';
import { setStatus } from './cache-status';
import { replaceWith } from './replay';
import { countResult, requestState, staleIfErrorAllowed, storeRequest, type CacheCore, type RequestState } from './state';
import { StoreTransform } from './store-transform';

export function storeFilter(core: CacheCore, ctx: RequestContext, head: ResponseHead): Transform | null {
  const st = requestState.get(ctx);
  if (st === null) return null;
  const now = core.clock.now();
  const status = head.status;
  // RFC 9111 request_time is when the request went upstream, not when it arrived (it may have queued)
  if (ctx.upstreamMs >= 0) {
    st.requestTime = Math.max(st.requestTime, now - Math.ceil(ctx.upstreamMs));
    // upstreamMs is measured from the proxy's dispatch on the same monotonic clock, synchronously before this
    st.upstreamStart = Math.max(st.upstreamStart, core.tiers.recent.now() - ctx.upstreamMs);
  }
  const sr = storeRequest(ctx, st);

  const staleIfError = status >= 500 && st.stale !== null && st.stale.entry !== null && staleIfErrorAllowed(st.stale, now);
  countResult(st, staleIfError ? 'stale' : 'miss');
  if (status === 304 && st.revalidating && st.stale !== null && st.stale.entry !== null) {
    return revalidated(core, ctx, st, st.stale.entry, sr, head, now);
  }
  if (staleIfError && st.stale !== null && st.stale.entry !== null) {
    st.fill?.settle(null);
    core.tiers.counters.inc(st.stale.layer, 'stale');
    return replaceWith(ctx, head, st.stale.entry, `fwd=stale; fwd-status=${status}; ttl=${ttlSeconds(st.stale.meta, now)}; detail=stale-if-error`, now, st.route.jsonrpc, st.clientConditional);
  }
  const fwd = st.stale !== null ? `fwd=stale; fwd-status=${status}` : (st.directives.noCache ? 'fwd=request' : 'fwd=miss');
  const reason = ctx.method === 'HEAD' ? 'method' : headNotStorable(status, head.headers, sr);
  if (reason !== null) {
    st.fill?.settle(null);
    setStatus(ctx, head, `${fwd}; detail=${reason}`);
    return null;
  }
  // what is stored is the head as the upstream (and compressor) made it, before this filter edits it
  const storedHeaders = { ...head.headers };
  // invalidated while the request was in flight: served (and handed to coalesced waiters), never stored
  const invalidated = core.tiers.recent.blocks(st.base, st.upstreamStart);
  // with a store_if (or a JSON-RPC route: result answers only) the body decides. A body of known size that is
  // held whole anyway holds the head until then, so Cache-Status can say `stored`; a larger or streamed one
  // (chunked, SSE: its head goes out at once) is decided after the head has gone out, and only the log says it
  const decidedByBody = st.route.storeIf !== null || st.route.jsonrpc;
  setStatus(ctx, head, invalidated ? `${fwd}; detail=invalidated` : decidedByBody ? fwd : `${fwd}; stored`);
  const hold = decidedByBody && !invalidated && bufferedWhole(head, core.tiers.largeBodyThreshold) ? new HeldHead() : null;
  if (hold !== null) head.hold = hold;
  let suppressBody = false;
  if (st.clientConditional !== null && status === 200) {
    const etag = first(head.headers['etag']) ?? null;
    const lm = first(head.headers['last-modified']) ?? null;
    const date = first(head.headers['date']) ?? null;
    if (ctx.method === 'GET' && isConditional(st.clientConditional) && conditionalMatches(st.clientConditional, etag, lm, date)) {
      head.status = 304;
      for (const k of ['content-length', 'content-encoding', 'transfer-encoding']) delete head.headers[k];
      suppressBody = true;
    }
  }
  // store_if may read its fields from the end of the compressor's input instead of decoding the stored body
  const identityTail = st.route.storeIf === null ? null : head.identityTail ?? null;
  identityTail?.activate();
  return new StoreTransform(core, st, sr, status, storedHeaders, suppressBody, ctx, hold === null ? null : { hold, head }, identityTail);
}

/** The upstream answered our conditional request with 304: refresh the entry and answer with it. */
function revalidated(core: CacheCore, ctx: RequestContext, st: RequestState, old: CacheEntry, sr: StoreRequest, head: ResponseHead, now: number): Transform {
  const built = refreshWith304(old, sr, head.headers, now);
  const stored = built !== null && core.tiers.storeBuilt(built, st.upstreamStart);
  const entry = built?.entry ?? old;
  st.fill?.settle(built?.entry ?? null);
  core.tiers.counters.inc(st.stale!.layer, 'revalidated');
  const detail = stored ? '; stored' : built !== null ? '; detail=invalidated' : '';
  return replaceWith(ctx, head, entry, `fwd=stale; fwd-status=304${detail}`, now, st.route.jsonrpc, st.clientConditional);
}

/** The body has a Content-Length within the size the store filter keeps in memory. */
function bufferedWhole(head: ResponseHead, threshold: number): boolean {
  const cl = first(head.headers['content-length']);
  if (cl === undefined || !/^\d+$/.test(cl)) return false;
  const n = Number(cl);
  return n > 0 && n <= threshold;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
