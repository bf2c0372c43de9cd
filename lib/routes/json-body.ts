/**
 * The JSON a route may match on: the request body parsed when it is JSON (by Content-Type, or by its first byte
 * when the type says nothing useful), else undefined. The proxy and `explain` read bodies the same way.
 */
export function parseJson(body: Buffer, contentType: string | undefined): unknown {
  if (body.length === 0) return undefined;
  if (contentType !== undefined && !contentType.includes('json') && body[0] !== 0x7b && body[0] !== 0x5b) return undefined;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}
