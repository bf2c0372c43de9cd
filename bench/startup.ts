#!/usr/bin/env node
/**
 * The first seconds after a sidecar turns ready, with and without the JIT warm-up (server.jit_warmup): a fresh
 * draft service and a fresh sidecar (1 worker, the example query_script route, L1) per run; the moment the
 * admin /readyz answers 200 (nothing is sent through the proxy before), the read-heavy draft mix starts at a
 * fixed rate (the `bridge-sidecar loadtest` engine, open loop, latency from each request's due time) for 3 s,
 * then 3 s more. Target: p99 of the first 3 s ≤ 2 × p99 of the next 3 s + 1 ms.
 *
 * Reference rows, in the same rounds: the service alone; a fresh nginx proxy_cache in front of it (its cache as
 * cold as the sidecar's L1, no JIT to warm); the sidecar with the warm-up but without the cached route, so
 * the first seconds show the JIT and the connections without a cache to fill; and the sidecar after 6 s of the
 * same mix over another 1,000 drafts, so its code is hot and its connections open but the measured drafts are
 * not in L1: what filling the cache costs, without the fresh process.
 *
 *   node dist/bench/startup.js [--runs 3] [--rate 1000] [--workers 1] [--no-write] [--cold-service]
 *
 * The service and the generator are warmed first (3 s of the mix straight to the service), unless --cold-service.
 *
 * Prints Markdown and rewrites its section (SECTION) of bench/RESULTS.md.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { runPhase } from '../lib/loadtest/runner';
import { summarize } from '../lib/loadtest/histogram';
import { machineInfo, machineLine } from './lib/machine';
import type { MixEntry } from '../lib/loadtest/mix';
import { DRAFT_MIX, QUERY_SCRIPT_ROUTE, startDraftServiceProcess, startSidecar, type SidecarPorts } from './lib/services';
import { startNginxMixCache } from './lib/nginx';
import { updateSection } from './results';

const SECTION = 'Start-up: the first seconds after /readyz';
const WINDOW_MS = 3000;

function policy(upstreamUrl: string, warmup: boolean, workers: number, cached = true): (p: SidecarPorts) => string {
  return (p) => `version: 1
server:
  listen: "127.0.0.1:${p.port}"
  admin_listen: "127.0.0.1:${p.adminPort}"
  workers: ${workers}
  log_level: warn
  jit_warmup: { enabled: ${warmup} }
upstream: { url: "${upstreamUrl}" }
${cached ? `routes:
${QUERY_SCRIPT_ROUTE}
cache:
  l1: { size: 64MB }
` : ''}`;
}

interface Run { first: number; next: number; firstP50: number; nextP50: number; errors: number; readyMs: number }

/** One 3 s window of the mix (default: the draft mix) against `origin`, open loop. */
function phase(origin: string, rate: number, seqStart: number, mix: MixEntry[] = DRAFT_MIX): ReturnType<typeof runPhase> {
  return runPhase({ origin, basePath: '', mix, mode: 'open', rate, connections: 64, durationMs: WINDOW_MS, timeoutMs: 10_000, threads: 1, seqStart });
}

/** The draft mix over drafts 1,001–2,000 instead of 1–1,000: the same requests, none of them in the measured drafts' entries. */
const OTHER_DRAFTS: MixEntry[] = DRAFT_MIX.map((e) => ({ ...e, body: e.body === null ? null : e.body.replace('zipf:000001-001000', 'zipf:001001-002000') }));
if (OTHER_DRAFTS.some((e, i) => e.body === DRAFT_MIX[i]!.body)) throw new Error('bench/startup: the draft mix no longer names drafts 000001-001000');

/** The two 3 s windows against `origin`, as soon as it is called. */
async function windows(origin: string, rate: number): Promise<Omit<Run, 'readyMs'>> {
  const a = await phase(origin, rate, 0);
  const b = await phase(origin, rate, 1_000_000);
  const sa = summarize(a.tally.latency)!;
  const sb = summarize(b.tally.latency)!;
  return { first: sa.p99, next: sb.p99, firstP50: sa.p50, nextP50: sb.p50, errors: a.tally.errors + b.tally.errors };
}

/** What one run measures: the service alone, nginx proxy_cache, or the sidecar (warm-up off/on; without the cached route; after other drafts). */
type Variant = 'direct' | 'nginx' | 'nocache' | 'coldcache' | 'off' | 'on';
const VARIANTS: readonly Variant[] = ['direct', 'nginx', 'nocache', 'coldcache', 'off', 'on'];
const LABEL: Record<Variant, string> = {
  direct: 'the service alone (reference)',
  nginx: 'nginx proxy_cache, fresh (reference: a cold cache, no JIT)',
  nocache: 'on, without the cached route (the JIT, no cache to fill)',
  coldcache: 'on, after 6 s of other drafts (hot code, a cache to fill)',
  off: 'off',
  on: 'on',
};

/**
 * One run: a fresh draft service, then (but for 'direct') a fresh proxy in front of it. The service starts the
 * same way in every variant (warmed, unless `coldService`), so what the proxy adds is the difference.
 */
