/**
 * The overload steps (./overload.ts) wired into one proxy worker: its L1, its listener, its metrics and the
 * report to the primary (for /readyz). Off while the policy has no `memory` section.
 *
 * The figure is the pod's working set against its cgroup limit (lib/observe/resources.ts), read from
 * /sys/fs/cgroup, or from BRIDGE_SIDECAR_CGROUP_ROOT when set (a test's fake cgroup tree).
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { Counter, Gauge } from 'prom-client';
import type { Policy } from '../policy/types';
import type { Coordinator } from '../core/ipc';
import type { Logger } from '../observe/logger';
import type { WorkerMetrics } from '../observe/metrics';
import { memoryPressure, readMemory } from '../observe/resources';
import type { CacheComponent } from '../stages/cache/component';
import { OVERLOAD_STATES, OverloadManager, type OverloadActions } from './overload';

export interface MemoryWatch {
  configure(policy: Policy): void;
  close(): void;
}

export function watchMemory(server: Server, cache: CacheComponent | null, metrics: WorkerMetrics, coordinator: Coordinator,
  log: Logger, first: Policy, env: NodeJS.ProcessEnv = process.env): MemoryWatch {
  let policy = first;
  let refusing = false;
  const root = env.BRIDGE_SIDECAR_CGROUP_ROOT || '/sys/fs/cgroup';
  const state = new Gauge({
    name: 'bridge_sidecar_overload_state', help: 'Memory overload step: 0 normal, 1 shrink_cache (L1 stops storing and shrinks), 2 refuse_connections.',
    registers: [metrics.registry], aggregator: 'max',
  });
  const steps = new Counter({
    name: 'bridge_sidecar_overload_steps_total', help: 'Overload steps taken, by the state entered.', labelNames: ['state'], registers: [metrics.registry],
  });
  state.set(0);
  for (const s of OVERLOAD_STATES) steps.inc({ state: s }, 0);
  // one listener for the worker's life: a refused connection is closed as soon as it is accepted
  server.on('connection', (s: Socket) => { if (refusing) s.destroy(); });

  const actions: OverloadActions = {
    admitCache: (on) => cache?.admitL1(on),
    cacheFigures: () => {
      const l1 = cache?.tiers.l1 ?? null;
      const configured = policy.cache?.l1?.size ?? 0;
      return l1 === null || configured === 0 ? null : { bytes: l1.bytes, capacity: l1.capacity, configured };
    },
    resizeCache: (bytes) => {
      const size = bytes ?? policy.cache?.l1?.size;
      if (size !== undefined) cache?.resizeL1(size);
    },
    refuseConnections: (on) => {
      refusing = on;
      if (on) server.closeIdleConnections();
    },
  };
  const read = () => memoryPressure(readMemory(root));
  let manager: OverloadManager | null = null;
  const apply = (p: Policy) => {
    policy = p;
    if (p.memory === null) {
      manager?.reset();
      manager?.stop();
      manager = null;
      return;
    }
    if (manager === null) {
      manager = new OverloadManager(p.memory, read, actions, log, (step) => {
        state.set(OVERLOAD_STATES.indexOf(step.to));
        steps.inc({ state: step.to });
        coordinator.request('overload:state', { state: step.to, memoryRatio: step.memoryRatio }).catch(() => undefined);
      });
      manager.start();
    } else {
      manager.configure(p.memory);
    }
  };
  apply(first);
  return {
    configure: apply,
    close() {
      manager?.stop();
    },
  };
}
