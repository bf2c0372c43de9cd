/**
 * stale-while-revalidate: the stale copy was served; refresh it in the background, one refresh per key at a
 * time. The refresh is conditional when the entry has validators; a 5xx or a network failure keeps the stale
 * copy (stale-if-error then applies to later requests); an answer the upstream no longer lets us store removes
 * the entry.
 */
import type { RequestContext } from '../../core/context';
import type { UpstreamPolicy } from '../../policy/types';
import type { Found } from '../../cache/tiers';
import type { StoreRequest } from '../../cache/admission';
import { buildEntry, headNotStorable, refreshWith304, storeIfPasses } from '../../cache/admission';
import { fetchUpstream } from '../../cache/refresh';
import { HOP_BY_HOP } from '../../util/hop-by-hop';
import { storeRequest, type CacheCore, type RequestState } from './state';

/** Request fields not copied onto the refresh: hop-by-hop, and the ones fetchUpstream sets itself. */
const NOT_COPIED = (name: string): boolean => HOP_BY_HOP.has(name) || name === 'host' || name === 'content-length';

export function refreshInBackground(core: CacheCore, upstream: UpstreamPolicy, readTimeout: number, ctx: RequestContext, st: RequestState, found: Found): void {
  const key = found.meta.key;
  if (core.refreshing.has(key)) return;
  core.refreshing.add(key);
  const src = ctx.req.headers;
  const headers: Record<string, string> = {};
  for (const name in src) {
    const v = src[name];
    if (v === undefined || NOT_COPIED(name) || name === 'if-none-match' || name === 'if-modified-since') continue;
    headers[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  const conditional = found.entry !== null && (found.meta.etag !== null || found.meta.lastModified !== null);
  if (conditional) {
    if (found.meta.etag !== null) headers['if-none-match'] = found.meta.etag;
    if (found.meta.lastModified !== null) headers['if-modified-since'] = found.meta.lastModified;
  }
  const sr: StoreRequest = { ...storeRequest(ctx, st), headers: { ...src } };
  const path = ctx.query ? `${ctx.path}?${ctx.query}` : ctx.path;
  const large = core.tiers.largeBodyThreshold;
  const started = core.tiers.recent.now();
  fetchUpstream(upstream, ctx.method, path, headers, ctx.body, readTimeout, large, () => core.clock.now())
    .then((r) => {
      const rsr = { ...sr, requestTime: r.requestTime };
      if (r.status === 304 && conditional && found.entry !== null) {
        const built = refreshWith304(found.entry, rsr, r.headers, r.responseTime);
        if (built !== null) core.tiers.storeBuilt(built, started);
        return;
      }
      if (r.status >= 500) return; // keep serving the stale copy within its windows
      const reason = headNotStorable(r.status, r.headers, rsr);
      if (reason === null && storeIfPasses(rsr.storeIf, r.headers, r.body, rsr.jsonrpc)) {
        const built = buildEntry(rsr, r.status, r.headers, r.body, r.responseTime);
        if (built !== null) core.tiers.storeBuilt(built, started);
      } else if (reason !== null) {
        void core.tiers.delete(key); // the upstream no longer lets this be cached
      }
    })
    .catch(() => { /* the stale copy stays; stale-if-error rules apply to later requests */ })
    .finally(() => core.refreshing.delete(key));
}
