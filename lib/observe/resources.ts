/**
 * The guide's resource figures (§9, targets: CPU < 70 %, memory < 80 %, disk I/O < 60 %) as Prometheus series,
 * read at scrape time so nothing runs between scrapes:
 *  - memory: the container's cgroup limit (v2 memory.max, else v1 memory.limit_in_bytes, else the machine's RAM)
 *    and the usage against it (cgroup memory.current / memory.usage_in_bytes, else the machine's used RAM);
 *  - disk I/O: this process's read_bytes / write_bytes from /proc/self/io (bytes that reached the block layer);
 *  - network I/O: bytes on the proxy's own sockets (clients and upstream), counted per socket, because
 *    /proc/self/net/dev describes the whole network namespace (the pod), not this process.
 * CPU is prom-client's process_cpu_seconds_total.
 */
import { readFileSync } from 'node:fs';
import { totalmem, freemem } from 'node:os';
import type { Socket } from 'node:net';

/** Above this a cgroup "limit" means "no limit" (v1 reports a huge page-rounded number). */
const NO_LIMIT = 2 ** 60;

function readNumber(file: string): number | null {
  try {
    const text = readFileSync(file, 'utf8').trim();
    if (text === 'max') return Infinity;
    const n = Number(text);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

export interface MemoryFigures {
  limitBytes: number;
  usedBytes: number;
  /** Where the figures came from: cgroup v2, cgroup v1, or the whole machine. */
  source: 'cgroup2' | 'cgroup1' | 'host';
}

/** Reads the container's memory limit and usage; `root` lets tests point at a fake cgroup tree. */
export function readMemory(root = '/sys/fs/cgroup'): MemoryFigures {
  const v2max = readNumber(`${root}/memory.max`);
  const v2cur = readNumber(`${root}/memory.current`);
  if (v2max !== null && v2cur !== null && v2max < NO_LIMIT) return { limitBytes: v2max, usedBytes: v2cur, source: 'cgroup2' };
  const v1max = readNumber(`${root}/memory/memory.limit_in_bytes`);
  const v1cur = readNumber(`${root}/memory/memory.usage_in_bytes`);
  if (v1max !== null && v1cur !== null && v1max < NO_LIMIT) return { limitBytes: v1max, usedBytes: v1cur, source: 'cgroup1' };
  // no cgroup limit: the container may use the machine's memory, so measure against that
  const total = totalmem();
  return { limitBytes: total, usedBytes: total - freemem(), source: 'host' };
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
