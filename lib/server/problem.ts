/**
 * RFC 9457 problem+json responses for everything the sidecar itself refuses (413, 429, 502, 503, 504, ...).
 * Always small, always with Via, never a hang.
 */
import type { ServerResponse } from 'node:http';

export const PROBLEM_BASE = 'https://bridge-sidecar.dev/problems/';
export const VIA = '1.1 bridge-sidecar';

export function sendProblem(
  res: ServerResponse,
  status: number,
  type: string,
  title: string,
  detail: string,
  headers?: ReadonlyArray<readonly [string, string]> | null,
  closeConnection = false,
): void {
  if (res.headersSent || res.destroyed) {
    if (!res.destroyed) res.destroy();
    return;
  }
  const body = JSON.stringify({ type: PROBLEM_BASE + type, title, status, detail });
  const h: Record<string, string> = {
    'content-type': 'application/problem+json',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    via: VIA,
  };
  if (headers) for (const [k, v] of headers) h[k.toLowerCase()] = v;
  if (closeConnection) h.connection = 'close';
  res.writeHead(status, h);
  res.end(body);
}
