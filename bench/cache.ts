#!/usr/bin/env node
/**
 * Cache benchmark (issue 5), all in one run on this machine:
 *
 * 1. Hit throughput and latency (wrk, default -t2 -c50 -d10s, GET) for a 2 KB and a 10 KB body, every
 *    request a hit: bridge-sidecar (1 worker) from L1, from L2 (redis-server) and from L3 (disk), next to
 *    nginx proxy_cache (1 worker) and Varnish (varnishd, malloc storage) caching the same origin.
 * 2. The example draft service under a read-heavy mix at a fixed rate (open loop, latency from the due time):
 *    90 % POST /query_script reads of 1,000 drafts (Zipf, s = 1.0), 10 % POST /mcp/add_text writes, at
 *    1,000 requests/s, direct and through the sidecar (L1 + L3, the example route): p50/p95/p99 and how many
 *    requests reached the service.
 *
 * Prints Markdown and rewrites the section "Cache (issue 5)" of bench/RESULTS.md.
 *
 *   node dist/bench/cache.js [--quick] [--runs 3] [--only mix] [--mix-no-l3] [--duration 10s] [--rate 1000] [--rate-duration 20s] [--no-write]
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
import { Pool } from 'undici';
import { runWrk, type WrkResult } from './lib/wrk';
import { freePort, startProcess, waitForHttp, type Proc } from './lib/proc';
import { NGINX } from './lib/nginx';
import { machineInfo, machineLine } from './lib/machine';
import { startDraftServiceProcess, startSidecar, type SidecarProcess } from './lib/services';
import { startRedis, type RedisInstance } from '../test/helpers/redis';
import { updateSection } from './results';

const SECTION = 'Cache (issue 5)';
const VARNISHD = process.env.VARNISHD ?? '/usr/sbin/varnishd';

interface Settings { duration: string; warmup: string; rate: number; rateDurationMs: number; write: boolean; quick: boolean; runs: number; only: string | null; mixL3: boolean }

function settings(): Settings {
  const { values } = parseArgs({ options: {
    quick: { type: 'boolean' }, duration: { type: 'string' }, runs: { type: 'string' }, only: { type: 'string' }, 'mix-no-l3': { type: 'boolean' }, rate: { type: 'string' }, 'rate-duration': { type: 'string' }, 'no-write': { type: 'boolean' },
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
    only: values.only === undefined ? null : values.only === 'mix' ? 'mix' : usage(`--only takes "mix", not ${values.only}`),
    mixL3: values['mix-no-l3'] !== true,
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
  server.keepAliveTimeout = 75_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return { port, url: `http://127.0.0.1:${port}`, count: () => n, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
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
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      proxy_cache_lock on;
      add_header Cache-Status $upstream_cache_status;
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const proc = startProcess('nginx', NGINX, ['-c', join(dir, 'nginx.conf'), '-p', dir, '-e', join(dir, 'error.log')]);
  try {
    await waitForHttp(`http://127.0.0.1:${port}/health`, { proc, timeoutMs: 15_000 });
  } catch (e) {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { url: `http://127.0.0.1:${port}`, async stop() { await proc.stop(); rmSync(dir, { recursive: true, force: true }); } };
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

function sidecarCachePolicy(originUrl: string, tiers: string, redis: string, workers = 1) {
  return (p: { port: number; adminPort: number }) => `version: 1
server: { listen: "127.0.0.1:${p.port}", admin_listen: "127.0.0.1:${p.adminPort}", workers: ${workers}, log_level: warn }
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

/** Zipf(s) over 1..n by inverse CDF on a precomputed table. */
function zipfSampler(n: number, s: number, rand: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 1; k <= n; k++) { sum += 1 / k ** s; cdf[k - 1] = sum; }
  for (let k = 0; k < n; k++) cdf[k] /= sum;
  return () => {
    const u = rand();
    let lo = 0, hi = n - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (cdf[mid] < u) lo = mid + 1; else hi = mid; }
    return lo + 1;
  };
}

