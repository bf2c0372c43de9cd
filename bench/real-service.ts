/**
 * The real CapCutAPI draft service, direct and through bridge-sidecar with the example policy's routes (the
 * demo policy: examples/policy.yaml without Redis), in the same run, each pass on a fresh service (a fresh
 * sqlite database: the service slows down as it grows).
 *
 *   flock /work/bench.lock node dist/bench/real-service.js [--seconds 15] [--clients 20] [--workers 1]
 *       [--overload-seconds 10] [--only flow,read,overload] [--flow-rounds 3] [--warmup-seconds 3]
 *       [--accept-encoding "gzip, deflate"] [--no-write]
 *
 * Scenarios:
 *   - flow: the service's own client (service/example.py): create, add_text x 4, query_script (force_update
 *     absent, as that client sends it: a write), save_draft; `clients` clients in a closed loop. Nothing is
 *     cacheable, so this is what the sidecar costs on pass-through requests. The same flow also through three
 *     references: nginx (1 worker), the smallest node:http + undici proxy (bench/lib/bare-proxy.ts) and a proxy on
 *     net sockets and node's HTTP parser (bench/lib/llhttp-proxy.ts). With --flow-rounds N the five passes run
 *     N times, each round in a rotated order, and the notes give each round's ratios and their medians: one pass against the next differs by 10-20 % on this shared machine (the service's own CPU
 *     per request moves that much between fresh starts), more than the differences the targets are about.
 *   - read-heavy: `clients` editors each polling their own draft with query_script force_update:false, one
 *     add_text in 20 requests (which invalidates the draft, so the next poll is a miss). Every answer's
 *     Cache-Status is counted, so the table says how many reads really were hits. Then the same mix in an open
 *     loop at 0.6x and 0.8x the direct closed loop's throughput, direct and through the sidecar at the same
 *     offered rate (latency from each request's due time): the p99s compare at equal load there.
 *   - overload: first the service's capacity for create_draft (closed loop, direct), then create_draft at a
 *     fixed offered rate of 1.5x and 3x that capacity (open loop: latency from each request's due time, so a
 *     backlog is charged to the requests that wait in it), direct vs a sidecar with a queue sized for this
 *     service; at 3x also the example policy's own queue.
 * Figures: throughput, p50/p99, and the CPU per request of the service, of the sidecar (its primary and
 * workers) and of this load generator, from /proc/<pid>/stat deltas (own + reaped children); and the share of
 * the machine's CPU that other processes used meanwhile (the figures are only worth something near 0).
 * Written to bench/RESULTS.md, section "Real draft service" (unless --no-write).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import type { Document } from 'yaml';
import { startCapcutService, type CapcutProcess } from './lib/capcut';
import { treeCpu } from './lib/cpu';
import { runFixedRate } from './lib/fixed-rate';
import { cpuSnapshot, foreignCpuShare, type CpuSnapshot } from './lib/machine';
import { loadProfile, topSelf } from './lib/cpuprofile';
import { demoPolicy, startReferenceProxy, startSidecar, type SidecarPorts, type SidecarProcess } from './lib/services';
import { startNginx } from './lib/nginx';
import { repoRoot, updateSection } from './results';
import { median } from './lib/stats';
import { decodeBody } from '../lib/cache/body-coding';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string' }, clients: { type: 'string' }, workers: { type: 'string' }, 'overload-seconds': { type: 'string' },
    only: { type: 'string' }, 'no-write': { type: 'boolean' }, profile: { type: 'string' }, 'flow-rounds': { type: 'string' },
    'warmup-seconds': { type: 'string' }, 'accept-encoding': { type: 'string' },
  },
});
const SECONDS = Number(args.seconds ?? 15);
const CLIENTS = Number(args.clients ?? 20);
const WORKERS = Number(args.workers ?? 1);
const OVERLOAD_SECONDS = Number(args['overload-seconds'] ?? 10);
const FLOW_ROUNDS = Math.max(1, Number(args['flow-rounds'] ?? 1));
const ONLY = new Set((args.only ?? 'flow,read,overload').split(','));
/** --profile DIR: the sidecar passes of the closed loops run under node --cpu-prof (slower: for a look, not for the figures) */
const PROFILE_DIR = args.profile;
/**
 * The closed loops' unrecorded warm-up. 3 s by default (the figures of earlier sessions); a sidecar's JIT is still
 * compiling for ~10 s after that at these rates (`node --trace-opt`), so a longer one measures nearer a pod that
 * has been up for a while: bench/RESULTS.md, "Real draft service: what the figures mean", session 16.
 */
