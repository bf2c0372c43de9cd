/**
 * OpenTelemetry traces, made by hand (no auto-instrumentation of http: it would double the spans and cost on
 * every request): one SERVER span per request with the stable HTTP semantic conventions, child spans for the
 * stages (rate limit, cache lookup, queue wait, Redis calls) and a CLIENT span per upstream attempt, whose
 * W3C `traceparent` is sent upstream. A client's `traceparent` is continued. Sampling is parent-based with a
 * ratio for new traces (`tracing.sampling_rate`); spans are batched and exported as OTLP/HTTP (JSON) to
 * `tracing.endpoint` + /v1/traces.
 *
 * Cost when tracing is off: the Pipeline holds `tracing: null`, `ctx.traceId` stays null, and every helper here
 * starts with that null check; the OpenTelemetry SDK is not even loaded (it is required on first use).
 *
 * The SDK pieces are the ones @opentelemetry/sdk-node wires together (sdk-trace-base, exporter-trace-otlp-http,
 * resources, core); NodeSDK itself is not used because it installs process-global providers and takes over a
 * second to load, and a policy reload must be able to swap the provider.
 */
import { hostname } from 'node:os';
import type { IncomingMessage } from 'node:http';
import {
  ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, defaultTextMapGetter,
  type Attributes, type Context, type Span, type TextMapPropagator, type Tracer,
} from '@opentelemetry/api';
import type { TracingPolicy } from '../policy/types';
import type { RequestContext } from '../core/context';
import { createLogger, type Logger } from './logger';

type SdkTraceBase = typeof import('@opentelemetry/sdk-trace-base');
type OtlpHttp = typeof import('@opentelemetry/exporter-trace-otlp-http');
type Resources = typeof import('@opentelemetry/resources');
type Core = typeof import('@opentelemetry/core');
type SpanExporter = import('@opentelemetry/sdk-trace-base').SpanExporter;

/**
 * Logs when span export starts failing (collector down, wrong endpoint) and when it recovers: once per change,
 * not once per batch, so an absent collector does not flood the logs.
 */
class ReportingExporter implements SpanExporter {
  private failing = false;
  private dropped = 0;

  constructor(private readonly inner: SpanExporter, private readonly url: string, private readonly log: Logger) {}

