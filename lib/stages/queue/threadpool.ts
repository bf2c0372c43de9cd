/**
 * `queues.worker_threads` is the size of libuv's thread pool (fs, zlib, dns.lookup, crypto). libuv reads
 * UV_THREADPOOL_SIZE once, when the pool is first used, so the value must be in place before that:
 *
 *   - worker processes: put uvThreadpoolEnv(policy) into the env given to cluster.fork() / child_process.fork();
 *   - single process (server.workers: 0): call applyUvThreadpoolSize(policy) right after the policy is parsed
 *     (the policy file is read with synchronous fs calls, which do not use the pool) and before any async fs,
 *     zlib, dns.lookup or crypto call.
 *
 * A reload cannot resize a running pool: threadpoolSizeChanged() tells the caller that a change only takes
 * effect for workers started afterwards (log it, or restart workers one by one).
 *
 * When the `queues` section is absent the feature is off and libuv keeps its default (4, or whatever
 * UV_THREADPOOL_SIZE the operator set). When it is present the policy wins over an inherited variable: the
 * policy file is the one place an operator tunes the sidecar.
 */
import type { Policy } from '../../policy/types';

/** libuv's own ceiling (UV_THREADPOOL_SIZE is clamped to 1024). */
const UV_MAX = 1024;

export function threadpoolSize(policy: Policy): number | null {
  const n = policy.queues?.worker_threads;
  if (n === undefined || !Number.isFinite(n)) return null;
  return Math.min(UV_MAX, Math.max(1, Math.floor(n)));
}

/** Environment entries for a forked worker process: `{ UV_THREADPOOL_SIZE: "8" }`, or {} when the feature is off. */
export function uvThreadpoolEnv(policy: Policy): Record<string, string> {
  const n = threadpoolSize(policy);
  return n === null ? {} : { UV_THREADPOOL_SIZE: String(n) };
}

/** Single-process mode: set the variable in this process before the pool starts. Returns the size set, or null. */
export function applyUvThreadpoolSize(policy: Policy, env: NodeJS.ProcessEnv = process.env): number | null {
  const n = threadpoolSize(policy);
  if (n !== null) env.UV_THREADPOOL_SIZE = String(n);
  return n;
}

/** True when a reload changes the pool size, which only new processes will get. */
export function threadpoolSizeChanged(prev: Policy | null, next: Policy): boolean {
  return prev !== null && threadpoolSize(prev) !== threadpoolSize(next);
}
