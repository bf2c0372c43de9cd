/**
 * CPU profiles and heap snapshots with the V8 inspector (node:inspector), the guide's §11 made real:
 *  - a `.cpuprofile` (Profiler.start/stop): opens in Chrome DevTools (Performance panel) and speedscope;
 *  - a `.heapsnapshot` (HeapProfiler.takeHeapSnapshot): opens in Chrome DevTools (Memory panel).
 *
 * Where the work happens: the proxy runs in the worker processes, so profiles are taken there. The primary
 * (which owns the admin port) asks a worker over IPC; the worker writes the file into `profiling.output` and
 * answers with its path (profiles are megabytes: they do not travel over IPC). Files are written under a
 * `.partial` name and renamed when complete, and the directory is bounded to `profiling.max_files` (oldest go).
 *
 * When:
 *  - on demand: `GET /debug/profile?seconds=N[&worker=ID]`, `GET /debug/heap[?worker=ID]` (admin token);
 *  - on schedule (`profiling.enabled`): a CPU profile of `cpu.duration` every `cpu.interval`, one worker at a
 *    time in turn (the primary schedules); a heap snapshot when a worker's RSS is above `heap.threshold`, at most
 *    once per `heap.interval` per worker (the guide's "memory profile every 300 s above 100 MB").
 */
import { Session } from 'node:inspector/promises';
import { closeSync, mkdirSync, openSync, readdirSync, renameSync, statSync, unlinkSync, writeSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Policy, ProfilingPolicy } from '../policy/types';
import type { Coordinator } from '../core/ipc';
import type { AdminServer, AdminReply } from '../server/admin';
import type { Logger } from './logger';
import type { ProfileKind, ProfileOrder, ProfileReason, ProfileResult } from './profile-protocol';


export const DEFAULT_OUTPUT = '/tmp/bridge-sidecar-profiles';
export const DEFAULT_MAX_FILES = 20;
/** On-demand CPU profiles are bounded: the admin request waits for the whole profile. */
export const MAX_PROFILE_SECONDS = 60;
export const DEFAULT_PROFILE_SECONDS = 10;
const PROFILE_FILE = /^(cpu|heap)-.*\.(cpuprofile|heapsnapshot)$/;


/** Raised when the same kind of profile is already running in the process (the admin answers 409). */
export class ProfilerBusyError extends Error {}
const BUSY_PREFIX = 'profiler busy: ';

/** Output settings from the policy; the on-demand endpoints work without a `profiling` section. */
export function outputOf(p: ProfilingPolicy | null): { output: string; maxFiles: number } {
  return { output: p?.output ?? DEFAULT_OUTPUT, maxFiles: Math.max(1, p?.max_files ?? DEFAULT_MAX_FILES) };
}

/** Takes profiles of the process it runs in, one of each kind at a time. */
export class ProcessProfiler {
  private busy = new Set<ProfileKind>();

  constructor(private readonly workerId: number, private readonly log: Logger) {}

  async take(order: ProfileOrder): Promise<ProfileResult> {
    if (this.busy.has(order.kind)) throw new ProfilerBusyError(`${BUSY_PREFIX}a ${order.kind} profile is already being taken in this process`);
    this.busy.add(order.kind);
    const started = Date.now();
    try {
      mkdirSync(order.output, { recursive: true });
      const name = `${order.kind}-${stamp(new Date())}-w${this.workerId}-pid${process.pid}-${order.reason}.${order.kind === 'cpu' ? 'cpuprofile' : 'heapsnapshot'}`;
      const path = join(order.output, name);
      const partial = path + '.partial';
      if (order.kind === 'cpu') await cpuProfile(partial, order.durationMs ?? DEFAULT_PROFILE_SECONDS * 1000);
      else await heapSnapshot(partial);
      renameSync(partial, path);
      const bytes = statSync(path).size;
      pruneProfiles(order.output, order.maxFiles);
      this.log.info({ kind: order.kind, reason: order.reason, file: path, bytes, took_ms: Date.now() - started }, 'profile written');
      return { path, bytes, pid: process.pid, worker: this.workerId };
    } finally {
      this.busy.delete(order.kind);
    }
  }
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace('.', '');
}

