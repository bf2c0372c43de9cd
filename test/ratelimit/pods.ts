/**
 * Several "pods" in one test process for cluster-scope tests: each has its own coordinator, lease service,
 * metrics and its OWN Redis connection, like separate sidecar processes sharing one Redis.
 */
import { SingleCoordinator } from '../../lib/server/ipc';
import { RedisConnection } from '../../lib/redis/client';
import { silentLogger } from '../../lib/observe/logger';
import { RateLimitComponent, RateLimitLeaseService } from '../../lib/stages/ratelimit';
import type { RateLimitView } from '../../lib/stages/ratelimit';
import type { LoadedPolicy } from '../../lib/policy/types';
import { waitFor } from '../helpers/ports';
import { rlPolicy, runtime } from './helpers';

export interface Pod {
  rt: ReturnType<typeof runtime>;
  conn: RedisConnection;
  comp: RateLimitComponent;
  stage: RateLimitView;
  backendErrors(): Promise<number>;
  close(): Promise<void>;
}

export function redisSection(opts: { url?: string; cluster?: string[]; timeout?: string }): string {
  const where = opts.cluster ? `cluster: [${opts.cluster.map((s) => JSON.stringify(s)).join(', ')}]` : `url: "${opts.url}"`;
  return `redis: { ${where}, command_timeout: ${opts.timeout ?? '50ms'} }`;
}

export function clusterPolicy(rateLimiting: string, redis: string): LoadedPolicy {
  return rlPolicy('scope: cluster\n' + rateLimiting.trim(), redis);
}

export async function startPod(loaded: LoadedPolicy): Promise<Pod> {
  const coordinator = new SingleCoordinator();
  const service = new RateLimitLeaseService(coordinator, silentLogger);
  const conn = new RedisConnection(loaded.policy.redis!, silentLogger, 'test');
  const rt = runtime({ coordinator, redis: conn });
  const comp = new RateLimitComponent(rt);
  const stage = comp.configure(loaded, null)!;
  await waitFor('redis connected', () => conn.healthy, 15_000);
  return {
    rt, conn, comp, stage,
    async backendErrors() {
      const m = await rt.metrics.registry.getSingleMetric('bridge_sidecar_ratelimit_backend_errors_total')?.get();
      return (m?.values ?? []).reduce((a, v) => a + v.value, 0);
    },
    async close() {
      await comp.close();
      await service.close();
      await conn.close();
    },
  };
}