  export(spans: Parameters<SpanExporter['export']>[0], done: Parameters<SpanExporter['export']>[1]): void {
    this.inner.export(spans, (result) => {
      if (result.code !== 0) {
        this.dropped += spans.length;
        if (!this.failing) this.log.warn({ endpoint: this.url, err: result.error?.message }, 'trace export failing: spans are dropped until it recovers');
        this.failing = true;
      } else if (this.failing) {
        this.log.info({ endpoint: this.url, dropped_spans: this.dropped }, 'trace export recovered');
        this.failing = false;
        this.dropped = 0;
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

let exportLog: Logger | null = null;

/**
 * What a traced request carries: its server span and, when that span is sampled (recording), the context its
 * children start from. An unsampled request makes no other span: it only propagates its trace id upstream.
 */
interface RequestTrace {
  readonly tracing: Tracing;
  readonly span: Span;
  readonly context: Context | null;
}

const TRACE = Symbol('bridge-sidecar.trace');
/** Anything a request's trace hangs on (the request's context): storage code takes this, not a request. */
export interface Traceable {
  /** The W3C trace id when the request is traced, else null (then tracing costs one null check). */
  readonly traceId: string | null;
}

type Traced = Traceable & { [TRACE]?: RequestTrace };

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
/** How long a replaced provider keeps exporting spans of requests that were in flight during a reload. */
const REPLACED_PROVIDER_GRACE_MS = 30_000;

/** Spans are exported in batches: this often, or sooner when a batch is full. */
export const EXPORT_DELAY_MS = 1000;

export class Tracing {
  readonly tracer: Tracer;
  private readonly provider: { shutdown(): Promise<void>; forceFlush(): Promise<void> };
  private readonly propagator: TextMapPropagator;

  constructor(readonly policy: TracingPolicy) {
    /* eslint-disable @typescript-eslint/no-require-imports */
    const sdk = require('@opentelemetry/sdk-trace-base') as SdkTraceBase;
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as OtlpHttp;
    const { resourceFromAttributes } = require('@opentelemetry/resources') as Resources;
    const { W3CTraceContextPropagator } = require('@opentelemetry/core') as Core;
    /* eslint-enable @typescript-eslint/no-require-imports */
    const url = tracesUrl(policy.endpoint);
    exportLog ??= createLogger('info', { component: 'tracing' });
    const exporter = new ReportingExporter(new OTLPTraceExporter({ url, timeoutMillis: 10_000 }), url, exportLog);
    const provider = new sdk.BasicTracerProvider({
      resource: resourceFromAttributes({
        'service.name': policy.service_name,
        'service.instance.id': `${hostname()}:${process.pid}`,
        'process.pid': process.pid,
      }),
      sampler: new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(policy.sampling_rate) }),
      spanProcessors: [new sdk.BatchSpanProcessor(exporter, {
        scheduledDelayMillis: EXPORT_DELAY_MS,
        // under overload spans are dropped rather than held: tracing must never grow memory without bound
        maxQueueSize: 4096,
        maxExportBatchSize: 512,
      })],
    });
    this.provider = provider;
    this.tracer = provider.getTracer('bridge-sidecar');
    this.propagator = new W3CTraceContextPropagator();
  }

  /**
   * Opens the request's SERVER span (continuing the client's traceparent) and sets ctx.traceId. Attributes are
   * only built for sampled spans (the samplers used here do not look at them), so an unsampled request costs
   * little more than its ids.
   */
  startRequest(ctx: RequestContext): void {
    const req = ctx.req;
    const parent = req.headers.traceparent !== undefined
      ? this.propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter)
      : ROOT_CONTEXT;
    const method = KNOWN_METHODS.has(ctx.method) ? ctx.method : '_OTHER';
    const span = this.tracer.startSpan(method, { kind: SpanKind.SERVER }, parent);
    ctx.traceId = span.spanContext().traceId;
    if (!span.isRecording()) {
      (ctx as Traced)[TRACE] = { tracing: this, span, context: null };
      return;
    }
    const attributes: Attributes = {
      'http.request.method': method,
      'url.path': ctx.path,
      'url.scheme': 'http',
      'network.protocol.version': req.httpVersion,
      'client.address': req.socket.remoteAddress,
    };
    if (method === '_OTHER') attributes['http.request.method_original'] = ctx.method;
    setServerAddress(attributes, req);
    const ua = req.headers['user-agent'];
    if (ua !== undefined) attributes['user_agent.original'] = ua;
    span.setAttributes(attributes);
    (ctx as Traced)[TRACE] = { tracing: this, span, context: trace.setSpan(parent, span) };
  }

  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

function tracesUrl(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, '');
  return base.endsWith('/v1/traces') ? base : `${base}/v1/traces`;
}

/** server.address / server.port from the Host header (semantic conventions for HTTP servers). */
function setServerAddress(attributes: Attributes, req: IncomingMessage): void {
  const host = req.headers.host;
  if (host === undefined) {
    attributes['server.address'] = req.socket.localAddress;
    attributes['server.port'] = req.socket.localPort;
    return;
  }
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host);
  if (!m) return;
  attributes['server.address'] = m[1];
  attributes['server.port'] = m[2] !== undefined ? Number(m[2]) : 80;
}

// ---- the process's provider, re-created when the policy's tracing section changes --------------------------

let current: { key: string; tracing: Tracing | null } = { key: 'null', tracing: null };
const retiring = new Set<Tracing>();

/**
 * The Tracing for a policy's `tracing` section (null when absent or disabled). The same settings give the same
 * instance, so reloads that leave tracing alone keep the provider; changed settings (endpoint, sampling rate,
 * service name) get a new one, and the old one keeps exporting for a grace period for requests in flight.
 */
export function tracingFor(policy: TracingPolicy | null): Tracing | null {
  const wanted = policy !== null && policy.enabled ? policy : null;
  const key = JSON.stringify(wanted);
  if (key === current.key) return current.tracing;
  const old = current.tracing;
  current = { key, tracing: wanted ? new Tracing(wanted) : null };
  if (old) {
    retiring.add(old);
    setTimeout(() => {
      retiring.delete(old);
      void old.shutdown().catch(() => {});
    }, REPLACED_PROVIDER_GRACE_MS).unref();
  }
  return current.tracing;
}

/** Exports what is buffered and stops: called when the process shuts down. */
export async function shutdownTracing(): Promise<void> {
  const all = [...retiring, ...(current.tracing ? [current.tracing] : [])];
  retiring.clear();
  current = { key: 'null', tracing: null };
  await Promise.allSettled(all.map((t) => t.shutdown()));
}

// ---- per-request helpers for the stages: each is a null check when tracing is off ---------------------------

export interface ChildSpan {
  /** Ends the span; an error (or error kind) marks it failed. Extra attributes are set first. */
  end(error?: unknown, attributes?: Attributes): void;
}

const NOOP_SPAN: ChildSpan = { end() {} };

class LiveChildSpan implements ChildSpan {
  constructor(private readonly span: Span) {}

  end(error?: unknown, attributes?: Attributes): void {
    if (attributes) this.span.setAttributes(attributes);
    if (error !== undefined && error !== null && error !== false) markError(this.span, error);
    this.span.end();
  }
}

function markError(span: Span, error: unknown): void {
  const e = error as { code?: unknown; name?: unknown; message?: unknown };
  const type = typeof error === 'string' ? error
    : typeof e.code === 'string' ? e.code
    : typeof e.name === 'string' && e.name !== 'Error' ? e.name : '_OTHER';
  span.setAttribute('error.type', type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: typeof e.message === 'string' ? e.message : undefined });
}

/**
 * A child span of the request's span, e.g. `startChildSpan(ctx, 'cache.lookup l2', {'cache.layer': 'l2'})`,
 * then `.end()` or `.end(err)`. Returns a shared no-op when tracing is off or the request is not traced.
 */
