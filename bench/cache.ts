#!/usr/bin/env node
/**
 * Cache benchmark, all in one run on this machine:
 *
 * 1. Hit throughput and latency (wrk, default -t2 -c50 -d10s, GET; the targets in interleaved rounds, each
 *    round starting, warming, measuring and stopping every one) for a 2 KB and a 10 KB body, every
 *    request a hit: bridge-sidecar (1 worker) from L1, from L2 (redis-server) and from L3 (disk), next to
 *    nginx proxy_cache (1 worker) and Varnish (varnishd, malloc storage) caching the same origin.
 * 2. The example draft service under a read-heavy mix at a fixed rate (the loadtest engine: open loop, latency
 *    from the due time): 90 % POST /query_script reads, 10 % POST /add_text writes, over 1,000 drafts
 *    (Zipf, s = 1.0), at 1,000 requests/s: against a from-memory server (the generator's floor), direct,
 *    through nginx proxy_cache and through the sidecar (L1 + L3, the example route), each with a fresh
 *    service: p50/p95/p99 (reads, writes), the warm-up's p99 and how many requests reached the service.
 *
 * Prints Markdown and rewrites its section (SECTION) of bench/RESULTS.md.
 *
 *   node dist/bench/cache.js [--quick] [--runs 3] [--mix-runs 3] [--only mix|hits] [--mix-no-l3] [--duration 10s]
 *                            [--rate 1000] [--rate-duration 20s] [--no-write] [--workers 1,2]
 *
 * Needs nginx, wrk, redis-server and varnishd (Debian: apt-get install -y nginx wrk redis-server varnish);
 * a missing one is reported and its rows skipped. Every process it starts is stopped before it exits.
 */
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import { runPhase } from '../lib/loadtest/runner';
import { summarize, type Histogram, type LatencySummary } from '../lib/loadtest/histogram';
import { runWrk, type WrkResult } from './lib/wrk';
import { freePort, startProcess, waitForHttp, type Proc } from './lib/proc';
import { NGINX, keepAliveProxyPass, runNginx, startNginxMixCache } from './lib/nginx';
import { machineInfo, machineLine } from './lib/machine';
import { DRAFT_MIX as MIX, QUERY_SCRIPT_ROUTE, startDraftServiceProcess, startSidecar } from './lib/services';
import { startRedis, type RedisInstance } from '../test/helpers/redis';
import { updateSection } from './results';
import { median, medianBy } from './lib/stats';

const SECTION = 'Cache (issue 5)';
const VARNISHD = process.env.VARNISHD ?? '/usr/sbin/varnishd';

interface Settings { duration: string; warmup: string; rate: number; rateDurationMs: number; mixWarmupMs: number; mixRuns: number; write: boolean; quick: boolean; runs: number; only: 'mix' | 'hits' | null; mixL3: boolean; workers: number[] }

function settings(): Settings {
  const { values } = parseArgs({ options: {
    quick: { type: 'boolean' }, duration: { type: 'string' }, runs: { type: 'string' }, 'mix-runs': { type: 'string' }, only: { type: 'string' }, 'mix-no-l3': { type: 'boolean' }, rate: { type: 'string' }, 'rate-duration': { type: 'string' }, 'no-write': { type: 'boolean' }, workers: { type: 'string' },
  } });
  const quick = values.quick === true;
  return {
    quick,
    duration: values.duration ?? (quick ? '3s' : '10s'),
    warmup: quick ? '1s' : '2s',
    rate: Number(values.rate ?? 1000),
    rateDurationMs: (Number((values['rate-duration'] ?? (quick ? '5s' : '20s')).replace(/s$/, '')) || 20) * 1000,
    write: values['no-write'] !== true,
    runs: Math.max(1, Number(values.runs ?? (quick ? 1 : 3))),
    mixWarmupMs: quick ? 1000 : 3000,
    mixRuns: Math.max(1, Number(values['mix-runs'] ?? (quick ? 1 : 3))),
    only: values.only === undefined ? null : values.only === 'mix' || values.only === 'hits' ? values.only : usage(`--only takes "mix" or "hits", not ${values.only}`),
    mixL3: values['mix-no-l3'] !== true,
    workers: (values.workers ?? '1').split(',').map(Number).filter((n) => Number.isInteger(n) && n >= 1),
  };
}

