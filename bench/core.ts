#!/usr/bin/env node
/**
 * Core pass-through benchmark: in one run on this machine, with wrk (default -t2 -c50 -d10s)
 * against a pass-through read of the example draft service (GET /get_font_types, service time 0):
 *   (a) the service direct, (b) bridge-sidecar with 1 worker, (c) with 2 workers, (d) nginx with 1 worker
 *   configured the same way (upstream keep-alive, HTTP/1.1, no access log);
 * then (e) the latency the sidecar adds at a fixed 1000 requests/s (open loop, from the due time),
 * direct vs through the sidecar with 1 worker.
 * Prints a Markdown table and rewrites its section (SECTION) of bench/RESULTS.md.
 *
 *   node dist/bench/core.js                 full run (~90 s)
 *   node dist/bench/core.js --quick         3 s per measurement, to check the setup
 *   node dist/bench/core.js --help          all flags (each also settable by env: BENCH_DURATION=5s ...)
 *
 * Every process it starts (service, sidecars, nginx) is stopped before it exits, also on failure or ^C.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runFixedRate, type FixedRateResult } from './lib/fixed-rate';
import { cpuSnapshot, foreignCpuShare, machineInfo, machineLine, waitForQuiet } from './lib/machine';
import { startNginx } from './lib/nginx';
import { BUILD_ROOT, passThroughPolicy, startReferenceProxy, startDraftServiceProcess, startSidecar, type ServiceProcess } from './lib/services';
import { runWrk, type WrkResult } from './lib/wrk';
import { median, medianBy } from './lib/stats';
import { updateSection } from './results';

const SECTION = 'Core pass-through (issue 2)';

const HELP = `usage: node dist/bench/core.js [options]
  --quick                 short run: 3s measurements, 1s warm-ups (env BENCH_QUICK=1)
  --threads N             wrk threads (default 2; env BENCH_THREADS)
  --connections N         wrk connections (default 50; env BENCH_CONNECTIONS)
  --duration D            wrk duration per target (default 10s; env BENCH_DURATION)
  --warmup D              wrk warm-up per target, not recorded (default 3s; env BENCH_WARMUP)
  --rate N                fixed-rate latency test, requests/s (default 1000; env BENCH_RATE)
  --rate-duration D       fixed-rate duration (default 10s; env BENCH_RATE_DURATION)
  --path P                request path (default /get_font_types; env BENCH_PATH)
  --sidecar-log-level L   sidecar log level (default warn: no access log, like nginx's access_log off)
  --runs N                N rounds, each measuring every target once (started fresh, warmed up, stopped),
                          and the median run per target by requests/s (default 1)
  --cpu-prof DIR          run the sidecar with node --cpu-prof, profiles (.cpuprofile) into DIR
  --only LIST             comma list of direct,nginx,bare,llhttp,sidecar1,sidecar1p20,sidecar1hp,sidecar2,latency (default all;
                          bare: bench/lib/bare-proxy.ts, the smallest node:http + undici proxy, as a reference;
                          llhttp: bench/lib/llhttp-proxy.ts, net sockets and node's HTTP parser only: Node's floor;
                          latency: the fixed-rate runs, direct, through the sidecar and through nginx and llhttp as references;
                          sidecar1hp: 1 worker on the older http-proxy upstream leg, BRIDGE_SIDECAR_UPSTREAM_LEG=http-proxy;
                          sidecar1p20: 1 worker with the default upstream pool of 20 connections)
  --pool N                the sidecar rows' upstream.pool.max_connections_per_host (default 64: what nginx's
                          keepalive 64 and the bare proxy's Pool hold, so 50 wrk connections wait for none)
  --wait-quiet SECONDS    wait up to this long for load average < 1.5 before starting (default 60)
  --no-write              print only; do not update bench/RESULTS.md`;

type Target = 'direct' | 'sidecar1' | 'sidecar1p20' | 'sidecar1hp' | 'sidecar2' | 'nginx' | 'bare' | 'llhttp';
const LABEL: Record<Target, string> = {
  direct: 'draft service direct',
  bare: 'bare node:http + undici proxy (reference, 1 process)',
  llhttp: 'net + node\'s HTTP parser, no node:http or undici (reference, 1 process)',
  sidecar1: 'bridge-sidecar, 1 worker (undici leg)',
  sidecar1p20: 'bridge-sidecar, 1 worker, the default upstream pool (20 connections)',
  sidecar1hp: 'bridge-sidecar, 1 worker, http-proxy leg',
  sidecar2: 'bridge-sidecar, 2 workers',
  nginx: 'nginx, 1 worker',
};

/** The fixed-rate runs: direct and through the sidecar back to back, then the references. */
type Latency = Partial<Record<'direct' | 'sidecar1' | 'nginx' | 'llhttp', FixedRateResult | string>>;

