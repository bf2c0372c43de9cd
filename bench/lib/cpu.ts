/**
 * CPU time of a process tree from /proc (utime + stime of a process and its live descendants): what a proxy
 * costs per request, steadier on a busy shared machine than requests/s. Linux only.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface ProcStat {
  ppid: number;
  comm: string;
  /** utime + stime, in ticks */
  own: number;
  /** cutime + cstime: children that exited and were waited for, in ticks */
  reaped: number;
}

function scanProc(): Map<number, ProcStat> {
  const all = new Map<number, ProcStat>();
  for (const name of readdirSync('/proc')) {
    const p = Number(name);
    if (!Number.isInteger(p)) continue;
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
      all.set(p, { ppid: Number(f[1]), comm: st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')), own: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) });
    } catch {
      /* exited meanwhile */
    }
  }
  return all;
}

function inTree(all: Map<number, ProcStat>, p: number, root: number): boolean {
  for (let q = p, hops = 0; q > 1 && hops < 16; q = all.get(q)?.ppid ?? 0, hops++) if (q === root) return true;
  return false;
}

/** CPU seconds used so far by `pid` and its live descendants (e.g. the sidecar primary and its workers). */
export function treeCpuSeconds(pid: number): number {
  const all = scanProc();
  let total = 0;
  for (const [p, s] of all) if (inTree(all, p, pid)) total += s.own;
  return total / CLK_TCK;
}

export interface TreeCpu {
  /** CPU seconds of the tree: every process's own time plus that of its children already exited and reaped */
  seconds: number;
  /** per live process of the tree: pid -> its command and CPU seconds (own + reaped children) */
  processes: Map<number, { comm: string; seconds: number }>;
}

/**
 * Like treeCpuSeconds, and it also counts the children that exited (a fork, a subprocess): a process that
 * waits for a child gets the child's time in cutime/cstime, so own + reaped over the tree stays continuous
 * when a child ends between two snapshots. Per process, to say who spent it (a primary and its workers).
 */
export function treeCpu(pid: number): TreeCpu {
  const all = scanProc();
  const processes = new Map<number, { comm: string; seconds: number }>();
  let total = 0;
  for (const [p, s] of all) {
    if (!inTree(all, p, pid)) continue;
    const seconds = (s.own + s.reaped) / CLK_TCK;
    processes.set(p, { comm: s.comm, seconds });
    total += seconds;
  }
  return { seconds: total, processes };
}
