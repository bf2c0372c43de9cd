/**
 * The real CapCutAPI draft service, direct and through bridge-sidecar with the example policy's routes (the
 * demo policy: examples/policy.yaml without Redis), in the same run, each pass on a fresh service (a fresh
 * sqlite database: the service slows down as it grows).
 *
 *   flock /work/bench.lock node dist/bench/real-service.js [--seconds 20] [--clients 20] [--workers 1]
 *
 * Scenarios:
 *   - flow: the service's own client (service/example.py): create, add_text x 4, query_script (force_update
 *     absent, as that client sends it: a write), save_draft; 20 clients in a closed loop. Nothing is cacheable.
 *   - read-heavy: 20 editors each polling their draft with query_script force_update:false, one add_text in 20.
 *   - overload: create_draft at a fixed rate of 1.5x what the service did directly in the flow (open loop),
 *     direct vs a sidecar whose queue admits 4 at once and waits at most 2 s.
 * Figures: throughput, p50/p99, and the CPU of the service and of the sidecar (its primary and workers, from
 * /proc/<pid>/stat deltas) per request. Written to bench/RESULTS.md, section "Real draft service".
 */
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { parseDocument } from 'yaml';
import { startCapcutService, type CapcutProcess } from './lib/capcut';
import { runFixedRate } from './lib/fixed-rate';
import { startSidecar, type SidecarProcess } from './lib/services';
import { repoRoot, updateSection } from './results';

const { values: args } = parseArgs({ options: { seconds: { type: 'string' }, clients: { type: 'string' }, workers: { type: 'string' } } });
const SECONDS = Number(args.seconds ?? 20);
const CLIENTS = Number(args.clients ?? 20);
const WORKERS = Number(args.workers ?? 1);
const log = (s: string) => process.stderr.write(s + '\n');

/** CPU ticks (utime + stime, 1/100 s) of a process and all its descendants, read from /proc. */
function treeTicks(root: number): number {
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(name), Number(f[1]));
      ticks.set(Number(name), Number(f[11]) + Number(f[12]));
    } catch { /* gone */ }
  }
  let sum = 0;
  for (const [pid, t] of ticks) {
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parent.get(p)) {
      if (p === root) { sum += t; break; }
    }
  }
  return sum;
}

class Recorder {
  readonly latencies: number[] = [];
  errors = 0;
  statuses = new Map<number, number>();
  record(ms: number, status: number): void {
    this.latencies.push(ms);
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
  }
  pct(p: number): number {
    const s = [...this.latencies].sort((a, b) => a - b);
    return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
  }
}

/** The draft service's JSON answer: the fields this bench reads. */
interface DraftReply { output?: { draft_id?: string } }

