/**
 * Process roles. `serve` calls runSidecar():
 *  - server.workers >= 1: this process is the primary (lib/server/primary/: policy, admin port, worker
 *    supervision, pod-wide services such as token leases) and forks the workers (node:cluster), which each run a
 *    proxy listener on the same port. A worker that dies unexpectedly is restarted.
 *  - server.workers == 0: one process does both (the admin port and the proxy), for tests and tiny pods.
 * A cluster worker re-enters through the same command and lands in runWorkerProcess().
 */
import cluster from 'node:cluster';
import { deepFreeze } from '../policy/load';
import type { LoadedPolicy } from '../policy/types';
import { createLogger, setLogFormat, type Logger } from '../observe/logger';
import { WorkerCoordinator } from './ipc';
import { ListenError, LISTEN_FAILED_EXIT } from './listen';
import { startProxyWorker, type ProxyWorker } from './worker';
import type { WorkerPolicyReport } from './reload';
import { observeWorker } from '../observe/attach';
import { handleWorkerAdmin } from './admin-actions';
import { attachTuningToWorker } from '../tuning';
import { runPrimary, type SidecarHandle } from './primary/run';

export { PolicyRefusedError, type SidecarHandle } from './primary/run';
export { ListenError } from './listen';

export function runSidecar(policyFile: string): Promise<SidecarHandle> {
  if (cluster.isWorker) return runWorkerProcess();
  return runPrimary(policyFile);
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
  const stop = async (siblingsListen = false) => {
    if (stopping) return;
    stopping = true;
    await running.shutdown({ siblingsListen });
    await observed.close(); // flush spans
    resolveDone();
    // the IPC channel keeps the process alive; leave once drained
    process.exit(0);
  };
  coordinator.on('shutdown', () => void stop());
  // a retired worker's siblings keep listening: it stops accepting at once
  attachTuningToWorker(coordinator, running, () => applied, () => void stop(true), log);
  // a signal sent to the whole process group (Ctrl-C) drains this worker too; the primary will not restart it
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  await coordinator.request('worker:listening', running.address());
  return { done };
}
