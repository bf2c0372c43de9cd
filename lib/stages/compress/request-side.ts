/**
 * The request's part of the compression decision (the rest depends on the answer: status, type, size, its own
 * encoding). Shared by the compression filter and `explain`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { hasToken } from './headers';
import type { Choice, Coding } from './negotiate';

/** The coding the request allows, or why none: Cache-Control: no-transform, HEAD, or no producible coding accepted. */
export type RequestSide = Coding | 'no-transform' | 'head' | 'not-accepted';

export function requestSide(method: string, headers: IncomingHttpHeaders, choose: (acceptEncoding: string | string[] | undefined) => Choice | null): RequestSide {
  if (hasToken(headers['cache-control'], 'no-transform')) return 'no-transform';
  if (method === 'HEAD') return 'head';
  const c = choose(headers['accept-encoding']);
  return c === null || c === 'identity' ? 'not-accepted' : c;
}