const WARMUP_MS = Number(args['warmup-seconds'] ?? 3) * 1000;
/**
 * --accept-encoding VALUE: every request sends it, as the service's own client does (Python requests: `gzip, deflate`).
 * Off by default, so the figures compare with earlier sessions'; with it the sidecar compresses the answers it
 * forwards (the example policy's compression) and stores the gzip variants, and the bench decodes what it gets.
 */
const ACCEPT_ENCODING = args['accept-encoding'] ?? null;
const ENCODING_HEADER: Record<string, string> = ACCEPT_ENCODING === null ? {} : { 'accept-encoding': ACCEPT_ENCODING };
/** The sidecar's queue in the overload passes: see the note written with the results. */
const TIGHT_QUEUE = { max_in_flight: 4, queue_timeout: '2s' };
const log = (s: string) => process.stderr.write(s + '\n');

class Recorder {
  readonly latencies: number[] = [];
  errors = 0;
  readonly statuses = new Map<number, number>();
  /** Cache-Status of the answers: hit, fwd=miss, fwd=stale, ..., or "none" (no such field: direct, or not a cache route) */
  readonly cache = new Map<string, number>();
  record(ms: number, status: number, cacheStatus: string | undefined): void {
    this.latencies.push(ms);
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    const c = cacheStatus === undefined ? 'none' : (cacheStatus.split(';')[1] ?? '').trim() || 'none';
    this.cache.set(c, (this.cache.get(c) ?? 0) + 1);
  }
  percentiles(): { p50: number; p99: number } {
    const s = Float64Array.from(this.latencies).sort();
    const at = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN);
    return { p50: at(50), p99: at(99) };
  }
}

/** The draft service's JSON answer: the fields this bench reads. */
interface DraftReply { output?: { draft_id?: string } }

/** `from`: when the latency starts (default now; an open loop passes the request's due time). */
async function post(pool: Pool, path: string, body: unknown, user: string, rec: Recorder | null, from = performance.now()): Promise<DraftReply | null> {
  try {
    const r = await pool.request({ method: 'POST', path, body: JSON.stringify(body), headers: { 'content-type': 'application/json', 'x-user-id': user, ...ENCODING_HEADER } });
    const text = decoded(Buffer.from(await r.body.arrayBuffer()), r.headers['content-encoding']);
    const cs = r.headers['cache-status'];
    rec?.record(performance.now() - from, r.statusCode, Array.isArray(cs) ? cs[0] : cs);
    return r.statusCode === 200 ? JSON.parse(text) as DraftReply : null;
  } catch {
    if (rec) rec.errors++;
    return null;
  }
}

/** The answer's text, decoded as a client that sent --accept-encoding would. */
function decoded(raw: Buffer, coding: string | string[] | undefined): string {
  return (decodeBody(coding === undefined ? {} : { 'content-encoding': coding }, raw) ?? raw).toString();
}

type Client = (pool: Pool, user: string, rec: Recorder, until: number) => Promise<void>;

/** The service's own client: create, add_text x 4, query_script (force_update absent), save_draft. */
const flowClient: Client = async (pool, user, rec, until) => {
  while (performance.now() < until) {
    const id = (await post(pool, '/create_draft', {}, user, rec))?.output?.draft_id;
    if (!id) continue;
    for (let k = 0; k < 4; k++) await post(pool, '/add_text', { draft_id: id, text: `caption ${k}`, start: k, end: k + 1 }, user, rec);
    await post(pool, '/query_script', { draft_id: id }, user, rec);
    await post(pool, '/save_draft', { draft_id: id }, user, rec);
  }
};

/** An editor polling its draft (force_update:false), with one edit in 20 requests. */
const readClient: Client = async (pool, user, rec, until) => {
  const id = (await post(pool, '/create_draft', {}, user, null))?.output?.draft_id;
  if (!id) throw new Error(`create_draft failed for ${user}`);
  for (let k = 0; k < 3; k++) await post(pool, '/add_text', { draft_id: id, text: `t${k}`, start: k, end: k + 1 }, user, null);
  for (let i = 1; performance.now() < until; i++) {
    if (i % 20 === 0) await post(pool, '/add_text', { draft_id: id, text: `edit ${i}`, start: 5, end: 6 }, user, rec);
    else await post(pool, '/query_script', { draft_id: id, force_update: false }, user, rec);
  }
};

