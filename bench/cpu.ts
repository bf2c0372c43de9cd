#!/usr/bin/env node
/**
 * CPU per request of the three paths every pod pays most for, in one run on this machine:
 *   pass-through (GET /get_font_types, no routes), an L1 cache hit (GET, cached route) and a cached POST read
 *   (POST /query_script, a route matching on the JSON body, answered from L1);
 * for each upstream leg given with --legs (the sidecar's BRIDGE_SIDECAR_UPSTREAM_LEG), with wrk -t2 -c50.
 * CPU is utime+stime of the sidecar's process tree (/proc) over the measured run, divided by the requests:
 * steadier than requests/s on a shared machine. With --profile DIR it runs each case once more under
 * `node --cpu-prof` and writes, per case, the top self-time functions (.md), folded stacks (.folded) and a
 * flame graph (.svg) into DIR (small files; the raw .cpuprofile stays in a temporary directory).
 *
 *   node dist/bench/cpu.js [--legs undici,http-proxy] [--duration 8s] [--runs 3] [--profile bench/profiles]
 *                          [--label before] [--no-write]
 *
 * Prints Markdown and rewrites its section (SECTION) of bench/RESULTS.md.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { treeCpuSeconds } from './lib/cpu';
import { flameSvg, folded, loadProfile, topSelf } from './lib/cpuprofile';
import { machineInfo, machineLine } from './lib/machine';
import { QUERY_SCRIPT_ROUTE, passThroughPolicy, startDraftServiceProcess, startSidecar, type SidecarPorts } from './lib/services';
import { runWrk, writeWrkScript, type WrkResult } from './lib/wrk';
import { updateSection } from './results';

const SECTION = 'CPU per request';

type PathName = 'pass-through' | 'L1 hit' | 'cached POST read';
const PATHS: PathName[] = ['pass-through', 'L1 hit', 'cached POST read'];
const QUERY = '{"draft_id":"dft_000001","force_update":false}';

function cachePolicy(upstreamUrl: string): (p: SidecarPorts) => string {
  return (p) => `version: 1
server: { listen: "127.0.0.1:${p.port}", admin_listen: "127.0.0.1:${p.adminPort}", workers: 1, log_level: warn }
upstream: { url: "${upstreamUrl}" }
routes:
  - name: fonts
    match: { method: GET, path: /get_font_types }
    cache: { key: "fonts", ttl: 1h }
${QUERY_SCRIPT_ROUTE}
cache:
  l1: { size: 64MB }
`;
}

interface Case { leg: string; path: PathName; runs: Array<{ wrk: WrkResult; cpuUs: number }>; median: { wrk: WrkResult; cpuUs: number } }

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    legs: { type: 'string' }, duration: { type: 'string' }, runs: { type: 'string' }, profile: { type: 'string' },
    label: { type: 'string' }, 'no-write': { type: 'boolean' }, only: { type: 'string' },
  } });
  const legs = (values.legs ?? 'default').split(',').map((s) => s.trim()).filter(Boolean);
  const duration = values.duration ?? '8s';
  const runs = Math.max(1, Number(values.runs ?? 3));
  const only = values.only ? new Set(values.only.split(',')) : null;
  const paths = PATHS.filter((p) => only === null || only.has(p));
  const log = (m: string) => process.stderr.write(`[bench/cpu] ${m}\n`);
  const machine = await machineInfo();
  const loadStart = loadavg().map((x) => x.toFixed(2)).join(' ');
  const svc = await startDraftServiceProcess({ serviceTime: '0ms' });
  const post = writeWrkScript({ method: 'POST', body: QUERY });
  const cases: Case[] = [];
  try {
    for (const leg of legs) {
      const env = leg === 'default' ? {} : { BRIDGE_SIDECAR_UPSTREAM_LEG: leg };
      for (const path of paths) {
        const policy = path === 'pass-through' ? passThroughPolicy(svc.url, 1) : cachePolicy(svc.url);
        const wrkOpts = { threads: 2, connections: 50, script: path === 'cached POST read' ? post.file : undefined };
        const url = svc.url.replace(/:\d+$/, '') + ':PORT' + (path === 'cached POST read' ? '/query_script' : '/get_font_types');
        const got: Case['runs'] = [];
        const sc = await startSidecar(policy, { env });
        try {
          const target = url.replace('PORT', String(sc.port));
          await runWrk(target, { ...wrkOpts, duration: '2s' }); // warm-up (and the cache fill)
          for (let i = 0; i < runs; i++) {
            const c0 = treeCpuSeconds(sc.proc.child.pid!);
            const wrk = await runWrk(target, { ...wrkOpts, duration });
            const cpuUs = ((treeCpuSeconds(sc.proc.child.pid!) - c0) * 1e6) / Math.max(1, wrk.requests);
            const errs = wrk.errors.connect + wrk.errors.read + wrk.errors.write + wrk.errors.timeout + wrk.errors.non2xx3xx;
            log(`${leg} / ${path}: ${wrk.requestsPerSec.toFixed(0)} req/s, ${cpuUs.toFixed(1)} µs CPU/request, p99 ${wrk.latency.p99} ms, ${errs} errors`);
            got.push({ wrk, cpuUs });
          }
        } finally {
          await sc.stop();
        }
        const sorted = [...got].sort((a, b) => a.cpuUs - b.cpuUs);
        cases.push({ leg, path, runs: got, median: sorted[Math.floor(sorted.length / 2)]! });
        if (values.profile) await profileCase(values.profile, values.label ?? leg, leg, path, policy, env, url, wrkOpts, log);
      }
    }
  } finally {
    post.cleanup();
    await svc.stop();
  }
  const md = report(cases, machineLine(machine), loadStart, duration, runs, values.label ?? null);
  process.stdout.write(md + '\n');
  if (values['no-write'] !== true) updateSection(SECTION + (values.label ? ` (${values.label})` : ''), md);
}

/** The case once more under node --cpu-prof; the worker's profile (the largest file) is summarised into dir. */
async function profileCase(dir: string, label: string, leg: string, path: PathName, policy: (p: SidecarPorts) => string,
  env: NodeJS.ProcessEnv, url: string, wrkOpts: { threads: number; connections: number; script?: string }, log: (m: string) => void): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'bench-cpu-prof-'));
  try {
    const sc = await startSidecar(policy, { env, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${tmp}`] });
    try {
      const u = url.replace('PORT', String(sc.port));
      await runWrk(u, { ...wrkOpts, duration: '2s' });
      await runWrk(u, { ...wrkOpts, duration: '5s' });
    } finally {
      await sc.stop();
    }
    const files = readdirSync(tmp).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(tmp, f));
    if (files.length === 0) { log(`no profile written for ${leg} / ${path}`); return; }
    const biggest = files.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    const tree = loadProfile(biggest);
    const name = `${label}-${leg}-${path.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`;
    const title = `bridge-sidecar worker, ${path}, leg ${leg} (${label}), wrk -t2 -c50 -d5s`;
    writeFileSync(join(dir, `${name}.md`), `# ${title}\n\nTop self time (of ${tree.total} samples):\n\n${topSelf(tree)}\n`);
    writeFileSync(join(dir, `${name}.folded`), folded(tree));
    writeFileSync(join(dir, `${name}.svg`), flameSvg(tree, title));
    log(`profile: ${join(dir, name)}.{md,folded,svg}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function report(cases: Case[], machine: string, loadStart: string, duration: string, runs: number, label: string | null): string {
  const out = [
    `Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: \`node dist/bench/cpu.js${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}\`${label ? ` (${label})` : ''}.`,
    '',
    `${machine}; load average at start ${loadStart}, at end ${loadavg().map((x) => x.toFixed(2)).join(' ')} (the machine is shared).`,
    `wrk -t2 -c50 -d${duration} after a 2 s warm-up, median of ${runs} run(s) by CPU; sidecar 1 worker, log level warn. CPU = utime+stime of the`,
    'sidecar\'s process tree (primary + worker) over the run / requests answered.',
    '',
    '| leg | path | CPU µs/request | requests/s | p50 ms | p99 ms | runs (µs/request) |',
    '|---|---|---:|---:|---:|---:|---|',
  ];
  for (const c of cases) {
    const m = c.median;
    out.push(`| ${c.leg} | ${c.path} | ${m.cpuUs.toFixed(1)} | ${m.wrk.requestsPerSec.toFixed(0)} | ${m.wrk.latency.p50.toFixed(2)} | ${m.wrk.latency.p99.toFixed(2)} | ${c.runs.map((r) => r.cpuUs.toFixed(1)).join(' / ')} |`);
  }
  return out.join('\n');
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench/cpu: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
