/** The 429 a refused request gets: problem+json naming the scope, Retry-After, and the RateLimit fields. */
import type { ServerResponse } from 'node:http';
import { sendProblem } from '../../server/problem';
import type { RateLimitDecision } from './decision';

type Refusal = Extract<RateLimitDecision, { allowed: false }>;

const DETAIL: Record<string, string> = {
  global: 'The service is receiving more requests than it accepts; retry later.',
  per_user: 'You have sent more requests than your per-user limit allows; retry later.',
  per_endpoint: 'This endpoint is receiving more requests than it accepts; retry later.',
};

export function sendRateLimited(res: ServerResponse, decision: Refusal): void {
  const headers: Array<readonly [string, string]> = [['retry-after', String(decision.retryAfter)], ...decision.headers];
  const detail = `${DETAIL[decision.scope] ?? 'Rate limit exceeded.'} Retry after ${decision.retryAfter} s.`;
  sendProblem(res, 429, `rate-limited/${decision.scope}`, 'Too Many Requests', detail, headers);
}
