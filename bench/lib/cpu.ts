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

/** CPU seconds used so far by `pid` and its live descendants (e.g. the sidecar primary and its workers). */
export function treeCpuSeconds(pid: number): number {
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    const p = Number(name);
    if (!Number.isInteger(p)) continue;
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
      parent.set(p, Number(f[1]));
      ticks.set(p, Number(f[11]) + Number(f[12]));
    } catch {
      /* exited meanwhile */
    }
  }
  const inTree = (p: number): boolean => {
    for (let q = p, hops = 0; q > 1 && hops < 16; q = parent.get(q) ?? 0, hops++) if (q === pid) return true;
    return false;
  };
  let total = 0;
  for (const [p, t] of ticks) if (inTree(p)) total += t;
  return total / CLK_TCK;
}
