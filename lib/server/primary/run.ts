/**
 * The primary process (server.workers >= 1) or the single process (server.workers: 0): loads the policy, runs
 * the pod's services and the reloader, serves the admin port (admin-routes.ts), and either supervises the
 * workers (supervisor.ts) or runs the proxy itself. SIGTERM drains; SIGHUP reloads.
 */
import cluster from 'node:cluster';
import { loadPolicyFile, formatErrors, summarize } from '../../policy/load';
import { createLogger, announce, setLogFormat } from '../../observe/logger';
import { PrimaryMetrics } from '../../observe/metrics';
import { observePrimary, observeWorker, type Observed } from '../../observe/attach';
import type { PrimaryServices } from '../../core/component';
import { appHealthRoutes } from '../../k8s/app-health';
import { applyUvThreadpoolSize } from '../../stages/queue';
import { createAutoTuning, attachTuningToWorker, type AutoTuningService } from '../../tuning';
import { PrimaryCoordinator, SingleCoordinator } from '../ipc';
import { AdminServer } from '../admin';
import { handleWorkerAdmin } from '../admin-actions';
import { startProxyWorker, type ProxyWorker } from '../worker';
import { PolicyReloader, type WorkerPolicyReport } from '../reload';
import { registerPrimaryServices } from './services';
import { registerAdminRoutes } from './admin-routes';
import { WorkerSupervisor } from './supervisor';
import { applyAcceptMode } from './accept';
import { newPodState } from './state';

export class PolicyRefusedError extends Error {}

export interface SidecarHandle {
  /** Resolves when the process group has shut down. */
  done: Promise<void>;
}

export async function runPrimary(policyFile: string): Promise<SidecarHandle> {
  // read first: a malformed probes variable fails start-up before anything listens
  const appHealth = appHealthRoutes();
  const first = loadPolicyFile(policyFile);
  if (!first.ok) {
    throw new PolicyRefusedError(formatErrors(first.errors));
  }
  const loaded0 = first.loaded;
  const p0 = loaded0.policy;
  // The libuv pool is sized before anything uses it (zlib, fs, dns run on it).
  applyUvThreadpoolSize(p0);
  const single = p0.server.workers === 0;
  setLogFormat(p0.server.log_format);
  const log = createLogger(p0.server.log_level, { role: single ? 'single' : 'primary' });
  log.info({ file: policyFile, version: loaded0.version }, summarize(loaded0));

  const state = newPodState(loaded0);
  const pm = new PrimaryMetrics();
  pm.setPolicyVersion(loaded0.version);
  const primary = single ? null : new PrimaryCoordinator();
  const coordinator = primary ?? new SingleCoordinator();
  // the warm-up service adds to state.startupPending, which gates /readyz
  const services: PrimaryServices[] = registerPrimaryServices(coordinator, log, state);
  for (const s of services) s.configure(loaded0);
  coordinator.handle('policy:get', () => state.loaded);
  let local: ProxyWorker | null = null;
  // workers report the policy version they run; reload.ts owns the reload itself
  const reloader = new PolicyReloader({
    policyFile, state, services, metrics: pm, log,
    applyToProxies: (next) => {
      if (local) {
        try {
          local.applyPolicy(next);
          reloader.workerReported(0, { version: next.version });
        } catch (err) {
          reloader.workerReported(0, { version: local.handler.pipeline.loaded.version, error: String(err) });
        }
      } else {
        coordinator.broadcast('policy:apply', next);
      }
    },
  });
  coordinator.handle('policy:applied', (report: WorkerPolicyReport, from: number) => {
    reloader.workerReported(from, report);
    return true;
  });
  coordinator.handle('overload:state', (r, from) => {
    if (r.state === 'normal') state.overload.delete(from);
    else state.overload.set(from, r);
    return true;
  });
  if (!single) {
    cluster.on('exit', (w) => {
      reloader.workerGone(w.id);
      state.overload.delete(w.id);
    });
  }

  const admin = new AdminServer(log);
  admin.tokenFile = () => state.loaded.policy.server.admin_token_file;
  let tuning: AutoTuningService | null = null; // created once the workers run
  const routes = registerAdminRoutes({
    admin, state, coordinator, metrics: pm, services, reloader, log, appHealth, local: () => local, tuning: () => tuning,
  });
  const observed: Observed[] = [observePrimary(admin, coordinator, () => state.loaded.policy, log)];
  const adminAddr = await admin.listen(p0.server.admin_listen);
  admin.checkTokenFile();
  if (routes.metricsOnly && p0.server.metrics_listen) await routes.metricsOnly.listen(p0.server.metrics_listen, 'server.metrics_listen');

  // workers the auto-tuner retires drain and exit on purpose (not restarted as crashes)
  const retiring = new Set<number>();
  let supervisor: WorkerSupervisor | null = null;
  if (primary === null) {
    local = await startProxyWorker(loaded0, coordinator, log);
    observed.push(observeWorker(coordinator, local));
    handleWorkerAdmin(coordinator, local);
    const single0 = local;
    attachTuningToWorker(coordinator, single0, () => single0.handler.pipeline.loaded.version, null, log);
    state.listening.set(0, local.address());
    reloader.workerReported(0, { version: loaded0.version });
  } else {
    const accept = applyAcceptMode(p0);
    log.debug({ accept }, accept === 'workers' ? 'the worker accepts its connections itself' : 'the primary hands connections to the workers in turn');
    supervisor = new WorkerSupervisor({ state, metrics: pm, log, coordinator: primary, retiring });
    await supervisor.start();
  }
  // a primary service, so a reload resets it to the new policy (lib/tuning/)
  tuning = createAutoTuning({ coordinator, log, registry: pm.registry, actions: pm.autotuneActions, state, local: () => local, fork: supervisor?.fork ?? null, retiring });
  services.push(tuning);

  // hot reload: the policy file's directory is watched (ConfigMap-safe) and polled by content hash; in place
  // before "listening" is logged, so an update made right after start-up is seen by an event, not only the poll
  await reloader.watch();

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    state.draining = true; // /readyz answers 503 from now on
    log.info({ signal }, 'shutting down: draining in-flight requests');
    await reloader.close();
    if (local) await local.shutdown();
    else await supervisor?.stop();
    await Promise.allSettled(observed.map((o) => o.close())); // flush spans
    await Promise.allSettled(services.map((s) => s.close()));
    routes.close();
    await Promise.all([admin.close(), routes.metricsOnly?.close()]);
    log.info('shutdown complete');
    resolveDone();
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGHUP', () => void reloader.reload('SIGHUP'));
  // "listening" only once the signals are handled: a process manager (or a test) that sends SIGINT as soon as it
  // reads the line must get a drained, clean stop, not the default disposition's kill
  const proxyAddr = [...state.listening.values()][0];
  announce(log, { listen: `${proxyAddr.host}:${proxyAddr.port}`, admin: `${adminAddr.host}:${adminAddr.port}`, workers: p0.server.workers, version: loaded0.version }, 'listening');
  return { done };
}
