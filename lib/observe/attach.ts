/**
 * Wires observability into a running proxy process and into the primary, from the outside, so the core files
 * only call two functions:
 *  - observeWorker: network byte counters on the proxy's client and upstream sockets, the Redis-up gauge,
 *    profile orders from the primary and the RSS heap-snapshot watch; close() flushes buffered spans.
 *  - observePrimary: the token-guarded /debug/profile and /debug/heap and the CPU profile schedule.
 */
import type { Socket } from 'node:net';
import type { Agent } from 'node:http';
import type { Coordinator } from '../core/ipc';
import type { AdminServer } from '../server/admin';
import type { ProxyWorker } from '../server/worker';
import type { Policy } from '../policy/types';
import type { Logger } from './logger';
import type { PoolFigures } from './metrics';
import { WorkerProfiling, PrimaryProfiling } from './profiling';
import { shutdownTracing } from './tracing';

export interface Observed {
  close(): Promise<void>;
}

export function observeWorker(coordinator: Coordinator, worker: ProxyWorker): Observed {
  const { metrics, log } = worker.runtime;
  worker.server.on('connection', (s: Socket) => metrics.sockets.client.track(s));
  countAgentSockets(worker.proxy.agent, (s) => metrics.sockets.upstream.track(s));
  const agent = worker.proxy.agent;
  metrics.poolFigures = () => agentFigures(agent);
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

/** An http.Agent's pool now: sockets lent out, pooled idle ones, and requests waiting for a socket. */
export function agentFigures(agent: Agent): PoolFigures {
  const count = (lists: NodeJS.ReadOnlyDict<unknown[]>): number => {
    let n = 0;
    for (const k in lists) n += lists[k]?.length ?? 0;
    return n;
  };
  return { inUse: count(agent.sockets), idle: count(agent.freeSockets), waiting: count(agent.requests) };
}

/** Every socket the agent opens is handed to `track` (http.Agent has no event for it: wrap createConnection). */
function countAgentSockets(agent: Agent, track: (s: Socket) => void): void {
  type Create = (this: Agent, ...args: unknown[]) => Socket | undefined;
  const a = agent as unknown as { createConnection: Create };
  const original = a.createConnection;
  a.createConnection = function (this: Agent, ...args: unknown[]) {
    const s = original.apply(this, args);
    if (s) track(s);
    return s;
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
