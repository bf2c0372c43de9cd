/**
 * The body side of storing a miss: passes the upstream body to the client while collecting it; at the end
 * checks store_if (or the JSON-RPC result rule), stores the entry and hands it to coalesced waiters. A body
 * over memory.large_body_threshold is streamed to L3 instead (never held whole), or not stored when there is
 * no L3 (or a store_if must read it).
 */
import { Transform } from 'node:stream';
import type { RequestContext } from '../../core/context';
import type { LargeWriter } from '../../cache/l3';
import type { StoreRequest } from '../../cache/admission';
import { buildEntry, buildMeta, markerFor, storeIfPasses } from '../../cache/admission';
import { retentionMs } from '../../cache/entry';
import type { HeldHead, ResponseHead } from '../../core/stage';
import type { IdentityTail } from '../../core/identity-tail';
import { CACHE_NAME } from '../../cache/respond';
import { appendLogStatus } from './cache-status';
import type { CacheCore, RequestState } from './state';

export class StoreTransform extends Transform {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private mode: 'buffer' | 'large' | 'skip' = 'buffer';
  private writer: LargeWriter | null = null;
  private finished = false;
  /** The head waits for this body (ResponseHead.hold): nothing is pushed until it is released. */
  private held: { readonly hold: HeldHead; readonly head: ResponseHead } | null;

  constructor(
    private readonly comp: CacheCore,
    private readonly st: RequestState,
    private readonly sr: StoreRequest,
    private readonly status: number,
    private readonly headers: Record<string, string | string[]>,
    private readonly suppressBody: boolean,
    private readonly ctx: RequestContext,
    held: { readonly hold: HeldHead; readonly head: ResponseHead } | null = null,
    /** The compressor's record of the identity body's end (ResponseHead.identityTail), for store_if. */
    private readonly identityTail: IdentityTail | null = null,
  ) {
    super();
    this.held = held;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (!this.suppressBody && this.held === null) this.push(chunk);
    if (this.mode === 'skip') { cb(); return; }
    if (this.mode === 'large') { this.writer!.write(chunk, () => cb()); return; }
    this.bytes += chunk.length;
    this.chunks.push(chunk);
    if (this.bytes <= this.comp.tiers.largeBodyThreshold) { cb(); return; }
    // too large to keep in memory: waiters go upstream themselves, the body goes to disk if there is an L3
    this.st.fill?.settle(null);
    if (this.held !== null) this.releaseHead(this.chunks); // longer than its Content-Length said: stop holding
    const l3 = this.comp.tiers.l3;
    if (l3 === null || this.st.route.storeIf !== null) {
      this.mode = 'skip';
      this.chunks = [];
      cb();
      return;
    }
    this.mode = 'large';
    l3.openLargeWriter().then((w) => {
      this.writer = w;
      const pending = this.chunks;
      this.chunks = [];
      let i = 0;
      const next = (): void => { if (i < pending.length) w.write(pending[i++], next); else cb(); };
      next();
    }, () => {
      this.mode = 'skip';
      this.chunks = [];
      cb();
    });
  }

  override _flush(cb: (err?: Error | null) => void): void {
    this.finished = true;
    if (this.held === null) {
      cb();
      this.completeSafely();
      return;
    }
    // the head waited for this: store first, so Cache-Status says what happened, then send head and body
    const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = [body];
    this.completeSafely();
    const { head } = this.held;
    head.headers['cache-status'] = `${CACHE_NAME}; ${this.ctx.cacheStatus ?? ''}`;
    this.releaseHead([body]);
    cb();
  }

  private completeSafely(): void {
    try {
      this.complete();
    } catch (err) {
      this.st.fill?.settle(null);
      this.comp.logError(err);
    }
  }

  /** Write the held head, then the body held so far. */
  private releaseHead(pending: readonly Buffer[]): void {
    const held = this.held!;
    this.held = null;
    held.hold.release();
    if (!this.suppressBody) for (const c of pending) if (c.length !== 0) this.push(c);
  }

  private complete(): void {
    const now = this.comp.clock.now();
    if (this.mode === 'skip') return;
    if (this.mode === 'large') {
      const w = this.writer!;
      // the key of a large entry is computed like any other; its vary marker (if any) is stored normally
      const meta = buildMeta(this.sr, this.status, this.headers, 0, '', now);
      if (meta === null) { void w.abort(); return; }
      const l3 = this.comp.tiers.l3;
      if (l3 === null) { void w.abort(); return; }
      if (this.comp.tiers.refuses(meta.key, this.st.upstreamStart)) {
        void w.abort();
        this.markInvalidated();
        return;
      }
      const marker = markerFor(this.sr.baseKey, meta);
      if (marker !== null) this.comp.tiers.store(marker.meta.key, marker, this.st.upstreamStart);
      const { bodyLength: _l, bodySha256: _s, ...rest } = meta;
      void _l; void _s;
      const ttl = retentionMs(meta, now, this.comp.tiers.ttls.l3);
      // the file lands a moment later: an invalidation that came in between (and found nothing to remove yet)
      // takes it out again
      const tiers = this.comp.tiers;
      const start = this.st.upstreamStart;
      tiers.index(meta.key, meta); // an unsafe request to its URI removes it like any other entry
      w.finish({ ...rest, key: meta.key }, ttl).then(() => {
        if (tiers.recent.blocks(meta.key, start)) return l3.delete(meta.key);
      }).catch(() => {});
      appendLogStatus(this.ctx, 'detail=l3-stream');
      return;
    }
    const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = [];
    if (!storeIfPasses(this.sr.storeIf, this.headers, body, this.sr.jsonrpc, this.identityTail)) {
      this.st.fill?.settle(null);
      // no store_if on a JSON-RPC route: the answer was an error, not a result
      appendLogStatus(this.ctx, this.sr.storeIf === null ? 'detail=jsonrpc-error' : 'detail=store_if');
      return;
    }
    const built = buildEntry(this.sr, this.status, this.headers, body, now);
    if (built === null) {
      this.st.fill?.settle(null);
      return;
    }
    // waiters get the answer either way (their requests were in flight with this one)
    if (!this.comp.tiers.storeBuilt(built, this.st.upstreamStart)) this.markInvalidated();
    else if (this.sr.storeIf !== null || this.sr.jsonrpc === true) appendLogStatus(this.ctx, 'stored');
    this.st.fill?.settle(built.entry);
  }

  /** The log's cache status says why nothing was stored (the head may have gone out before we knew). */
  private markInvalidated(): void {
    const s = this.ctx.cacheStatus ?? '';
    if (!s.includes('detail=invalidated')) appendLogStatus(this.ctx, 'detail=invalidated');
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.finished) {
      this.st.fill?.settle(null);
      if (this.writer) void this.writer.abort();
    }
    cb(err);
  }
}