interface Settings {
  threads: number;
  connections: number;
  duration: string;
  warmup: string;
  rate: number;
  rateDurationMs: number;
  path: string;
  logLevel: string;
  /** The sidecar rows' upstream pool per worker (but the default-pool row's). */
  pool: number;
  only: Set<string>;
  waitQuietSec: number;
  write: boolean;
  runs: number;
  cpuProfDir: string | null;
  quick: boolean;
}

function seconds(d: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(d.trim());
  if (!m) throw new Error(`not a duration: ${d}`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
}

function settings(argv: string[]): Settings | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' }, threads: { type: 'string' }, connections: { type: 'string' }, duration: { type: 'string' },
      warmup: { type: 'string' }, rate: { type: 'string' }, 'rate-duration': { type: 'string' }, path: { type: 'string' },
      'sidecar-log-level': { type: 'string' }, only: { type: 'string' }, 'wait-quiet': { type: 'string' },
      'no-write': { type: 'boolean' }, runs: { type: 'string' }, 'cpu-prof': { type: 'string' }, help: { type: 'boolean' },
      pool: { type: 'string' },
    },
    strict: true,
  });
  if (values.help) return null;
  const env = process.env;
  const quick = values.quick ?? env.BENCH_QUICK === '1';
  const duration = values.duration ?? env.BENCH_DURATION ?? (quick ? '3s' : '10s');
  seconds(duration);
  const warmup = values.warmup ?? env.BENCH_WARMUP ?? (quick ? '1s' : '3s');
  seconds(warmup);
  return {
    quick,
    threads: Number(values.threads ?? env.BENCH_THREADS ?? 2),
    connections: Number(values.connections ?? env.BENCH_CONNECTIONS ?? 50),
    duration,
    warmup,
    rate: Number(values.rate ?? env.BENCH_RATE ?? 1000),
    rateDurationMs: seconds(values['rate-duration'] ?? env.BENCH_RATE_DURATION ?? (quick ? '3s' : '10s')) * 1000,
    path: values.path ?? env.BENCH_PATH ?? '/get_font_types',
    logLevel: values['sidecar-log-level'] ?? 'warn',
    pool: Number(values.pool ?? 64),
    only: new Set((values.only ?? 'direct,nginx,bare,llhttp,sidecar1,sidecar1p20,sidecar1hp,sidecar2,latency').split(',').map((s) => s.trim())),
    waitQuietSec: Number(values['wait-quiet'] ?? 60),
    write: !values['no-write'],
    runs: Math.max(1, Number(values.runs ?? env.BENCH_RUNS ?? 1)),
    cpuProfDir: values['cpu-prof'] ?? null,
  };
}

const log = (s: string) => process.stderr.write(`[bench/core] ${s}\n`);

/** Stops everything still running, in reverse order of start; used on the way out and on ^C. */
const running: Array<{ stop(): Promise<void> }> = [];
async function stopAll(): Promise<void> {
  while (running.length) await running.pop()!.stop().catch(() => undefined);
}
async function started<T extends { stop(): Promise<void> }>(p: Promise<T>): Promise<T> {
  const x = await p;
  running.push(x);
  return x;
}
async function stopped(x: { stop(): Promise<void> }): Promise<void> {
  const i = running.indexOf(x);
  if (i !== -1) running.splice(i, 1);
  await x.stop();
}

