/**
 * The 503 a shed request gets: Retry-After (whole seconds, >= 1) and an RFC 9457 problem+json body whose
 * `type` names the reason, e.g. https://bridge-sidecar.dev/problems/shed/queue_full.
 */
import type { ServerResponse } from 'node:http';
import { sendProblem } from '../../server/problem';
import type { ShedError } from '../../core/stage';

const DETAIL: Readonly<Record<string, string>> = {
  queue_full: 'the sidecar is at its upstream concurrency limit and its queue is full',
  class_full: 'the sidecar is at its upstream concurrency limit and the queue of this priority class is full',
  queue_timeout: 'the request waited longer than queue_timeout for an upstream slot',
  displaced: 'the request was displaced from the queue by a higher-priority request',
  client_gone: 'the client went away while queued',
};

export function sendShed(res: ServerResponse, err: ShedError): void {
  const retryAfter = String(Math.max(1, Math.ceil(err.retryAfter)));
  sendProblem(res, 503, 'shed/' + err.reason, 'Service Unavailable', DETAIL[err.reason] ?? 'the request was shed by backpressure', [
    ['retry-after', retryAfter],
  ]);
}

/**
 * Retry-After for a shed request: roughly how long the queue ahead needs to drain at the current limit,
 * in whole seconds, at least 1 and at most queue_timeout (a client told to wait longer than a request may
 * queue would only come back to a queue that has long changed).
 */
export function retryAfterSeconds(queued: number, limit: number, avgLatencyMs: number, queueTimeoutMs: number): number {
  const drainMs = ((queued + 1) / Math.max(1, limit)) * avgLatencyMs;
  const cap = Math.max(1, Math.ceil(queueTimeoutMs / 1000));
  return Math.min(cap, Math.max(1, Math.ceil(drainMs / 1000)));
}