async function post(pool: Pool, path: string, body: unknown, user: string, rec: Recorder | null): Promise<DraftReply | null> {
  const t0 = performance.now();
  try {
    const r = await pool.request({ method: 'POST', path, body: JSON.stringify(body), headers: { 'content-type': 'application/json', 'x-user-id': user } });
    const text = await r.body.text();
    rec?.record(performance.now() - t0, r.statusCode);
    return r.statusCode === 200 ? JSON.parse(text) as DraftReply : null;
  } catch {
    if (rec) rec.errors++;
    return null;
  }
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

/** An editor polling its draft (force_update:false), with one edit in 20 polls. */
const readClient: Client = async (pool, user, rec, until) => {
  const id = (await post(pool, '/create_draft', {}, user, null))?.output?.draft_id;
  for (let k = 0; k < 3; k++) await post(pool, '/add_text', { draft_id: id, text: `t${k}`, start: k, end: k + 1 }, user, null);
  for (let i = 1; performance.now() < until; i++) {
    if (i % 20 === 0) await post(pool, '/add_text', { draft_id: id, text: `edit ${i}`, start: 5, end: 6 }, user, rec);
    else await post(pool, '/query_script', { draft_id: id, force_update: false }, user, rec);
  }
};

interface PassResult {
  name: string;
  requests: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  non200: number;
  errors: number;
  serviceCpuMsPerReq: number;
  sidecarCpuMsPerReq: number | null;
}

/** The demo policy (the example's routes, without Redis) on free ports, `workers` workers, quiet logs. */
function benchPolicy(upstreamUrl: string, edit?: (doc: ReturnType<typeof parseDocument>) => void): (p: { port: number; adminPort: number }) => string {
  return (p) => {
    const doc = parseDocument(readFileSync(join(repoRoot(), 'examples', 'demo-policy.yaml'), 'utf8'));
    doc.setIn(['server', 'listen'], `127.0.0.1:${p.port}`);
    doc.setIn(['server', 'admin_listen'], `127.0.0.1:${p.adminPort}`);
    doc.setIn(['server', 'workers'], WORKERS);
    doc.setIn(['server', 'log_level'], 'warn');
    doc.setIn(['upstream', 'url'], upstreamUrl);
    doc.setIn(['cache', 'l3', 'path'], `/tmp/bench-real-service-l3-${p.port}`);
    doc.setIn(['cache', 'warmup', 'enabled'], false);
    doc.setIn(['auto_tuning', 'enabled'], false);
    edit?.(doc);
    return doc.toString();
  };
}

async function withService<T>(fn: (svc: CapcutProcess) => Promise<T>): Promise<T> {
  const svc = await startCapcutService();
  try {
    return await fn(svc);
  } finally {
    await svc.stop();
  }
}

async function closedLoop(name: string, client: Client, via: 'direct' | 'sidecar'): Promise<PassResult> {
  return withService(async (svc) => {
    let sc: SidecarProcess | null = null;
    if (via === 'sidecar') sc = await startSidecar(benchPolicy(svc.url), { timeoutMs: 90_000 });
    try {
      const pool = new Pool(sc ? sc.url : svc.url, { connections: CLIENTS, keepAliveTimeout: 60_000 });
      const rec = new Recorder();
      // warm-up (not recorded): JIT, pools, the service's imports
      await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(pool, `warm-${i}`, new Recorder(), performance.now() + 3000)));
      const cpu0 = { svc: treeTicks(svc.pid), sc: sc ? treeTicks(sc.proc.child.pid!) : 0 };
      const t0 = performance.now();
      await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(pool, `editor-${i}`, rec, t0 + SECONDS * 1000)));
      const seconds = (performance.now() - t0) / 1000;
      const cpu1 = { svc: treeTicks(svc.pid), sc: sc ? treeTicks(sc.proc.child.pid!) : 0 };
      await pool.close();
      const n = rec.latencies.length;
      const non200 = n - (rec.statuses.get(200) ?? 0);
      return {
        name: `${name}, ${via}`, requests: n, seconds, rps: n / seconds, p50: rec.pct(50), p99: rec.pct(99), non200, errors: rec.errors,
        serviceCpuMsPerReq: ((cpu1.svc - cpu0.svc) * 10) / n,
        sidecarCpuMsPerReq: sc ? ((cpu1.sc - cpu0.sc) * 10) / n : null,
      };
    } finally {
      await sc?.stop();
    }
  });
}

