/**
 * RFC 9457 problem+json responses for everything the sidecar itself refuses (413, 429, 502, 503, 504, ...), or the
 * policy's local_reply template when the request has one (local-reply.ts). Always small, always with Via, never
 * a hang.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { endAnswer } from '../util/read-body';
import { localReplyOf } from './local-reply';

export const PROBLEM_BASE = 'https://bridge-sidecar.dev/problems/';
export const VIA = '1.1 bridge-sidecar';

/** With `lingerOn` (a request refused before its body was read): Connection: close, after the rest of the body (endAnswer). */
export function sendProblem(
  res: ServerResponse,
  status: number,
  type: string,
  title: string,
  detail: string,
  headers?: ReadonlyArray<readonly [string, string]> | null,
  closeConnection = false,
  lingerOn: IncomingMessage | null = null,
): void {
  if (res.headersSent || res.destroyed) {
    if (!res.destroyed) res.destroy();
    return;
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
  if (closeConnection || lingerOn !== null) h.connection = 'close';
  res.writeHead(status, h);
  endAnswer(res, body, lingerOn);
}
