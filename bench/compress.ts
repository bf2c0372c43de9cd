#!/usr/bin/env node
/**
 * Compression benchmark. In one run, with wrk and bench/compress.lua (POST /query_script for drafts
 * dft_000001..dft_000100 in turn, 10-20 KB of JSON each, `Accept-Encoding: gzip`), against the example draft
 * service (service time 0):
 *   (0) bridge-sidecar, 1 worker, no compression section: the pass-through cost, for reference
 *   (a) bridge-sidecar, 1 worker, gzip level 6, threshold 1KB, uncached
 *   (b) bridge-sidecar, 1 worker, same compression, L1 cache on the query_script route (hits serve the stored
 *       gzip variant: no upstream call, no compression)
 *   (c) nginx, 1 worker, gzip on, gzip_comp_level 6, gzip_min_length 1024, gzip_types application/json, uncached
 *   (d) nginx, same, with proxy_cache of the POST (nginx stores identity and gzips again on every hit)
 * For each: requests/s, latency, and CPU per request of the proxy (its whole process tree: utime+stime from
 * /proc/PID/stat of the primary and its workers, before/after the measured run, divided by the requests) and of
 * the upstream. Each target is checked first: the answer is gzip, and for the cached ones a repeat is a hit.
 * Prints a Markdown table and rewrites its section (SECTION) of bench/RESULTS.md.
 *
 *   node dist/bench/compress.js              full run (~2 min)
 *   node dist/bench/compress.js --quick      3 s per measurement
 *   node dist/bench/compress.js --help       all flags
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { treeCpuSeconds } from './lib/cpu';
import { request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createGzip, gunzipSync, gzipSync } from 'node:zlib';
import { machineInfo, machineLine, waitForQuiet } from './lib/machine';
import { NGINX, keepAliveProxyPass, nginxPreamble } from './lib/nginx';
import { freePort, startProcess, waitForHttp } from './lib/proc';
import { startDraftServiceProcess, startSidecar, type ServiceProcess, type SidecarPorts } from './lib/services';
import { runWrk, type WrkResult } from './lib/wrk';
import { repoRoot, updateSection } from './results';
import { GzipMember } from '../lib/stages/compress/gzip-pool';

const SECTION = 'Compression (issue 7)';

const HELP = `usage: node dist/bench/compress.js [options]
  --quick               3s measurements, 1s warm-ups
  --threads N           wrk threads (default 2)
  --connections N       wrk connections (default 50)
  --duration D          wrk duration per target (default 10s)
  --warmup D            wrk warm-up per target, not recorded; also fills the caches (default 3s)
  --only LIST           comma list of sidecar-plain,sidecar,sidecar-cached,nginx,nginx-cached (default all)
  --wait-quiet SECONDS  wait up to this long for load average < 1.5 before starting (default 120)
  --no-write            print only; do not update bench/RESULTS.md`;

type Target = 'sidecar-plain' | 'sidecar' | 'sidecar-cached' | 'nginx' | 'nginx-cached';
const TARGETS: Target[] = ['sidecar-plain', 'sidecar', 'sidecar-cached', 'nginx', 'nginx-cached'];
const LABEL: Record<Target, string> = {
  'sidecar-plain': 'bridge-sidecar, no compression (reference)',
  sidecar: 'bridge-sidecar, gzip 6, uncached',
  'sidecar-cached': 'bridge-sidecar, gzip 6, L1 cache',
  nginx: 'nginx, gzip 6, uncached',
  'nginx-cached': 'nginx, gzip 6, proxy_cache',
};

interface Settings {
  threads: number;
  connections: number;
  duration: string;
  warmup: string;
  only: Set<string>;
  waitQuietSec: number;
  write: boolean;
}

function settings(argv: string[]): Settings | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' }, threads: { type: 'string' }, connections: { type: 'string' }, duration: { type: 'string' },
      warmup: { type: 'string' }, only: { type: 'string' }, 'wait-quiet': { type: 'string' }, 'no-write': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  const quick = values.quick === true;
  return {
    threads: Number(values.threads ?? 2),
    connections: Number(values.connections ?? 50),
    duration: values.duration ?? (quick ? '3s' : '10s'),
    warmup: values.warmup ?? (quick ? '1s' : '3s'),
    only: new Set((values.only ?? TARGETS.join(',')).split(',').map((s) => s.trim())),
    waitQuietSec: Number(values['wait-quiet'] ?? 120),
    write: !values['no-write'],
  };
}

const log = (s: string) => process.stderr.write(`[bench/compress] ${s}\n`);

const running: Array<{ stop(): Promise<void> }> = [];
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
async function stopAll(): Promise<void> {
  while (running.length) await running.pop()!.stop().catch(() => undefined);
}

// ---- what each target is, and a check that it answers what we think ----

interface Proxy {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

const cachePolicyYaml = `cache:
  l1: {}
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m }
`;

function sidecarPolicy(upstreamUrl: string, cached: boolean, compress = true): (p: SidecarPorts) => string {
  const compression = compress ? 'compression:\n  algorithm: gzip\n  level: 6\n  threshold: 1KB\n' : '';
  return (p) => `# bench/compress: ${compress ? 'gzip level 6 over 1 KB' : 'no compression'}${cached ? ', L1 cache of query_script' : ''}
version: 1
server:
  listen: 127.0.0.1:${p.port}
  admin_listen: 127.0.0.1:${p.adminPort}
  workers: 1
  log_level: warn
upstream:
  url: ${upstreamUrl}
${compression}${cached ? cachePolicyYaml : ''}`;
}

function nginxConf(dir: string, port: number, upstreamPort: number, cached: boolean): string {
  return `# bench/compress: nginx gzip level 6 over 1 KB${cached ? ', proxy_cache of the POST' : ''}
${nginxPreamble(dir)}
  gzip on;
  gzip_comp_level 6;
  gzip_min_length 1024;
  gzip_types application/json;
  gzip_proxied any;
  gzip_vary on;
${cached ? `  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=drafts:10m max_size=256m inactive=5m use_temp_path=off;\n` : ''}  upstream draft_service {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 100000;
  }
  server {
    listen 127.0.0.1:${port};
    client_body_buffer_size 64k;
    location / {
${keepAliveProxyPass('draft_service')}${cached ? `      proxy_cache drafts;
      proxy_cache_methods POST;
      proxy_cache_key "$request_uri|$request_body";
      proxy_cache_valid 200 5m;
      proxy_ignore_headers Cache-Control Expires Set-Cookie;
      add_header X-Cache-Status $upstream_cache_status;
` : ''}    }
  }
}
`;
}

async function startNginxGzip(upstreamPort: number, cached: boolean): Promise<Proxy> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-compress-nginx-'));
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConf(dir, port, upstreamPort, cached));
  // run as root, nginx's workers drop to `nobody`: they must be able to write the cache and temp dirs
  chmodSync(dir, 0o755);
  for (const sub of ['cache', 'proxy', 'client_body']) {
    mkdirSync(join(dir, sub));
    chmodSync(join(dir, sub), 0o777);
  }
  const proc = startProcess('nginx', NGINX, ['-c', conf, '-p', dir, '-e', join(dir, 'error.log')]);
  const stop = async () => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForHttp(`http://127.0.0.1:${port}/get_mask_types`, { proc, timeoutMs: 15_000 }); // the service has no /health
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `http://127.0.0.1:${port}`, pid: proc.child.pid!, stop };
}

async function startSidecarGzip(upstreamUrl: string, cached: boolean, compress: boolean): Promise<Proxy> {
  const sc = await startSidecar(sidecarPolicy(upstreamUrl, cached, compress));
  return { url: sc.url, pid: sc.proc.child.pid!, stop: () => sc.stop() };
}

interface Probe { status: number; encoding: string; wireBytes: number; identityBytes: number; cache: string }

function probe(url: string, draft: number): Promise<Probe> {
  const body = JSON.stringify({ draft_id: `dft_${String(draft).padStart(6, '0')}`, force_update: false });
  return new Promise((resolve, reject) => {
    const req = request(`${url}/query_script`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const wire = Buffer.concat(chunks);
        const encoding = String(res.headers['content-encoding'] ?? 'identity');
        resolve({
          status: res.statusCode ?? 0,
          encoding,
          wireBytes: wire.length,
          identityBytes: encoding === 'gzip' ? gunzipSync(wire).length : wire.length,
          cache: String(res.headers['cache-status'] ?? res.headers['x-cache-status'] ?? ''),
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

interface Row {
  target: Target;
  wrk: WrkResult | null;
  note: string;
  proxyCpuUs: number;
  upstreamCpuUs: number;
  probe: Probe | null;
}

async function measure(s: Settings, target: Target, proxy: Proxy, svc: ServiceProcess, script: string): Promise<Row> {
  const cached = target.endsWith('cached');
  // check: gzip comes back; for the cached targets a repeat is a hit
  await probe(proxy.url, 1);
  const p = await probe(proxy.url, 1);
  let note = '';
  const want = target === 'sidecar-plain' ? 'identity' : 'gzip';
  if (p.status !== 200 || p.encoding !== want) note = `answer was ${p.status} ${p.encoding}, not 200 ${want}`;
  if (cached && !/hit/i.test(p.cache)) note = `cache not working yet (repeat answered "${p.cache || 'no cache header'}"): measured uncached`;
  log(`${LABEL[target]}: probe ${p.status} ${p.encoding} ${p.wireBytes}/${p.identityBytes} bytes ${p.cache}`);

  log(`${LABEL[target]}: warm-up ${s.warmup}`);
  await runWrk(proxy.url, { threads: s.threads, connections: s.connections, duration: s.warmup, script });
  const cpu0 = treeCpuSeconds(proxy.pid);
  const up0 = treeCpuSeconds(svc.proc.child.pid!);
  log(`${LABEL[target]}: wrk -t${s.threads} -c${s.connections} -d${s.duration} -s bench/compress.lua`);
  const r = await runWrk(proxy.url, { threads: s.threads, connections: s.connections, duration: s.duration, script });
  const cpu = treeCpuSeconds(proxy.pid) - cpu0;
  const up = treeCpuSeconds(svc.proc.child.pid!) - up0;
  const row: Row = { target, wrk: r, note, proxyCpuUs: (cpu / r.requests) * 1e6, upstreamCpuUs: (up / r.requests) * 1e6, probe: p };
  log(`${LABEL[target]}: ${r.requestsPerSec.toFixed(0)} req/s, p50 ${r.latency.p50.toFixed(2)} ms, p99 ${r.latency.p99.toFixed(2)} ms, proxy ${row.proxyCpuUs.toFixed(0)} µs CPU/req, upstream ${row.upstreamCpuUs.toFixed(0)} µs CPU/req`);
  return row;
}

interface ZlibCost { bytes: number; streamUs: number; pooledUs: number; syncUs: number }

/**
 * CPU per response of zlib alone in this process, for one draft JSON: the async stream the sidecar uses
 * (createGzip, 50 at a time, work on the libuv pool) against one gzipSync call (what a synchronous compressor
 * like nginx's costs). process.cpuUsage counts every thread, the pool's included.
 */
