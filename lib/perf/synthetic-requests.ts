/**
 * Requests that exercise a policy's routes, made up from the routes' own match rules: each route's method,
 * path (placeholders filled), required query and header values, JSON body fields (and body params), plus a
 * plain GET and a JSON POST that match no route. Used by the JIT warm-up, so the code each route takes is
 * compiled before real traffic arrives.
 */
import type { Policy, RoutePolicy } from '../policy/types';

export interface SyntheticRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string | null;
}

const FILL = 'warmup';

function fillPath(template: string | null): string {
  if (template === null) return '/__warmup';
  return template.replace(/\{[A-Za-z_][A-Za-z0-9_]*\}/g, FILL).replace(/\*$/, FILL);
}

function setPath(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let at = obj;
  for (let i = 0; i < parts.length - 1; i++) {
    const next = at[parts[i]!];
    if (typeof next !== 'object' || next === null) at[parts[i]!] = {};
    at = at[parts[i]!] as Record<string, unknown>;
  }
  at[parts[parts.length - 1]!] = value;
}

function forRoute(r: RoutePolicy, variant: number): SyntheticRequest {
  const m = r.match;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = v === '*' ? FILL : v;
  const query = Object.entries(m.query ?? {}).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v === '*' ? FILL : v)}`);
  let body: Record<string, unknown> | null = null;
  if (m.body !== null || m.jsonrpc_method !== null) body = {};
  for (const src of Object.values(r.params)) {
    if (src.startsWith('body.')) setPath((body ??= {}), src.slice(5), `${FILL}-${variant}`);
    else if (src.startsWith('query.')) query.push(`${encodeURIComponent(src.slice(6))}=${FILL}${variant}`);
    else if (src.startsWith('header.')) headers[src.slice(7).toLowerCase()] ??= `${FILL}-${variant}`;
  }
  for (const [k, v] of Object.entries(m.body ?? {})) setPath((body ??= {}), k, v);
  if (m.jsonrpc_method !== null) Object.assign((body ??= {}), { jsonrpc: '2.0', id: variant, method: m.jsonrpc_method });
  const method = m.method ?? (body !== null ? 'POST' : 'GET');
  if (body !== null) headers['content-type'] = 'application/json';
  const path = fillPath(m.path) + (query.length > 0 ? '?' + query.join('&') : '');
  return { method, path, headers, body: body === null || method === 'GET' || method === 'HEAD' ? null : JSON.stringify(body) };
}

/**
 * A few variants of each route (distinct params, numbered from `first`: another `first` gives other cache
 * keys, so misses again), then pass-through GETs and POSTs.
 */
export function syntheticRequests(policy: Policy, variants = 4, first = 0): SyntheticRequest[] {
  const out: SyntheticRequest[] = [];
  for (const r of policy.routes) for (let v = first; v < first + variants; v++) out.push(forRoute(r, v));
  out.push({ method: 'GET', path: '/__warmup/get', headers: { accept: 'application/json' }, body: null });
  out.push({ method: 'POST', path: '/__warmup/post', headers: { 'content-type': 'application/json' }, body: '{"warmup":true}' });
  return out;
}
