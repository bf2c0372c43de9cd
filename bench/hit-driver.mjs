// L1 hits of a 2 KB body through one sidecar (1 worker), one fixed driver for comparing builds back to back.
// usage: node bench/hit-driver.mjs <checkout-with-dist> [runs=3] [secs=5]   (env WARMUP=1s: the unmeasured wrk run first, default 3s)
// env: PIN=1 sidecar on cpu0 and wrk on cpu1; NOWARM=1 jit_warmup off; WORKERS=n; OTHER=1 3,000 hits from a second
// client first; MIXFIRST=1 3,000 mixed requests (misses, pass-through, HEAD) first; PROF=dir --cpu-prof. SERVER_EXTRA=", key: value" more `server` policy.
// Prints req/s of each run, their median, and the sidecar's CPU µs per request per run (from /proc).
import http from 'node:http';
import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const dir = process.argv[2]; const runs = +(process.argv[3] ?? 3); const secs = process.argv[4] ?? '5';
const body = Buffer.alloc(2048, 'a');
const origin = http.createServer((q, r) => { r.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=3600', 'content-length': body.length }); r.end(body); });
await new Promise((r) => origin.listen(0, '127.0.0.1', r));
// ports the kernel hands out as free (a random pick could meet one of wrk's own connections' local ports);
// bench/lib/proc.ts's, from this checkout's build
const { freePort } = await import(new URL('../dist/bench/lib/proc.js', import.meta.url).href);
const port = await freePort(), admin = await freePort();
const tmp = mkdtempSync(join(tmpdir(), 'hb-'));
writeFileSync(join(tmp, 'p.yaml'), `version: 1
server: { listen: "127.0.0.1:${port}", admin_listen: "127.0.0.1:${admin}", workers: ${process.env.WORKERS ?? 1}, log_level: warn${process.env.NOWARM ? ", jit_warmup: { enabled: false }" : ""}${process.env.SERVER_EXTRA ?? ""} }
upstream: { url: "http://127.0.0.1:${origin.address().port}" }
routes:
  - name: body
    match: { method: GET, path: "/body/{size}" }
    params: { size: path.size }
    cache: { key: "bench:{size}", ttl: 1h }
cache:
  l1: { size: 64MB }
`);
const PIN = process.env.PIN; const sc = spawn(PIN ? 'taskset' : process.execPath, [...(PIN ? ['-c', '0', process.execPath] : []), ...(process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.PROF] : []), join(dir, 'dist/cmd/bridge-sidecar.js'), 'serve', '--policy', join(tmp, 'p.yaml')], { stdio: ['ignore', 'ignore', 'inherit'] });
const url = `http://127.0.0.1:${port}/body/2k`;
for (let i = 0; i < 600; i++) { try { const r = await fetch(`http://127.0.0.1:${admin}/readyz`); if (r.status === 200) break; } catch {} await new Promise((r) => setTimeout(r, 100)); }
await fetch(url).then((r) => r.arrayBuffer()); await fetch(url).then((r) => r.arrayBuffer());
if (process.env.OTHER) { // a second client shape (other headers) before wrk: what any sidecar with more than one kind of client sees
  for (let i = 0; i < 3000; i += 16) await Promise.all(Array.from({ length: 16 }, () => fetch(url, { headers: { 'x-client': 'other', accept: 'application/json' } }).then((r) => r.arrayBuffer())));
}
if (process.env.MIXFIRST) { // real traffic is mixed: misses and pass-through before the hits
  for (let i = 0; i < 3000; i += 16) await Promise.all(Array.from({ length: 16 }, (_, j) => fetch(`http://127.0.0.1:${port}/${(i + j) % 2 ? 'pass' : 'body'}/m${i + j}`, { method: (i + j) % 3 ? 'GET' : 'HEAD' }).then((r) => r.arrayBuffer())));
}
const cpuOf = (pid) => { try { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (+f[11] + +f[12]); } catch { return 0; } };
const tree = () => { let t = cpuOf(sc.pid); for (const d of readdirSync('/proc')) { if (!/^\d+$/.test(d)) continue; try { const f = readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' '); if (+f[1] === sc.pid) t += +f[11] + +f[12]; } catch {} } return t; };
const cpus = [];
const wrk = (d) => { const c0 = tree(); const o = execFileSync(PIN ? 'taskset' : 'wrk', [...(PIN ? ['-c', '1', 'wrk'] : []), '-t2', '-c50', `-d${d}`, url]).toString(); const c1 = tree(); const rps = +o.match(/Requests\/sec:\s+([\d.]+)/)[1]; const n = +o.match(/(\d+) requests in/)[1]; cpus.push(((c1 - c0) * 10000) / n); return rps; };
wrk(process.env.WARMUP ?? '3s');
cpus.length = 0; const res = []; for (let i = 0; i < runs; i++) res.push(wrk(secs + 's'));
const inOrder = res.map((x) => x.toFixed(0)).join(' '); res.sort((a, b) => a - b);
cpus.sort((a, b) => a - b); console.log(`${dir} ${process.env.NOWARM ? 'nowarm' : 'warm'}${process.env.MIXFIRST ? '+mix' : ''}${process.env.OTHER ? '+other' : ''} w${process.env.WORKERS ?? 1} ${res.map((x) => x.toFixed(0)).join(' ')} median ${res[Math.floor(res.length / 2)].toFixed(0)} cpu_us/req ${cpus.map((x) => x.toFixed(1)).join(' ')} in order ${inOrder}`);
sc.kill('SIGTERM'); origin.close(); setTimeout(() => process.exit(0), 3000);
