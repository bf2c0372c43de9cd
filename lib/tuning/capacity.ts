/**
 * What the container may use: CPUs (the cgroup's CPU quota, else the CPUs this process may run on) and memory
 * (the cgroup's limit and working set, else the machine's RAM: see observe/resources.ts). Read each interval, so a pod resized
 * in place is seen; both are small file reads.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { readMemory } from '../observe/resources';
import type { Capacity } from './figures';

function read(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

/**
 * CPUs the container may use: cgroup v2 `cpu.max` ("quota period", or "max period" for no limit), else v1
 * cpu.cfs_quota_us / cpu.cfs_period_us, never more than the CPUs the process may run on. `root` is for tests.
 */
export function containerCpus(root = '/sys/fs/cgroup', host = availableParallelism()): number {
  const v2 = read(`${root}/cpu.max`);
  if (v2 !== null) {
    const [quota, period] = v2.split(/\s+/);
    const q = Number(quota);
    const p = Number(period);
    if (quota !== 'max' && q > 0 && p > 0) return Math.min(host, q / p);
    return host;
  }
  const q1 = Number(read(`${root}/cpu/cpu.cfs_quota_us`));
  const p1 = Number(read(`${root}/cpu/cpu.cfs_period_us`));
  if (q1 > 0 && p1 > 0) return Math.min(host, q1 / p1);
  return host;
}

export function readCapacity(): Capacity {
  const m = readMemory();
  return { cpus: containerCpus(), memoryLimitBytes: m.limitBytes, memoryWorkingSetBytes: m.source === 'host' ? null : m.workingSetBytes };
}