/** create_draft in a closed loop: what the service can do of it (its capacity), measured directly. */
const createClient: Client = async (pool, user, rec, until) => {
  while (performance.now() < until) await post(pool, '/create_draft', {}, user, rec);
};

/** CPU of the parties, at one moment. */
interface CpuMark {
  svc: number;
  sidecar: number;
  /** wake-ups so far (bench/lib/cpu.ts): the service's tree, the proxy's */
  svcWakeups: number;
  sidecarWakeups: number;
  /** per sidecar process (primary, workers): its CPU seconds */
  sidecarProcs: Map<number, number>;
  bench: number;
  machine: CpuSnapshot | null;
}

/** What stands between the load and the service in a pass: the sidecar, or a reference proxy (nginx, a bare Node proxy). */
interface Proxy {
  url: string;
  /** the process whose tree's CPU is the proxy's */
  pid: number;
}

function cpuMark(svc: CapcutProcess, sc: Proxy | null): CpuMark {
  const s = sc ? treeCpu(sc.pid) : null;
  const v = treeCpu(svc.pid);
  const u = process.cpuUsage();
  return {
    svc: v.seconds,
    sidecar: s?.seconds ?? 0,
    svcWakeups: v.wakeups,
    sidecarWakeups: s?.wakeups ?? 0,
    sidecarProcs: new Map([...(s?.processes ?? [])].map(([pid, p]) => [pid, p.seconds])),
    bench: (u.user + u.system) / 1e6,
    machine: cpuSnapshot(),
  };
}

interface CpuFigures {
  /** ms of CPU per request */
  svc: number;
  sidecar: number | null;
  /** the sidecar's ms per request, per process (the primary first) */
  sidecarProcs: number[];
  bench: number;
  /** share of the machine's CPU (0..1) used by processes outside this bench's tree meanwhile */
  foreign: number | null;
  /** wake-ups per request: the service's, and the proxy's (null without one) */
  svcWakeups: number;
  sidecarWakeups: number | null;
}

function cpuFigures(a: CpuMark, b: CpuMark, requests: number, withSidecar: boolean): CpuFigures {
  const each = (n: number) => n / Math.max(1, requests);
  const per = (s: number) => each(s * 1000);
  return {
    svc: per(b.svc - a.svc),
    sidecar: withSidecar ? per(b.sidecar - a.sidecar) : null,
    sidecarProcs: [...b.sidecarProcs].sort(([x], [y]) => x - y).map(([pid, s]) => per(s - (a.sidecarProcs.get(pid) ?? 0))),
    bench: per(b.bench - a.bench),
    foreign: foreignCpuShare(a.machine, b.machine),
    svcWakeups: each(b.svcWakeups - a.svcWakeups),
    sidecarWakeups: withSidecar ? each(b.sidecarWakeups - a.sidecarWakeups) : null,
  };
}

/** direct, through the sidecar, or through a reference proxy (nginx, a bare node:http + undici proxy) */
type Via = 'direct' | 'sidecar' | Reference;

interface PassResult {
  name: string;
  via: Via;
  requests: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  /** status -> count, for the answers that were not 200 */
  non200: Map<number, number>;
  errors: number;
  cpu: CpuFigures;
  cache: Map<string, number>;
  /** overload passes: offered rate, and latency of the 200s and of the rest apart */
  offered?: number;
  okP99?: number;
  shedP99?: number;
}

/** The sidecar's disk cache in a pass: its own, removed after the pass (a fresh cache per pass, like the database). */
const l3Dir = (port: number) => join(tmpdir(), `bench-real-service-l3-${port}`);

/** The demo policy (the example's routes, without Redis) on free ports, `workers` workers, quiet logs. */
function benchPolicy(upstreamUrl: string, edit?: (doc: Document) => void): (p: SidecarPorts) => string {
  return demoPolicy(upstreamUrl, { workers: WORKERS, l3Path: l3Dir, edit });
}

/**
 * A reference proxy in front of the service instead of the sidecar: nginx (1 worker), bench/lib/bare-proxy.ts
 * (node:http + undici), or bench/lib/llhttp-proxy.ts (net sockets and node's HTTP parser: Node's floor).
 */
type Reference = 'nginx' | 'node' | 'llhttp';

