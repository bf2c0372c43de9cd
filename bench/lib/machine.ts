/** What a benchmark ran on, for the results file: figures mean little without it. */
import { readdirSync, readFileSync } from 'node:fs';
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

/**
 * CPU used by processes that are not this benchmark (nor its children: wrk, nginx, sidecar, service).
 * The load average cannot say this, as it counts the benchmark itself. Linux only; null elsewhere.
 */
export interface CpuSnapshot {
  /** busy and total jiffies of all CPUs (from /proc/stat) */
  busy: number;
  total: number;
  /** jiffies used by this process and its descendants, living or reaped */
  ours: number;
}

function readNums(file: string): number[] | null {
  try {
    const text = readFileSync(file, 'utf8');
    // /proc/<pid>/stat: the command (field 2) may hold spaces and parentheses; fields after the last ')'
    const rest = text.slice(text.lastIndexOf(')') + 2).trim().split(/\s+/);
    return rest.map(Number);
  } catch {
    return null;
  }
}

export function cpuSnapshot(): CpuSnapshot | null {
  let statLine: string;
  try {
    statLine = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  } catch {
    return null;
  }
  const f = statLine.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  const busy = user + nice + system + irq + softirq + steal;
  // every process: pid -> [ppid, own+reaped-children jiffies]; fields after ')' start at field 3 (state)
  const procs = new Map<number, { ppid: number; jiffies: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const n = readNums(`/proc/${name}/stat`);
    if (!n) continue;
    // index 0 = state, 1 = ppid, 11..14 = utime, stime, cutime, cstime
    procs.set(Number(name), { ppid: n[1]!, jiffies: n[11]! + n[12]! + n[13]! + n[14]! });
  }
  const children = new Map<number, number[]>();
  for (const [pid, p] of procs) {
    const list = children.get(p.ppid);
    if (list) list.push(pid);
    else children.set(p.ppid, [pid]);
  }
  let ours = 0;
  const stack = [process.pid];
  while (stack.length) {
    const pid = stack.pop()!;
    ours += procs.get(pid)?.jiffies ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return { busy, total: busy + idle + iowait, ours };
}

/** Share of the machine's CPU capacity (0..1) that other processes used between a and b. */
export function foreignCpuShare(a: CpuSnapshot | null, b: CpuSnapshot | null): number | null {
  if (!a || !b || b.total <= a.total) return null;
  const foreign = b.busy - a.busy - (b.ours - a.ours);
  return Math.max(0, foreign / (b.total - a.total));
}