function usage(msg: string): never {
  process.stderr.write(msg + '\n');
  process.exit(2);
}

function have(cmd: string): boolean {
  return spawnSync(cmd, ['-v'], { encoding: 'utf8' }).error === undefined;
}

// ---- origin: fixed bodies, cacheable for an hour -------------------------------------------------------

async function startOrigin(): Promise<{ port: number; url: string; count(): number; close(): Promise<void> }> {
  const bodies = new Map<string, Buffer>([['/body/2k', Buffer.alloc(2048, 'a')], ['/body/10k', Buffer.alloc(10240, 'b')]]);
  let n = 0;
  const server = http.createServer((req, res) => {
    n++;
    const b = bodies.get(req.url ?? '') ?? (req.url === '/health' ? Buffer.from('ok') : null);
    if (b === null) { res.writeHead(404, { 'content-length': '0' }); res.end(); return; }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(b.length), 'cache-control': 'public, max-age=3600' });
    res.end(b);
  });
  return { ...(await serveLocal(server)), count: () => n };
}

/** Listen on a free loopback port with long keep-alive (as the bench's clients expect); close() drops clients. */
async function serveLocal(server: http.Server): Promise<{ port: number; url: string; close(): Promise<void> }> {
  server.keepAliveTimeout = 75_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return { port, url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

// ---- reference caches ------------------------------------------------------------------------------------

async function startNginxCache(originPort: number): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-cache-'));
  chmodSync(dir, 0o777); // nginx workers (user nobody when started as root) write the cache files here
  const port = await freePort();
  const conf = `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  keepalive_requests 100000;
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=bench:16m max_size=256m inactive=1h;
  upstream origin { server 127.0.0.1:${originPort}; keepalive 16; }
  server {
    listen 127.0.0.1:${port};
    location / {
${keepAliveProxyPass('origin')}      proxy_cache bench;
      proxy_cache_lock on;
      add_header Cache-Status $upstream_cache_status;
    }
  }
}
`;
  return runNginx(dir, port, conf, '/health'); // the hits origin serves /health and the bodies, not the draft paths
}

async function startVarnish(originPort: number): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-varnish-'));
  chmodSync(dir, 0o777); // varnishd compiles its VCL as its own unprivileged user inside this dir
  const port = await freePort();
  const proc: Proc = startProcess('varnishd', VARNISHD, ['-F', '-a', `127.0.0.1:${port}`, '-b', `127.0.0.1:${originPort}`, '-n', dir, '-s', 'malloc,256m']);
  try {
    await waitForHttp(`http://127.0.0.1:${port}/health`, { proc, timeoutMs: 30_000 });
  } catch (e) {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { url: `http://127.0.0.1:${port}`, async stop() { await proc.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

/** varnishd's version line, or that it is not installed (its rows are then skipped with a note). */
function varnishVersion(): string {
  const r = spawnSync(VARNISHD, ['-V'], { encoding: 'utf8' });
  return r.error !== undefined || typeof r.stderr !== 'string' ? 'not installed' : `varnishd ${r.stderr.split('\n')[0]!.replace(/^varnishd /, '')}`;
}

function sidecarCachePolicy(originUrl: string, tiers: string, redis: string, serverExtra = '') {
  return (p: { port: number; adminPort: number }) => `version: 1
server: { listen: "127.0.0.1:${p.port}", admin_listen: "127.0.0.1:${p.adminPort}", workers: 1, log_level: warn${serverExtra} }
upstream: { url: "${originUrl}" }
${redis}
routes:
  - name: body
    match: { method: GET, path: "/body/{size}" }
    params: { size: path.size }
    cache: { key: "bench:{size}", ttl: 1h }
cache:
${tiers}
`;
}

// ---- fixed-rate read-heavy mix --------------------------------------------------------------------------

interface MixResult { all: LatencySummary; read: LatencySummary; write: LatencySummary; sent: number; errors: number; achieved: number; warmup: LatencySummary }

async function runMix(url: string, rate: number, durationMs: number, warmupMs: number, betweenPhases: () => Promise<void>): Promise<MixResult> {
  const phase = (ms: number, seqStart: number) => runPhase({
    origin: url, basePath: '', mix: MIX, mode: 'open', rate, connections: 64, durationMs: ms, timeoutMs: 10_000, threads: 1, seqStart,
  });
  const warm = await phase(warmupMs, 0);
  await betweenPhases();
  const { tally, windowMs } = await phase(durationMs, 1_000_000);
  const sum = (h: Histogram) => summarize(h) ?? { count: 0, min: NaN, mean: NaN, p50: NaN, p90: NaN, p95: NaN, p99: NaN, p999: NaN, max: NaN };
  return {
    all: sum(tally.latency), read: sum(tally.entryLatency[0]), write: sum(tally.entryLatency[1]), warmup: sum(warm.tally.latency),
    sent: tally.sent, errors: tally.errors, achieved: tally.inWindow / (windowMs / 1000),
  };
}

/** A node:http server answering every mix call at once from memory: what the generator itself reads on this machine. */
async function startFloorServer(): Promise<{ url: string; close(): Promise<void> }> {
  const body = Buffer.from(JSON.stringify({ success: true, output: { text: 'x'.repeat(5200) } }));
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) }); res.end(body); });
  });
  return serveLocal(server);
}

