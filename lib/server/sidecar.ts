/**
 * Process roles. `serve` calls runSidecar():
 *  - server.workers >= 1: this process is the primary (policy, admin port, worker supervision, pod-wide
 *    services such as token leases) and forks the workers (node:cluster), which each run a proxy listener on the
 *    same port. A worker that dies unexpectedly is restarted.
 *  - server.workers == 0: one process does both (the admin port and the proxy), for tests and tiny pods.
 * A cluster worker re-enters through the same command and lands in runWorkerProcess().
 */
import type { OverloadReport } from '../perf/overload-protocol';
import cluster from 'node:cluster';
import { connect } from 'node:net';
import { Registry, AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { loadPolicyFile, formatErrors, summarize, deepFreeze } from '../policy/load';
import type { LoadedPolicy } from '../policy/types';
import { createLogger, announce, setLogFormat, type Logger } from '../observe/logger';
import { PrimaryMetrics } from '../observe/metrics';
import { PrimaryCoordinator, SingleCoordinator, WorkerCoordinator } from './ipc';
import { type Coordinator } from '../core/ipc';
import { AdminServer } from './admin';
import { registerPrimaryServices } from './primary/services';
import { type PrimaryServices } from '../core/component';
import { ListenError, LISTEN_FAILED_EXIT } from './listen';
import { startProxyWorker, type ProxyWorker } from './worker';
import { PolicyReloader, type WorkerPolicyReport } from './reload';
import { observePrimary, observeWorker, type Observed } from '../observe/attach';
import { registerAdminActions, handleWorkerAdmin } from './admin-actions';
import { appHealthRoutes } from '../k8s/app-health';
import { redactSecrets } from '../util/redact';
import { applyUvThreadpoolSize, uvThreadpoolEnv } from '../stages/queue';
import { RateLimitLeaseService } from '../stages/ratelimit';
import { registerStatusPage } from '../status';
import { registerExplainEndpoint } from '../explain/admin';
import { createAutoTuning, attachTuningToWorker, type AutoTuningService } from '../tuning';

export class PolicyRefusedError extends Error {}
export { ListenError } from './listen';

export interface SidecarHandle {
  /** Resolves when the process group has shut down. */
  done: Promise<void>;
}

export function runSidecar(policyFile: string): Promise<SidecarHandle> {
  if (cluster.isWorker) return runWorkerProcess();
  return runPrimary(policyFile);
}

/** What the primary (or single process) knows about the pod, shown by /readyz and /policy. */
interface PodState {
  loaded: LoadedPolicy;
  draining: boolean;
  listening: Map<number, { host: string; port: number }>;
  /** Gates /readyz until start-up work (e.g. cache warm-up) is done; features add their promises here. */
  startupPending: Set<string>;
  upstreamCheckedAt: number;
  upstreamOk: boolean;
  /** Each worker's last overload step (memory pressure), by worker id; absent: normal. */
  overload: Map<number, OverloadReport>;
}

async function runPrimary(policyFile: string): Promise<SidecarHandle> {
  // The app's probes that `inject` moved to /app-health/...: answered directly, never through the proxy.
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

  const state: PodState = {
    loaded: loaded0, draining: false, listening: new Map(), startupPending: new Set(), overload: new Map(),
    upstreamCheckedAt: 0, upstreamOk: false,
  };
  const pm = new PrimaryMetrics();
  pm.setPolicyVersion(loaded0.version);
  const coordinator: Coordinator = single ? new SingleCoordinator() : new PrimaryCoordinator();
  const services: PrimaryServices[] = registerPrimaryServices(coordinator, log, state); // warm-up: state gates /readyz
  for (const s of services) s.configure(loaded0);
  coordinator.handle('policy:get', () => state.loaded);
  // hot reload: workers report the policy version they run; reload.ts owns the reload itself
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
  if (!single) cluster.on('exit', (w) => reloader.workerGone(w.id));
  coordinator.handle('worker:listening', (addr: { host: string; port: number }, from: number) => {
    state.listening.set(from, addr);
    return true;
  });
  coordinator.handle('overload:state', (r: OverloadReport, from: number) => {
    if (r.state === 'normal') state.overload.delete(from);
    else state.overload.set(from, r);
    return true;
  });
  if (!single) cluster.on('exit', (w) => state.overload.delete(w.id));

  let local: ProxyWorker | null = null;
  const admin = new AdminServer(log);
  admin.tokenFile = () => state.loaded.policy.server.admin_token_file;

  /** What /metrics exports: the workers' registries summed, plus the primary's. The status page reads it too. */
  const podRegistry = async (): Promise<Registry> => {
    if (local) return Registry.merge([local.runtime.metrics.registry, pm.registry]);
    const ids = (coordinator as PrimaryCoordinator).workerIds();
    const parts = await Promise.allSettled(ids.map((id) => (coordinator as PrimaryCoordinator).requestWorker(id, 'metrics:get', null, 3000)));
    const jsons = parts.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const agg: Registry = jsons.length > 0 ? (AggregatorRegistry.aggregate(jsons) as unknown as Registry) : new Registry();
    return Registry.merge([agg, pm.registry]);
  };
  const metricsText = async (): Promise<string> => (await podRegistry()).metrics();

  admin.route('GET', '/healthz', () => ({ status: 200, body: { status: 'ok' } }));
  admin.route('GET', '/readyz', async () => {
    const reasons: string[] = [];
    if (state.draining) reasons.push('draining');
    const want = single ? 1 : state.loaded.policy.server.workers;
    if (state.listening.size < want) reasons.push(`workers listening ${state.listening.size}/${want}`);
    if (!(await upstreamReachable(state))) reasons.push('upstream unreachable');
    for (const s of state.startupPending) reasons.push(`waiting for ${s}`);
    const overload = overloadDetail(state);
    if (overload?.state === 'refuse_connections') reasons.push('memory overload: refusing new connections');
    return reasons.length === 0
      ? { status: 200, body: { status: 'ready', version: state.loaded.version, ...(overload ? { overload } : {}) } }
      : { status: 503, body: { status: 'not ready', reasons, ...(overload ? { overload } : {}) } };
  });
  const metricsRoute = async () => ({ status: 200, body: await metricsText(), contentType: Registry.PROMETHEUS_CONTENT_TYPE });
  admin.route('GET', '/metrics', metricsRoute);
  // server.metrics_listen: /metrics alone, so a Service can expose it without /policy and the rest
  const metricsOnly = p0.server.metrics_listen ? new AdminServer(log) : null;
  metricsOnly?.route('GET', '/metrics', metricsRoute);
  let tuning: AutoTuningService | null = null; // auto-tuning: created once the workers run
  admin.route('GET', '/policy', () => ({
    status: 200,
    body: redactSecrets({
      version: state.loaded.version, file: state.loaded.file, policy: state.loaded.policy, ...reloader.status(),
      // auto-tuning: the settings in force (cache budget, pool size, workers) and what the tuner saw
      ...(tuning ? { effective: tuning.effective(), auto_tuning: tuning.status() } : {}),
    }),
  }));

  registerAdminActions(admin, coordinator, () => local);
  appHealth.register(admin);
  const leases = services.find((s): s is RateLimitLeaseService => s instanceof RateLimitLeaseService) ?? null;
  const statusPage = registerStatusPage(admin, async () => (await podRegistry()).getMetricsAsJSON(), {
    policy: () => state.loaded,
    reloads: () => reloader.history(),
    reloadStatus: () => { const { restart_pending, workers } = reloader.status(); return { restart_pending, workers }; },
    tuning: () => (tuning ? { status: tuning.status(), effective: tuning.effective() } : null),
    closestLimits: (n) => leases?.store.closest(n) ?? null,
  });
  registerExplainEndpoint(admin, () => state.loaded, () => leases?.store ?? null);
  const observed: Observed[] = [observePrimary(admin, coordinator, () => state.loaded.policy, log)];
  const adminAddr = await admin.listen(p0.server.admin_listen);
  admin.checkTokenFile();
  if (metricsOnly && p0.server.metrics_listen) await metricsOnly.listen(p0.server.metrics_listen, 'server.metrics_listen');

  const reload = (why: string): void => void reloader.reload(why);
  // auto-tuning: workers it retires drain and exit on purpose (not restarted as crashes)
  const retiring = new Set<number>();
  let forkOne: (() => void) | null = null;

  if (single) {
    local = await startProxyWorker(loaded0, coordinator, log);
    observed.push(observeWorker(coordinator, local));
    handleWorkerAdmin(coordinator, local);
    const single0 = local;
    attachTuningToWorker(coordinator, single0, () => single0.handler.pipeline.loaded.version, null, log);
    state.listening.set(0, local.address());
    reloader.workerReported(0, { version: loaded0.version });
  } else {
    forkOne = await forkWorkers(state, pm, log, coordinator as PrimaryCoordinator, retiring);
  }
  // auto-tuning: a primary service, so a reload resets it to the new policy (lib/tuning/)
  tuning = createAutoTuning({ coordinator, log, registry: pm.registry, actions: pm.autotuneActions, state, local: () => local, fork: forkOne, retiring });
  services.push(tuning);

  // hot reload: the policy file's directory is watched (ConfigMap-safe) and polled by content hash; in place
  // before "listening" is logged, so an update made right after start-up is seen by an event, not only the poll
  await reloader.watch();

  const proxyAddr = [...state.listening.values()][0];
  announce(log, { listen: `${proxyAddr.host}:${proxyAddr.port}`, admin: `${adminAddr.host}:${adminAddr.port}`, workers: p0.server.workers, version: loaded0.version }, 'listening');

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
    else await stopWorkers(state, coordinator as PrimaryCoordinator, log);
    await Promise.allSettled(observed.map((o) => o.close())); // flush spans
    await Promise.allSettled(services.map((s) => s.close()));
    statusPage.close();
    await Promise.all([admin.close(), metricsOnly?.close()]);
    log.info('shutdown complete');
    resolveDone();
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGHUP', () => reload('SIGHUP'));
  hooks.onPrimaryReady?.({ policyFile, reload, state, admin, coordinator, log, metrics: pm });
  return { done };
}

/** Extension points for features that run in the primary (policy watcher, warm-up gate, admin endpoints). */
export interface PrimaryContext {
  policyFile: string;
  reload(why: string): void;
  state: PodState;
  admin: AdminServer;
  coordinator: Coordinator;
  log: Logger;
  metrics: PrimaryMetrics;
}
export const hooks: { onPrimaryReady?: (c: PrimaryContext) => void } = {};

type WorkerMetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** /readyz detail while the policy has a `memory` section: the worst step any worker is in, and each one's. */
function overloadDetail(state: PodState): { state: OverloadReport['state']; workers: Record<string, OverloadReport> } | null {
  if (state.loaded.policy.memory === null) return null;
  const order: Array<OverloadReport['state']> = ['normal', 'shrink_cache', 'refuse_connections'];
  let worst: OverloadReport['state'] = 'normal';
  const workers: Record<string, OverloadReport> = {};
  for (const [id, r] of state.overload) {
    workers[String(id)] = { state: r.state, memoryRatio: Math.round(r.memoryRatio * 1000) / 1000 };
    if (order.indexOf(r.state) > order.indexOf(worst)) worst = r.state;
  }
  return { state: worst, workers };
}

async function upstreamReachable(state: PodState): Promise<boolean> {
  const now = Date.now();
  if (now - state.upstreamCheckedAt < 1000) return state.upstreamOk;
  const u = state.loaded.policy.upstream;
  state.upstreamOk = await new Promise<boolean>((resolve) => {
    const s = connect({ host: u.host, port: u.port });
    const t = setTimeout(() => { s.destroy(); resolve(false); }, Math.min(1000, u.pool.connect_timeout));
    s.once('connect', () => { clearTimeout(t); s.end(); resolve(true); });
    s.once('error', () => { clearTimeout(t); resolve(false); });
  });
  state.upstreamCheckedAt = now;
  return state.upstreamOk;
}

const RESTART_WINDOW_MS = 10_000;

/** Forks the policy's workers and returns `fork` (one more, restarted on a crash) for auto-tuning to scale with. */
async function forkWorkers(state: PodState, pm: PrimaryMetrics, log: Logger, coordinator: PrimaryCoordinator, retiring: Set<number>): Promise<() => void> {
  const env = (): Record<string, string> => {
    return uvThreadpoolEnv(state.loaded.policy);
  };
  const recentRestarts: number[] = [];
  // Each worker has a stable index 0..N-1 (BRIDGE_SIDECAR_WORKER_INDEX), reused by its replacement, so per-worker
  // resources such as its L3 directory survive a restart instead of being orphaned under a new cluster id.
  const slots = new Map<number, number>();
  const freeSlot = (): number => {
    const used = new Set(slots.values());
    let i = 0;
    while (used.has(i)) i++;
    return i;
  };
  const fork = (index: number = freeSlot()) => {
    const w = cluster.fork({ ...env(), BRIDGE_SIDECAR_WORKER_INDEX: String(index) });
    slots.set(w.id, index);
    // the new worker's IPC channel is connected as soon as fork returns, so it is already in workerIds()
    // (so no "+ 1": counting the new worker again would show one worker too many)
    pm.workers.set(coordinator.workerIds().length);
    w.on('exit', (code, signal) => {
      state.listening.delete(w.id);
      slots.delete(w.id);
      pm.workers.set(coordinator.workerIds().length);
      // auto-tuning: a worker retired by the tuner drained and left on purpose: not a crash
      if (retiring.delete(w.id)) {
        log.info({ worker: w.id, code }, 'retired worker exited');
        return;
      }
      if (state.draining) return;
      if (code === LISTEN_FAILED_EXIT) {
        // a port that cannot be bound will not be bound by a restart either: start-up fails (see listen.ts)
        listenFailure ??= `a worker could not listen on ${state.loaded.policy.server.listen.host}:${state.loaded.policy.server.listen.port} (server.listen)`;
        return;
      }
      pm.workersRestarted.inc();
      const now = Date.now();
      while (recentRestarts.length && now - recentRestarts[0] > RESTART_WINDOW_MS) recentRestarts.shift();
      recentRestarts.push(now);
      // a worker that keeps crashing is restarted with a growing delay instead of a tight loop
      const delay = recentRestarts.length > 3 ? Math.min(5000, 250 * 2 ** (recentRestarts.length - 3)) : 0;
      log.error({ worker: w.id, code, signal, restart_in_ms: delay }, 'worker exited unexpectedly: restarting it');
      setTimeout(() => { if (!state.draining) fork(index); }, delay);
    });
  };
  let listenFailure: string | null = null;
  coordinator.handle('worker:listen-failed', (message: string) => {
    listenFailure ??= message;
    return true;
  });
  const want = state.loaded.policy.server.workers;
  for (let i = 0; i < want; i++) fork(i);
  const deadline = Date.now() + 30_000;
  while (state.listening.size < want) {
    if (listenFailure !== null) throw new ListenError(listenFailure);
    if (Date.now() > deadline) throw new Error(`only ${state.listening.size} of ${want} workers started listening within 30 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return fork;
}

/** Ask every worker to drain and wait for all of them to exit (each bounded by its drain timeout). */
async function stopWorkers(state: PodState, coordinator: PrimaryCoordinator, log: Logger): Promise<void> {
  const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
  const exits = workers.map((w) => new Promise<void>((r) => {
    if (w.isDead()) return r();
    w.once('exit', () => r());
  }));
  coordinator.broadcast('shutdown', null);
  const hard = setTimeout(() => {
    log.warn('workers did not exit after the drain timeout: killing them');
    for (const w of workers) if (!w.isDead()) w.kill('SIGKILL');
  }, state.loaded.policy.server.drain_timeout + 5000);
  hard.unref();
  await Promise.all(exits);
  clearTimeout(hard);
}

async function runWorkerProcess(): Promise<SidecarHandle> {
  // The primary is gone (it exited after a start-up failure, or was killed): a send on the closed channel must
  // end this worker quietly, not with an EPIPE stack on the terminal.
  cluster.worker?.on('error', () => process.exit(0));
  const coordinator = new WorkerCoordinator();
  // Listen for policy swaps before asking for the policy: a reload broadcast while this worker starts is kept
  // and applied once it is up, so a (re)started worker never stays on an older policy than its siblings.
  let worker: ProxyWorker | null = null;
  const early: { policy: LoadedPolicy | null } = { policy: null };
  let log: Logger | null = null;
  let applied = '';
  const apply = (next: LoadedPolicy) => {
    if (!worker || !log) {
      early.policy = next;
      return;
    }
    if (next.version === applied) return;
    let report: WorkerPolicyReport;
    try {
      log.level = next.policy.server.log_level;
      worker.applyPolicy(deepFreeze(next));
      applied = next.version;
      report = { version: applied };
    } catch (err) {
      log.error({ err: String(err), version: next.version }, 'failed to apply the new policy: keeping the previous one');
      report = { version: applied, error: String(err) };
    }
    coordinator.request('policy:applied', report).catch(() => {});
  };
  coordinator.on('policy:apply', apply);
  const loaded = deepFreeze(await coordinator.request('policy:get', null, 10_000));
  setLogFormat(loaded.policy.server.log_format);
  log = createLogger(loaded.policy.server.log_level, { role: 'worker', worker: coordinator.id });
  try {
    worker = await startProxyWorker(loaded, coordinator, log);
  } catch (e) {
    if (!(e instanceof ListenError)) throw e;
    // the primary says it once and stops; restarting this worker would fail the same way
    await coordinator.request('worker:listen-failed', e.message, 2000).catch(() => {});
    process.exit(LISTEN_FAILED_EXIT);
  }
  applied = loaded.version;
  coordinator.request('policy:applied', { version: applied } satisfies WorkerPolicyReport).catch(() => {});
  if (early.policy) apply(early.policy);
  const running = worker;
  const observed = observeWorker(coordinator, running);
  coordinator.handle('metrics:get', () => running.runtime.metrics.registry.getMetricsAsJSON());
  handleWorkerAdmin(coordinator, running);
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await running.shutdown();
    await observed.close(); // flush spans
    resolveDone();
    // the IPC channel keeps the process alive; leave once drained
    process.exit(0);
  };
  coordinator.on('shutdown', () => void stop());
  attachTuningToWorker(coordinator, running, () => applied, () => void stop(), log);
  // a signal sent to the whole process group (Ctrl-C) drains this worker too; the primary will not restart it
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  await coordinator.request('worker:listening', running.address());
  return { done };
}
