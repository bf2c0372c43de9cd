#!/usr/bin/env node
/**
 * Rate-limiter benchmark.
 *  1. In process: checks/s and ns per check of the real RateLimitComponent (single-process mode: the pod's
 *     lease service in the same process), for each scope alone and all three, on the admitted path (limits far
 *     above the load), on the refused path, with 10 000 distinct users, and with scope: cluster on a real
 *     redis-server.
 *  2. Through the sidecar (`serve`, 1 worker, wrk): pass-through requests/s with all three scopes on vs off,
 *     pod scope and cluster scope (Redis).
 * Prints Markdown and rewrites its section (SECTION) of bench/RESULTS.md.
 *
 *   node dist/bench/ratelimit.js [--quick] [--no-write] [--skip-http]
 */
import { parseArgs } from 'node:util';
import os from 'node:os';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SingleCoordinator } from '../lib/server/ipc';
import { WorkerMetrics } from '../lib/observe/metrics';
import { silentLogger } from '../lib/observe/logger';
import { RedisConnection } from '../lib/redis/client';
import { parsePolicy } from '../lib/policy/load';
import { RequestContext } from '../lib/core/context';
import { RateLimitComponent, RateLimitLeaseService } from '../lib/stages/ratelimit';
import type { RateLimitView } from '../lib/stages/ratelimit';
import { startRedis } from '../test/helpers/redis';
import { waitFor } from '../test/helpers/ports';
import { machineInfo, machineLine } from './lib/machine';
import { startDraftServiceProcess, startSidecar } from './lib/services';
import { runWrk } from './lib/wrk';
import { updateSection } from './results';
import { systemClock } from '../lib/core/clock';

const SECTION = 'Rate limiting (issue 3)';
const { values: args } = parseArgs({
  options: { quick: { type: 'boolean' }, 'no-write': { type: 'boolean' }, 'skip-http': { type: 'boolean' } },
});
const quick = !!args.quick;
const log = (s: string) => process.stderr.write(s + '\n');

const HIGH = `
global: { requests_per_second: 100000000, burst_size: 1000000 }
per_user: { requests_per_minute: 6000000000, burst_size: 1000000 }
per_endpoint: { /get_font_types: { rps: 100000000, burst: 1000000 } }`;

