#!/usr/bin/env node
/**
 * What the status page costs the proxy: L1 cache hits and pass-through, each with the page closed and with it
 * open, in one run against one sidecar (2 workers) in front of the example draft service (service time 0).
 * "Open" is what an open page does: GET /stats once a second (each reading pulls every worker's registry over
 * IPC, as a Prometheus scrape does), here from a poller in this process, or with --browser from the real page
 * in headless Chromium. wrk -t2 -c50; the conditions are interleaved (closed, open, closed, open ...) and the
 * median of --runs is kept, so drift in the machine's load falls on both alike.
 *
 *   flock /work/bench.lock node dist/bench/status-page.js [--runs 3] [--duration 10s] [--browser] [--no-write]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { request } from 'node:http';
import { machineInfo, machineLine } from './lib/machine';
import { startDraftServiceProcess, startSidecar, type ServiceProcess, type SidecarProcess } from './lib/services';
import { runWrk, type WrkResult } from './lib/wrk';
import { updateSection } from './results';

const SECTION = 'Status page overhead (issue 22)';

type Load = 'l1' | 'pass';
const PATHS: Record<Load, string> = { l1: '/get_font_types', pass: '/get_transition_types' };
const LABEL: Record<Load, string> = { l1: 'L1 cache hits (`GET /get_font_types`)', pass: 'pass-through (`GET /get_transition_types`, no route)' };

function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const r = request(url, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`${url}: ${res.statusCode}`))));
    });
    r.on('error', reject);
    r.end();
  });
}

/** The page, open: /stats once a second, like the page's own poll. Returns its stop(), with the readings' times. */
function startPoller(adminUrl: string): { stop(): Promise<number[]> } {
  const times: number[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      times.push(await get(adminUrl + '/stats'));
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return { async stop() { stopped = true; await loop; return times; } };
}

async function startBrowser(adminUrl: string): Promise<{ stop(): Promise<number[]> }> {
  const { chromium } = await import('playwright-core');
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'bench-chromium-')), {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await ctx.newPage();
  const times: number[] = [];
  page.on('requestfinished', (r) => { if (r.url().endsWith('/stats')) times.push(r.timing().responseEnd); });
  await page.goto(adminUrl + '/');
  return { async stop() { await ctx.close(); return times; } };
}

/** CPU seconds used so far by `pid` and its children (the sidecar's primary and workers), from /proc. */
function treeCpuSeconds(pid: number): number {
  const stat = (p: string): string[] | null => {
    try {
      const t = readFileSync(`/proc/${p}/stat`, 'utf8');
      return t.slice(t.lastIndexOf(')') + 2).split(' ');
    } catch {
      return null;
    }
  };
  let ticks = 0;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const f = stat(p);
    // fields after the command: [0] state, [1] ppid, ... [11] utime, [12] stime (clock ticks, 100/s on Linux)
    if (f !== null && (Number(p) === pid || Number(f[1]) === pid)) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / 100;
}

/** CPU the idle sidecar spends over `ms` with the page closed, then open: the page's own cost, load-independent. */
async function idleCpuCost(sc: SidecarProcess, adminUrl: string, ms: number): Promise<{ closed: number; open: number; readings: number }> {
  const pid = sc.proc.child.pid!;
  const c0 = treeCpuSeconds(pid);
  await new Promise((r) => setTimeout(r, ms));
  const c1 = treeCpuSeconds(pid);
  const viewer = startPoller(adminUrl);
  await new Promise((r) => setTimeout(r, ms));
  const readings = (await viewer.stop()).length;
  const c2 = treeCpuSeconds(pid);
  return { closed: c1 - c0, open: c2 - c1, readings };
}

function policy(upstream: string) {
  return (p: { port: number; adminPort: number }) => `version: 1
server: { listen: "127.0.0.1:${p.port}", admin_listen: "127.0.0.1:${p.adminPort}", workers: 2, log_level: warn }
upstream: { url: "${upstream}" }
routes:
  - name: font_types
    match: { method: GET, path: /get_font_types }
    cache: { key: "static:font_types", ttl: 1h }
cache: { l1: { size: 64MB } }
`;
}