interface MixRow { target: string; runs: MixResult[]; median: MixResult; upstream: number }
interface MixSetup { url: string; up(): Promise<number>; stop(): Promise<void> }

/** One run of the mix against one target, with a fresh draft service. */
async function mixRun(s: Settings, target: string, setup: (svc: { url: string; port: number }) => Promise<MixSetup>): Promise<{ r: MixResult; up: number }> {
  const svc = await startDraftServiceProcess({ serviceTime: '0ms' });
  try {
    const t = await setup(svc);
    try {
      // the warm-up fills the caches; the service's count is read between the two phases
      let before = NaN;
      const r = await runMix(t.url, s.rate, s.rateDurationMs, s.mixWarmupMs, async () => { before = await t.up(); });
      const up = (await t.up()) - before;
      process.stderr.write(`mix ${target}: p50 ${r.all.p50} p99 ${r.all.p99} (reads ${r.read.p99}, writes ${r.write.p99}) ms, warm-up p99 ${r.warmup.p99} ms\n`);
      return { r, up };
    } finally {
      await t.stop();
    }
  } finally {
    await svc.stop();
  }
}

/**
 * s.mixRuns runs of every target in interleaved rounds (round i runs each target once, in turn), so a slow spell
 * of the machine lands on all the targets of a round; per target the median run by p99.
 */
async function mixTargets(s: Settings, targets: ReadonlyArray<{ name: string; setup: (svc: { url: string; port: number }) => Promise<MixSetup> }>): Promise<MixRow[]> {
  const runs = new Map<string, { r: MixResult; up: number }[]>(targets.map((t) => [t.name, []]));
  for (let i = 0; i < s.mixRuns; i++) for (const t of targets) runs.get(t.name)!.push(await mixRun(s, t.name, t.setup));
  return targets.map(({ name }) => {
    const mine = runs.get(name)!;
    const mid = medianBy(mine, (x) => x.r.all.p99);
    return { target: name, runs: mine.map((x) => x.r), median: mid.r, upstream: mid.up };
  });
}

