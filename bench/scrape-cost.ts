#!/usr/bin/env node
/**
 * What one /metrics scrape costs a worker's event loop. A scrape (Prometheus, every 15 s or so) and the status
 * page's reading (every 5 s, lib/status/history.ts) both ask every worker for its whole registry over IPC, and the
 * worker answers on its request thread: while it collects, requests wait. This bench scrapes an idle sidecar
 * (1 worker, pass-through in front of the stand-in) many times and divides the CPU of the worker and of the primary (/proc) by the scrapes;
 * the reference is a bare node:http process serving only prom-client's default metrics, scraped the same way.
 *
 *   node dist/bench/scrape-cost.js [--scrapes 400] [--runs 3] [--no-write]
 *
 * Prints Markdown and rewrites its section of bench/RESULTS.md.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { treeCpu } from './lib/cpu';
import { machineInfo, machineLine } from './lib/machine';
import { median } from './lib/stats';
import { startProcess, freePort } from './lib/proc';
import { BUILD_ROOT, passThroughPolicy, startDraftServiceProcess, startSidecar } from './lib/services';
import { updateSection } from './results';

const SECTION = 'Metrics scrape cost';
const { values: args } = parseArgs({ options: { scrapes: { type: 'string' }, runs: { type: 'string' }, 'no-write': { type: 'boolean' } } });
const SCRAPES = Number(args.scrapes ?? 400);
const RUNS = Number(args.runs ?? 3);
const WARM = 50;
const log = (s: string) => process.stderr.write(s + '\n');

async function scrape(url: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await request(url);
    if (r.statusCode !== 200) throw new Error(`${url}: ${r.statusCode}`);
    await r.body.text();
  }
}

/** ms of CPU per scrape for each process of the tree under `pid` (named by `role`), median over `RUNS`. */
async function measure(url: string, pid: number, role: (p: number) => string): Promise<Map<string, number>> {
  await scrape(url, WARM);
  const runs: Array<Map<string, number>> = [];
  for (let r = 0; r < RUNS; r++) {
    const a = treeCpu(pid).processes;
    await scrape(url, SCRAPES);
    const b = treeCpu(pid).processes;
    const row = new Map<string, number>();
    for (const [p, x] of b) row.set(role(p), ((x.seconds - (a.get(p)?.seconds ?? 0)) * 1000) / SCRAPES);
    runs.push(row);
  }
  const out = new Map<string, number>();
  for (const k of runs[0]!.keys()) out.set(k, median(runs.map((m) => m.get(k) ?? 0)));
  return out;
}

async function main(): Promise<void> {
  const machine = await machineInfo();
  const started = new Date().toISOString();
  const load0 = loadavg();
  const rows: Array<[string, Map<string, number>]> = [];

  const svc = await startDraftServiceProcess({ serviceTime: '0ms' });
  try {
    const sc = await startSidecar(passThroughPolicy(svc.url, 1));
    try {
      const primary = sc.proc.child.pid!;
      rows.push(['bridge-sidecar (1 worker), `GET /metrics` on the admin port', await measure(`${sc.adminUrl}/metrics`, primary, (p) => (p === primary ? 'primary' : 'worker'))]);
    } finally {
      await sc.stop();
    }
  } finally {
    await svc.stop();
  }

  const port = await freePort();
  const ref = startProcess('prom-client-defaults', process.execPath, [join(BUILD_ROOT, 'bench', 'lib', 'prom-defaults-server.js'), String(port)]);
  try {
    await ref.waitForLine('listening', 15_000);
    rows.push(['reference: node:http serving prom-client\'s default metrics only', await measure(`http://127.0.0.1:${port}/metrics`, ref.child.pid!, () => 'process')]);
  } finally {
    await ref.stop();
  }

  const ms = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(2));
  const lines = [
    `Command: \`npm run build && flock /work/bench.lock node dist/bench/scrape-cost.js --scrapes ${SCRAPES} --runs ${RUNS}\``,
    `(${started}; load average before ${load0.map((x) => x.toFixed(2)).join(' ')}; ${machineLine(machine)}).`,
    `An idle process scraped ${SCRAPES} times in a row (after ${WARM}), ms of CPU per scrape from /proc (utime + stime), median of ${RUNS}:`,
    'the worker\'s share is time its event loop could not serve requests.',
    '',
    '| target | worker (or the process) | primary |',
    '|---|---:|---:|',
    ...rows.map(([name, m]) => `| ${name} | ${ms(m.get('worker') ?? m.get('process'))} | ${ms(m.get('primary'))} |`),
  ];
  const md = lines.join('\n');
  process.stdout.write(md + '\n');
  if (!args['no-write']) updateSection(SECTION, md);
  log('done');
}

main().then(() => process.exit(0), (e: unknown) => {
  log(e instanceof Error ? e.stack ?? e.message : String(e));
  process.exit(1);
});
