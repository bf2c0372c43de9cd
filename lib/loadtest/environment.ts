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