async function cpuProfile(file: string, durationMs: number): Promise<void> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    await new Promise((r) => setTimeout(r, durationMs));
    const { profile } = await session.post('Profiler.stop');
    const fd = openSync(file, 'w');
    try {
      writeSync(fd, JSON.stringify(profile));
    } finally {
      closeSync(fd);
    }
  } finally {
    session.disconnect();
  }
}

/** Chunks are written as they arrive (synchronously, in order), so the snapshot is never held whole in memory. */
async function heapSnapshot(file: string): Promise<void> {
  const session = new Session();
  session.connect();
  const fd = openSync(file, 'w');
  try {
    session.on('HeapProfiler.addHeapSnapshotChunk', (m: { params: { chunk: string } }) => {
      writeSync(fd, m.params.chunk);
    });
    await session.post('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  } finally {
    closeSync(fd);
    session.disconnect();
  }
}

/** Deletes the oldest profile files of `dir` until at most `maxFiles` remain (other files are left alone). */
export function pruneProfiles(dir: string, maxFiles: number): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => PROFILE_FILE.test(n));
  } catch {
    return [];
  }
  if (names.length <= maxFiles) return [];
  const files = names.flatMap((n) => {
    try {
      return [{ n, t: statSync(join(dir, n)).mtimeMs }];
    } catch {
      return []; // removed meanwhile by another worker
    }
  });
  files.sort((a, b) => a.t - b.t || a.n.localeCompare(b.n));
  const removed: string[] = [];
  for (const f of files.slice(0, Math.max(0, files.length - maxFiles))) {
    try {
      unlinkSync(join(dir, f.n));
      removed.push(f.n);
    } catch {
      /* another worker pruned it first */
    }
  }
  return removed;
}

// ---- worker side ----------------------------------------------------------------------------------------------

/**
 * Answers the primary's profile orders and watches this process's RSS against `heap.threshold`.
 * `policy()` is the policy in force (read on each check, never cached).
 */
export class WorkerProfiling {
  readonly profiler: ProcessProfiler;
  private timer: NodeJS.Timeout | null = null;
  private lastHeapAt = 0;

  constructor(coordinator: Coordinator, private readonly policy: () => Policy, private readonly log: Logger) {
    this.profiler = new ProcessProfiler(coordinator.id, log);
    coordinator.handle('profile:take', (order: ProfileOrder) => this.profiler.take(order));
    this.schedule();
  }

  private schedule(): void {
    const p = this.policy().profiling;
    const every = p && p.enabled ? Math.min(5000, p.heap.interval) : 5000;
    this.timer = setTimeout(() => void this.checkHeap().finally(() => { if (this.timer) this.schedule(); }), every);
    this.timer.unref();
  }

