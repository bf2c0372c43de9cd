/**
 * Interim (1xx) responses: relayed from the upstream to the client as they come, never cached (a cached answer
 * is only ever the final one). `100 Continue` is this hop's own business (RFC 9110 §10.1.1): the sidecar sends
 * it itself, and only to a request it will accept, so a client never uploads a body only to get its 413.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { isHopByHop } from '../util/hop-by-hop';

/** Pass one upstream 1xx on to the client: 103 Early Hints and 102 Processing; 100 and 101 are per hop. */
export function relayInterim(res: ServerResponse, status: number, headers: IncomingHttpHeaders): void {
  if (res.headersSent || res.destroyed) return;
  if (status === 102) {
    res.writeProcessing();
    return;
  }
  if (status !== 103 || headers.link === undefined) return;
  const hints: Record<string, string | string[]> = {};
  for (const name in headers) {
    const v = headers[name];
    if (v !== undefined && !isHopByHop(name, headers.connection)) hints[name] = v;
  }
  res.writeEarlyHints(hints);
}

/** Whether the client waits for `100 Continue` before it sends its body. */
export function expectsContinue(req: IncomingMessage): boolean {
  const e = req.headers.expect;
  return e !== undefined && e.toLowerCase() === '100-continue';
}