/** CPU share other processes used during each measurement, by result object. */
const otherCpu = new WeakMap<object, number | null>();

/** One measured run of `url` (after the caller's warm-up). */
async function measureOnce(s: Settings, url: string, what: string, round: number): Promise<WrkResult> {
  log(`${what}: wrk -t${s.threads} -c${s.connections} -d${s.duration}${s.runs > 1 ? ` (round ${round + 1}/${s.runs})` : ''}`);
  const before = cpuSnapshot();
  const r = await runWrk(url, { threads: s.threads, connections: s.connections, duration: s.duration });
  const other = foreignCpuShare(before, cpuSnapshot());
  otherCpu.set(r, other);
  log(`${what}: ${r.requestsPerSec.toFixed(0)} req/s, p50 ${r.latency.p50.toFixed(2)} ms, p99 ${r.latency.p99.toFixed(2)} ms${pctNote(other)}`);
  return r;
}

/** A target's row when it could not be measured: the error's first lines. */
function notMeasured(e: unknown): string {
  return `not measured: ${e instanceof Error ? e.message.split('\n').slice(0, 3).join(' / ') : String(e)}`;
}

/** A target of the throughput rounds: started fresh for each of its runs, stopped after it. */
interface Runner {
  key: Target;
  start(): Promise<{ url: string; stop(): Promise<void> }>;
}

/**
 * The throughput runs, in rounds: each round starts every target in turn, warms it up, measures it once and
 * stops it. The machine drifts over the minutes a run takes (other tenants of the VM); run target by target, a
 * slow stretch fell on one target's runs only and moved the ratios between rows. Interleaved, each round sees
 * every target in about the same state of the machine, and the per-round ratios can be read as pairs.
 */
async function throughputRounds(s: Settings, runners: readonly Runner[]): Promise<{ wrk: Partial<Record<Target, WrkResult | string>>; rounds: Array<Partial<Record<Target, WrkResult>>> }> {
  const wrk: Partial<Record<Target, WrkResult | string>> = {};
  const runs: Partial<Record<Target, WrkResult[]>> = {};
  const rounds: Array<Partial<Record<Target, WrkResult>>> = [];
  for (let round = 0; round < s.runs; round++) {
    const thisRound: Partial<Record<Target, WrkResult>> = {};
    for (const r of runners) {
      if (typeof wrk[r.key] === 'string') continue; // failed to start before: not tried again
      try {
        const t = await started(r.start());
        const url = t.url + s.path;
        log(`${LABEL[r.key]}: warm-up ${s.warmup}`);
        await runWrk(url, { threads: s.threads, connections: s.connections, duration: s.warmup });
        const res = await measureOnce(s, url, LABEL[r.key], round);
        await stopped(t);
        (runs[r.key] ??= []).push(res);
        thisRound[r.key] = res;
      } catch (e) {
        wrk[r.key] = notMeasured(e);
        log(`${LABEL[r.key]}: ${wrk[r.key] as string}`);
      }
    }
    rounds.push(thisRound);
  }
  for (const [key, list] of Object.entries(runs) as Array<[Target, WrkResult[]]>) if (typeof wrk[key] !== 'string') wrk[key] = medianBy(list, (r) => r.requestsPerSec);
  return { wrk, rounds };
}