async function startReference(kind: Reference, upstreamUrl: string): Promise<Proxy & { stop(): Promise<void> }> {
  const upstreamPort = Number(new URL(upstreamUrl).port);
  if (kind === 'nginx') {
    const n = await startNginx({ upstreamPort, workers: 1 });
    return { url: n.url, pid: n.pid, stop: () => n.stop() };
  }
  return startReferenceProxy(upstreamUrl, kind === 'llhttp' ? 'llhttp-proxy' : 'bare-proxy');
}

/** A fresh service (and so a fresh database), and the sidecar (or a reference proxy) in front of it when asked. */
async function withTarget<T>(target: ((url: string) => (p: { port: number; adminPort: number }) => string) | Reference | null,
  fn: (svc: CapcutProcess, sc: Proxy | null, url: string) => Promise<T>, profileAs?: string): Promise<T> {
  const svc = await startCapcutService();
  let sc: SidecarProcess | null = null;
  let ref: (Proxy & { stop(): Promise<void> }) | null = null;
  const profTmp = profileAs && PROFILE_DIR ? mkdtempSync(join(tmpdir(), 'bench-real-service-prof-')) : null;
  try {
    if (typeof target === 'function') sc = await startSidecar(target(svc.url), { timeoutMs: 90_000, nodeArgs: profTmp ? ['--cpu-prof', `--cpu-prof-dir=${profTmp}`] : [] });
    else if (target !== null) ref = await startReference(target, svc.url);
    const proxy: Proxy | null = sc ? { url: sc.url, pid: sc.proc.child.pid! } : ref;
    return await fn(svc, proxy, proxy ? proxy.url : svc.url);
  } finally {
    await ref?.stop();
    await sc?.stop();
    if (sc) rmSync(l3Dir(sc.port), { recursive: true, force: true });
    await svc.stop();
    if (profTmp) {
      summariseProfile(profTmp, profileAs!);
      rmSync(profTmp, { recursive: true, force: true });
    }
  }
}

/** The worker's profile (the largest file) as top self-time functions, into PROFILE_DIR/real-service-<name>.md. */
function summariseProfile(dir: string, name: string): void {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, f));
  if (files.length === 0) {
    log(`no profile written for ${name}`);
    return;
  }
  const biggest = files.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  const tree = loadProfile(biggest);
  const out = join(PROFILE_DIR!, `real-service-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.md`);
  mkdirSync(PROFILE_DIR!, { recursive: true });
  writeFileSync(out, `# bridge-sidecar worker in front of the real draft service: ${name}\n\nTop self time (of ${tree.total} samples):\n\n${topSelf(tree)}\n`);
  // the raw profile beside the summary, for a flame graph (Chrome DevTools, speedscope) or a closer look
  copyFileSync(biggest, out.replace(/\.md$/, '.cpuprofile'));
  log(`profile: ${out}`);
}

const statusMap = (m: Map<number, number>) => new Map([...m].filter(([s]) => s !== 200));

async function closedLoop(name: string, client: Client, via: Via, seconds = SECONDS, clients = CLIENTS): Promise<PassResult> {
  return withTarget(via === 'sidecar' ? (u) => benchPolicy(u) : via === 'direct' ? null : via, async (svc, sc, url) => {
    const pool = new Pool(url, { connections: clients, keepAliveTimeout: 60_000 });
    try {
      // warm-up, not recorded: the service's lazy imports, its first sqlite pages, the sidecar's JIT and pools
      await Promise.all(Array.from({ length: clients }, (_, i) => client(pool, `warm-${i}`, new Recorder(), performance.now() + WARMUP_MS)));
      const rec = new Recorder();
      const cpu0 = cpuMark(svc, sc);
      const t0 = performance.now();
      await Promise.all(Array.from({ length: clients }, (_, i) => client(pool, `editor-${i}`, rec, t0 + seconds * 1000)));
      const elapsed = (performance.now() - t0) / 1000;
      const cpu1 = cpuMark(svc, sc);
      const n = rec.latencies.length;
      return {
        name, via, requests: n, seconds: elapsed, rps: n / elapsed, ...rec.percentiles(), non200: statusMap(rec.statuses), errors: rec.errors,
        cpu: cpuFigures(cpu0, cpu1, n, sc !== null), cache: rec.cache,
      };
    } finally {
      await pool.close();
    }
  }, name.split(' ')[0]);
}

