/**
 * The request `explain` is asked about: from curl-like flags, a raw HTTP/1.1 request, or the JSON body of
 * POST /debug/explain. Header names are lower-cased (as node gives them to the proxy); repeated headers become
 * arrays, except that Cookie values are joined, as node does.
 */
import type { IncomingHttpHeaders } from 'node:http';

export interface ExplainRequest {
  readonly method: string;
  /** Path, without the query. */
  readonly path: string;
  /** Query string without '?'. */
  readonly query: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer | null;
  /** The peer address the identity falls back to (default 127.0.0.1). */
  readonly clientAddress: string;
}

export class ExplainInputError extends Error {}

function addHeader(h: IncomingHttpHeaders, line: string): void {
  const colon = line.indexOf(':');
  if (colon <= 0) throw new ExplainInputError(`header "${line}" is not "Name: value"`);
  const name = line.slice(0, colon).trim().toLowerCase();
  const value = line.slice(colon + 1).trim();
  if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) throw new ExplainInputError(`header name "${name}" is not a valid token`);
  const prev = h[name];
  if (prev === undefined) h[name] = value;
  else if (name === 'cookie') h[name] = `${String(prev)}; ${value}`;
  else h[name] = Array.isArray(prev) ? [...prev, value] : [String(prev), value];
}

function splitTarget(target: string): { path: string; query: string } {
  let t = target;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) {
    const u = new URL(t);
    t = u.pathname + u.search;
  }
  if (!t.startsWith('/')) throw new ExplainInputError(`request target "${target}" must be a path (/x) or an absolute URL`);
  const q = t.indexOf('?');
  return q === -1 ? { path: t, query: '' } : { path: t.slice(0, q), query: t.slice(q + 1) };
}

export interface CurlLike {
  url: string;
  method?: string;
  headers?: readonly string[];
  /** -d / --data (curl strips newlines from @file data; given as text here) */
  data?: string;
  /** --data-binary: the exact bytes */
  dataBinary?: Buffer;
  clientAddress?: string;
}

/** curl's rules: -d implies POST and a form Content-Type unless one is given; the URL's host becomes Host. */
export function fromCurl(c: CurlLike): ExplainRequest {
  const headers: IncomingHttpHeaders = {};
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(c.url)) headers.host = new URL(c.url).host;
  for (const line of c.headers ?? []) addHeader(headers, line);
  const body = c.dataBinary ?? (c.data !== undefined ? Buffer.from(c.data) : null);
  if (body !== null) {
    headers['content-type'] ??= 'application/x-www-form-urlencoded';
    headers['content-length'] = String(body.length);
  }
  const { path, query } = splitTarget(c.url);
  return { method: (c.method ?? (body !== null ? 'POST' : 'GET')).toUpperCase(), path, query, headers, body, clientAddress: c.clientAddress ?? '127.0.0.1' };
}

/** A raw HTTP/1.1 request as a file holds it: request line, headers, blank line, body (CRLF or LF). */
export function fromRaw(raw: Buffer, clientAddress = '127.0.0.1'): ExplainRequest {
  const { first, headers, body: rest } = splitMessage(raw);
  const m = /^([A-Z]+) (\S+)(?: HTTP\/1\.[01])?$/.exec(first.trim());
  if (!m) throw new ExplainInputError(`first line "${first}" is not "METHOD /path HTTP/1.1"`);
  let body = rest;
  const cl = headers['content-length'];
  if (body !== null && typeof cl === 'string' && Number(cl) < body.length) body = body.subarray(0, Number(cl));
  if (body !== null && body.length === 0) body = null;
  const { path, query } = splitTarget(m[2]);
  return { method: m[1], path, query, headers, body, clientAddress };
}

/** The JSON body of POST /debug/explain: {method, url, headers: {name: value} | ["Name: value"], body?, body_base64?}. */
export function fromJson(v: unknown): ExplainRequest {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ExplainInputError('body must be {"method", "url", "headers", "body"}');
  const o = v as Record<string, unknown>;
  if (typeof o.url !== 'string') throw new ExplainInputError('"url" (a path or absolute URL) is required');
  const headers: string[] = [];
  if (Array.isArray(o.headers)) for (const h of o.headers) headers.push(String(h));
  else if (o.headers !== undefined && o.headers !== null && typeof o.headers === 'object') {
    for (const [k, val] of Object.entries(o.headers)) for (const one of Array.isArray(val) ? val : [val]) headers.push(`${k}: ${String(one)}`);
  }
  const dataBinary = typeof o.body_base64 === 'string' ? Buffer.from(o.body_base64, 'base64')
    : typeof o.body === 'string' ? Buffer.from(o.body) : o.body !== undefined && o.body !== null ? Buffer.from(JSON.stringify(o.body)) : undefined;
  const r = fromCurl({
    url: o.url,
    method: typeof o.method === 'string' ? o.method : undefined,
    headers,
    dataBinary,
    clientAddress: typeof o.client_address === 'string' ? o.client_address : undefined,
  });
  // a JSON body given as an object is JSON, whatever curl would have assumed
  if (dataBinary !== undefined && typeof o.body === 'object' && o.body !== null && !headers.some((h) => /^content-type:/i.test(h))) {
    return { ...r, headers: { ...r.headers, 'content-type': 'application/json' } };
  }
  return r;
}

/** The request as JSON for POST /debug/explain (what `explain --admin` sends). */
export function toJson(r: ExplainRequest): Record<string, unknown> {
  return {
    method: r.method,
    url: r.query ? `${r.path}?${r.query}` : r.path,
    headers: r.headers,
    ...(r.body !== null ? { body_base64: r.body.toString('base64') } : {}),
    client_address: r.clientAddress,
  };
}

/** A raw HTTP/1.1 answer (status line, headers, blank line, body), for judging the cache's store rules. */
export function responseFromRaw(raw: Buffer): { status: number; headers: IncomingHttpHeaders; body: Buffer } {
  const { first, headers, body } = splitMessage(raw);
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(first);
  if (!m) throw new ExplainInputError(`first line "${first}" is not "HTTP/1.1 STATUS ..."`);
  return { status: Number(m[1]), headers, body: body ?? Buffer.alloc(0) };
}

/** An HTTP/1.1 message as a file holds it: first line, header lines, blank line (CRLF or LF), body (null if no blank line). */
function splitMessage(raw: Buffer): { first: string; headers: IncomingHttpHeaders; body: Buffer | null } {
  let end = raw.indexOf('\r\n\r\n');
  let sep = 4;
  if (end === -1) {
    end = raw.indexOf('\n\n');
    sep = 2;
  }
  const lines = (end === -1 ? raw : raw.subarray(0, end)).toString('latin1').split(/\r?\n/);
  const headers: IncomingHttpHeaders = {};
  for (const line of lines.slice(1)) if (line.trim() !== '') addHeader(headers, line);
  return { first: lines[0] ?? '', headers, body: end === -1 ? null : raw.subarray(end + sep) };
}