function mixPolicy(serviceUrl: string, l3Dir: string | null, workers = 1) {
  return (p: { port: number; adminPort: number }) => `version: 1
server: { listen: "127.0.0.1:${p.port}", admin_listen: "127.0.0.1:${p.adminPort}", workers: ${workers}, log_level: warn }
upstream: { url: "${serviceUrl}" }
routes:
${QUERY_SCRIPT_ROUTE}
cache:
  l1: { size: 64MB }
${l3Dir === null ? '' : `  l3: { path: "${l3Dir}", size: 256MB }`}
`;
}

async function serviceRequests(url: string): Promise<number> {
  const r = await fetch(url + '/__stats');
  return ((await r.json()) as { requests: number }).requests;
}

// ---- main -------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const s = settings();
  const cleanups: Array<() => Promise<void>> = [];
  const cleanup = async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); cleanups.length = 0; };
  process.once('SIGINT', () => { void cleanup().then(() => process.exit(130)); });
  const lines: string[] = [];
  const log = (m: string) => process.stderr.write(m + '\n');
  try {
    const machine = await machineInfo();
    const loadStart = loadavg().map((x) => x.toFixed(1)).join(' ');
    const origin = await startOrigin();
    cleanups.push(() => origin.close());

    type Row = { target: string; size: string; r: WrkResult | null; note?: string; perRound?: WrkResult[] };
    const rows: Row[] = [];
    const doHits = s.only !== 'mix';
    // One hit target: started fresh for each round, its two bodies measured, stopped.
    type Started = { url: string; stop(): Promise<void> };
    /** `optional`: a target that may not be installed here; a failed start is reported as a row, not thrown. */
    type HitTarget = { name: string; start(): Promise<Started>; optional?: { row: string; why: string } };
    const measureOnce = async (base: string): Promise<Map<string, WrkResult>> => {
      const out = new Map<string, WrkResult>();
      for (const size of ['2k', '10k']) {
        const url = `${base}/body/${size}`;
        await fetch(url).then((r) => r.arrayBuffer()); // fill
        await new Promise((r) => setTimeout(r, 300)); // let write-behind reach L2/L3
        await fetch(url).then((r) => r.arrayBuffer());
        await runWrk(url, { threads: 2, connections: 50, duration: s.warmup });
        out.set(size, await runWrk(url, { threads: 2, connections: 50, duration: s.duration, timeout: '5s' }));
      }
      return out;
    };

    // sidecar tiers, one at a time so each row measures that tier
    let redis: RedisInstance | null = null;
    if (doHits) try { redis = await startRedis(); cleanups.push(() => redis!.stop()); } catch (e) { log('redis-server unavailable: ' + String(e)); }
    const l3dir = mkdtempSync(join(tmpdir(), 'bench-l3-'));
    cleanups.push(async () => rmSync(l3dir, { recursive: true, force: true }));
    // The JIT warm-up (on by default) trains the request path on every kind of request the policy has, so a load of
    // nothing but hits runs on code less specialised to hits; the second row shows that cost in the same run (after
    // mixed traffic it is gone: bench/RESULTS.md)
    type TierSetup = { name: string; tiers: string; redis?: string; server?: string };
    const tierSetups: TierSetup[] = [
      { name: 'bridge-sidecar L1 (1 worker)', tiers: '  l1: { size: 64MB }' },
      { name: 'bridge-sidecar L1 (1 worker, jit_warmup off)', tiers: '  l1: { size: 64MB }', server: ', jit_warmup: { enabled: false }' },
      { name: 'bridge-sidecar L3 disk (1 worker)', tiers: `  l3: { path: "${l3dir}", size: 256MB }` },
    ];
    if (redis) tierSetups.push({ name: 'bridge-sidecar L2 redis (1 worker)', tiers: '  l2: { ttl: 1h }', redis: `redis: { url: "${redis.url}", command_timeout: 100ms }` });
    const targets: HitTarget[] = [];
    if (doHits) {
      for (const { name, tiers, redis: redisSection = '', server = '' } of tierSetups) {
        targets.push({ name, start: () => startSidecar(sidecarCachePolicy(origin.url, tiers, redisSection, server), { readyPath: '/body/2k' }) });
      }
      if (have(NGINX)) targets.push({ name: 'nginx proxy_cache (1 worker)', start: () => startNginxCache(origin.port) });
      else rows.push({ target: 'nginx proxy_cache', size: '-', r: null, note: 'nginx not installed' });
      targets.push({ name: 'Varnish (malloc, default threads)', start: () => startVarnish(origin.port), optional: { row: 'Varnish', why: 'varnishd unavailable' } });
      // the ceiling of any Node server on this machine: node:http answering from a Map, one process
      targets.push({ name: 'node:http from a Map (reference, 1 process)', start: async () => {
        const port = await freePort();
        const script = `const b=new Map([['/body/2k',Buffer.alloc(2048,'a')],['/body/10k',Buffer.alloc(10240,'b')],['/health',Buffer.from('ok')]]);` +
          `require('http').createServer((q,s)=>{const x=b.get(q.url);s.writeHead(x?200:404,{'content-type':'application/json','content-length':x?x.length:0});s.end(x);}).listen(${port},'127.0.0.1')`;
        const proc = startProcess('node-map', process.execPath, ['-e', script]);
        try { await waitForHttp(`http://127.0.0.1:${port}/health`, { proc, timeoutMs: 15_000 }); } catch (e) { await proc.stop(); throw e; }
        return { url: `http://127.0.0.1:${port}`, stop: () => proc.stop() };
      } });
    }
    // Interleaved rounds, as in bench/core.ts: in each round every target is started, warmed, measured once per
    // body and stopped, so a slow spell of this shared machine lands on every target of a round, not on one row.
    const measured = new Map<string, Map<string, WrkResult[]>>();
    const unavailable = new Map<string, string>(); // optional target's row -> why (reported after the measured rows)
    for (let round = 0; round < s.runs; round++) {
      for (const t of targets) {
        if (t.optional !== undefined && unavailable.has(t.optional.row)) continue;
        let started: Started;
        try { started = await t.start(); } catch (e) {
          if (t.optional === undefined) throw e;
          unavailable.set(t.optional.row, `${t.optional.why}: ${String(e).split('\n')[0]}`);
          continue;
        }
        try {
          const bySize = measured.get(t.name) ?? new Map<string, WrkResult[]>();
          measured.set(t.name, bySize);
          for (const [size, r] of await measureOnce(started.url)) {
            bySize.set(size, [...(bySize.get(size) ?? []), r]);
            log(`round ${round + 1} ${t.name} ${size}: ${r.requestsPerSec.toFixed(0)} req/s, p99 ${r.latency.p99} ms`);
          }
        } finally { await started.stop(); }
      }
    }
    for (const [target, bySize] of measured) {
      for (const [size, runs] of bySize) {
        rows.push({ target, size, r: medianBy(runs, (r) => r.requestsPerSec), perRound: runs });
      }
    }
    for (const [target, note] of unavailable) rows.push({ target, size: '-', r: null, note });
    const nginxRate = (size: string) => rows.find((r) => r.target.startsWith('nginx') && r.size === size)?.r?.requestsPerSec;
    const nginx2k = nginxRate('2k');
    const originHits = origin.count();

    // read-heavy mix: every target gets a fresh draft service, since writes grow the drafts (and reads of a big
    // draft cost the service more), so each run starts from the same state
    const mixRows: MixRow[] = [];
    if (s.only === null || s.only === 'mix') {
      const floor = await startFloorServer();
      try {
        type MixTarget = Parameters<typeof mixTargets>[1][number];
        const mixTargetList: MixTarget[] = [
          { name: 'generator floor: node:http answering from memory', setup: async () => ({ url: floor.url, up: () => Promise.resolve(NaN), stop: async () => {} }) },
          { name: 'direct (no proxy)', setup: async (svc) => ({ url: svc.url, up: () => serviceRequests(svc.url), stop: async () => {} }) },
        ];
        if (have(NGINX)) {
          mixTargetList.push({ name: 'nginx proxy_cache (1 worker; POST cached by URI + body)', setup: async (svc) => {
            const ng = await startNginxMixCache(svc.port);
            return { url: ng.url, up: () => serviceRequests(svc.url), stop: () => ng.stop() };
          } });
        }
        for (const workers of s.workers) {
          const mixLabel = `bridge-sidecar (${workers} worker${workers === 1 ? '' : 's'}, ${s.mixL3 ? 'L1 + L3' : 'L1'})`;
          mixTargetList.push({ name: mixLabel, setup: async (svc) => {
            const mixDir = mkdtempSync(join(tmpdir(), 'bench-mix-l3-'));
            const sc = await startSidecar(mixPolicy(svc.url, s.mixL3 ? mixDir : null, workers));
            return { url: sc.url, up: () => serviceRequests(svc.url), stop: async () => {
              // the pod's L1 (summed over its workers by /metrics), for the one-cache-per-pod comparison
              await new Promise((r) => setTimeout(r, 5500)); // the gauge is sampled every 5 s
              const m = await fetch(sc.adminUrl + '/metrics').then((r) => r.text()).catch(() => '');
              const l1 = /bridge_sidecar_cache_size_bytes\{layer="l1"\} (\d+)/.exec(m)?.[1];
              log(`${mixLabel}: pod L1 ${l1 === undefined ? 'unknown' : (Number(l1) / 1024 / 1024).toFixed(1) + ' MiB'}`);
              await sc.stop();
              rmSync(mixDir, { recursive: true, force: true });
            } };
          } });
        }
        mixRows.push(...await mixTargets(s, mixTargetList));
      } finally { await floor.close(); }
    }

    // report
    lines.push(`Command: \`node dist/bench/cache.js${process.argv.slice(2).map((x) => ' ' + x).join('')}\` (\`npm run build\` first).`, '');
    lines.push(`Run: ${new Date().toISOString()} on ${machineLine(machine)}; load average at start ${loadStart}, at end ${loadavg().map((x) => x.toFixed(1)).join(' ')} (other work shares these 2 cores: compare rows of the same run only). wrk -t2 -c50 -d${s.duration} in ${s.runs} interleaved round(s): each round starts every target fresh, warms it for ${s.warmup} and measures it once (as bench/core.ts does); the median round by requests/s; every request a cache hit of a GET; origin answers \`cache-control: public, max-age=3600\`. Varnish: ${varnishVersion()}.`, '');
    lines.push('| cache | body | requests/s | p50 ms | p99 ms | vs nginx (same body) | rounds, requests/s |', '|---|---|---:|---:|---:|---:|---|');
    for (const row of rows) {
      if (!row.r) { lines.push(`| ${row.target} | - | ${row.note} | | | | |`); continue; }
      const ng = nginxRate(row.size);
      const ratio = ng ? (row.r.requestsPerSec / ng).toFixed(2) + '×' : '-';
      lines.push(`| ${row.target} | ${row.size === '2k' ? '2 KB' : '10 KB'} | ${row.r.requestsPerSec.toFixed(0)} | ${row.r.latency.p50.toFixed(2)} | ${row.r.latency.p99.toFixed(2)} | ${ratio} | ${(row.perRound ?? []).map((x) => x.requestsPerSec.toFixed(0)).join(' / ')} |`);
    }
    lines.push('', `Origin requests during the hit runs: ${originHits} (fills only).`, '');
    if (mixRows.length > 0) {
      lines.push(`Read-heavy mix: the example draft service (service time 0), ${s.rate} requests/s open loop (the \`bridge-sidecar loadtest\` engine, 64 connections, latency from each request's due time) for ${s.rateDurationMs / 1000} s after a ${s.mixWarmupMs / 1000} s warm-up; 90 % \`POST /query_script\` reads, 10 % \`POST /add_text\` writes, both over 1,000 drafts Zipf-distributed (s = 1); a fresh service for each target and run; the targets run in ${s.mixRuns} interleaved round(s) (each round runs every target once, in turn); median run by p99. The sidecar runs the example \`query_script\` route (5 min TTL, \`store_if\`; no invalidation wired in this run). The first row is the same generator against a server that answers from memory: the floor the measuring tool itself reads here.`, '');
      lines.push('| target | p50 ms | p95 ms | p99 ms | max ms | reads p99 | writes p99 | warm-up p99 | errors | requests reaching the service | runs\' p99 |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
      for (const row of mixRows) {
        const r = row.median;
        const up = Number.isNaN(row.upstream) ? '-' : `${row.upstream} of ${r.sent}`;
        lines.push(`| ${row.target} | ${r.all.p50.toFixed(2)} | ${r.all.p95.toFixed(2)} | ${r.all.p99.toFixed(2)} | ${r.all.max.toFixed(1)} | ${r.read.p99.toFixed(2)} | ${r.write.p99.toFixed(2)} | ${r.warmup.p99.toFixed(1)} | ${r.errors} | ${up} | ${row.runs.map((x) => x.all.p99.toFixed(2)).join(' / ')} |`);
      }
      lines.push('', 'Requests reaching the service are counted over the measured window only (the warm-up filled the cache).', '');
    }
    const l1Rate = (size: string) => rows.find((r) => r.target === 'bridge-sidecar L1 (1 worker)' && r.size === size)?.r?.requestsPerSec;
    const l1 = l1Rate('2k');
    const nodeMap = rows.find((r) => r.target.startsWith('node:http') && r.size === '2k')?.r?.requestsPerSec;
    const viaP99 = mixRows.find((r) => r.target.startsWith('bridge-sidecar'))?.median.all.p99;
    if (l1 && nodeMap) lines.push('', `L1 hits (2 KB) run at ${(l1 / nodeMap).toFixed(2)}× a bare node:http server answering from a Map on this machine (the ceiling of a Node process).`);
    const ratio = (a: number | undefined, b: number | undefined) => (a && b ? `${(a / b).toFixed(2)}× ${a / b >= 0.75 ? '✅' : '❌'}` : 'n/a');
    // each round's own ratio: the two targets measured minutes apart at most, under the same spell of the machine
    const roundRatios = (size: string) => {
      const a = rows.find((r) => r.target === 'bridge-sidecar L1 (1 worker)' && r.size === size)?.perRound;
      const b = rows.find((r) => r.target.startsWith('nginx') && r.size === size)?.perRound;
      if (!a || !b) return 'n/a';
      const each = a.map((x, i) => (b[i] ? x.requestsPerSec / b[i]!.requestsPerSec : NaN)).filter((x) => !Number.isNaN(x));
      return `${each.map((x) => x.toFixed(2) + '×').join(' / ')} (median ${median(each).toFixed(2)}×)`;
    };
    if (l1 && nginx2k) lines.push('', `L1 vs nginx proxy_cache by round: 2 KB ${roundRatios('2k')}; 10 KB ${roundRatios('10k')}.`);
    lines.push('', `Targets: L1 hits ≥ 0.75× nginx proxy_cache (issue 19): 2 KB ${ratio(l1, nginx2k)}, 10 KB ${ratio(l1Rate('10k'), nginxRate('10k'))}; read-heavy p99 < 5 ms through the sidecar: ${viaP99 === undefined ? 'n/a' : `${viaP99.toFixed(2)} ms ${viaP99 < 5 ? '✅' : '❌'}`}.`);
    const md = lines.join('\n');
    process.stdout.write(md + '\n');
    if (s.write) updateSection(SECTION, md);
  } finally {
    await cleanup();
  }
}

main().catch((e: unknown) => { process.stderr.write(String(e instanceof Error ? e.stack : e) + '\n'); process.exit(1); });