  private async checkHeap(): Promise<void> {
    const p = this.policy().profiling;
    if (!p || !p.enabled) return;
    const rss = process.memoryUsage.rss();
    const now = Date.now();
    if (rss <= p.heap.threshold || (this.lastHeapAt !== 0 && now - this.lastHeapAt < p.heap.interval)) return;
    this.lastHeapAt = now;
    this.log.warn({ rss, threshold: p.heap.threshold }, 'RSS above profiling.heap.threshold: taking a heap snapshot');
    await this.profiler.take({ kind: 'heap', reason: 'threshold', ...outputOf(p) }).catch((err: unknown) => {
      this.log.error({ err: String(err) }, 'heap snapshot failed');
    });
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

// ---- primary side ---------------------------------------------------------------------------------------------

/** Sends a profile order to a worker (cluster) or to this process (single). */
function order(coordinator: Coordinator, workerId: number | null, o: ProfileOrder): Promise<ProfileResult> {
  const timeout = (o.durationMs ?? 0) + 120_000;
  if (coordinator.role !== 'primary' || workerId === null) return coordinator.request('profile:take', o, timeout);
  return coordinator.requestWorker(workerId, 'profile:take', o, timeout);
}

/** The worker to profile: `?worker=ID` (the cluster worker id shown in logs), default the lowest live id. */
function pickWorker(coordinator: Coordinator, param: string | null): { id: number | null } | { error: AdminReply } {
  if (coordinator.role !== 'primary') return { id: null };
  const ids = coordinator.workerIds().sort((a, b) => a - b);
  if (param === null) {
    if (ids.length === 0) return { error: { status: 503, body: { error: 'no worker is running' } } };
    return { id: ids[0] };
  }
  const id = Number(param);
  if (!Number.isInteger(id) || !ids.includes(id)) return { error: { status: 404, body: { error: `no worker ${param}`, workers: ids } } };
  return { id };
}

function replyWith(r: ProfileResult): AdminReply {
  return {
    status: 200,
    body: readFileSync(r.path),
    contentType: 'application/json',
    headers: {
      'content-disposition': `attachment; filename="${basename(r.path)}"`,
      'x-profile-file': r.path,
      'x-profile-worker': String(r.worker),
      'x-profile-pid': String(r.pid),
    },
  };
}

function failure(err: unknown): AdminReply {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.startsWith(BUSY_PREFIX)
    ? { status: 409, body: { error: msg.slice(BUSY_PREFIX.length) } }
    : { status: 500, body: { error: msg } };
}

/**
 * Registers the token-guarded `/debug/profile` and `/debug/heap` on the admin port and runs the CPU profile
 * schedule. `policy()` is the policy in force.
 */
export class PrimaryProfiling {
  private timer: NodeJS.Timeout | null = null;
  private lastCpuAt = Date.now();
  private turn = 0;

  constructor(admin: AdminServer, private readonly coordinator: Coordinator, private readonly policy: () => Policy, private readonly log: Logger) {
    admin.route('GET', '/debug/profile', async ({ url }) => {
      const raw = url.searchParams.get('seconds');
      const seconds = raw === null ? DEFAULT_PROFILE_SECONDS : Number(raw);
      if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_PROFILE_SECONDS) {
        return { status: 400, body: { error: `seconds must be a number in (0, ${MAX_PROFILE_SECONDS}]` } };
      }
      const w = pickWorker(coordinator, url.searchParams.get('worker'));
      if ('error' in w) return w.error;
      try {
        return replyWith(await order(coordinator, w.id, { kind: 'cpu', durationMs: Math.round(seconds * 1000), reason: 'on_demand', ...outputOf(policy().profiling) }));
      } catch (err) {
        return failure(err);
      }
    }, { guarded: true });
    admin.route('GET', '/debug/heap', async ({ url }) => {
      const w = pickWorker(coordinator, url.searchParams.get('worker'));
      if ('error' in w) return w.error;
      try {
        return replyWith(await order(coordinator, w.id, { kind: 'heap', reason: 'on_demand', ...outputOf(policy().profiling) }));
      } catch (err) {
        return failure(err);
      }
    }, { guarded: true });
    this.schedule();
  }

  private schedule(): void {
    const p = this.policy().profiling;
    const every = p && p.enabled ? Math.min(5000, p.cpu.interval) : 5000;
    this.timer = setTimeout(() => void this.tick().finally(() => { if (this.timer) this.schedule(); }), every);
    this.timer.unref();
  }

  /** One scheduled CPU profile when the interval has passed, on the next worker in turn. */
  private async tick(): Promise<void> {
    const p = this.policy().profiling;
    if (!p || !p.enabled || Date.now() - this.lastCpuAt < p.cpu.interval) return;
    this.lastCpuAt = Date.now();
    let workerId: number | null = null;
    if (this.coordinator.role === 'primary') {
      const ids = this.coordinator.workerIds().sort((a, b) => a - b);
      if (ids.length === 0) return;
      workerId = ids[this.turn++ % ids.length];
    }
    await order(this.coordinator, workerId, { kind: 'cpu', durationMs: p.cpu.duration, reason: 'scheduled', ...outputOf(p) })
      .catch((err: unknown) => this.log.warn({ err: String(err), worker: workerId }, 'scheduled CPU profile failed'));
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
