#!/usr/bin/env node
/**
 * Backpressure benchmark. The example draft service made slow (service time 50 ms, its own
 * concurrency capped at 8, so it serves at most 160 req/s and queues the rest in FIFO order, like a Flask app
 * with 8 threads) is driven open-loop at 3x its capacity (480 req/s) with a mix of high-priority requests
 * (15 %, an interactive minority: 72 req/s, below the 3/4 of the slots its weight guarantees even when the
 * proxy hop eats into the service's capacity) and low-priority ones (85 %):
 *
 *   1. direct: the service's own FIFO grows by ~320 requests a second, and so does everyone's latency;
 *   2. through bridge-sidecar (1 worker, max_in_flight 8, weights 3:1): high requests wait only for their
 *      weighted share of slots, the excess low traffic is shed with 503 + Retry-After;
 *   3. a sweep of fixed max_in_flight values and `auto`: the adaptive limit against the best fixed value
 *      (best = lowest high-priority p99 among the runs that reach >= 95 % of the best throughput).
 *
 * Latency is measured from each request's due time (open loop, coordinated omission corrected), per class;
 * shed requests (503) are counted apart and carry no latency. Prints Markdown and rewrites its section (SECTION)
 * of bench/RESULTS.md.
 *
 *   node dist/bench/backpressure.js              full run (~8 min)
 *   node dist/bench/backpressure.js --quick      short runs, to check the setup
 *   node dist/bench/backpressure.js --help
 *
 * Every process it starts is stopped before it exits, also on failure or ^C.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { machineInfo, machineLine, waitForQuiet } from './lib/machine';
import { startDraftServiceProcess, startSidecar, type ServiceProcess, type SidecarPorts, type SidecarProcess } from './lib/services';
import { updateSection } from './results';

const SECTION = 'Backpressure (issue 4)';

const HELP = `usage: node dist/bench/backpressure.js [options]
  --quick              short runs (5 s each) to check the setup
  --service-time MS    service time of the example service (default 50)
  --capacity N         its own concurrency cap (default 8)
  --overload X         offered load as a multiple of its capacity (default 3)
  --high-share R       share of high-priority requests (default 0.15)
  --duration S         seconds per measured run (default 15; sweep runs 12)
  --sweep LIST         fixed max_in_flight values to sweep (default 4,6,8,10,12,16,24)
  --runs N             repeat the sidecar overload run N times, report the median by high p99 (default 3)
  --only LIST          comma list of direct,sidecar,sweep (default all)
  --wait-quiet S       wait up to S seconds for load average < 1.5 (default 120)
  --no-write           print only; do not update bench/RESULTS.md`;

type Cls = 'high' | 'low';
const PATHS: Record<Cls, string> = { high: '/get_font_types', low: '/get_text_outro_types' };

interface ClassStats {
  offered: number;
  ok: number;
  shed: number;
  errors: number;
  /** latencies (ms, from the due time) of 200 answers */
  lat: number[];
  /** [dueOffsetMs, latencyMs] of 200 answers, for the latency-over-time view */
  timeline: Array<[number, number]>;
}

interface RunResult {
  label: string;
  durationMs: number;
  classes: Record<Cls, ClassStats>;
  /** samples of bridge_sidecar_concurrency_limit during the run (sidecar runs) */
  limits: Array<[number, number]>;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function fmtMs(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  return v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
}

/**
 * Open-loop fixed-rate sender, one schedule per class: request k of a class is due at t0 + k / rate whatever
 * happened to the others; each class has its own connection pool so a backlog of one does not hold up the other
 * on the client side.
 */
async function openLoop(origin: string, rates: Record<Cls, number>, durationMs: number, timeoutMs: number, onTick?: (elapsedMs: number) => void): Promise<Record<Cls, ClassStats>> {
  const pools: Record<Cls, Pool> = {
    high: new Pool(origin, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }),
    low: new Pool(origin, { connections: 1024, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }),
  };
  const stats: Record<Cls, ClassStats> = {
    high: { offered: 0, ok: 0, shed: 0, errors: 0, lat: [], timeline: [] },
    low: { offered: 0, ok: 0, shed: 0, errors: 0, lat: [], timeline: [] },
  };
  const t0 = performance.now() + 20;
  const outstanding: Array<Promise<void>> = [];
  const send = (cls: Cls, due: number) => {
    const s = stats[cls];
    s.offered++;
    outstanding.push(pools[cls].request({ path: PATHS[cls], method: 'GET' }).then(async (res) => {
      for await (const _ of res.body) { /* drain */ }
      const lat = performance.now() - due;
      if (res.statusCode === 200) {
        s.ok++;
        s.lat.push(lat);
        s.timeline.push([due - t0, lat]);
      } else if (res.statusCode === 503) s.shed++;
      else s.errors++;
    }, () => { s.errors++; }));
  };
  await new Promise<void>((resolve) => {
    const issued: Record<Cls, number> = { high: 0, low: 0 };
    const total: Record<Cls, number> = { high: Math.round((rates.high * durationMs) / 1000), low: Math.round((rates.low * durationMs) / 1000) };
    let lastTick = 0;
    const fire = () => {
      const now = performance.now();
      let next = Infinity;
      for (const cls of ['high', 'low'] as Cls[]) {
        if (rates[cls] <= 0) continue;
        const interval = 1000 / rates[cls];
        const due = Math.min(total[cls], Math.floor((now - t0) / interval) + 1);
        while (issued[cls] < due) send(cls, t0 + issued[cls]++ * interval);
        if (issued[cls] < total[cls]) next = Math.min(next, t0 + issued[cls] * interval);
      }
      if (onTick && now - lastTick >= 500) {
        lastTick = now;
        onTick(now - t0);
      }
      if (next === Infinity) resolve();
      else setTimeout(fire, Math.max(0, next - performance.now()));
    };
    setTimeout(fire, Math.max(0, t0 - performance.now()));
  });
  await Promise.all(outstanding);
  await Promise.all([pools.high.close(), pools.low.close()]);
  for (const cls of ['high', 'low'] as Cls[]) stats[cls].lat.sort((a, b) => a - b);
  return stats;
}

