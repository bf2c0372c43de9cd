/**
 * Hop-by-hop fields (RFC 9110 §7.6.1) belong to one connection and are never forwarded, in either direction,
 * along with any field the Connection header names; nor are they stored with a cached answer. The one list:
 * the proxy legs, interim responses, the cache's stored fields and its revalidation requests all use it.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization',
]);

export function isHopByHop(name: string, connection: string | string[] | undefined): boolean {
  if (HOP_BY_HOP.has(name)) return true;
  if (connection === undefined) return false;
  const list = Array.isArray(connection) ? connection.join(',') : connection;
  if (list === 'keep-alive' || list === 'close') return false;
  return list.toLowerCase().split(',').some((t) => t.trim() === name);
}

/** Remove hop-by-hop request fields in place (keeps Transfer-Encoding out: node frames the upstream body itself). */
export function stripRequestHopByHop(headers: Record<string, string | string[] | undefined>): void {
  const connection = headers.connection;
  if (connection !== undefined && connection !== 'keep-alive' && connection !== 'close') {
    const list = Array.isArray(connection) ? connection.join(',') : connection;
    for (const t of list.toLowerCase().split(',')) {
      const n = t.trim();
      if (n && n !== 'host') delete headers[n];
    }
  }
  for (const n of HOP_BY_HOP) if (headers[n] !== undefined) delete headers[n];
}