async function oneRun(v: Variant, rate: number, workers: number, coldService: boolean): Promise<Run> {
  // 2,000 drafts: the cold-cache row's first 6 s use the second thousand (seeded lazily: the others never touch them)
  const svc = await startDraftServiceProcess({ serviceTime: '0ms', extraArgs: ['--seed-drafts', '2000'] });
  try {
    // the figure is the proxy's first seconds: the service and this generator (its own HTTP client, in this
    // process) first run the same mix for 3 s straight to each other, so neither one's cold start is counted
    if (!coldService) await phase(svc.url, rate, 5_000_000);
    if (v === 'direct') return { ...(await windows(svc.url, rate)), readyMs: 0 };
    const t0 = performance.now();
    const proxy = v === 'nginx'
      ? await startNginxMixCache(svc.port)
      : await startSidecar(policy(svc.url, v !== 'off', workers, v !== 'nocache'), { readyPath: null });
    const readyMs = performance.now() - t0;
    try {
      if (v === 'coldcache') for (let i = 0; i < 2; i++) await phase(proxy.url, rate, 7_000_000 + i * 1_000_000, OTHER_DRAFTS);
      return { ...(await windows(proxy.url, rate)), readyMs };
    } finally {
      await proxy.stop();
    }
  } finally {
    await svc.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, rate: { type: 'string' }, workers: { type: 'string' }, 'no-write': { type: 'boolean' }, 'cold-service': { type: 'boolean' } } });
  const coldService = values['cold-service'] === true;
  const runs = Math.max(1, Number(values.runs ?? 3));
  const rate = Number(values.rate ?? 1000);
  const workers = Number(values.workers ?? 1);
  const machine = await machineInfo();
  const loadStart = loadavg().map((x) => x.toFixed(2)).join(' ');
  const got: Record<Variant, Run[]> = { direct: [], nginx: [], nocache: [], coldcache: [], off: [], on: [] };
  for (let i = 0; i < runs; i++) {
    // alternate, so every variant sees the same machine over time
    for (const v of VARIANTS) {
      const r = await oneRun(v, rate, workers, coldService);
      process.stderr.write(`[bench/startup] ${LABEL[v]}: first 3 s p99 ${r.first.toFixed(2)} ms, next 3 s p99 ${r.next.toFixed(2)} ms, ready after ${r.readyMs.toFixed(0)} ms\n`);
      got[v].push(r);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const out = [
    `Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: \`node dist/bench/startup.js${process.argv.length > 2 ? ' ' + process.argv.slice(2).join(' ') : ''}\`.`,
    '',
    `${machineLine(machine)}; load average at start ${loadStart}, at end ${loadavg().map((x) => x.toFixed(2)).join(' ')} (the machine is shared).`,
    `Per run a fresh draft service and a fresh sidecar (${workers === 0 ? 'one process, no cluster' : `${workers} worker(s)`}, the example \`query_script\` route, L1). As soon as /readyz answers 200 (nothing`,
    `sent through the proxy before), the read-heavy draft mix (90 % cached POST reads, 10 % writes, Zipf over 1,000 drafts) at ${rate} req/s, open loop,`,
    'latency from the due time (the `bridge-sidecar loadtest` engine, 64 connections): 3 s, then 3 s more. The rows alternate within each round. References: the',
    'same mix straight to the service; through a fresh nginx proxy_cache (POST /query_script cached by URI and body, its cache as cold as L1); and through the',
    'sidecar with the warm-up but no cached route (what the JIT and new connections cost without a cache to fill); and through the sidecar after 6 s of',
    'the same mix over another 1,000 drafts (its code hot, its connections open, the measured drafts not in L1: what filling the cache costs alone).',
    coldService
      ? 'Each service is fresh (`--cold-service`): what a cold upstream and the generator cost in the first seconds is in every row.'
      : 'Before each run the service and the generator run the mix for 3 s straight to each other, so the first seconds measured are the proxy\'s alone (`--cold-service` leaves them cold too).',
    '',
    '| jit_warmup (or reference) | p99 first 3 s (median) | p99 next 3 s (median) | target 2 × next + 1 ms | met | p50 first / next | runs: first / next p99 ms | ready after (s) | errors |',
    '|---|---:|---:|---:|---|---|---|---|---:|',
  ];
  for (const v of VARIANTS) {
    const rs = got[v];
    const first = median(rs.map((r) => r.first));
    const next = median(rs.map((r) => r.next));
    const target = 2 * next + 1;
    out.push(`| ${LABEL[v]} | ${first.toFixed(2)} | ${next.toFixed(2)} | ${target.toFixed(2)} | ${first <= target ? 'yes' : 'NO'} | ${median(rs.map((r) => r.firstP50)).toFixed(2)} / ${median(rs.map((r) => r.nextP50)).toFixed(2)} | ${rs.map((r) => `${r.first.toFixed(1)} / ${r.next.toFixed(1)}`).join(', ')} | ${v === 'direct' ? '-' : rs.map((r) => (r.readyMs / 1000).toFixed(1)).join(', ')} | ${rs.reduce((a, r) => a + r.errors, 0)} |`);
  }
  const md = out.join('\n');
  process.stdout.write(md + '\n');
  if (values['no-write'] !== true) updateSection(SECTION, md);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench/startup: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
