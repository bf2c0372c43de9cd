/**
 * The primary's admin port: /healthz, /readyz, /metrics (the pod's sum), /policy, the purge and invalidation
 * actions, the app's moved probes, the status page and /debug/explain. server.metrics_listen adds a port that
 * serves /metrics alone.
 */
import { Registry, AggregatorRegistry } from 'prom-client';
import type { Coordinator } from '../../core/ipc';
import type { PrimaryServices } from '../../core/component';
import type { Logger } from '../../observe/logger';
import type { PrimaryMetrics } from '../../observe/metrics';
import { redactSecrets } from '../../util/redact';
import { RateLimitLeaseService } from '../../stages/ratelimit';
import { registerStatusPage } from '../../status';
import { registerExplainEndpoint } from '../../explain/admin';
import type { AutoTuningService } from '../../tuning';
import type { appHealthRoutes } from '../../k8s/app-health';
import { AdminServer } from '../admin';
import { registerAdminActions } from '../admin-actions';
import type { PolicyReloader } from '../reload';
import type { ProxyWorker } from '../worker';
import { readiness } from './readiness';
import type { PodState } from './state';

export interface AdminRoutesDeps {
  admin: AdminServer;
  state: PodState;
  coordinator: Coordinator;
  metrics: PrimaryMetrics;
  services: readonly PrimaryServices[];
  reloader: PolicyReloader;
  log: Logger;
  /** The proxy of the single process, or null when there are workers. */
  local: () => ProxyWorker | null;
  /** The auto-tuner, once the workers run. */
  tuning: () => AutoTuningService | null;
  /** The app's probes that `inject` moved to /app-health/..., read from the environment before anything starts. */
  appHealth: ReturnType<typeof appHealthRoutes>;
}

export interface AdminRoutes {
  /** The server.metrics_listen port (/metrics alone), not yet listening, or null without that setting. */
  metricsOnly: AdminServer | null;
  /** Stops the status page's sampling. */
  close(): void;
}

/** Registers the routes on `admin`; the app's moved probes are answered here directly, never through the proxy. */
export function registerAdminRoutes(d: AdminRoutesDeps): AdminRoutes {
  const { admin, state, coordinator, reloader } = d;

  /** What /metrics exports: the workers' registries summed, plus the primary's. The status page reads it too. */
  const podRegistry = async (): Promise<Registry> => {
    const local = d.local();
    if (local) return Registry.merge([local.runtime.metrics.registry, d.metrics.registry]);
    if (coordinator.role !== 'primary') return d.metrics.registry;
    const ids = coordinator.workerIds();
    const parts = await Promise.allSettled(ids.map((id) => coordinator.requestWorker(id, 'metrics:get', null, 3000)));
    const jsons = parts.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const agg: Registry = jsons.length > 0 ? (AggregatorRegistry.aggregate(jsons) as unknown as Registry) : new Registry();
    return Registry.merge([agg, d.metrics.registry]);
  };

  admin.route('GET', '/healthz', () => ({ status: 200, body: { status: 'ok' } }));
  const single = coordinator.role === 'single';
  admin.route('GET', '/readyz', () => readiness(state, single ? 1 : state.loaded.policy.server.workers));
  const metricsRoute = async () => ({ status: 200, body: await (await podRegistry()).metrics(), contentType: Registry.PROMETHEUS_CONTENT_TYPE });
  admin.route('GET', '/metrics', metricsRoute);
  const metricsOnly = state.loaded.policy.server.metrics_listen ? new AdminServer(d.log) : null;
  metricsOnly?.route('GET', '/metrics', metricsRoute);
  admin.route('GET', '/policy', () => {
    const tuning = d.tuning();
    return {
      status: 200,
      body: redactSecrets({
        version: state.loaded.version, file: state.loaded.file, policy: state.loaded.policy, ...reloader.status(),
        // the settings in force (cache budget, pool size, workers) and what the auto-tuner saw
        ...(tuning ? { effective: tuning.effective(), auto_tuning: tuning.status() } : {}),
      }),
    };
  });

  registerAdminActions(admin, coordinator, d.local);
  d.appHealth.register(admin);
  const leases = d.services.find((s): s is RateLimitLeaseService => s instanceof RateLimitLeaseService) ?? null;
  const statusPage = registerStatusPage(admin, async () => (await podRegistry()).getMetricsAsJSON(), {
    policy: () => state.loaded,
    reloads: () => reloader.history(),
    reloadStatus: () => { const { restart_pending, workers } = reloader.status(); return { restart_pending, workers }; },
    tuning: () => { const t = d.tuning(); return t ? { status: t.status(), effective: t.effective() } : null; },
    closestLimits: (n) => leases?.closest(n) ?? null,
  });
  registerExplainEndpoint(admin, () => state.loaded, () => leases);
  return { metricsOnly, close: () => statusPage.close() };
}
