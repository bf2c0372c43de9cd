#!/usr/bin/env node
/**
 * What a proxy's CPU per request does as the request rate falls. Issue 23's CPU figure is taken at the real
 * service's pace (~100 requests/s, each waiting ~20 ms on Python); the core bench's at tens of thousands a second.
 * This bench puts each proxy in front of the same stand-in (examples/draft-service, `--service-time 20ms`,
 * keep-alive) and sends it `POST /add_text` (a write: with the example's policy it raises `draft_updated`) at
 * fixed rates, and divides the proxy's CPU (its whole process tree, from /proc) by the answers:
 *
 * - bridge-sidecar with examples/demo-policy.yaml (the real-service bench's policy), 1 worker;
 * - bridge-sidecar with no routes (pass-through only), 1 worker;
 * - the smallest Node proxy (bench/lib/bare-proxy.ts: node:http + undici, no policy);
 * - nginx, 1 worker, upstream keep-alive.
 *
 *   node dist/bench/rate-cpu.js [--rates 100,300,1000,2000] [--seconds 8] [--no-write]
 *
 * Each proxy is started once, warmed (3 s at the highest rate), then measured at each rate, lowest first.
 * Prints Markdown and rewrites its section of bench/RESULTS.md.
 */
import { rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { treeCpuSeconds } from './lib/cpu';
import { runFixedRate } from './lib/fixed-rate';
import { machineInfo, machineLine } from './lib/machine';
import { startNginx } from './lib/nginx';
import { demoPolicy, passThroughPolicy, startReferenceProxy, startDraftServiceProcess, startSidecar, type SidecarPorts } from './lib/services';
import { updateSection } from './results';

const SECTION = 'Proxy CPU per request by request rate (issue 23)';
const { values: args } = parseArgs({
  options: { rates: { type: 'string' }, seconds: { type: 'string' }, 'no-write': { type: 'boolean' } },
});
const RATES = (args.rates ?? '100,300,1000,2000').split(',').map(Number);
const SECONDS = Number(args.seconds ?? 8);
const SERVICE_TIME = '20ms';
const log = (s: string) => process.stderr.write(s + '\n');

/** The sidecar's disk cache: its own, removed after its pass. */
const l3Dir = (port: number) => join(tmpdir(), `bench-rate-cpu-l3-${port}`);

/**
 * The example's routes, limits and cache (what bench/real-service.ts runs), 1 worker. The limits stay on the path
 * (checked for every request) but far above this bench's rates: one client without an identity sends them all,
 * and a refusal costs the proxy less than a pass would.
 */
function examplePolicy(upstreamUrl: string): (p: SidecarPorts) => string {
  return demoPolicy(upstreamUrl, {
    workers: 1, l3Path: l3Dir,
    edit(doc) {
      doc.setIn(['rate_limiting', 'global', 'requests_per_second'], 1_000_000);
      doc.setIn(['rate_limiting', 'global', 'burst_size'], 100_000);
      doc.setIn(['rate_limiting', 'per_user', 'requests_per_minute'], 60_000_000);
      doc.setIn(['rate_limiting', 'per_user', 'burst_size'], 1_000_000);
    },
  });
}

interface Target {
  name: string;
  start(upstreamUrl: string): Promise<{ url: string; pid: number; stop(): Promise<void> }>;
}

/** The sidecar with `policy`, its disk cache removed when it stops. */
function sidecarTarget(name: string, policy: (upstreamUrl: string) => (p: SidecarPorts) => string): Target {
  return {
    name,
    async start(u) {
      const s = await startSidecar(policy(u), { timeoutMs: 90_000 });
      return {
        url: s.url, pid: s.proc.child.pid!,
        async stop() {
          await s.stop();
          rmSync(l3Dir(s.port), { recursive: true, force: true });
        },
      };
    },
  };
}

const TARGETS: Target[] = [
  sidecarTarget('sidecar, example policy', examplePolicy),
  sidecarTarget('sidecar, no routes', (u) => passThroughPolicy(u, 1)),
  { name: 'bare Node proxy', start: (u) => startReferenceProxy(u, 'bare-proxy') },
  {
    name: 'nginx',
    async start(u) {
      const n = await startNginx({ upstreamPort: Number(new URL(u).port), workers: 1 });
      return { url: n.url, pid: n.pid, stop: () => n.stop() };
    },
  },
];

const BODY = JSON.stringify({ draft_id: 'dfd_cat_rate_cpu', text: 'caption', start: 0, end: 1 });

/** Enough connections for the requests in flight at `rate` with the service's 20 ms, and no more. */
const connectionsFor = (rate: number) => Math.max(4, Math.ceil(rate * 0.02 * 3));

async function measure(url: string, pid: number, rate: number, seconds: number): Promise<{ usPerReq: number; achieved: number; p50: number; errors: number }> {
  const before = treeCpuSeconds(pid);
  const r = await runFixedRate({ url: `${url}/add_text`, rate, durationMs: seconds * 1000, method: 'POST', body: BODY, connections: connectionsFor(rate) });
  const cpu = treeCpuSeconds(pid) - before;
  const answered = r.sent - r.errors;
  return { usPerReq: (cpu * 1e6) / Math.max(1, answered), achieved: r.achievedRate, p50: r.serviceLatency.p50, errors: r.errors + r.badStatus };
}

async function main(): Promise<void> {
  const machine = await machineInfo();
  const started = new Date().toISOString();
  const load0 = loadavg();
  const svc = await startDraftServiceProcess({ serviceTime: SERVICE_TIME });
  const table = new Map<string, Map<number, Awaited<ReturnType<typeof measure>>>>();
  try {
    for (const t of TARGETS) {
      log(`${t.name}: starting`);
      const p = await t.start(svc.url);
      try {
        const top = Math.max(...RATES);
        await runFixedRate({ url: `${p.url}/add_text`, rate: top, durationMs: 3000, method: 'POST', body: BODY, connections: connectionsFor(top) });
        const row = new Map<number, Awaited<ReturnType<typeof measure>>>();
        for (const rate of [...RATES].sort((a, b) => a - b)) {
          const m = await measure(p.url, p.pid, rate, SECONDS);
          log(`${t.name} at ${rate}/s: ${m.usPerReq.toFixed(0)} µs of CPU per request (answered ${m.achieved.toFixed(0)}/s, p50 ${m.p50.toFixed(1)} ms, ${m.errors} errors)`);
          row.set(rate, m);
        }
        table.set(t.name, row);
      } finally {
        await p.stop();
      }
    }
  } finally {
    await svc.stop();
  }

  const rates = [...RATES].sort((a, b) => a - b);
  const cell = (name: string, rate: number) => table.get(name)?.get(rate);
  const lines = [
    `Command: \`npm run build && flock /work/bench.lock node dist/bench/rate-cpu.js --rates ${RATES.join(',')} --seconds ${SECONDS}\``,
    `(${started}; load average before ${load0.map((x) => x.toFixed(2)).join(' ')}; ${machineLine(machine)}). Each proxy in front of`,
    `the stand-in (examples/draft-service, --service-time ${SERVICE_TIME}, keep-alive), \`POST /add_text\` at fixed rates for ${SECONDS} s each (lowest`,
    'first, after 3 s at the highest); CPU of the proxy\'s process tree from /proc divided by the answers. µs of CPU per request:',
    '',
    `| proxy | ${rates.map((r) => `${r}/s`).join(' | ')} |`,
    `|---|${rates.map(() => '---:').join('|')}|`,
    ...TARGETS.map((t) => `| ${t.name} | ${rates.map((r) => { const c = cell(t.name, r); return c ? `${c.usPerReq.toFixed(0)}${c.errors ? ` (${c.errors} errors)` : ''}` : '-'; }).join(' | ')} |`),
    '',
    `| ratio | ${rates.map((r) => `${r}/s`).join(' | ')} |`,
    `|---|${rates.map(() => '---:').join('|')}|`,
    ...[['sidecar, example policy', 'bare Node proxy'], ['sidecar, no routes', 'bare Node proxy'], ['sidecar, example policy', 'nginx'], ['bare Node proxy', 'nginx']].map(([a, b]) =>
      `| ${a} / ${b} | ${rates.map((r) => { const x = cell(a!, r); const y = cell(b!, r); return x && y ? `${(x.usPerReq / y.usPerReq).toFixed(2)}x` : '-'; }).join(' | ')} |`),
    '',
    `- CPU per request at the lowest rate against the highest: ${TARGETS.map((t) => { const lo = cell(t.name, rates[0]!); const hi = cell(t.name, rates[rates.length - 1]!); return lo && hi ? `${t.name} ${(lo.usPerReq / hi.usPerReq).toFixed(1)}x` : null; }).filter(Boolean).join(', ')}.`,
  ];
  const md = lines.join('\n');
  process.stdout.write(md + '\n');
  if (!args['no-write']) updateSection(SECTION, md);
}

main().then(() => process.exit(0), (e: unknown) => {
  log(e instanceof Error ? e.stack ?? e.message : String(e));
  process.exit(1);
});
