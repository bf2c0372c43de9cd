/**
 * The guide's resource figures (§9, targets: CPU < 70 %, memory < 80 %, disk I/O < 60 %) as Prometheus series,
 * read at scrape time so nothing runs between scrapes:
 *  - memory: the container's cgroup limit (v2 memory.max, else v1 memory.limit_in_bytes, else the machine's RAM)
 *    and its WORKING SET against it (below);
 *  - disk I/O: this process's read_bytes / write_bytes from /proc/self/io (bytes that reached the block layer);
 *  - network I/O: bytes on the proxy's own sockets (clients and upstream), counted per socket, because
 *    /proc/self/net/dev describes the whole network namespace (the pod), not this process.
 * CPU is prom-client's process_cpu_seconds_total.
 *
 * The working set is what the kubelet evicts on and what the OOM killer cannot take back: the cgroup's usage
 * minus its inactive file pages (v2: memory.current - memory.stat inactive_file; v1: memory.usage_in_bytes -
 * memory.stat total_inactive_file), as cAdvisor computes container_memory_working_set_bytes. The raw usage
 * counts page cache, so with the disk tier on it climbs towards the limit while nothing is under pressure:
 * every decision or alert on memory (memory_usage_ratio, auto-tuning's memory_usage, overload steps) reads
 * `workingSetBytes` (or `memoryPressure()`), never `usedBytes`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { totalmem, freemem } from 'node:os';
import type { Socket } from 'node:net';

/** Above this a cgroup "limit" means "no limit" (v1 reports a huge page-rounded number). */
const NO_LIMIT = 2 ** 60;

/**
 * cgroup and proc files found missing: not read again. A v2 host has no v1 files and a root cgroup no memory.max,
 * and such a file does not appear later; a failed readFileSync builds an Error with a stack (~30 µs), which on
 * those hosts was most of a scrape's memory reading. Where the files exist (a pod with a limit) nothing is added.
 */
const absent = new Set<string>();

/** The file's text, or null when it is missing (remembered) or unreadable. */
function readText(file: string): string | null {
  if (absent.has(file)) return null;
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') absent.add(file);
    return null;
  }
}

function readNumber(file: string): number | null {
  const text = readText(file)?.trim();
  if (text === undefined) return null;
  if (text === 'max') return Infinity;
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
}

/** One field of a memory.stat file ("inactive_file 123"), or null when the file or the field is missing. */
export function readStatField(file: string, field: string): number | null {
  const text = readText(file);
  if (text === null) return null;
  const m = new RegExp(`^${field} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

export interface MemoryFigures {
  limitBytes: number;
  /** The cgroup's raw usage, page cache included (the machine's used RAM without a cgroup limit). */
  usedBytes: number;
  /** usedBytes minus inactive file pages: the kubelet's working set. The figure to decide and alert on. */
  workingSetBytes: number;
  /** Where the figures came from: cgroup v2, cgroup v1, or the whole machine. */
  source: 'cgroup2' | 'cgroup1' | 'host';
}

const workingSet = (usage: number, inactiveFile: number | null): number => Math.max(0, usage - (inactiveFile ?? 0));

/**
 * This process's own cgroup directories, from /proc/self/cgroup: in a container with its own cgroup namespace
 * the paths are "/" (the mount is the container's cgroup); without one (cgroup v1 hosts, some runtimes) they
 * name the cgroup below the hierarchy's root, whose files are the ones that hold the limit. A path that is
 * not under the mount falls back to the mount itself.
 */
export function ownCgroupDirs(root = '/sys/fs/cgroup', procFile = '/proc/self/cgroup'): { v2: string; v1: string } {
  let text = '';
  try {
    text = readFileSync(procFile, 'utf8');
  } catch {
    // not Linux: the mount (if any) is all there is
  }
  const under = (base: string, path: string | undefined): string =>
    path !== undefined && path !== '/' && existsSync(base + path) ? base + path : base;
  const v2 = /^0::(\/.*)$/m.exec(text)?.[1];
  const v1 = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(\/.*)$/m.exec(text)?.[1];
  return { v2: under(root, v2), v1: under(`${root}/memory`, v1) };
}

/** This process's cgroup directories, found once: a container's processes are not moved between cgroups. */
let ownDirs: { v2: string; v1: string } | null = null;

/**
 * Reads the container's memory limit, usage and working set. `root` is the cgroup v2 directory and `v1Dir` the
 * v1 memory controller's directory; by default this process's own cgroup (tests point them at a child cgroup
 * or a fake tree).
 */
export function readMemory(root?: string, v1Dir?: string): MemoryFigures {
  if (root === undefined) ({ v2: root, v1: v1Dir } = ownDirs ??= ownCgroupDirs());
  v1Dir ??= `${root}/memory`;
  const v2max = readNumber(`${root}/memory.max`);
  const v2cur = readNumber(`${root}/memory.current`);
  if (v2max !== null && v2cur !== null && v2max < NO_LIMIT) {
    return { limitBytes: v2max, usedBytes: v2cur, workingSetBytes: workingSet(v2cur, readStatField(`${root}/memory.stat`, 'inactive_file')), source: 'cgroup2' };
  }
  const v1max = readNumber(`${v1Dir}/memory.limit_in_bytes`);
  const v1cur = readNumber(`${v1Dir}/memory.usage_in_bytes`);
  if (v1max !== null && v1cur !== null && v1max < NO_LIMIT) {
    // total_ counts the hierarchy below too, like usage_in_bytes does
    return { limitBytes: v1max, usedBytes: v1cur, workingSetBytes: workingSet(v1cur, readStatField(`${v1Dir}/memory.stat`, 'total_inactive_file')), source: 'cgroup1' };
  }
  // no cgroup limit: the container may use the machine's memory, so measure against that. Node's freemem() is
  // MemAvailable, which already leaves out the page cache the kernel can reclaim.
  const total = totalmem();
  const used = total - freemem();
  return { limitBytes: total, usedBytes: used, workingSetBytes: used, source: 'host' };
}

/** The working set over the limit, 0..1: "how close to the memory limit are we", for overload decisions. */
export function memoryPressure(m: MemoryFigures = readMemory()): number {
  return m.limitBytes > 0 ? Math.min(1, m.workingSetBytes / m.limitBytes) : 0;
}

export interface DiskFigures {
  readBytes: number;
  writeBytes: number;
}

/** This process's storage I/O, or null where /proc/self/io is not readable (non-Linux, hardened kernels). */
export function readProcessIo(file = '/proc/self/io'): DiskFigures | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const pick = (name: string): number => {
    const m = new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  return { readBytes: pick('read_bytes'), writeBytes: pick('write_bytes') };
}

export type Peer = 'client' | 'upstream';

/**
 * Bytes read and written on tracked sockets: closed sockets add to running totals, live ones are summed at
 * scrape time (so a long keep-alive connection shows up before it closes). Costs one Set insert and one close
 * listener per connection, nothing per request.
 */
export class SocketBytes {
  private readonly live = new Set<Socket>();
  private closedRead = 0;
  private closedWritten = 0;

  track(socket: Socket): void {
    if (this.live.has(socket)) return;
    this.live.add(socket);
    socket.once('close', () => {
      this.live.delete(socket);
      this.closedRead += socket.bytesRead;
      this.closedWritten += socket.bytesWritten;
    });
  }

  totals(): { read: number; written: number } {
    let read = this.closedRead;
    let written = this.closedWritten;
    for (const s of this.live) {
      read += s.bytesRead;
      written += s.bytesWritten;
    }
    return { read, written };
  }
}