async function fixedRate(s: Settings, url: string, what: string): Promise<FixedRateResult> {
  log(`${what}: ${s.rate} req/s for ${s.rateDurationMs / 1000}s (open loop)`);
  // the snapshot spans the warm-up too: close enough, and the warm-up is short
  const before = cpuSnapshot();
  const r = await runFixedRate({ url, rate: s.rate, durationMs: s.rateDurationMs, warmupMs: s.quick ? 1000 : 3000, connections: 32 });
  const other = foreignCpuShare(before, cpuSnapshot());
  otherCpu.set(r, other);
  log(`${what}: p50 ${r.serviceLatency.p50.toFixed(3)} ms (from due ${r.latency.p50.toFixed(3)}), p99 ${r.latency.p99.toFixed(3)} ms, ${r.errors + r.badStatus} errors${pctNote(other)}`);
  return r;
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${(x * 100).toFixed(0)}%`);
const pctNote = (x: number | null) => (x === null ? '' : `, other processes used ${pct(x)} of the CPU`);
const f0 = (n: number) => n.toFixed(0);
const f2 = (n: number) => n.toFixed(2);
const f3 = (n: number) => n.toFixed(3);

function errorsOf(r: WrkResult): number {
  const e = r.errors;
  return e.connect + e.read + e.write + e.timeout + e.non2xx3xx;
}

async function main(argv: string[]): Promise<number> {
  const s = settings(argv);
  if (!s) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const sidecarBuilt = existsSync(join(BUILD_ROOT, 'cmd', 'serve.js'));
  const load = await waitForQuiet(1.5, s.waitQuietSec * 1000, log);
  if (load >= 1.5) log(`WARNING: load average ${load.toFixed(2)}: other processes compete for the CPU, figures will be low and noisy`);
  const machine = await machineInfo();
  log(machineLine(machine));

  const latency: Latency = {};

  const svc: ServiceProcess = await started(startDraftServiceProcess({ serviceTime: '0ms' }));
  const target = (base: string) => base + s.path;
  const sidecar = (key: 'sidecar1' | 'sidecar1p20' | 'sidecar1hp' | 'sidecar2') => async () => {
    if (!sidecarBuilt) throw new Error(`${join(BUILD_ROOT, 'cmd', 'serve.js')} is not built yet`);
    // the pool like the references' (nginx keepalive 64, the bare proxy's 64), but in the default-pool row
    const sc = await startSidecar(passThroughPolicy(svc.url, key === 'sidecar2' ? 2 : 1, s.logLevel, key === 'sidecar1p20' ? null : s.pool), {
      nodeArgs: s.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${s.cpuProfDir}`] : [],
      env: key === 'sidecar1hp' ? { BRIDGE_SIDECAR_UPSTREAM_LEG: 'http-proxy' } : {},
    });
    return { url: sc.url, stop: () => sc.stop() };
  };
  const all: Runner[] = [
    // the service stays up for the whole run: its row is measured without restarting it
    { key: 'direct', start: () => Promise.resolve({ url: svc.url, stop: () => Promise.resolve() }) },
    { key: 'nginx', start: async () => startNginx({ upstreamPort: svc.port, workers: 1, keepalive: 64 }) },
    // what any Node proxy costs here: the sidecar's gap to nginx splits into the runtime's share and its own
    { key: 'bare', start: () => startReferenceProxy(svc.url, 'bare-proxy') },
    // the same without node:http's streams and undici: how far any Node proxy can go here
    { key: 'llhttp', start: () => startReferenceProxy(svc.url, 'llhttp-proxy') },
    { key: 'sidecar1', start: sidecar('sidecar1') },
    { key: 'sidecar1p20', start: sidecar('sidecar1p20') },
    { key: 'sidecar1hp', start: sidecar('sidecar1hp') },
    { key: 'sidecar2', start: sidecar('sidecar2') },
  ];
  let wrk: Partial<Record<Target, WrkResult | string>> = {};
  let rounds: Array<Partial<Record<Target, WrkResult>>> = [];
  try {
    ({ wrk, rounds } = await throughputRounds(s, all.filter((r) => s.only.has(r.key))));
    if (s.only.has('latency')) {
      try {
        const sc = await started(sidecar('sidecar1')());
        // the direct and the proxied fixed-rate runs back to back, so they see the same machine state
        latency.direct = await fixedRate(s, target(svc.url), 'fixed rate, direct');
        latency.sidecar1 = await fixedRate(s, target(sc.url), 'fixed rate, through bridge-sidecar (1 worker)');
        await stopped(sc);
      } catch (e) {
        const msg = notMeasured(e);
        latency.sidecar1 ??= msg;
        log(`fixed rate: ${msg}`);
      }
      // what the references add at the same rate: is the target within reach of any proxy on this machine today?
      for (const key of ['nginx', 'llhttp'] as const) {
        try {
          const p = await started(all.find((r) => r.key === key)!.start());
          latency[key] = await fixedRate(s, target(p.url), `fixed rate, through ${LABEL[key]}`);
          await stopped(p);
        } catch (e) {
          latency[key] = notMeasured(e);
        }
      }
    }
  } finally {
    await stopAll();
  }

  const md = report(s, machine, wrk, rounds, latency, argv);
  process.stdout.write(md + '\n');
  if (s.write) {
    updateSection(SECTION, md);
    log(`updated section "${SECTION}" of bench/RESULTS.md`);
  }
  return 0;
}