/**
 * The read-heavy mix at a fixed offered rate (open loop: request k is due at k/rate, its latency counts from
 * then), direct and through the sidecar at the same rate, so their p99 compare at equal load. In the closed
 * loop the sidecar's clients go 3x faster, so they also edit 3x as often (bigger drafts, slower service calls),
 * and the machine's 2 cores are saturated: its p99 there measures that, not the latency at a given load.
 * `EDITORS` editors each poll their own draft; one request in 20 of each editor is an edit, the editors' edits
 * spread evenly over time (one editor per round of `EDITORS` requests).
 */
async function openLoopRead(rate: number, via: 'direct' | 'sidecar', fraction: number): Promise<PassResult> {
  const EDITORS = CLIENTS;
  return withTarget(via === 'sidecar' ? (u) => benchPolicy(u) : null, async (svc, sc, url) => {
    const pool = new Pool(url, { connections: 256, keepAliveTimeout: 60_000 });
    try {
      const ids: string[] = [];
      for (let e = 0; e < EDITORS; e++) {
        const id = (await post(pool, '/create_draft', {}, `editor-${e}`, null))?.output?.draft_id;
        if (!id) throw new Error(`create_draft failed for editor-${e}`);
        ids.push(id);
        for (let k = 0; k < 3; k++) await post(pool, '/add_text', { draft_id: id, text: `t${k}`, start: k, end: k + 1 }, `editor-${e}`, null);
      }
      // warm-up, not recorded: the same schedule for a moment (JIT, pools, the first misses)
      const send = (k: number, rec: Recorder | null, due: number): Promise<void> => {
        const e = k % EDITORS;
        const edit = (Math.floor(k / EDITORS) + e) % 20 === 19;
        const body = edit ? { draft_id: ids[e], text: `edit ${k}`, start: 5, end: 6 } : { draft_id: ids[e], force_update: false };
        return post(pool, edit ? '/add_text' : '/query_script', body, `editor-${e}`, rec, due).then(() => {});
      };
      await schedule(rate, Math.min(WARMUP_MS, 2000), (k, due) => send(k, null, due));
      const rec = new Recorder();
      const cpu0 = cpuMark(svc, sc);
      const t0 = performance.now();
      await schedule(rate, SECONDS * 1000, (k, due) => send(k, rec, due));
      const elapsed = (performance.now() - t0) / 1000;
      const cpu1 = cpuMark(svc, sc);
      const n = rec.latencies.length;
      return {
        name: `read-heavy, open loop at ${rate}/s (${fraction}x the direct closed loop)`, via, requests: n, seconds: elapsed, rps: n / elapsed,
        ...rec.percentiles(), non200: statusMap(rec.statuses), errors: rec.errors, cpu: cpuFigures(cpu0, cpu1, n, sc !== null), cache: rec.cache, offered: rate,
      };
    } finally {
      await pool.close();
    }
  });
}

