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
  /** times the live processes' threads were put on a CPU so far (see wakeupsOf) */
  wakeups: number;
}

/**
 * How many times the threads of process `p` have been put on a CPU (the third field of each
 * /proc/<p>/task/<tid>/schedstat). A thread that sleeps (a server waiting in epoll, a helper thread waiting for a
 * job) is put back on a CPU once per wake-up, so this counts wake-ups, and preemptions. Why it matters: at the
 * real service's pace (~100 requests/s) every request wakes a sleeping proxy, and on this VM a wake-up costs much
 * more than the request's own work, so CPU per request = wake-ups per request x CPU per wake-up, and the two
 * factors say different things (how the proxy waits, and how much code it runs when woken). Threads that exited
 * are not counted; a Node process's threads (V8's and libuv's) live as long as it does.
 */
function wakeupsOf(p: number): number {
  let n = 0;
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${p}/task`);
  } catch {
    return 0; // exited meanwhile
  }
  for (const tid of tids) {
    try {
      n += Number(readFileSync(`/proc/${p}/task/${tid}/schedstat`, 'utf8').split(' ')[2]) || 0;
    } catch {
      /* the thread exited meanwhile */
    }
  }
  return n;
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
  let wakeups = 0;
  for (const [p, s] of all) {
    if (!inTree(all, p, pid)) continue;
    const seconds = (s.own + s.reaped) / CLK_TCK;
    processes.set(p, { comm: s.comm, seconds });
    total += seconds;
    wakeups += wakeupsOf(p);
  }
  return { seconds: total, processes, wakeups };
}
