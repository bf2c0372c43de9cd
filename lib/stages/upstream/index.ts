/**
 * The upstream leg a worker uses: undici, unless BRIDGE_SIDECAR_UPSTREAM_LEG=http-proxy asks for the older
 * http-proxy leg (read once at start; it exists so benchmarks can measure both in one run).
 */
import type { UpstreamPolicy } from '../../policy/types';
import type { WorkerMetrics } from '../../observe/metrics';
import { UpstreamProxy } from '../proxy';
import { UndiciLeg } from './undici-leg';
import type { UpstreamLeg } from './types';

export type { UpstreamLeg, UpstreamAnswer, ForwardCallbacks, UpstreamFailure } from './types';

export function createUpstreamLeg(policy: UpstreamPolicy, metrics: WorkerMetrics, env: NodeJS.ProcessEnv = process.env): UpstreamLeg {
  return env.BRIDGE_SIDECAR_UPSTREAM_LEG === 'http-proxy' ? new UpstreamProxy(policy, metrics) : new UndiciLeg(policy, metrics);
}