/** Call `fire(k, due)` for k = 0, 1, ... at `rate` per second for `ms`; resolves when every call has settled. */
async function schedule(rate: number, ms: number, fire: (k: number, due: number) => Promise<void>): Promise<void> {
  const t0 = performance.now();
  const total = Math.round((rate * ms) / 1000);
  const pending: Promise<void>[] = [];
  for (let k = 0; k < total; k++) {
    const due = t0 + (k * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(fire(k, due));
  }
  await Promise.all(pending);
}

type QueueSetting = { max_in_flight: number; queue_timeout: string } | 'example';

async function overload(rate: number, via: 'direct' | 'sidecar', queue: QueueSetting): Promise<PassResult> {
  const policy = (u: string) => benchPolicy(u, (doc) => {
    if (queue !== 'example') {
      doc.setIn(['queues', 'max_in_flight'], queue.max_in_flight);
      doc.setIn(['queues', 'queue_timeout'], queue.queue_timeout);
    }
    // the queue alone decides what is shed here (the example's per-endpoint limit on /create_draft would
    // answer 429 above 100/s and hide it)
    doc.deleteIn(['rate_limiting']);
  });
  return withTarget(via === 'sidecar' ? policy : null, async (svc, sc, url) => {
    const warm = new Pool(url, { connections: 4 });
    for (let i = 0; i < 20; i++) await post(warm, '/create_draft', {}, 'warm', null);
    await warm.close();
    const cpu0 = cpuMark(svc, sc);
    // enough connections that no request waits in this client for a free one: a backlog must form where it
    // would for real callers (in the service's accept queue, or in the sidecar's queue), not here
    const connections = Math.min(4000, Math.ceil(rate * (OVERLOAD_SECONDS + 5)));
    const r = await runFixedRate({
      url: `${url}/create_draft`, rate, durationMs: OVERLOAD_SECONDS * 1000, connections, method: 'POST', body: '{}',
      headers: { 'content-type': 'application/json' }, timeoutMs: 120_000,
    });
    const cpu1 = cpuMark(svc, sc);
    const n = r.ok + r.badStatus;
    const queueName = queue === 'example' ? "the example's queue" : `max_in_flight ${queue.max_in_flight}, queue_timeout ${queue.queue_timeout}`;
    return {
      name: `overload ${(rate / CAPACITY.rps).toFixed(1)}x: ${rate}/s create_draft${via === 'sidecar' ? `, ${queueName}` : ''}`, via,
      requests: n, seconds: OVERLOAD_SECONDS, rps: r.achievedRate, p50: r.latency.p50, p99: r.latency.p99,
      non200: r.badStatus ? new Map([[503, r.badStatus]]) : new Map(), errors: r.errors,
      cpu: cpuFigures(cpu0, cpu1, n, sc !== null), cache: new Map(), offered: rate, okP99: r.okLatency.p99, shedP99: r.badLatency.p99,
    };
  });
}

/** Filled by the capacity pass. */
const CAPACITY = { rps: NaN, clients: 8 };

const f1 = (n: number | undefined) => (n !== undefined && Number.isFinite(n) ? n.toFixed(1) : '-');
const f2 = (n: number | null | undefined) => (n !== null && n !== undefined && Number.isFinite(n) ? n.toFixed(2) : '-');
const statuses = (m: Map<number, number>) => ([...m].map(([s, c]) => `${c}x${s}`).join(' ') || '0');
const hits = (r: PassResult) => {
  if (r.via === 'direct' || r.cache.size === 0) return '-';
  return [...r.cache].sort(([, a], [, b]) => b - a).map(([k, c]) => `${k} ${c}`).join(', ');
};
const sidecarCpu = (r: PassResult) => (r.cpu.sidecar === null ? '-' : `${f2(r.cpu.sidecar)} (${r.cpu.sidecarProcs.map(f2).join(' + ')})`);
const VIA_NAME: Partial<Record<Via, string>> = { node: 'bare node:http + undici proxy', llhttp: 'net + node\'s HTTP parser proxy' };
const viaName = (v: Via) => VIA_NAME[v] ?? v;
const row = (r: PassResult) => `| ${r.name}, ${viaName(r.via)} | ${r.requests} | ${f1(r.rps)} | ${f1(r.p50)} | ${f1(r.p99)} | ${statuses(r.non200)} | ${r.errors} | ${f2(r.cpu.svc)} | ${sidecarCpu(r)} | ${f2(r.cpu.bench)} | ${r.cpu.foreign === null ? '-' : (r.cpu.foreign * 100).toFixed(0) + ' %'} | ${hits(r)} |`;

async function run(results: PassResult[], p: Promise<PassResult>): Promise<PassResult> {
  const r = await p;
  log(row(r));
  results.push(r);
  return r;
}

async function main(): Promise<void> {
  const loadBefore = loadavg().map((x) => x.toFixed(2)).join(' ');
  const started = new Date();
  const results: PassResult[] = [];
  const notes: string[] = [];
  const ratio = (a: PassResult, b: PassResult) => b.rps / a.rps;

  if (ONLY.has('flow')) {
    const name = 'flow (create, add_text x4, query_script, save)';
    // the references, same flow: what nginx and the leanest Node proxies cost per request here
    const vias: Via[] = ['direct', 'sidecar', 'nginx', 'node', 'llhttp'];
    const rounds: Array<Map<Via, PassResult>> = [];
    for (let k = 0; k < FLOW_ROUNDS; k++) {
      const round = new Map<Via, PassResult>();
      const label = FLOW_ROUNDS > 1 ? `${name}, round ${k + 1}` : name;
      for (let i = 0; i < vias.length; i++) {
        const via = vias[(i + k) % vias.length]!;
        round.set(via, await run(results, closedLoop(label, flowClient, via)));
      }
      rounds.push(round);
    }
    const share = (r: PassResult) => (r.cpu.sidecar ?? NaN) / r.cpu.svc;
    const per = (f: (r: Map<Via, PassResult>) => number) => rounds.map(f);
    const flowRatio = per((r) => ratio(r.get('direct')!, r.get('sidecar')!));
    const flowShare = per((r) => share(r.get('sidecar')!));
    const list = (xs: number[], d: number, unit = '') => (xs.length > 1 ? ` (rounds: ${xs.map((x) => x.toFixed(d) + unit).join(', ')})` : '');
    const pct = (xs: number[]) => xs.map((x) => x * 100);
    /** each round's CPU per request of the proxy in `via` */
    const proxyCpu = (via: Via) => per((r) => r.get(via)!.cpu.sidecar ?? NaN);
    const sc = proxyCpu('sidecar');
    const svc = per((r) => r.get('sidecar')!.cpu.svc);
    const ng = proxyCpu('nginx');
    const bare = proxyCpu('node');
    const ngRatio = per((r) => ratio(r.get('direct')!, r.get('nginx')!));
    const bareRatio = per((r) => ratio(r.get('direct')!, r.get('node')!));
    const floor = proxyCpu('llhttp');
    const floorShare = per((r) => share(r.get('llhttp')!));
    notes.push(
      `- **Flow** (nothing cacheable: the service's client never sends force_update:false)${FLOW_ROUNDS > 1 ? `, medians of ${FLOW_ROUNDS} rounds` : ''}: `
      + `${median(flowRatio).toFixed(2)}x the direct throughput${list(flowRatio, 2, 'x')} (target >= 0.9x: **${median(flowRatio) >= 0.9 ? 'met' : 'missed'}**). `
      + `Sidecar CPU per pass-through request ${f2(median(sc))} ms against the service's ${f2(median(svc))} ms: ${(median(flowShare) * 100).toFixed(1)} %${list(pct(flowShare), 1, ' %')} `
      + `(target < 10 %: **${median(flowShare) < 0.1 ? 'met' : 'missed'}**). The references in the same run: nginx ${f2(median(ng))} ms per request `
      + `(${median(ngRatio).toFixed(2)}x the direct throughput${list(ngRatio, 2, 'x')}), a bare node:http + undici proxy `
      + `${f2(median(bare))} ms${list(bare, 2, ' ms')} (${median(bareRatio).toFixed(2)}x${list(bareRatio, 2, 'x')}); the sidecar's CPU per request is `
      + `${(median(sc) / median(bare)).toFixed(2)}x the bare proxy's. The leanest Node proxy (net sockets and node's HTTP parser, `
      + `bench/lib/llhttp-proxy.ts) ${f2(median(floor))} ms${list(floor, 2, ' ms')}, ${(median(floorShare) * 100).toFixed(1)} % of the service's.`,
    );
    // CPU per request = wake-ups per request x CPU per wake-up (bench/lib/cpu.ts, wakeupsOf): which factor a proxy spends
    const wake = (via: Via) => {
      const w = median(per((r) => r.get(via)!.cpu.sidecarWakeups ?? NaN));
      const cpu = median(proxyCpu(via));
      return `${viaName(via)} ${w.toFixed(1)} at ${((cpu * 1000) / w).toFixed(0)} µs each`;
    };
    const svcWake = median(per((r) => r.get('sidecar')!.cpu.svcWakeups));
    notes.push(
      `  Wake-ups per request (times a thread of the proxy was put on a CPU, from /proc/<pid>/task/*/schedstat; medians): `
      + `${(['sidecar', 'node', 'llhttp', 'nginx'] as const).map(wake).join(', ')}; the service ${svcWake.toFixed(1)}. `
      + 'At this pace every request wakes a sleeping proxy, so a proxy\'s CPU per request is its wake-ups times what each costs.',
    );
  }
  if (ONLY.has('read')) {
    const name = 'read-heavy (poll force_update:false, 1 edit in 20)';
    const d = await run(results, closedLoop(name, readClient, 'direct'));
    const s = await run(results, closedLoop(name, readClient, 'sidecar'));
    const hit = s.cache.get('hit') ?? 0;
    notes.push(
      `- **Read-heavy**: ${ratio(d, s).toFixed(2)}x the direct throughput (target >= 2x: **${ratio(d, s) >= 2 ? 'met' : 'missed'}**), `
      + `p99 ${f1(s.p99)} ms against ${f1(d.p99)} ms direct (target lower: **${s.p99 < d.p99 ? 'met' : 'missed'}**). `
      + `${hit} of ${s.requests} answers (${((hit / s.requests) * 100).toFixed(1)} %) were cache hits by their Cache-Status.`,
    );
    for (const fraction of [0.6, 0.8]) {
      const rate = Math.max(10, Math.round(d.rps * fraction));
      const od = await run(results, openLoopRead(rate, 'direct', fraction));
      const os = await run(results, openLoopRead(rate, 'sidecar', fraction));
      notes.push(
        `  Open loop at ${rate}/s (${fraction}x the direct closed loop's ${f1(d.rps)}/s), latency from each request's due time: p99 ${f1(os.p99)} ms `
        + `through the sidecar against ${f1(od.p99)} ms direct (p50 ${f1(os.p50)} against ${f1(od.p50)}; answered ${f1(os.rps)}/s and ${f1(od.rps)}/s).`,
      );
    }
  }
  if (ONLY.has('overload')) {
    const cap = await run(results, closedLoop(`capacity: create_draft, ${CAPACITY.clients} clients`, createClient, 'direct', 8, CAPACITY.clients));
    CAPACITY.rps = cap.rps;
    for (const factor of [1.5, 3]) {
      const rate = Math.max(5, Math.round(cap.rps * factor));
      const d = await run(results, overload(rate, 'direct', TIGHT_QUEUE));
      const s = await run(results, overload(rate, 'sidecar', TIGHT_QUEUE));
      const shed = s.non200.get(503) ?? 0;
      notes.push(
        `- **Overload ${factor}x** (${rate}/s offered, the service does ${f1(cap.rps)}/s): direct p99 ${f1(d.p99)} ms; through the sidecar `
        + `(max_in_flight ${TIGHT_QUEUE.max_in_flight}, queue_timeout ${TIGHT_QUEUE.queue_timeout}) p99 ${f1(s.p99)} ms, `
        + `${shed} of ${s.requests} shed with 503 (${((shed / Math.max(1, s.requests)) * 100).toFixed(0)} %; their p99 ${f1(s.shedP99)} ms), the 200s' p99 ${f1(s.okP99)} ms.`,
      );
      if (factor === 3) {
        const e = await run(results, overload(rate, 'sidecar', 'example'));
        notes.push(`  With the example's queue (max_in_flight 256, queue_timeout 10s): p99 ${f1(e.p99)} ms, ${e.non200.get(503) ?? 0} shed, the 200s' p99 ${f1(e.okP99)} ms.`);
      }
    }
  }

  const md = [
    `Command: \`npm run build && flock /work/bench.lock node ${relative(repoRoot(), process.argv[1]!)} --seconds ${SECONDS} --clients ${CLIENTS} --workers ${WORKERS} --overload-seconds ${OVERLOAD_SECONDS}${FLOW_ROUNDS > 1 ? ` --flow-rounds ${FLOW_ROUNDS}` : ''}${ONLY.size < 3 ? ` --only ${[...ONLY].join(',')}` : ''}\``,
    `(${started.toISOString()}; load average before ${loadBefore}, after ${loadavg().map((x) => x.toFixed(2)).join(' ')}; 2 cores,`,
    'service, sidecar and load generator on the same cores, under the exclusive bench lock). The real service',
    '(../shared/capcut-service, start.sh: Flask, one Python process, threaded) on a fresh work dir and database for',
    `every pass; the sidecar runs examples/demo-policy.yaml (the example's routes, limits and cache without Redis) with ${WORKERS}`,
    `worker(s). Closed loops: ${CLIENTS} clients for ${SECONDS} s after a ${WARMUP_MS / 1000} s warm-up; the flow also through nginx (1 worker) and`,
    'two Node proxies (bench/lib/bare-proxy.ts: node:http + undici; bench/lib/llhttp-proxy.ts: net and node\'s HTTP parser)',
    'as references. Open loops (the read-heavy mix at 0.6x and 0.8x the direct',
    `closed loop's rate for ${SECONDS} s; overload for ${OVERLOAD_SECONDS} s): latency from each request's due time, until the last answer.`,
    'Latencies in ms from the client. CPU in ms per request from /proc/<pid>/stat deltas (utime+stime, plus reaped',
    'children) of the service, of the proxy (the sidecar: total, then primary + worker; nginx: master + worker) and of',
    'the load generator; "others" is the share of the machine\'s CPU used by processes outside the bench meanwhile.',
    '',
    '| pass | requests | req/s | p50 | p99 | non-200 | errors | service CPU ms/req | proxy CPU ms/req (sidecar: total (primary + worker)) | load gen CPU ms/req | others | Cache-Status |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...results.map(row),
    '',
    ...notes,
  ].join('\n');
  if (!args['no-write']) updateSection('Real draft service', md);
  process.stdout.write(md + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`real-service bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
