/**
 * Wires observability into a running proxy process and into the primary, from the outside, so the core files
 * only call two functions:
 *  - observeWorker: network byte counters on the proxy's client and upstream sockets, the Redis-up gauge,
 *    profile orders from the primary and the RSS heap-snapshot watch; close() flushes buffered spans.
 *  - observePrimary: the token-guarded /debug/profile and /debug/heap and the CPU profile schedule.
 */
import type { Socket } from 'node:net';
import type { Coordinator } from '../core/ipc';
import type { AdminServer } from '../server/admin';
import type { ProxyWorker } from '../server/worker';
import type { Policy } from '../policy/types';
import type { Logger } from './logger';
import { WorkerProfiling, PrimaryProfiling } from './profiling';
import { shutdownTracing } from './tracing';

export interface Observed {
  close(): Promise<void>;
}

export function observeWorker(coordinator: Coordinator, worker: ProxyWorker): Observed {
  const { metrics, log } = worker.runtime;
  worker.server.on('connection', (s: Socket) => metrics.sockets.client.track(s));
  worker.proxy.onSocket((s) => metrics.sockets.upstream.track(s));
  metrics.poolFigures = () => worker.proxy.poolFigures();
  metrics.redisHealth = () => {
    const r = worker.runtime.redis();
    return r === null ? null : r.healthy;
  };
  const profiling = new WorkerProfiling(coordinator, () => worker.handler.pipeline.policy, log);
  return {
    async close() {
      profiling.stop();
      await shutdownTracing();
    },
  };
}

export function observePrimary(admin: AdminServer, coordinator: Coordinator, policy: () => Policy, log: Logger): Observed {
  const profiling = new PrimaryProfiling(admin, coordinator, policy, log);
  return {
    async close() {
      profiling.stop();
    },
  };
}