export function startChildSpan(ctx: Traceable, name: string, attributes?: Attributes, kind: SpanKind = SpanKind.INTERNAL): ChildSpan {
  if (ctx.traceId === null) return NOOP_SPAN;
  const rt = (ctx as Traced)[TRACE];
  if (rt === undefined || rt.context === null) return NOOP_SPAN;
  return new LiveChildSpan(rt.tracing.tracer.startSpan(name, { kind, attributes }, rt.context));
}

/**
 * A CLIENT span around a Redis call on a request's path: `traceRedis(ctx, 'GET', conn.withTimeout(...))`.
 * Returns `call` itself, so the caller's promise and error handling are unchanged.
 */
export function traceRedis<T>(ctx: Traceable, operation: string, call: Promise<T>): Promise<T> {
  if (ctx.traceId === null) return call;
  const span = startChildSpan(ctx, `redis ${operation}`, { 'db.system.name': 'redis', 'db.operation.name': operation }, SpanKind.CLIENT);
  call.then(() => span.end(), (err: unknown) => span.end(err ?? 'error'));
  return call;
}

/** Ends the request's SERVER span with the outcome; `routeTemplate` is the matched route's path template. */
export function endRequestSpan(ctx: RequestContext, status: number, routeTemplate: string | null): void {
  if (ctx.traceId === null) return;
  const rt = (ctx as Traced)[TRACE];
  if (rt === undefined) return;
  const span = rt.span;
  if (rt.context === null) return; // unsampled: nothing was recorded, nothing to end
  const method = KNOWN_METHODS.has(ctx.method) ? ctx.method : '_OTHER';
  if (routeTemplate !== null) {
    span.setAttribute('http.route', routeTemplate);
    span.updateName(`${method} ${routeTemplate}`);
  }
  span.setAttribute('bridge_sidecar.endpoint', ctx.endpoint);
  if (ctx.cacheStatus !== null) span.setAttribute('bridge_sidecar.cache_status', ctx.cacheStatus);
  if (status === 499) {
    // the client went away before an answer (nginx's 499): no status code was sent
    span.setAttribute('error.type', 'client_closed');
  } else {
    span.setAttribute('http.response.status_code', status);
    if (status >= 500) {
      span.setAttribute('error.type', String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
  }
  span.end();
}

/** One upstream attempt: a CLIENT span whose context is sent upstream as `traceparent`. */
export interface UpstreamSpan {
  /** The upstream's answer has this status; the span goes on until end(). */
  response(status: number): void;
  /** The answer's body was read whole (ok) or cut off: ends the span. */
  end(ok: boolean): void;
  /** No answer (error, timeout): ends the span as failed. */
  fail(error: unknown): void;
}

class LiveUpstreamSpan implements UpstreamSpan {
  private ended = false;
  constructor(private readonly span: Span) {}

  response(status: number): void {
    this.span.setAttribute('http.response.status_code', status);
    if (status >= 400) {
      this.span.setAttribute('error.type', String(status));
      this.span.setStatus({ code: SpanStatusCode.ERROR });
    }
  }

  end(ok: boolean): void {
    if (!ok) markError(this.span, 'response_aborted');
    this.finish();
  }

  fail(error: unknown): void {
    markError(this.span, error ?? 'error');
    this.finish();
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.span.end();
  }
}

/**
 * Starts the CLIENT span of an upstream attempt and writes its `traceparent` into the request headers that
 * http-proxy copies upstream. Returns null when the request is not traced (the client's own traceparent, if
 * any, then passes through untouched, as with any transparent proxy).
 */
export function startUpstreamSpan(ctx: RequestContext, upstream: { host: string; port: number; protocol: string }, attempt: number): UpstreamSpan | null {
  if (ctx.traceId === null) return null;
  const rt = (ctx as Traced)[TRACE];
  if (rt === undefined) return null;
  if (rt.context === null) {
    // not sampled: no span, but the trace goes on upstream (flags 00) so the services agree on the trace id
    writeTraceparent(ctx.req.headers, rt.span);
    return null;
  }
  const method = KNOWN_METHODS.has(ctx.method) ? ctx.method : '_OTHER';
  const attributes: Attributes = {
    'http.request.method': method,
    'server.address': upstream.host,
    'server.port': upstream.port,
    'url.full': `${upstream.protocol}//${upstream.host}:${upstream.port}${ctx.path}`,
  };
  if (attempt > 0) attributes['http.request.resend_count'] = attempt;
  const span = rt.tracing.tracer.startSpan(method, { kind: SpanKind.CLIENT, attributes }, rt.context);
  writeTraceparent(ctx.req.headers, span);
  return new LiveUpstreamSpan(span);
}

/** W3C trace context of `span` into request headers (what W3CTraceContextPropagator.inject writes). */
function writeTraceparent(headers: IncomingMessage['headers'], span: Span): void {
  const sc = span.spanContext();
  headers.traceparent = `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
  const state = sc.traceState?.serialize();
  if (state) headers.tracestate = state;
  else delete headers.tracestate;
}