/** The value of one exposition line, e.g. `bridge_sidecar_concurrency_limit` (NaN when absent or unreachable). */
async function scrape(adminUrl: string, series: string): Promise<number> {
  try {
    const text = await (await fetch(adminUrl + '/metrics')).text();
    const line = text.split('\n').find((l) => l.startsWith(series + ' '));
    return line === undefined ? NaN : Number(line.slice(series.length + 1));
  } catch {
    return NaN;
  }
}

function sidecarPolicy(serviceUrl: string, maxInFlight: number | 'auto'): (p: SidecarPorts) => string {
  return (p) => `# bench: backpressure
version: 1
server:
  listen: 127.0.0.1:${p.port}
  admin_listen: 127.0.0.1:${p.adminPort}
  workers: 1
  log_level: warn
upstream:
  url: ${serviceUrl}
  pool: { max_connections: 256, max_connections_per_host: 256, retries: 0 }
routes:
  - { name: interactive, match: { method: GET, path: ${PATHS.high} }, priority: high }
  - { name: batch, match: { method: GET, path: ${PATHS.low} }, priority: low }
queues:
  max_in_flight: ${maxInFlight}
  max_queue_size: 1000
  queue_timeout: 10s
  priority_queues: { high: { weight: 3, max_size: 200 }, medium: { weight: 2, max_size: 500 }, low: { weight: 1, max_size: 300 } }
`;
}

async function sidecarRun(label: string, service: ServiceProcess, maxInFlight: number | 'auto', rates: Record<Cls, number>, durationMs: number, warmupMs: number, cleanup: Set<() => Promise<void>>): Promise<RunResult> {
  const sc: SidecarProcess = await startSidecar(sidecarPolicy(service.url, maxInFlight));
  cleanup.add(sc.stop);
  try {
    if (warmupMs > 0) await openLoop(sc.url, rates, warmupMs, 30_000);
    const limits: Array<[number, number]> = [];
    const sampling: Array<Promise<void>> = [];
    const classes = await openLoop(sc.url, rates, durationMs, 30_000, (elapsed) => {
      sampling.push(scrape(sc.adminUrl, 'bridge_sidecar_concurrency_limit').then((v) => { if (Number.isFinite(v)) limits.push([elapsed, v]); }));
    });
    await Promise.all(sampling);
    return { label, durationMs, classes, limits };
  } finally {
    cleanup.delete(sc.stop);
    await sc.stop();
  }
}

/** 200 answers completed inside the run's window, per second (the backlog served after it does not count). */
function goodput(r: RunResult): number {
  let n = 0;
  for (const cls of ['high', 'low'] as Cls[]) for (const [due, lat] of r.classes[cls].timeline) if (due + lat <= r.durationMs) n++;
  return (n / r.durationMs) * 1000;
}

function settledLimit(r: RunResult): number {
  const late = r.limits.filter(([t]) => t >= r.durationMs / 2).map(([, v]) => v).sort((a, b) => a - b);
  return pct(late, 50);
}

function row(r: RunResult, limitCell: string | null = null): string {
  const h = r.classes.high;
  const l = r.classes.low;
  return `| ${r.label} |${limitCell === null ? '' : ` ${limitCell} |`} ${goodput(r).toFixed(0)} | ${fmtMs(pct(h.lat, 50))} | ${fmtMs(pct(h.lat, 99))} | ${h.shed} / ${h.errors} | ${fmtMs(pct(l.lat, 50))} | ${fmtMs(pct(l.lat, 99))} | ${l.shed} / ${l.errors} |`;
}