async function zlibCost(body: Buffer): Promise<ZlibCost> {
  const once = () => new Promise<void>((resolve, reject) => {
    const g = createGzip({ level: 6 });
    g.on('data', () => undefined);
    g.on('end', resolve);
    g.on('error', reject);
    g.end(body);
  });
  const pooled = () => new Promise<void>((resolve, reject) => {
    const g = new GzipMember(6, null);
    g.on('data', () => undefined);
    g.on('end', resolve);
    g.on('error', reject);
    g.end(body);
  });
  const rounds = 40;
  const width = 50;
  const n = rounds * width;
  const cpuPer = async (f: () => Promise<void>) => {
    for (let i = 0; i < 5; i++) await Promise.all(Array.from({ length: width }, f));
    const c0 = process.cpuUsage();
    for (let i = 0; i < rounds; i++) await Promise.all(Array.from({ length: width }, f));
    const c1 = process.cpuUsage(c0);
    return (c1.user + c1.system) / n;
  };
  const streamUs = await cpuPer(once);
  const pooledUs = await cpuPer(pooled);
  const s0 = process.cpuUsage();
  for (let i = 0; i < n; i++) gzipSync(body, { level: 6 });
  const s1 = process.cpuUsage(s0);
  return { bytes: body.length, streamUs, pooledUs, syncUs: (s1.user + s1.system) / n };
}

