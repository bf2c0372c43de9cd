/**
 * Everything the stages of one request share. One object per request, created by the pipeline; fields that
 * are not needed stay at their cheap defaults, so a pass-through request allocates little.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Priority } from '../policy/types';
import type { CompiledRoute } from '../routes/router';

export class RequestContext {
  /** Request path without the query string, as sent (not decoded). */
  readonly path: string;
  /** Raw query string without '?', or ''. */
  readonly query: string;
  readonly method: string;
  /** performance.now() when the request arrived. */
  readonly startedAt: number;

  route: CompiledRoute | null = null;
  /** Route params (path.X, query.X, header.X, body.a.b, identity), resolved at match time. */
  params: Record<string, string> = EMPTY_PARAMS;
  /** The request body when a route needed it (bounded by client_max_body_size), else null: it streams. */
  body: Buffer | null = null;
  /** The body parsed as JSON when it was read and is JSON, else undefined. */
  json: unknown = undefined;
  /** Metric label: route name, else the per-endpoint limit path, else "other". Never the raw path. */
  endpoint = 'other';
  priority: Priority = 'medium';
  /** Who the caller is for per-user limits and `identity` params; set by the identity resolver. */
  identity: string | null = null;

  // Outcome fields for the access log and metrics; stages fill them in.
  cacheStatus: string | null = null;
  limitOutcome: string | null = null;
  upstreamMs = -1;
  queueMs = -1;
  retries = 0;
  /** Extra response headers stages want on the final response (RateLimit, Cache-Status, ...). */
  extraHeaders: Array<readonly [string, string]> | null = null;
  /** W3C trace id when tracing is on, for the access log. */
  traceId: string | null = null;
  /** Set once the response head has been written (by any stage). */
  responded = false;
  /** performance.now() when the request was handed to the upstream (its queue slot's latency starts here). */
  forwardedAt = 0;
  /** Stages' own per-request objects, by StageSlot (see ./stage.ts); null until a stage stores one. */
  slots: unknown[] | null = null;
  /** The upstream leg's state for this request while it is upstream (the undici leg's exchange), else null. */
  exchange: object | null = null;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    startedAt: number,
  ) {
    this.startedAt = startedAt;
    this.method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    this.path = q === -1 ? url : url.slice(0, q);
    this.query = q === -1 ? '' : url.slice(q + 1);
  }

  /** The request target to send upstream: origin-form as received; an absolute-form one cut to its path. */
  pathAndQuery(): string {
    const url = this.req.url ?? '/';
    if (url.charCodeAt(0) === 47 /* / */) return url;
    try {
      const u = new URL(url);
      return u.pathname + u.search;
    } catch {
      return '/';
    }
  }

  addHeader(name: string, value: string): void {
    (this.extraHeaders ??= []).push([name, value]);
  }

  /** The client's address: the socket peer (X-Forwarded-For is only trusted by the identity resolver). */
  get clientAddress(): string {
    // the socket is gone once the connection closed (a request that ended as 499, a slow one logged late)
    return this.req.socket?.remoteAddress ?? 'unknown';
  }
}

const EMPTY_PARAMS: Record<string, string> = Object.freeze({}) as Record<string, string>;
