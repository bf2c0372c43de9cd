/**
 * The "test environment" section: what machine and software the figures were taken on.
 */
import { cpus, totalmem, release, type as osType } from 'node:os';
import { readFileSync } from 'node:fs';

export interface Environment {
  cpuModel: string;
  cores: number;
  cpuMHz: number | null;
  memoryBytes: number;
  os: string;
  kernel: string;
  node: string;
  /** true when the target is on this machine: generator and target then share the CPUs */
  targetIsLocal: boolean;
}

export function describeEnvironment(target: URL): Environment {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    cpuMHz: list[0]?.speed ? list[0].speed : null,
    memoryBytes: totalmem(),
    os: osPrettyName() ?? osType(),
    kernel: `${osType()} ${release()}`,
    node: process.version,
    targetIsLocal: ['127.0.0.1', 'localhost', '[::1]', '::1', '0.0.0.0'].includes(target.hostname),
  };
}

function osPrettyName(): string | null {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
    return m ? m[1] : null;
  } catch {
    return null;
  }
}

/** The machine's CPU time so far, from /proc/stat (clock ticks): all of it, and the part not idle. */
export interface MachineCpu {
  busy: number;
  total: number;
}

export function readMachineCpu(file = '/proc/stat'): MachineCpu | null {
  try {
    const line = readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith('cpu '));
    if (!line) return null;
    // user nice system idle iowait irq softirq steal (guest time is already inside user)
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - f[3] - (f[4] ?? 0), total };
  } catch {
    return null;
  }
}

/** Share of all the machine's CPUs that were busy between two readings (everything on it, this test included). */
export function machineBusyShare(a: MachineCpu | null, b: MachineCpu | null): number | null {
  if (a === null || b === null || b.total <= a.total) return null;
  return Math.min(1, Math.max(0, (b.busy - a.busy) / (b.total - a.total)));
}
