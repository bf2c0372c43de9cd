/**
 * The compression response filter: gzip or brotli on the way to the client, like nginx's gzip module
 * but with RFC 9110 negotiation. Runs after the events filter and before the cache store filter, so the cache
 * stores the encoded variant (see negotiate.ts for how a hit is served to clients with other Accept-Encoding).
 *
 * Decision, in order (the first that applies ends it):
 *   1. status 1xx, 204, 205, 206, 304, or a Content-Range   -> untouched (nothing to encode, or a byte range
 *      of the identity body that must stay one)
 *   2. Content-Encoding already present (not identity)       -> untouched: never encode twice
 *   3. Content-Type not in `types`                           -> untouched (SSE only when listed by name)
 *   4. Cache-Control: no-transform on the response or the request -> untouched (RFC 9111 §5.2)
 *   -- from here the response could have been compressed: Vary: Accept-Encoding is merged in --
 *   5. HEAD                                                  -> not encoded (nginx does the same)
 *   6. Accept-Encoding picks identity or nothing (negotiate) -> not encoded (identity even when the client
 *      refused it: nginx and RFC 9110 §12.5.3 do that rather than 406)
 *   7. Content-Length known and < threshold (or 0)           -> not encoded
 *   8. encode: Content-Encoding set, Content-Length and Accept-Ranges dropped (chunked), strong ETag made
 *      weak, Content-Digest/Content-MD5 dropped (they describe the identity bytes).
 *
 * Unknown length (chunked upstream): compressed, like nginx (gzip_min_length only looks at Content-Length).
 * Buffering up to `threshold` first would hold back the first bytes of every streamed answer (an SSE event, a
 * progress line) for no gain worth it: a short chunked body costs ~20 bytes of gzip framing.
 *
 * Streaming: the zlib stream sits in the body's stream.pipeline, so backpressure from the client reaches the
 * upstream socket and at most a few zlib chunks (16 KB) are held per response, whatever the body's size.
 */
import type { Transform, TransformCallback } from 'node:stream';
import type { Registry } from 'prom-client';
import type { Component, Runtime } from '../../core/component';
import type { CompressionPolicy, LoadedPolicy } from '../../policy/types';
import type { RequestContext } from '../../core/context';
import type { ResponseHead, Stage } from '../../core/stage';
import { IdentityTail } from '../../core/identity-tail';
import { PREFIX, registeredCounter } from '../../observe/metrics';
import { createEncoder, type ByteCounters } from './encoder';
import { hasToken, mergeVary, weakenEtag } from './headers';
import { negotiate, typeListFor, type Choice, type TypeList } from './negotiate';
import { requestSide } from './request-side';

const BYTES_METRIC = PREFIX + 'compression_bytes_total';
/** Memo value for "nothing acceptable" (negotiate's null). */
const NONE = 'none';

/** compression_bytes_total{direction="in"|"out"} on `registry` (created once per registry). */
export function compressionCounters(registry: Registry): ByteCounters {
  const c = registeredCounter(registry, BYTES_METRIC,
    'Bytes through response compression: direction="in" before encoding, "out" after. Ratio = out / in.', ['direction']);
  const counters = { in: c.labels('in'), out: c.labels('out') };
  counters.in.inc(0);
  counters.out.inc(0);
  return counters;
}

function statusHasNoEncodableBody(status: number): boolean {
  return status < 200 || status === 204 || status === 205 || status === 206 || status === 304;
}

function isEncoded(v: string | string[] | undefined): boolean {
  if (v === undefined) return false;
  const s = (Array.isArray(v) ? v.join(',') : v).trim().toLowerCase();
  return s !== '' && s !== 'identity';
}

export class CompressionFilter implements Stage {
  readonly name = 'compression';
  readonly span = null;
  private readonly types: TypeList;
  private readonly chosen = new Map<string, Choice | typeof NONE>();

  constructor(
    private readonly policy: CompressionPolicy,
    private readonly counters: ByteCounters,
  ) {
    this.types = typeListFor(policy);
  }

  onResponse(ctx: RequestContext, head: ResponseHead): Transform | null {
    const h = head.headers;
    if (statusHasNoEncodableBody(head.status) || h['content-range'] !== undefined) return null;
    if (isEncoded(h['content-encoding'])) return null;
    const contentType = h['content-type'];
    if (!this.types.matches(contentType)) return null;
    if (hasToken(h['cache-control'], 'no-transform')) return null;
    const coding = requestSide(ctx.method, ctx.req.headers, this.choose);
    if (coding === 'no-transform') return null;

    h.vary = mergeVary(h.vary);
    if (coding === 'head' || coding === 'not-accepted') return null;
    const cl = h['content-length'];
    const size = cl === undefined ? -1 : Number(Array.isArray(cl) ? cl[0] : cl);
    if (size >= 0 && size < Math.max(1, this.policy.threshold)) return null;

    h['content-encoding'] = coding;
    delete h['content-length'];
    delete h['accept-ranges'];
    delete h['content-md5'];
    delete h['content-digest'];
    const etag = h.etag;
    if (typeof etag === 'string') h.etag = weakenEtag(etag);

    const sse = typeof contentType === 'string' && contentType.toLowerCase().startsWith('text/event-stream');
    const encoder = createEncoder(coding, { level: this.policy.level, size: Number.isFinite(size) ? size : -1, flushEachChunk: sse }, this.counters);
    // a stream of events is never decided on its last bytes (the cache does not hold it whole)
    if (!sse) head.identityTail = keepIdentityTail(encoder);
    return encoder;
  }

  /** negotiate(), memoised per Accept-Encoding value: clients send a handful of distinct ones. */
  private readonly choose = (acceptEncoding: string | string[] | undefined): Choice | null => {
    if (acceptEncoding === undefined || Array.isArray(acceptEncoding)) return negotiate(acceptEncoding, this.policy.algorithm);
    const hit = this.chosen.get(acceptEncoding);
    if (hit !== undefined) return hit === NONE ? null : hit;
    const c = negotiate(acceptEncoding, this.policy.algorithm);
    if (this.chosen.size >= 128) this.chosen.clear(); // bounded: the header is client input
    this.chosen.set(acceptEncoding, c ?? NONE);
    return c;
  };
}

/** Keep the last bytes of what `encoder` is given (ResponseHead.identityTail), as it takes each chunk. */
function keepIdentityTail(encoder: Transform): IdentityTail {
  const tail = new IdentityTail(false); // the stage that reads it activates it
  const t = encoder as Transform & { _transform(chunk: Buffer, enc: BufferEncoding, cb: TransformCallback): void };
  const transform = t._transform;
  t._transform = function keepingTail(chunk: Buffer, enc: BufferEncoding, cb: TransformCallback): void {
    tail.add(chunk);
    transform.call(this, chunk, enc, cb);
  };
  return tail;
}

/** Builds the filter for each policy; null when the policy has no `compression` section or disables it. */
export class CompressionComponent implements Component<Stage> {
  private readonly counters: ByteCounters;

  constructor(rt: Runtime) {
    this.counters = compressionCounters(rt.metrics.registry);
  }

  configure(next: LoadedPolicy): Stage | null {
    const c = next.policy.compression;
    if (c === null || !c.enabled || c.algorithm.length === 0) return null;
    return new CompressionFilter(c, this.counters);
  }

  async close(): Promise<void> {}
}