function report(
  s: Settings,
  m: Awaited<ReturnType<typeof machineInfo>>,
  wrk: Partial<Record<Target, WrkResult | string>>,
  rounds: ReadonlyArray<Partial<Record<Target, WrkResult>>>,
  latency: Latency,
  argv: string[],
): string {
  const out: string[] = [];
  const nginx = wrk.nginx;
  out.push(`Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC with \`node dist/bench/core.js${argv.length ? ' ' + argv.join(' ') : ''}\`.`);
  out.push('');
  out.push(`- Machine: ${machineLine(m)}; 1-minute load average ${m.load1} at the start.`);
  out.push(`- Load: \`wrk -t${s.threads} -c${s.connections} -d${s.duration} --latency\` on \`GET ${s.path}\` (a ${'~1 KB'} JSON answer, service time 0), after a ${s.warmup} warm-up per target${s.runs > 1 ? `; ${s.runs} rounds, each starting every target in turn (warm-up, one run, stop), and the median of its runs by requests/s per target` : ''}.`);
  out.push('- wrk, the proxy under test and the draft service (one Node process) share the same cores, so absolute figures are lower than on');
  out.push('  dedicated machines; the ratios between rows, measured in the same run, are the meaningful part. The last column is the share');
  out.push('  of the machine\'s CPU that processes outside the benchmark used meanwhile (from /proc): above ~10% a row is pessimistic.');
  out.push(`- bridge-sidecar: pass-through policy (only \`server\` and \`upstream\`), log level ${s.logLevel}${s.logLevel === 'warn' ? ' (no access log, as nginx with `access_log off`)' : ''}; upstream pool ${s.pool} connections per worker (\`max_connections_per_host\`), as nginx's keepalive 64 and the bare proxy's Pool hold, except the default-pool row (20, the policy default: fewer than wrk's ${s.connections} connections, so requests wait in the pool).`);
  out.push('- nginx: `worker_processes 1`, upstream `keepalive 64`, `proxy_http_version 1.1`, `Connection ""`, `access_log off`.');
  out.push('');
  out.push('| target | requests/s | p50 ms | p90 ms | p99 ms | max ms | errors | vs nginx 1 worker | CPU used by other processes |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const t of ['direct', 'nginx', 'bare', 'llhttp', 'sidecar1', 'sidecar1p20', 'sidecar1hp', 'sidecar2'] as Target[]) {
    const r = wrk[t];
    if (r === undefined) continue;
    if (typeof r === 'string') {
      out.push(`| ${LABEL[t]} | ${r} | | | | | | | |`);
      continue;
    }
    const ratio = typeof nginx === 'object' ? `${f2(r.requestsPerSec / nginx.requestsPerSec)}×` : 'n/a';
    out.push(`| ${LABEL[t]} | ${f0(r.requestsPerSec)} | ${f2(r.latency.p50)} | ${f2(r.latency.p90)} | ${f2(r.latency.p99)} | ${f2(r.latency.max)} | ${errorsOf(r)} | ${t === 'nginx' ? '1.00×' : ratio} | ${pct(otherCpu.get(r))} |`);
  }
  out.push('');
  const sc1 = wrk.sidecar1;
  if (typeof sc1 === 'object' && typeof nginx === 'object') {
    const ratio = sc1.requestsPerSec / nginx.requestsPerSec;
    out.push(`**Throughput ratio bridge-sidecar 1 worker / nginx 1 worker: ${f2(ratio)}×** (target ≥ 0.5×: ${ratio >= 0.5 ? 'met' : 'NOT met'}).`);
    const paired = rounds.flatMap((r) => (r.sidecar1 && r.nginx ? [r.sidecar1.requestsPerSec / r.nginx.requestsPerSec] : []));
    if (paired.length > 1) out.push('', `Round by round (the sidecar and nginx a minute apart at most): ${paired.map((x) => `${f2(x)}×`).join(', ')}; median ${f2(median(paired))}×.`);
    const bare = wrk.bare;
    if (typeof bare === 'object') out.push('', `The smallest Node proxy (bench/lib/bare-proxy.ts: no policy, metrics or logs) reads ${f2(bare.requestsPerSec / nginx.requestsPerSec)}× nginx in the same run; the sidecar is ${f2(sc1.requestsPerSec / bare.requestsPerSec)}× it.`);
    const p20 = wrk.sidecar1p20;
    if (typeof p20 === 'object') out.push('', `With the default upstream pool (20 connections per worker, fewer than wrk's ${s.connections}: the other requests wait in the pool for one), the sidecar reads ${f2(p20.requestsPerSec / nginx.requestsPerSec)}× nginx.`);
    out.push('');
  }
  if (latency.direct !== undefined || latency.sidecar1 !== undefined) {
    out.push(`Added latency at a fixed ${s.rate} requests/s (open loop, ${s.rateDurationMs / 1000} s, 32 keep-alive connections; generator: bench/lib/fixed-rate.ts).`);
    out.push('"from due" is measured from the time each request was scheduled (corrects coordinated omission, but includes the');
    out.push('generator\'s timer lateness, up to ~1 ms, in both rows); "sent" p50: from the moment it was handed to the client pool, which leaves the timer lateness out.');
    out.push('');
    out.push('| path | achieved req/s | p50 ms (sent) | p50 ms (from due) | p90 ms | p99 ms | p99.9 ms | max ms | errors | CPU used by other processes |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    const row = (name: string, r: FixedRateResult | string | undefined) => {
      if (r === undefined) return;
      if (typeof r === 'string') out.push(`| ${name} | ${r} | | | | | | | | |`);
      else out.push(`| ${name} | ${f0(r.achievedRate)} | ${f3(r.serviceLatency.p50)} | ${f3(r.latency.p50)} | ${f3(r.latency.p90)} | ${f3(r.latency.p99)} | ${f3(r.latency.p999)} | ${f2(r.latency.max)} | ${r.errors + r.badStatus} | ${pct(otherCpu.get(r))} |`);
    };
    row('direct', latency.direct);
    row('through bridge-sidecar, 1 worker', latency.sidecar1);
    row(`through ${LABEL.nginx} (reference, measured after the two above)`, latency.nginx);
    row(`through ${LABEL.llhttp}`, latency.llhttp);
    out.push('');
    if (typeof latency.direct === 'object' && typeof latency.sidecar1 === 'object') {
      const added50 = latency.sidecar1.serviceLatency.p50 - latency.direct.serviceLatency.p50;
      const added50due = latency.sidecar1.latency.p50 - latency.direct.latency.p50;
      const added99 = latency.sidecar1.latency.p99 - latency.direct.latency.p99;
      out.push(`**Added median latency: ${f3(added50)} ms** (from due: ${f3(added50due)} ms; p99 from due: ${f3(added99)} ms; target < 0.35 ms median: ${added50 < 0.35 ? 'met' : 'NOT met'}).`);
      const refs = (['nginx', 'llhttp'] as const).flatMap((k) => {
        const r = latency[k];
        return typeof r === 'object' ? [`${k === 'nginx' ? 'nginx' : 'the llhttp reference'} ${f3(r.serviceLatency.p50 - (latency.direct as FixedRateResult).serviceLatency.p50)} ms`] : [];
      });
      if (refs.length) out.push('', `The references' added median at the same rate (sent): ${refs.join(', ')}.`);
      out.push('');
    }
  }
  return out.join('\n').trimEnd();
}

if (require.main === module) {
  const onSignal = () => { void stopAll().then(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    async (err: unknown) => {
      await stopAll();
      process.stderr.write(`bench/core: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
