/**
 * What a cached route's key is made of, decided once per policy: which part of a request body joins the key.
 *
 * A POST answer depends on its body (RFC 9110 §9.3.3). A route names the body fields its answers depend on
 * (match.body, body.* params); a JSON-RPC route depends on method + params; a route that names none gets the
 * digest of the whole body in its key, so two POSTs with different bodies never share an entry.
 */
import { createHash } from 'node:crypto';
import type { RoutePolicy } from '../policy/types';
import { classifyJsonRpc, jsonRpcKeyPart } from './jsonrpc';

export type BodyKeying =
  | { readonly kind: 'none' }
  | { readonly kind: 'fields'; readonly fields: readonly string[] }
  | { readonly kind: 'jsonrpc' }
  | { readonly kind: 'digest' };

export function isJsonRpcRoute(route: RoutePolicy): boolean {
  return route.match.jsonrpc_method !== null || route.cache?.jsonrpc === true;
}

export function bodyKeying(route: RoutePolicy): BodyKeying {
  if (isJsonRpcRoute(route)) return { kind: 'jsonrpc' };
  const fields = [
    ...Object.keys(route.match.body ?? {}),
    ...Object.values(route.params).filter((s) => s.startsWith('body.')).map((s) => s.slice(5)),
  ];
  if (fields.length > 0) return { kind: 'fields', fields: [...new Set(fields)] };
  // a GET or HEAD body has no meaning (RFC 9110 §9.3.1): only other methods key on their body
  if (route.match.method === 'GET' || route.match.method === 'HEAD') return { kind: 'none' };
  return { kind: 'digest' };
}

/**
 * The body's contribution to the key's variant hash, or null when it adds nothing. The fields case adds
 * nothing here: baseKey hashes the matched fields and the params already.
 */
export function bodyKeyPart(k: BodyKeying, json: unknown, body: Buffer | null): string | null {
  if (k.kind === 'jsonrpc') {
    const m = classifyJsonRpc(json);
    return m.kind === 'call' ? jsonRpcKeyPart(m.method, m.params) : null;
  }
  if (k.kind === 'digest' && body !== null && body.length > 0) return 'body-sha256:' + createHash('sha256').update(body).digest('hex');
  return null;
}

/** One line saying what the route's key is made of (printed by `bridge-sidecar validate`). */
export function describeKey(route: RoutePolicy): string {
  if (route.cache === null) return '';
  const k = bodyKeying(route);
  const parts = ['method', 'path', 'query (sorted)'];
  const params = Object.entries(route.params).filter(([, s]) => !s.startsWith('response.'));
  if (params.length > 0) parts.push('params ' + params.map(([n, s]) => `${n}=${s}`).join(', '));
  if (k.kind === 'jsonrpc') parts.push('JSON-RPC method + canonical params (never id)');
  else if (k.kind === 'fields') parts.push('body fields ' + k.fields.join(', '));
  else if (k.kind === 'digest') parts.push('sha256 of the whole body');
  if (params.some(([, s]) => s === 'identity')) parts.push('identity');
  parts.push('Vary-named request headers');
  return `"${route.cache.key}" + ${parts.join(', ')}`;
}

/** `cache <route>: <what its key is made of>` for every cached route (`bridge-sidecar validate --keys`). */
export function describeCacheKeys(routes: readonly RoutePolicy[]): string[] {
  return routes.filter((r) => r.cache !== null).map((r) => `cache ${r.name}: ${describeKey(r)}`);
}
