/**
 * The compression part of `explain`: the filter's own request-side decision (requestSide with negotiate), and
 * the answer-side conditions the filter applies once the answer is known.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CompressionPolicy } from '../policy/types';
import { negotiate } from '../stages/compress/negotiate';
import { requestSide } from '../stages/compress/request-side';

export interface CompressionExplanation {
  /** The coding the answer would get, or null. */
  coding: string | null;
  why: string;
}

export function explainCompression(c: CompressionPolicy | null, method: string, headers: IncomingHttpHeaders): CompressionExplanation {
  if (c === null || !c.enabled) return { coding: null, why: 'compression is off in the policy' };
  const side = requestSide(method, headers, (ae) => negotiate(ae, c.algorithm));
  const ae = headers['accept-encoding'];
  switch (side) {
    case 'no-transform': return { coding: null, why: 'the request says Cache-Control: no-transform: never compressed' };
    case 'head': return { coding: null, why: 'HEAD: no body to compress (Vary: Accept-Encoding is still set)' };
    case 'not-accepted':
      return { coding: null, why: `Accept-Encoding ${ae === undefined ? 'absent' : `"${String(ae)}"`} accepts none of ${c.algorithm.join(', ')}: sent as is` };
    default:
      return {
        coding: side,
        why: `${side} (Accept-Encoding ${JSON.stringify(String(ae))}, policy order ${c.algorithm.join(', ')}) if the answer is a compressible type (${c.types.join(', ')}), ` +
          `not already encoded, not no-transform, has a body (not 204/206/304) and is at least ${c.threshold} bytes or of unknown length`,
      };
  }
}