/** p50 / p99 of 200 answers grouped by the second their request was due, every `stepS` seconds. */
function timeline(stats: ClassStats, durationMs: number, stepS: number): string {
  const parts: string[] = [];
  for (let from = 0; from < durationMs; from += stepS * 1000) {
    const lat = stats.timeline.filter(([d]) => d >= from && d < from + stepS * 1000).map(([, v]) => v).sort((a, b) => a - b);
    parts.push(`${from / 1000}-${from / 1000 + stepS} s: ${fmtMs(pct(lat, 50))}`);
  }
  return parts.join(' · ');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      'service-time': { type: 'string', default: '50' },
      capacity: { type: 'string', default: '8' },
      overload: { type: 'string', default: '3' },
      'high-share': { type: 'string', default: '0.15' },
      duration: { type: 'string' },
      sweep: { type: 'string', default: '4,6,8,10,12,16,24' },
      runs: { type: 'string', default: '3' },
      only: { type: 'string', default: 'direct,sidecar,sweep' },
      'wait-quiet': { type: 'string', default: '120' },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const serviceTime = Number(values['service-time']);
  const capacity = Number(values.capacity);
  const capacityRps = (capacity * 1000) / serviceTime;
  const offered = capacityRps * Number(values.overload);
  const highShare = Number(values['high-share']);
  const rates: Record<Cls, number> = { high: offered * highShare, low: offered * (1 - highShare) };
  const quick = values.quick!;
  const durationMs = (values.duration ? Number(values.duration) : quick ? 5 : 15) * 1000;
  const sweepMs = values.duration ? durationMs : quick ? 5000 : 12_000;
  const warmupMs = quick ? 1000 : 3000;
  const only = new Set(values.only!.split(','));
  const sweep = values.sweep!.split(',').map(Number).filter((n) => n > 0);

  const log = (s: string) => console.error(`[backpressure] ${s}`);
  const load = await waitForQuiet(1.5, Number(values['wait-quiet']) * 1000, log);
  const machine = await machineInfo();

  const cleanup = new Set<() => Promise<void>>();
  const stopAll = async () => {
    for (const f of [...cleanup]) await f().catch(() => undefined);
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));

  const runs = Math.max(1, Number(values.runs) || 1);
  const results: { direct?: RunResult; sidecar?: RunResult; sidecarRuns: RunResult[]; sweep: RunResult[]; auto?: RunResult } = { sweep: [], sidecarRuns: [] };
  try {
    // a fresh service process for every run: the direct run leaves a big heap and thousands of closed sockets
    // behind, and one run's leftovers must not slow the next
    const withService = async <T>(fn: (service: ServiceProcess) => Promise<T>): Promise<T> => {
      const service = await startDraftServiceProcess({ serviceTime: `${serviceTime}ms`, maxConcurrency: capacity });
      cleanup.add(service.stop);
      try {
        return await fn(service);
      } finally {
        cleanup.delete(service.stop);
        await service.stop();
      }
    };
    log(`service: ${serviceTime} ms, ${capacity} at once (${capacityRps.toFixed(0)} req/s); offered ${offered.toFixed(0)} req/s (high ${rates.high.toFixed(0)}, low ${rates.low.toFixed(0)})`);

    if (only.has('direct')) {
      log(`direct, ${durationMs / 1000} s (the service's backlog drains after the run)...`);
      results.direct = await withService(async (service) => ({ label: 'direct (no sidecar)', durationMs, classes: await openLoop(service.url, rates, durationMs, 120_000), limits: [] }));
    }
    if (only.has('sidecar')) {
      // the machine is shared: one run can catch another process's burst, so take the median of a few
      for (let i = 0; i < runs; i++) {
        log(`through the sidecar, max_in_flight ${capacity}, ${durationMs / 1000} s (run ${i + 1}/${runs})...`);
        results.sidecarRuns.push(await withService((service) => sidecarRun(`bridge-sidecar, max_in_flight ${capacity}`, service, capacity, rates, durationMs, warmupMs, cleanup)));
      }
      const byP99 = [...results.sidecarRuns].sort((a, b) => pct(a.classes.high.lat, 99) - pct(b.classes.high.lat, 99));
      results.sidecar = byP99[(byP99.length - 1) >> 1];
    }
    if (only.has('sweep')) {
      for (const n of sweep) {
        log(`sweep: max_in_flight ${n}, ${sweepMs / 1000} s...`);
        results.sweep.push(await withService((service) => sidecarRun(`max_in_flight ${n}`, service, n, rates, sweepMs, warmupMs, cleanup)));
      }
      log(`sweep: max_in_flight auto, ${sweepMs / 1000} s...`);
      results.auto = await withService((service) => sidecarRun('max_in_flight auto', service, 'auto', rates, sweepMs, warmupMs, cleanup));
    }
  } finally {
    await stopAll();
  }

  // --- report ------------------------------------------------------------------------------------------------
  const loadAtEnd = loadavg()[0]!;
  const md: string[] = [];
  md.push(`Example service: ${serviceTime} ms service time, ${capacity} calls at once (capacity ${capacityRps.toFixed(0)} req/s), driven open-loop at ` +
    `${Number(values.overload)}x capacity = ${offered.toFixed(0)} req/s: ${(highShare * 100).toFixed(0)} % high priority (${rates.high.toFixed(0)} req/s, \`${PATHS.high}\`), ` +
    `${((1 - highShare) * 100).toFixed(0)} % low (${rates.low.toFixed(0)} req/s, \`${PATHS.low}\`). Sidecar: 1 worker, weights high 3 / low 1, ` +
    `low max_size 300, queue_timeout 10s. Latency from each request's due time (coordinated omission corrected), 200 answers only; ` +
    `503 = shed by the sidecar. Machine: ${machineLine(machine)}; load average at start ${load.toFixed(2)}, at the end ${loadAtEnd.toFixed(2)} (the machine is shared; other processes' bursts show up as tail latency). \`node dist/bench/backpressure.js${quick ? ' --quick' : ''}\`.`);
  md.push('');
  const head = '| run | served req/s | high p50 | high p99 | high 503 / err | low p50 | low p99 | low 503 / err |';
  const sep = '|---|---|---|---|---|---|---|---|';
  if (results.direct || results.sidecar) {
    md.push(`### Overload, ${durationMs / 1000} s`, '', head, sep);
    if (results.direct) md.push(row(results.direct));
    if (results.sidecar) md.push(row(results.sidecar));
    md.push('');
    if (results.direct) md.push(`Direct, high-priority p50 by due time: ${timeline(results.direct.classes.high, durationMs, Math.max(1, Math.round(durationMs / 5000)))} (grows with the backlog, without bound while the overload lasts).`, '');
    if (results.sidecar) {
      const p99 = pct(results.sidecar.classes.high.lat, 99);
      const all = results.sidecarRuns.map((r) => fmtMs(pct(r.classes.high.lat, 99))).join(', ');
      md.push(`Through the sidecar (median of ${results.sidecarRuns.length} runs by high p99; the runs' high p99: ${all}), high-priority p99 = ${fmtMs(p99)} = ${(p99 / serviceTime).toFixed(1)}x the service time (target < 4x: ${p99 < 4 * serviceTime ? 'met' : 'NOT met'}); ` +
        `high p50 by due time: ${timeline(results.sidecar.classes.high, durationMs, Math.max(1, Math.round(durationMs / 5000)))}.`, '');
    }
  }
  if (results.sweep.length > 0 && results.auto) {
    md.push(`### Fixed max_in_flight vs auto, ${sweepMs / 1000} s each`, '', head.replace('| run |', '| run | limit |'), sep + '---|');
    for (const r of results.sweep) md.push(row(r, r.label.replace('max_in_flight ', '')));
    const settled = settledLimit(results.auto);
    md.push(row(results.auto, `${Number.isFinite(settled) ? settled : 'n/a'} (settled)`));
    const maxGood = Math.max(...results.sweep.map(goodput));
    const eligible = results.sweep.filter((r) => goodput(r) >= 0.95 * maxGood);
    const best = eligible.reduce((a, b) => (pct(b.classes.high.lat, 99) < pct(a.classes.high.lat, 99) ? b : a));
    const bestN = Number(best.label.replace('max_in_flight ', ''));
    const off = Math.abs(settled - bestN) / bestN;
    md.push('', `Best fixed value (lowest high p99 among runs with >= 95 % of the best throughput, ${maxGood.toFixed(0)} req/s): **${bestN}**. ` +
      `The adaptive limit settled at **${settled}** (median of the gauge over the second half of the run), ${(off * 100).toFixed(0)} % from it ` +
      `(target within 20 %: ${off <= 0.2 ? 'met' : 'NOT met'}); its throughput ${goodput(results.auto).toFixed(0)} req/s, high p99 ${fmtMs(pct(results.auto.classes.high.lat, 99))}.`);
    const trace = results.auto.limits.filter((_, i) => i % 2 === 0).map(([, v]) => v).join(', ');
    md.push('', `Adaptive limit over the run (every second): ${trace}.`);
  }
  const text = md.join('\n');
  console.log(`## ${SECTION}\n\n${text}`);
  if (!values['no-write']) {
    updateSection(SECTION, text);
    log('bench/RESULTS.md updated');
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