function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >> 17; x ^= x << 5; x >>>= 0; return x / 0x100000000; };
}

interface MixResult { sent: number; ok: number; errors: number; p50: number; p95: number; p99: number; max: number; achieved: number }

async function runMix(origin: string, rate: number, durationMs: number, warmupMs: number): Promise<MixResult> {
  const pool = new Pool(origin, { connections: 64, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const phase = async (ms: number, seed: number): Promise<MixResult> => {
    const rand = rng(seed);
    const zipf = zipfSampler(1000, 1.0, rand);
    const total = Math.round((rate * ms) / 1000);
    const lat = new Float64Array(total).fill(NaN);
    let errors = 0, ok = 0, done = 0;
    const t0 = performance.now() + 5;
    await new Promise<void>((resolve) => {
      let issued = 0;
      const tick = () => {
        const now = performance.now();
        while (issued < total && t0 + (issued * 1000) / rate <= now) {
          const i = issued++;
          const due = t0 + (i * 1000) / rate;
          const id = 'dft_' + String(zipf()).padStart(6, '0');
          const write = rand() < 0.1;
          const path = write ? '/mcp/add_text' : '/query_script';
          const body = write ? JSON.stringify({ draft_id: id, text: 'hello', start: 0, end: 1 }) : JSON.stringify({ draft_id: id, force_update: false });
          pool.request({ origin, path, method: 'POST', body, headers: { 'content-type': 'application/json' } })
            .then(async (r) => { await r.body.arrayBuffer(); if (r.statusCode < 400) ok++; else errors++; })
            .catch(() => { errors++; })
            .finally(() => { lat[i] = performance.now() - due; if (++done === total) resolve(); });
        }
        if (issued < total) setTimeout(tick, Math.max(0, t0 + (issued * 1000) / rate - performance.now() - 0.5));
      };
      tick();
    });
    const sorted = lat.filter((v) => !Number.isNaN(v)).sort();
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
    return { sent: total, ok, errors, p50: pct(50), p95: pct(95), p99: pct(99), max: sorted[sorted.length - 1], achieved: total / (ms / 1000) };
  };
  try {
    if (warmupMs > 0) await phase(warmupMs, 7);
    return await phase(durationMs, 42);
  } finally {
    await pool.close();
  }
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

    type Row = { target: string; size: string; r: WrkResult | null; note?: string };
    const rows: Row[] = [];
    const doHits = s.only !== 'mix';
    const measure = async (target: string, base: string) => {
      for (const size of ['2k', '10k']) {
        const url = `${base}/body/${size}`;
        await fetch(url).then((r) => r.arrayBuffer()); // fill
        await new Promise((r) => setTimeout(r, 300)); // let write-behind reach L2/L3
        await fetch(url).then((r) => r.arrayBuffer());
        await runWrk(url, { threads: 2, connections: 50, duration: s.warmup });
        const runs: WrkResult[] = [];
        for (let i = 0; i < s.runs; i++) runs.push(await runWrk(url, { threads: 2, connections: 50, duration: s.duration, timeout: '5s' }));
        runs.sort((a, b) => a.requestsPerSec - b.requestsPerSec);
        const r = runs[Math.floor(runs.length / 2)]; // the median run by requests/s
        log(`${target} ${size}: ${runs.map((x) => x.requestsPerSec.toFixed(0)).join(' / ')} req/s (median ${r.requestsPerSec.toFixed(0)}), p99 ${r.latency.p99} ms`);
        rows.push({ target, size, r });
      }
    };

    // sidecar tiers, one at a time so each row measures that tier
    let redis: RedisInstance | null = null;
    if (doHits) try { redis = await startRedis(); cleanups.push(() => redis!.stop()); } catch (e) { log('redis-server unavailable: ' + String(e)); }
    const l3dir = mkdtempSync(join(tmpdir(), 'bench-l3-'));
    cleanups.push(async () => rmSync(l3dir, { recursive: true, force: true }));
    const tierSetups: Array<[string, string, string]> = [
      ['bridge-sidecar L1 (1 worker)', '  l1: { size: 64MB }', ''],
      ['bridge-sidecar L3 disk (1 worker)', `  l3: { path: "${l3dir}", size: 256MB }`, ''],
    ];
    if (redis) tierSetups.push(['bridge-sidecar L2 redis (1 worker)', '  l2: { ttl: 1h }', `redis: { url: "${redis.url}", command_timeout: 100ms }`]);
    if (!doHits) tierSetups.length = 0;
    for (const [name, tiers, redisSection] of tierSetups) {
      const sc: SidecarProcess = await startSidecar(sidecarCachePolicy(origin.url, tiers, redisSection), { readyPath: '/body/2k' });
      try { await measure(name, sc.url); } finally { await sc.stop(); }
    }
    if (!doHits) { /* hit rows skipped (--only mix) */ } else if (have(NGINX)) {
      const ng = await startNginxCache(origin.port);
      try { await measure('nginx proxy_cache (1 worker)', ng.url); } finally { await ng.stop(); }
    } else rows.push({ target: 'nginx proxy_cache', size: '-', r: null, note: 'nginx not installed' });
    if (doHits) try {
      const v = await startVarnish(origin.port);
      try { await measure('Varnish (malloc, default threads)', v.url); } finally { await v.stop(); }
    } catch (e) {
      rows.push({ target: 'Varnish', size: '-', r: null, note: 'varnishd unavailable: ' + String(e).split('\n')[0] });
    }
    // the ceiling of any Node server on this machine: node:http answering from a Map, one process
    if (doHits) {
      const port = await freePort();
      const script = `const b=new Map([['/body/2k',Buffer.alloc(2048,'a')],['/body/10k',Buffer.alloc(10240,'b')],['/health',Buffer.from('ok')]]);` +
        `require('http').createServer((q,s)=>{const x=b.get(q.url);s.writeHead(x?200:404,{'content-type':'application/json','content-length':x?x.length:0});s.end(x);}).listen(${port},'127.0.0.1')`;
      const proc = startProcess('node-map', process.execPath, ['-e', script]);
      try {
        await waitForHttp(`http://127.0.0.1:${port}/health`, { proc, timeoutMs: 15_000 });
        await measure('node:http from a Map (reference, 1 process)', `http://127.0.0.1:${port}`);
      } finally { await proc.stop(); }
    }
    const nginxRate = (size: string) => rows.find((r) => r.target.startsWith('nginx') && r.size === size)?.r?.requestsPerSec;
    const nginx2k = nginxRate('2k');
    const originHits = origin.count();

    // read-heavy mix
    const svc = await startDraftServiceProcess({ serviceTime: '0ms' });
    cleanups.push(() => svc.stop());
    const mixDir = mkdtempSync(join(tmpdir(), 'bench-mix-l3-'));
    cleanups.push(async () => rmSync(mixDir, { recursive: true, force: true }));
    const warm = s.quick ? 1000 : 3000;
    const before0 = await serviceRequests(svc.url);
    const direct = await runMix(svc.url, s.rate, s.rateDurationMs, warm);
    const directUp = (await serviceRequests(svc.url)) - before0;
    log(`mix direct: p50 ${direct.p50.toFixed(2)} p95 ${direct.p95.toFixed(2)} p99 ${direct.p99.toFixed(2)} ms`);
    const mixPolicy = (p: { port: number; adminPort: number }) => `version: 1
server: { listen: "127.0.0.1:${p.port}", admin_listen: "127.0.0.1:${p.adminPort}", workers: 1, log_level: warn }
upstream: { url: "${svc.url}" }
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m, store_if: { "response.success": true } }
cache:
  l1: { size: 64MB }
${s.mixL3 ? `  l3: { path: "${mixDir}", size: 256MB }` : ''}
`;
    const sc = await startSidecar(mixPolicy);
    cleanups.push(() => sc.stop());
    const before1 = await serviceRequests(svc.url);
    const via = await runMix(sc.url, s.rate, s.rateDurationMs, warm);
    const viaUp = (await serviceRequests(svc.url)) - before1;
    log(`mix sidecar: p50 ${via.p50.toFixed(2)} p95 ${via.p95.toFixed(2)} p99 ${via.p99.toFixed(2)} ms`);

    // report
    lines.push(`Run: ${new Date().toISOString()} on ${machineLine(machine)}; load average at start ${loadStart}, at end ${loadavg().map((x) => x.toFixed(1)).join(' ')} (other work shares these 2 cores: compare rows of the same run only). wrk -t2 -c50 -d${s.duration} (after a ${s.warmup} warm-up), median of ${s.runs} run(s) by requests/s, every request a cache hit of a GET; origin answers \`cache-control: public, max-age=3600\`. Varnish: varnishd ${spawnSync(VARNISHD, ['-V'], { encoding: 'utf8' }).stderr.split('\n')[0].replace(/^varnishd /, '')}.`, '');
    lines.push('| cache | body | requests/s | p50 ms | p99 ms | vs nginx (same body) |', '|---|---|---:|---:|---:|---:|');
    for (const row of rows) {
      if (!row.r) { lines.push(`| ${row.target} | - | ${row.note} | | | |`); continue; }
      const ng = nginxRate(row.size);
      const ratio = ng ? (row.r.requestsPerSec / ng).toFixed(2) + '×' : '-';
      lines.push(`| ${row.target} | ${row.size === '2k' ? '2 KB' : '10 KB'} | ${row.r.requestsPerSec.toFixed(0)} | ${row.r.latency.p50.toFixed(2)} | ${row.r.latency.p99.toFixed(2)} | ${ratio} |`);
    }
    lines.push('', `Origin requests during the hit runs: ${originHits} (fills only).`, '');
    lines.push(`Read-heavy mix: example draft service (service time 0), ${s.rate} requests/s open loop for ${s.rateDurationMs / 1000} s after a ${warm / 1000} s warm-up; 90 % \`POST /query_script\` of 1,000 drafts (Zipf s=1), 10 % \`POST /mcp/add_text\`; latency from each request's due time. Sidecar: 1 worker, ${s.mixL3 ? 'L1 + L3' : 'L1 only'}, the example \`query_script\` route (no invalidation wired in this run).`, '');
    lines.push('| target | p50 ms | p95 ms | p99 ms | max ms | errors | requests reaching the service |', '|---|---:|---:|---:|---:|---:|---:|');
    for (const [name, r, up] of [['direct', direct, directUp], ['through bridge-sidecar', via, viaUp]] as const) {
      lines.push(`| ${name} | ${r.p50.toFixed(2)} | ${r.p95.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(1)} | ${r.errors} | ${up} of ${r.sent + Math.round((s.rate * warm) / 1000)} |`);
    }
    const l1 = rows.find((r) => r.target.includes('L1') && r.size === '2k')?.r?.requestsPerSec;
    const nodeMap = rows.find((r) => r.target.startsWith('node:http') && r.size === '2k')?.r?.requestsPerSec;
    if (l1 && nodeMap) lines.push('', `L1 hits (2 KB) run at ${(l1 / nodeMap).toFixed(2)}× a bare node:http server answering from a Map on this machine (the ceiling of a Node process).`);
    lines.push('', `Targets: L1 hits ≥ 0.6× nginx proxy_cache: ${l1 && nginx2k ? `${(l1 / nginx2k).toFixed(2)}× ${l1 / nginx2k >= 0.6 ? '✅' : '❌'}` : 'n/a'}; read-heavy p99 < 5 ms through the sidecar: ${via.p99.toFixed(2)} ms ${via.p99 < 5 ? '✅' : '❌'}.`);
    const md = lines.join('\n');
    process.stdout.write(md + '\n');
    if (s.write) updateSection(SECTION, md);
  } finally {
    await cleanup();
  }
}

main().catch((e: unknown) => { process.stderr.write(String(e instanceof Error ? e.stack : e) + '\n'); process.exit(1); });