function loaded(rl: string, redisUrl?: string) {
  const indented = rl.trim().split('\n').map((l) => '  ' + l).join('\n');
  const text = `version: 1\nupstream: { url: "http://127.0.0.1:9101" }\n${redisUrl ? `redis: { url: "${redisUrl}" }\n` : ''}rate_limiting:\n${indented}\n`;
  const r = parsePolicy(text, 'bench.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.loaded;
}

function ctx(path: string, identity: string): RequestContext {
  const req = { method: 'GET', url: path, headers: {}, socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
  const c = new RequestContext(req, {} as ServerResponse, 0);
  c.identity = identity;
  return c;
}

async function measure(stage: RateLimitView, n: number, mk: (i: number) => RequestContext): Promise<{ perSec: number; ns: number; admitted: number }> {
  // contexts are built before timing: only check() is measured
  const ctxs = Array.from({ length: Math.min(n, 20_000) }, (_, i) => mk(i));
  let admitted = 0;
  for (let i = 0; i < 5000; i++) { const d = await stage.check(ctxs[i % ctxs.length]!); void d; } // warm-up
  // like a server: up to 64 checks in flight (a wave), the next wave once all of them are decided
  const t0 = process.hrtime.bigint();
  const wave: Array<Promise<unknown>> = [];
  for (let i = 0; i < n; i++) {
    const d = stage.check(ctxs[i % ctxs.length]!);
    if (d instanceof Promise) wave.push(d.then((r) => { if (r.allowed) admitted++; }));
    else if (d.allowed) admitted++;
    if ((i & 63) === 63 && wave.length) await Promise.all(wave.splice(0));
  }
  await Promise.all(wave);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  return { perSec: 1e9 / ns, ns, admitted };
}

async function inProcess(): Promise<string[]> {
  const n = quick ? 100_000 : 1_000_000;
  const rows: string[] = [];
  const run = async (label: string, rl: string, mk: (i: number) => RequestContext, redisUrl?: string, conn?: RedisConnection) => {
    const coordinator = new SingleCoordinator();
    const service = new RateLimitLeaseService(coordinator, silentLogger);
    const metrics = new WorkerMetrics(undefined, { defaultMetrics: false });
    const comp = new RateLimitComponent({ coordinator, log: silentLogger, metrics, redis: () => conn ?? null, clock: systemClock, workerIndex: null });
    const stage = comp.configure(loaded(rl, redisUrl), null)!;
    const count = label.includes('Redis') ? Math.floor(n / 5) : n;
    const r = await measure(stage, count, mk);
    rows.push(`| ${label} | ${Math.round(r.perSec).toLocaleString('en-US')} | ${r.ns.toFixed(0)} | ${((100 * r.admitted) / count).toFixed(1)} % |`);
    log(rows[rows.length - 1]!);
    await comp.close();
    await service.close();
  };
  await run('global only', 'global: { requests_per_second: 100000000, burst_size: 1000000 }', () => ctx('/x', 'h:alice'));
  await run('per_user only, 1 user', 'per_user: { requests_per_minute: 6000000000, burst_size: 1000000 }', () => ctx('/x', 'h:alice'));
  await run('per_user only, 10 000 users', 'per_user: { requests_per_minute: 6000000000, burst_size: 1000000 }', (i) => ctx('/x', 'h:u' + (i % 10_000)));
  await run('per_endpoint only', 'per_endpoint: { /get_font_types: { rps: 100000000, burst: 1000000 } }', () => ctx('/get_font_types', 'h:alice'));
  await run('all three scopes', HIGH, () => ctx('/get_font_types', 'h:alice'));
  await run('all three scopes, 10 000 users', HIGH, (i) => ctx('/get_font_types', 'h:u' + (i % 10_000)));
  await run('global, refused path (10/s limit)', 'global: { requests_per_second: 10, burst_size: 10 }', () => ctx('/x', 'h:alice'));
  const redis = await startRedis();
  try {
    const p = loaded('scope: cluster\n' + HIGH, redis.url);
    const conn = new RedisConnection(p.policy.redis!, silentLogger, 'bench');
    await waitFor('redis', () => conn.healthy, 10_000);
    await run('all three, scope cluster (Redis)', 'scope: cluster\n' + HIGH, () => ctx('/get_font_types', 'h:alice'), redis.url, conn);
    await run('all three, scope cluster (Redis), 10 000 users', 'scope: cluster\n' + HIGH, (i) => ctx('/get_font_types', 'h:u' + (i % 10_000)), redis.url, conn);
    await conn.close();
  } finally {
    await redis.stop();
  }
  return rows;
}

function median<T extends { rps: number }>(xs: T[]): T {
  return [...xs].sort((a, b) => a.rps - b.rps)[Math.floor(xs.length / 2)]!;
}

async function throughSidecar(): Promise<string[]> {
  const rows: string[] = [];
  const duration = quick ? '3s' : '10s';
  const upstream = await startDraftServiceProcess();
  const redis = await startRedis();
  try {
    const variants: Array<[string, string]> = [
      ['rate limiting off', ''],
      ['all three scopes on (pod)', `rate_limiting:\n  ${HIGH.trim().split('\n').join('\n  ')}\n`],
      ['all three scopes on (cluster, Redis)', `redis: { url: "${redis.url}" }\nrate_limiting:\n  scope: cluster\n  ${HIGH.trim().split('\n').join('\n  ')}\n`],
    ];
    // variants interleaved, several rounds, median by requests/s: the machine is shared and noisy
    const rounds = quick ? 1 : 3;
    const results = new Map<string, Array<{ rps: number; p50: number; p99: number; errs: number }>>();
    for (let round = 0; round < rounds; round++) {
      for (const [label, extra] of variants) {
        const sc = await startSidecar((p) => `version: 1
server: { listen: "127.0.0.1:${p.port}", admin_listen: "127.0.0.1:${p.adminPort}", workers: 1, log_level: warn }
upstream: { url: "${upstream.url}" }
${extra}`);
        try {
          await runWrk(sc.url + '/get_font_types', { threads: 2, connections: 50, duration: '2s' });
          const r = await runWrk(sc.url + '/get_font_types', { threads: 2, connections: 50, duration });
          const errs = r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout + r.errors.non2xx3xx;
          const list = results.get(label) ?? [];
          list.push({ rps: r.requestsPerSec, p50: r.latency.p50, p99: r.latency.p99, errs });
          results.set(label, list);
          log(`round ${round + 1} ${label}: ${Math.round(r.requestsPerSec)} req/s`);
        } finally {
          await sc.stop();
        }
      }
    }
    const base = median(results.get(variants[0]![0])!).rps;
    for (const [label] of variants) {
      const m = median(results.get(label)!);
      rows.push(`| ${label} | ${Math.round(m.rps)} | ${(m.rps / base).toFixed(2)}× | ${m.p50.toFixed(2)} | ${m.p99.toFixed(2)} | ${m.errs} |`);
    }
  } finally {
    await redis.stop();
    await upstream.stop();
  }
  return rows;
}

async function main(): Promise<void> {
  const loadAtStart = os.loadavg()[0]!;
  const machine = await machineInfo();
  const micro = await inProcess();
  const http = args['skip-http'] ? [] : await throughSidecar();
  const md = [
    `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC with \`node dist/bench/ratelimit.js${quick ? ' --quick' : ''}\`.`,
    '',
    `- Machine: ${machineLine(machine)}.`,
    '- In process: the real RateLimitComponent and the pod lease service in one process (server.workers: 0), limits far above',
    '  the load so every check is admitted (except the refused-path row), `check()` timed over many calls with up to 64 in',
    '  flight (as a server would have); the Redis rows use a',
    '  local redis-server with scope: cluster (leases taken from Redis through the Lua script).',
    '',
    '| in process | checks/s | ns per check | admitted |',
    '|---|---:|---:|---:|',
    ...micro,
    ...(http.length ? [
      '',
      `Through the sidecar (\`serve\`, 1 worker, log level warn), \`wrk -t2 -c50 -d${quick ? '3s' : '10s'}\` on \`GET /get_font_types\` after a 2 s warm-up,`,
      `the three variants interleaved over ${quick ? 1 : 3} round(s), median by requests/s; load average at start ${loadAtStart.toFixed(2)}.`,
      'Limits far above the load (nothing refused), one client address (one user).',
      'wrk, the sidecar and the draft service share the 2 cores, so compare the rows with each other, not with other machines.',
      '',
      '| sidecar | requests/s (median) | vs off | p50 ms | p99 ms | errors |',
      '|---|---:|---:|---:|---:|---:|',
      ...http,
    ] : []),
  ].join('\n');
  process.stdout.write(md + '\n');
  if (!args['no-write']) updateSection(SECTION, md);
}

main().then(() => process.exit(0), (e: unknown) => { console.error(e); process.exit(1); });