function fetchDraft(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/query_script`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(JSON.stringify({ draft_id: 'dft_000042', force_update: false }));
  });
}

function errorsOf(r: WrkResult): number {
  const e = r.errors;
  return e.connect + e.read + e.write + e.timeout + e.non2xx3xx;
}

function report(s: Settings, machine: Awaited<ReturnType<typeof machineInfo>>, rows: Row[], argv: string[], zc: ZlibCost | null): string {
  const out: string[] = [];
  out.push(`Command: \`node dist/bench/compress.js${argv.length ? ' ' + argv.join(' ') : ''}\` (${new Date().toISOString().slice(0, 10)}).`);
  out.push('');
  out.push(`- Machine: ${machineLine(machine)}; load average at start ${machine.load1}, at the end ${loadavg()[0]!.toFixed(2)}`);
  out.push('  (the machine is shared: a higher figure at the end means other work ran during the measurements).');
  out.push(`- Load: wrk -t${s.threads} -c${s.connections} -d${s.duration} (after a ${s.warmup} warm-up that also fills the caches) with \`bench/compress.lua\`:`);
  out.push('  `POST /query_script` for drafts dft_000001..dft_000100 in turn (10-20 KB of JSON), `Accept-Encoding: gzip`.');
  out.push('- Upstream: the example draft service, service time 0. Proxies: 1 worker each; gzip level 6, min length 1 KB,');
  out.push('  application/json. CPU per request = utime+stime of the proxy\'s process tree (/proc/PID/stat, primary and');
  out.push('  workers) over the measured run / requests; the same for the upstream.');
  out.push('');
  out.push('| target | requests/s | p50 ms | p99 ms | proxy CPU µs/req | upstream CPU µs/req | gzip bytes (identity) | errors |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    if (!row.wrk) {
      out.push(`| ${LABEL[row.target]} | – | – | – | – | – | – | ${row.note} |`);
      continue;
    }
    const r = row.wrk;
    const size = row.probe ? `${row.probe.wireBytes} (${row.probe.identityBytes})` : '–';
    out.push(`| ${LABEL[row.target]}${row.note ? ` (${row.note})` : ''} | ${r.requestsPerSec.toFixed(0)} | ${r.latency.p50.toFixed(2)} | ${r.latency.p99.toFixed(2)} | ${row.proxyCpuUs.toFixed(0)} | ${row.upstreamCpuUs.toFixed(0)} | ${size} | ${errorsOf(r)} |`);
  }
  out.push('');
  out.push('The sidecar\'s cache stores the gzip variant its compression filter produced, so a hit costs no upstream call and no');
  out.push('compression; nginx\'s proxy_cache stores the identity answer and its gzip filter compresses every hit again.');
  out.push('A shared 2-core machine runs wrk, the upstream and the proxy together: compare rows of the same run, not absolute figures.');
  if (zc) {
    out.push('');
    out.push(`zlib alone, one ${zc.bytes}-byte draft at level 6, CPU per response in one process (all threads, 50 in flight):`);
    out.push(`a fresh createGzip stream ${zc.streamUs.toFixed(0)} µs; a pooled compressor (what the sidecar does, lib/stages/compress/gzip-pool.ts)`);
    out.push(`${zc.pooledUs.toFixed(0)} µs; one gzipSync call ${zc.syncUs.toFixed(0)} µs. The async API's thread-pool hand-offs are the price of keeping`);
    out.push('compression off the event loop; nginx compresses synchronously in its worker.');
  }
  return out.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const s = settings(argv);
  if (!s) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const script = join(repoRoot(), 'bench', 'compress.lua');
  if (!existsSync(script)) throw new Error(`${script} is missing`);
  const load = await waitForQuiet(1.5, s.waitQuietSec * 1000, log);
  if (load >= 1.5) log(`WARNING: load average ${load.toFixed(2)}: other processes compete for the CPU, figures will be low and noisy`);
  const machine = await machineInfo();
  log(machineLine(machine));

  const svc = await started(startDraftServiceProcess({ serviceTime: '0ms' }));
  const rows: Row[] = [];
  for (const target of TARGETS) {
    if (!s.only.has(target)) continue;
    const cached = target.endsWith('cached');
    let proxy: Proxy | null = null;
    try {
      proxy = await started(target.startsWith('nginx') ? startNginxGzip(svc.port, cached) : startSidecarGzip(svc.url, cached, target !== 'sidecar-plain'));
      rows.push(await measure(s, target, proxy, svc, script));
    } catch (e) {
      const note = `not measured: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
      log(`${LABEL[target]}: ${note}`);
      rows.push({ target, wrk: null, note, proxyCpuUs: 0, upstreamCpuUs: 0, probe: null });
    } finally {
      if (proxy) await stopped(proxy);
    }
  }
  let zc: ZlibCost | null = null;
  try {
    zc = await zlibCost(await fetchDraft(svc.url));
    log(`zlib alone: stream ${zc.streamUs.toFixed(0)}, pooled ${zc.pooledUs.toFixed(0)}, gzipSync ${zc.syncUs.toFixed(0)} µs/response (${zc.bytes} bytes)`);
  } catch (e) {
    log(`zlib cost not measured: ${e instanceof Error ? e.message : String(e)}`);
  }
  await stopAll();
  const md = report(s, machine, rows, argv, zc);
  process.stdout.write(md + '\n');
  if (s.write) {
    updateSection(SECTION, md);
    log(`wrote section "${SECTION}" of bench/RESULTS.md`);
  }
  return 0;
}

process.on('SIGINT', () => { void stopAll().then(() => process.exit(130)); });
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  async (e: unknown) => {
    log(e instanceof Error ? e.stack ?? e.message : String(e));
    await stopAll();
    process.exitCode = 1;
  },
);
