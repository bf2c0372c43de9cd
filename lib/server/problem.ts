/**
 * RFC 9457 problem+json responses for everything the sidecar itself refuses (413, 429, 502, 503, 504, ...), or the
 * policy's local_reply template when the request has one (local-reply.ts). Always small, always with Via, never
 * a hang.
 */
import type { ServerResponse } from 'node:http';
import { localReplyOf } from './local-reply';

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
  const body = writeProblem(res, status, type, title, detail, headers, closeConnection);
  if (body !== null) res.end(body);
}

/** sendProblem without the end: the head and the whole body are written, the caller ends `res` (returns null if it cannot). */
export function writeProblem(
  res: ServerResponse,
  status: number,
  type: string,
  title: string,
  detail: string,
  headers?: ReadonlyArray<readonly [string, string]> | null,
  closeConnection = false,
): string | null {
  if (res.headersSent || res.destroyed) {
    if (!res.destroyed) res.destroy();
    return null;
  }
  const template = localReplyOf(res);
  const body = template === undefined
    ? JSON.stringify({ type: PROBLEM_BASE + type, title, status, detail })
    : template.render({ status, type: PROBLEM_BASE + type, title, detail });
  const h: Record<string, string> = {
    'content-type': template === undefined ? 'application/problem+json' : template.contentType,
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    via: VIA,
  };
  if (headers) for (const [k, v] of headers) h[k.toLowerCase()] = v;
  if (closeConnection) h.connection = 'close';
  res.writeHead(status, h);
  return body;
}