async function overload(rate: number, via: 'direct' | 'sidecar'): Promise<PassResult> {
  return withService(async (svc) => {
    let sc: SidecarProcess | null = null;
    if (via === 'sidecar') {
      sc = await startSidecar(benchPolicy(svc.url, (doc) => {
        doc.setIn(['queues', 'max_in_flight'], 4);
        doc.setIn(['queues', 'queue_timeout'], '2s');
        doc.deleteIn(['rate_limiting']);
      }), { timeoutMs: 90_000 });
    }
    try {
      const cpu0 = { svc: treeTicks(svc.pid), sc: sc ? treeTicks(sc.proc.child.pid!) : 0 };
      const r = await runFixedRate({
        url: `${sc ? sc.url : svc.url}/create_draft`, rate, durationMs: SECONDS * 1000, connections: 64, method: 'POST', body: '{}',
        headers: { 'content-type': 'application/json' }, timeoutMs: 60_000,
      });
      const cpu1 = { svc: treeTicks(svc.pid), sc: sc ? treeTicks(sc.proc.child.pid!) : 0 };
      const n = r.ok + r.badStatus;
      return {
        name: `overload ${rate}/s create_draft, ${via}`, requests: n, seconds: SECONDS, rps: r.ok / SECONDS, p50: r.latency.p50, p99: r.latency.p99,
        non200: r.badStatus, errors: r.errors, serviceCpuMsPerReq: ((cpu1.svc - cpu0.svc) * 10) / Math.max(1, r.ok),
        sidecarCpuMsPerReq: sc ? ((cpu1.sc - cpu0.sc) * 10) / Math.max(1, n) : null,
      };
    } finally {
      await sc?.stop();
    }
  });
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const row = (r: PassResult) =>
  `| ${r.name} | ${r.requests} | ${f1(r.rps)} | ${f1(r.p50)} | ${f1(r.p99)} | ${r.non200} | ${r.errors} | ${r.serviceCpuMsPerReq.toFixed(2)} | ${r.sidecarCpuMsPerReq === null ? '-' : r.sidecarCpuMsPerReq.toFixed(2)} |`;

async function main(): Promise<void> {
  const loadBefore = loadavg()[0]!;
  const results: PassResult[] = [];
  for (const [name, client] of [['flow (create, add_text x4, query_script, save)', flowClient], ['read-heavy (poll force_update:false, 1 edit in 20)', readClient]] as const) {
    for (const via of ['direct', 'sidecar'] as const) {
      log(`${name}, ${via}...`);
      const r = await closedLoop(name, client, via);
      log(row(r));
      results.push(r);
    }
  }
  const directFlow = results[0]!;
  // what the service does with create_draft alone, at 1.5x the flow's direct rate: above its capacity for it
  const rate = Math.max(20, Math.round(directFlow.rps * 1.5));
  for (const via of ['direct', 'sidecar'] as const) {
    log(`overload ${rate}/s, ${via}...`);
    const r = await overload(rate, via);
    log(row(r));
    results.push(r);
  }
  const ratio = (a: PassResult, b: PassResult) => (b.rps / a.rps).toFixed(2);
  const [fd, fs, rd, rs, od, os] = results as [PassResult, PassResult, PassResult, PassResult, PassResult, PassResult];
  const md = [
    `Command: \`npm run build && flock /work/bench.lock node ${relative(repoRoot(), process.argv[1]!)} --seconds ${SECONDS} --clients ${CLIENTS} --workers ${WORKERS}\``,
    `(${new Date().toISOString()}; load average before ${loadBefore.toFixed(2)}, after ${loadavg()[0]!.toFixed(2)}, on a shared 2-core machine:`,
    'service, sidecar and load generator on the same cores). The real service (../shared/capcut-service, start.sh, a',
    'fresh work dir and database for every pass); the sidecar runs examples/demo-policy.yaml (the example\'s routes,',
    `limits and cache without Redis) with ${WORKERS} worker(s). ${CLIENTS} clients in a closed loop for ${SECONDS} s after a 3 s warm-up;`,
    'latencies in ms from the client; CPU per request from /proc/<pid>/stat deltas (the sidecar: primary + workers).',
    '',
    '| pass | requests | req/s | p50 | p99 | non-200 | errors | service CPU ms/req | sidecar CPU ms/req |',
    '|---|---|---|---|---|---|---|---|---|',
    ...results.map(row),
    '',
    `- Flow (nothing cacheable: the client never sends force_update:false): sidecar/direct throughput ${ratio(fd, fs)}x (target >= 0.9x);`,
    `  sidecar CPU per request ${(fs.sidecarCpuMsPerReq ?? 0).toFixed(2)} ms against the service's ${fs.serviceCpuMsPerReq.toFixed(2)} ms`,
    `  (${(((fs.sidecarCpuMsPerReq ?? 0) / fs.serviceCpuMsPerReq) * 100).toFixed(1)} %; target < 10 %). That is what the sidecar costs where nothing is cacheable.`,
    `- Read-heavy: ${ratio(rd, rs)}x the direct throughput (target >= 2x), p99 ${f1(rs.p99)} ms against ${f1(rd.p99)} ms direct.`,
    `- Overload (${od.name.split(',')[0]}): direct p99 ${f1(od.p99)} ms; through a sidecar with max_in_flight 4 and queue_timeout 2s,`,
    `  p99 ${f1(os.p99)} ms with ${os.non200} answers shed (503) of ${os.requests}.`,
  ].join('\n');
  updateSection('Real draft service', md);
  process.stdout.write(md + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`real-service bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
