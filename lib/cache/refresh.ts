/**
 * The background request of stale-while-revalidate: replay the request that produced an entry (conditional
 * when the entry has validators) straight to the upstream, off the client's path, bounded in time and size.
 * At most one runs per key at a time (the caller keeps the set).
 */
import http from 'node:http';
import https from 'node:https';
import type { UpstreamPolicy } from '../policy/types';

export interface FetchResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Our clock when the request was sent / the head arrived. */
  requestTime: number;
  responseTime: number;
}

const agentHttp = new http.Agent({ keepAlive: true, maxSockets: 8 });
const agentHttps = new https.Agent({ keepAlive: true, maxSockets: 8 });

export function fetchUpstream(
  upstream: UpstreamPolicy,
  method: string,
  pathAndQuery: string,
  headers: Record<string, string>,
  body: Buffer | null,
  timeoutMs: number,
  maxBody: number,
  /** The cache's wall clock (Runtime.clock): the refreshed entry's age is computed on the same time line. */
  now: () => number,
): Promise<FetchResult> {
  const mod = upstream.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const requestTime = now();
    const h: Record<string, string> = { ...headers, host: `${upstream.host}:${upstream.port}` };
    if (body !== null) h['content-length'] = String(body.length);
    const req = mod.request({
      host: upstream.host,
      port: upstream.port,
      method,
      path: pathAndQuery,
      headers: h,
      agent: upstream.protocol === 'https:' ? agentHttps : agentHttp,
      timeout: timeoutMs,
    }, (res) => {
      const responseTime = now();
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n > maxBody) { req.destroy(new Error('refresh body too large')); return; }
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks), requestTime, responseTime }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('refresh timed out')));
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}
