/** What a benchmark ran on, for the results file: figures mean little without it. */
import { cpus, loadavg, release, totalmem } from 'node:os';
import { nginxVersion } from './nginx';
import { wrkVersion } from './wrk';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  nginx: string;
  wrk: string;
  load1: number;
}

export async function machineInfo(): Promise<MachineInfo> {
  const c = cpus();
  return {
    cpuModel: c[0]?.model.trim() || 'unknown',
    cores: c.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: `Linux ${release()}`,
    node: process.version,
    nginx: nginxVersion(),
    wrk: await wrkVersion(),
    load1: Math.round(loadavg()[0]! * 100) / 100,
  };
}

export function machineLine(m: MachineInfo): string {
  return `${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.kernel}; node ${m.node}, nginx ${m.nginx}, ${m.wrk}`;
}

/** Waits (up to maxWaitMs) for the 1-minute load average to drop under `below`; returns the last value. */
export async function waitForQuiet(below: number, maxWaitMs: number, log: (s: string) => void): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  let load = loadavg()[0]!;
  while (load >= below && Date.now() < deadline) {
    log(`load average ${load.toFixed(2)} >= ${below}: waiting for a quiet machine...`);
    await new Promise((r) => setTimeout(r, 10_000));
    load = loadavg()[0]!;
  }
  return load;
}
