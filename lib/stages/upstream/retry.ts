/**
 * When a failed upstream attempt may be sent again. Only where it is safe:
 *  - idempotent methods, or a request carrying X-Idempotency-Key, with a replayable (buffered or empty) body;
 *  - for any method, the classic keep-alive race: the upstream closed a pooled connection just as it was
 *    reused (a reset before any response byte), so the upstream never saw that request.
 */
import type { IncomingHttpHeaders } from 'node:http';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const RETRYABLE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** Every reason a retry can be counted under, so the counter's series exist at 0 from the start. */
export const RETRY_REASONS: readonly string[] = ['stale_keepalive', ...[...RETRYABLE_CODES].map((c) => c.toLowerCase())];

export function isRetryEligible(method: string, headers: IncomingHttpHeaders): boolean {
  return IDEMPOTENT.has(method) || headers['x-idempotency-key'] !== undefined;
}

export interface RetryVerdict {
  /** Metric label of the retry, or null: do not retry. */
  reason: string | null;
  /** Milliseconds to wait before the next attempt. */
  delayMs: number;
}

const NO: RetryVerdict = Object.freeze({ reason: null, delayMs: 0 });

/**
 * `code` is the error's (normalised) code, `reused` whether the attempt went out on a pooled connection,
 * `attempt` how many retries were made already.
 */
export function retryVerdict(method: string, headers: IncomingHttpHeaders, code: string, reused: boolean, replayable: boolean,
  attempt: number, maxRetries: number): RetryVerdict {
  if (!replayable || attempt >= maxRetries || !RETRYABLE_CODES.has(code)) return NO;
  const raceOnReuse = reused && (code === 'ECONNRESET' || code === 'EPIPE');
  if (!raceOnReuse && !isRetryEligible(method, headers)) return NO;
  // a stale pooled socket is retried at once; other failures back off (25, 50, 100 ms ... with jitter)
  const next = attempt + 1;
  const delayMs = raceOnReuse && next === 1 ? 0 : Math.round(25 * 2 ** (next - 1) * (0.5 + Math.random()));
  return { reason: raceOnReuse ? 'stale_keepalive' : code.toLowerCase(), delayMs };
}