const median = <T>(xs: T[], by: (x: T) => number): T => [...xs].sort((a, b) => by(a) - by(b))[Math.floor(xs.length / 2)]!;
const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' }, duration: { type: 'string', default: '10s' }, warmup: { type: 'string', default: '3s' },
      connections: { type: 'string', default: '50' }, browser: { type: 'boolean', default: false }, 'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write('usage: flock /work/bench.lock node dist/bench/status-page.js [--runs N] [--duration 10s] [--warmup 3s] [--connections 50] [--browser] [--no-write]\n');
    return;
  }
  const runs = Number(values.runs);
  const opener = values.browser ? 'the page in headless Chromium' : 'a poller of /stats every second';
  const command = `flock /work/bench.lock node dist/bench/status-page.js --runs ${runs} --duration ${values.duration}${values.browser ? ' --browser' : ''}`;
  const machine = await machineInfo();
  const loadBefore = loadavg().map((x) => x.toFixed(2)).join(', ');
  let svc: ServiceProcess | null = null;
  let sc: SidecarProcess | null = null;
  const results: Record<string, WrkResult[]> = {};
  const pollTimes: number[] = [];
  let idle: { closed: number; open: number; readings: number } | null = null;
  try {
    svc = await startDraftServiceProcess();
    sc = await startSidecar(policy(svc.url), { timeoutMs: 60_000 });
    for (const load of ['l1', 'pass'] as Load[]) {
      const url = sc.url + PATHS[load];
      await runWrk(url, { threads: 2, connections: Number(values.connections), duration: values.warmup }); // warm-up (and fills L1)
      for (let i = 0; i < runs; i++) {
        for (const open of [false, true]) {
          const viewer = open ? (values.browser ? await startBrowser(sc.adminUrl) : startPoller(sc.adminUrl)) : null;
          if (viewer) await new Promise((r) => setTimeout(r, 1500)); // the page is up and polling
          const r = await runWrk(url, { threads: 2, connections: Number(values.connections), duration: values.duration });
          if (viewer) pollTimes.push(...(await viewer.stop()));
          (results[`${load}:${open}`] ??= []).push(r);
          process.stderr.write(`${load} ${open ? 'open ' : 'closed'} run ${i + 1}: ${fmt(r.requestsPerSec)} req/s, p99 ${r.latency.p99} ms\n`);
        }
      }
    }
    idle = await idleCpuCost(sc, sc.adminUrl, 20_000);
  } finally {
    await sc?.stop();
    await svc?.stop();
  }
  const loadAfter = loadavg().map((x) => x.toFixed(2)).join(', ');
  const lines = [
    `Command: \`${command}\` (${new Date().toISOString().slice(0, 16)}Z). ${machineLine(machine)}.`,
    `Load average (1, 5, 15 min) before: ${loadBefore}; after: ${loadAfter} (a shared 2-core machine: the absolute figures are noisy; the closed/open pairs ran interleaved, back to back).`,
    '',
    `One sidecar (2 workers) in front of the example draft service (service time 0), \`wrk -t2 -c${values.connections} -d${values.duration}\`, median of ${runs} run(s) by requests/s. "Open": ${opener}.`,
    '',
    '| load | page | requests/s | p50 ms | p99 ms | change in requests/s |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const load of ['l1', 'pass'] as Load[]) {
    const closed = median(results[`${load}:false`]!, (r) => r.requestsPerSec);
    const open = median(results[`${load}:true`]!, (r) => r.requestsPerSec);
    lines.push(`| ${LABEL[load]} | closed | ${fmt(closed.requestsPerSec)} | ${closed.latency.p50} | ${closed.latency.p99} | |`);
    lines.push(`| ${LABEL[load]} | open | ${fmt(open.requestsPerSec)} | ${open.latency.p50} | ${open.latency.p99} | ${fmt(((open.requestsPerSec - closed.requestsPerSec) / closed.requestsPerSec) * 100, 1)} % |`);
  }
  const sorted = [...pollTimes].sort((a, b) => a - b);
  if (sorted.length > 0) lines.push('', `\`GET /stats\` under that load: ${sorted.length} readings, median ${fmt(sorted[Math.floor(sorted.length / 2)]!, 1)} ms, max ${fmt(sorted[sorted.length - 1]!, 1)} ms.`);
  if (idle !== null) {
    lines.push('', `CPU of the idle sidecar (primary + 2 workers, utime + stime from /proc, which the machine's load does not inflate) over 20 s: ${fmt(idle.closed, 2)} s with the page closed, ${fmt(idle.open, 2)} s with it open (${idle.readings} readings): ${fmt(((idle.open - idle.closed) / Math.max(1, idle.readings)) * 1000, 1)} ms of CPU per reading, ${fmt(((idle.open - idle.closed) / 20) * 100, 2)} % of one core at one reading a second.`);
  }
  const md = lines.join('\n');
  process.stdout.write(md + '\n');
  if (!values['no-write']) updateSection(SECTION, md);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
