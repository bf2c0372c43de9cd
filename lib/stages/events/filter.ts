/**
 * The events response filter (the FIRST response filter: it sees the upstream's own body, before compression).
 *
 * - A route with `emits: [...]` raises its events when the upstream answers 2xx (with `emits: { events, on: any }`:
 *   whatever the upstream answers), with the route's params
 *   (path/query/header/body/identity params are already resolved; `response.a.b` params are read from the
 *   JSON response body, which is then collected, up to RESPONSE_PARAMS_LIMIT, while it passes unchanged).
 * - An upstream response header `X-Invalidate: event; name=value; ..., event2; ...` raises those events
 *   (any status: the upstream says it changed something) and is removed before the client sees it.
 *
 * The head is sent at once, but the end of the body is held until this pod's tiers are invalidated
 * (bounded by LOCAL_TIMEOUT_MS): a client that writes and then reads through this pod never reads its old
 * data. With `cache.invalidation.async: false` the end also waits for the publish to the other pods. The hold
 * is ResponseHead.endAfter, which the upstream leg keeps itself: no Transform in the body's path for it.
 */
import { Transform } from 'node:stream';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import type { ResponseHead, Stage } from '../../core/stage';
import type { RequestContext } from '../../core/context';
import type { Invalidator, Raised } from '../../cache/invalidation/engine';
import { LOCAL_TIMEOUT_MS } from '../../cache/invalidation/engine';
import { holdEndUntil } from '../../core/end-gate';
import { parseInvalidateHeader } from '../../cache/invalidation/patterns';
import { getPath } from '../../routes/router';
import { sameOriginUri, uriOf } from '../../cache/uri-index';

/** Response bodies read for `response.*` params are collected up to this size; beyond it those params are unknown. */
export const RESPONSE_PARAMS_LIMIT = 1024 * 1024;

export class EventsFilter implements Stage {
  readonly name = 'events';
  readonly span = null;

  constructor(private readonly inv: Invalidator) {}

  onResponse(ctx: RequestContext, head: ResponseHead): Transform | null {
    const rules = this.inv.rules;
    const header = head.headers['x-invalidate'];
    if (header !== undefined) delete head.headers['x-invalidate'];
    const raised: Raised[] = [];
    const uris = unsafeWriteTargets(ctx, head);
    if (uris !== null) raised.push(this.inv.invalidateUris(uris));
    if (rules === null) {
      if (raised.length !== 0) holdEndUntil(head, settled(raised, false));
      return null;
    }
    if (header !== undefined) {
      for (const e of parseInvalidateHeader(header)) raised.push(this.inv.raise(e.event, e.params));
    }
    const route = ctx.route;
    const emits = route !== null && (route.policy.emits_on === 'any' || (head.status >= 200 && head.status < 300)) ? route.policy.emits : null;
    if (emits !== null && emits.length > 0 && emits.some((e) => rules.triggers.has(e))) {
      if (route!.responseParams.length > 0) {
        // the events are raised once the body is read: the end waits for what CollectThenRaise hands over then
        let handOver!: (done: Promise<unknown>) => void;
        holdEndUntil(head, new Promise<unknown>((resolve) => { handOver = resolve; }));
        return new CollectThenRaise(this.inv, emits, { ...ctx.params }, route!.responseParams, first(head.headers['content-encoding']), raised, !rules.async, handOver);
      }
      for (const e of emits) raised.push(this.inv.raise(e, ctx.params));
    }
    if (raised.length !== 0) holdEndUntil(head, settled(raised, !rules.async));
    return null;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/**
 * RFC 9111 §4.4: the URIs a non-error answer to an unsafe request invalidates (its target, and a same-origin
 * Location / Content-Location), or null. A route with a `cache` section is a read by declaration (a cached
 * POST query) and invalidates nothing.
 */
function unsafeWriteTargets(ctx: RequestContext, head: ResponseHead): string[] | null {
  if (SAFE_METHODS.has(ctx.method) || head.status < 200 || head.status >= 400) return null;
  if (ctx.route !== null && ctx.route.policy.cache !== null) return null;
  const host = ctx.req.headers.host;
  const out = [uriOf(ctx.path, ctx.query)];
  for (const f of ['location', 'content-location']) {
    const u = sameOriginUri(first(head.headers[f]), ctx.path, host);
    if (u !== null && !out.includes(u)) out.push(u);
  }
  return out;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function settled(raised: readonly Raised[], remoteToo: boolean): Promise<unknown> {
  const all = Promise.all(raised.map((r) => (remoteToo ? r.all : r.local)));
  return new Promise((resolve) => {
    const t = setTimeout(resolve, LOCAL_TIMEOUT_MS);
    void all.then(() => { clearTimeout(t); resolve(undefined); });
  });
}

/**
 * Passes the body through while keeping a copy; at its end reads `response.*` params, raises, and hands the
 * invalidations over to ResponseHead.endAfter (whose EndGate, after this Transform, holds the last chunk).
 */
class CollectThenRaise extends Transform {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private over = false;

  constructor(
    private readonly inv: Invalidator,
    private readonly emits: readonly string[],
    private readonly params: Record<string, string>,
    private readonly responseParams: ReadonlyArray<readonly [string, readonly string[]]>,
    private readonly encoding: string | undefined,
    private readonly raised: Raised[],
    private readonly remoteToo: boolean,
    private readonly handOver: (done: Promise<unknown>) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    if (!this.over) {
      this.bytes += chunk.length;
      if (this.bytes > RESPONSE_PARAMS_LIMIT) {
        this.over = true;
        this.chunks = [];
      } else this.chunks.push(chunk);
    }
    cb(null, chunk);
  }

  override _flush(cb: (err?: Error | null) => void): void {
    if (!this.over) {
      const json = decodeJson(Buffer.concat(this.chunks), this.encoding);
      this.chunks = [];
      for (const [name, path] of this.responseParams) {
        const v = getPath(json, path);
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') this.params[name] = String(v);
      }
    }
    for (const e of this.emits) this.raised.push(this.inv.raise(e, this.params));
    this.handOver(settled(this.raised, this.remoteToo));
    cb();
  }
}

function decodeJson(body: Buffer, encoding: string | undefined): unknown {
  try {
    const e = (encoding ?? '').trim().toLowerCase();
    const max = { maxOutputLength: 8 * RESPONSE_PARAMS_LIMIT };
    const raw = e === 'gzip' || e === 'x-gzip' ? gunzipSync(body, max) : e === 'br' ? brotliDecompressSync(body, max) : e === 'deflate' ? inflateSync(body, max) : body;
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
}
