/** `explain --admin URL`: asks a running sidecar's POST /debug/explain (policy in force, live limit state). */
import { request } from 'node:http';
import type { Explanation } from './explain';
import { toJson, type ExplainRequest } from './request';

export class RemoteExplainError extends Error {}

export function explainRemote(adminUrl: string, token: string | null, req: ExplainRequest, timeoutMs = 10_000): Promise<{ explanation: Explanation; text: string }> {
  const url = new URL('/debug/explain', adminUrl);
  const payload = JSON.stringify(toJson(req));
  return new Promise((resolve, reject) => {
    const r = request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode === 200) {
          try {
            resolve(JSON.parse(text) as { explanation: Explanation; text: string });
          } catch {
            reject(new RemoteExplainError(`${url.href} answered 200 with a body that is not JSON`));
          }
          return;
        }
        const hint = res.statusCode === 404 ? ' (no admin token file configured on that sidecar, or an older version)'
          : res.statusCode === 401 ? ' (give the admin token with --token-file or $BRIDGE_SIDECAR_ADMIN_TOKEN)' : '';
        reject(new RemoteExplainError(`${url.href} answered ${res.statusCode}${hint}: ${text.trim().slice(0, 300)}`));
      });
    });
    r.setTimeout(timeoutMs, () => r.destroy(new RemoteExplainError(`${url.href} did not answer within ${timeoutMs} ms`)));
    r.on('error', (e) => reject(e instanceof RemoteExplainError ? e : new RemoteExplainError(`cannot reach ${url.href}: ${e.message}`)));
    r.end(payload);
  });
}
