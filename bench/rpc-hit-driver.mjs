// JSON-RPC (MCP tools/call) hits of one large cached answer, each replayed with another id than the stored one,
// through one sidecar (1 worker) of the given checkout, for comparing builds back to back (issue 19/23 CPU work).
// usage: node bench/rpc-hit-driver.mjs <checkout-with-dist> [runs=3] [secs=5] [kb=300]
// The origin answers tools/call with a `kb` KB text result carrying the request's id; the first request fills the
// cache (id 1), a hit with id "call-2" is checked to carry that id, then `wrk -t2 -c20` POSTs id "call-2" for a 3 s
// warm-up and `runs` measured runs. Prints req/s per run and the sidecar tree's CPU µs per hit per run (from /proc).
// env GZIP=1: the sidecar compresses (gzip, the cache stores the gzip variant), every request accepts gzip, and the
// answer is a draft-like JSON document (compresses about as a real one does) instead of one letter repeated.
// env BR=1 with GZIP=1: the sidecar prefers br ("br, gzip") and requests accept "br, gzip" (the stored variant is br).
import http from 'node:http';
import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const dir = process.argv[2]; const runs = +(process.argv[3] ?? 3); const secs = process.argv[4] ?? '5'; const kb = +(process.argv[5] ?? 300);
// with GZIP, a draft-like answer that compresses like a real one (~6x), not a run of one letter
const segments = (n) => Array.from({ length: n }, (_, i) => ({ id: `txt_${i}`, text: `caption ${(i * 7919) % 100003}`, start: i * 1.5, end: i * 1.5 + 1, style: { size: 10 + (i % 7), color: `#${((i * 2654435761) >>> 8).toString(16).padStart(6, '0').slice(0, 6)}` } }));
const text = JSON.stringify({ error: '', output: process.env.GZIP ? { draft_id: 'd1', tracks: [{ type: 'text', segments: segments(Math.round((kb * 1024) / 120)) }] } : { draft: 'x'.repeat(kb * 1024) }, success: true });
const origin = http.createServer((q, r) => {
  const chunks = []; q.on('data', (c) => chunks.push(c)); q.on('end', () => {
    const req = JSON.parse(Buffer.concat(chunks).toString());
    const b = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: req.id, result: { content: [{ type: 'text', text }] } }));
    r.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length }); r.end(b);
  });
});
await new Promise((r) => origin.listen(0, '127.0.0.1', r));
const { freePort } = await import(new URL('../dist/bench/lib/proc.js', import.meta.url).href);
const port = await freePort(), admin = await freePort();
const tmp = mkdtempSync(join(tmpdir(), 'rh-'));
writeFileSync(join(tmp, 'p.yaml'), `version: 1
server: { listen: "127.0.0.1:${port}", admin_listen: "127.0.0.1:${admin}", workers: 1, log_level: warn }
upstream: { url: "http://127.0.0.1:${origin.address().port}" }
routes:
  - name: mcp_query
    match: { method: POST, path: /mcp, jsonrpc_method: tools/call }
    cache: { key: "mcp:q", ttl: 1h }
cache:
  l1: { size: 256MB }
${process.env.GZIP ? `compression: { enabled: true, algorithm: ${process.env.BR ? '"br, gzip"' : 'gzip'}, threshold: 1KB }\n` : ''}`);
const body = (id) => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'query_script', arguments: { draft_id: 'd1', force_update: false } } });
const acceptEncoding = process.env.GZIP ? { 'accept-encoding': process.env.BR ? 'br, gzip' : 'gzip' } : {};
const { writeWrkScript } = await import(new URL('../dist/bench/lib/wrk.js', import.meta.url).href);
const { treeCpuSeconds } = await import(new URL('../dist/bench/lib/cpu.js', import.meta.url).href);
const script = writeWrkScript({ method: 'POST', body: body('call-2'), headers: acceptEncoding });
const sc = spawn(process.execPath, [join(dir, 'dist/cmd/bridge-sidecar.js'), 'serve', '--policy', join(tmp, 'p.yaml')], { stdio: ['ignore', 'ignore', 'inherit'] });
const url = `http://127.0.0.1:${port}/mcp`;
for (let i = 0; i < 600; i++) { try { const r = await fetch(`http://127.0.0.1:${admin}/readyz`); if (r.status === 200) break; } catch {} await new Promise((r) => setTimeout(r, 100)); }
// the fill (id 1), a hit with the stored id, a hit with another: each must carry its own id
for (const id of [1, 1, 'call-2']) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...acceptEncoding }, body: body(id) });
  if ((await r.json()).id !== id) throw new Error('bad id');
  console.error(r.headers.get('cache-status'), r.headers.get('content-encoding'));
}
const cpus = [];
const wrk = (d) => { const c0 = treeCpuSeconds(sc.pid); const o = execFileSync('wrk', ['-t2', '-c20', `-d${d}`, '-s', script.file, url]).toString(); const c1 = treeCpuSeconds(sc.pid); const rps = +o.match(/Requests\/sec:\s+([\d.]+)/)[1]; const n = +o.match(/(\d+) requests in/)[1]; cpus.push(((c1 - c0) * 1e6) / n); return rps; };
wrk('3s'); cpus.length = 0;
const res = []; for (let i = 0; i < runs; i++) res.push(wrk(secs + 's'));
console.log(`${dir} ${kb}KB${process.env.GZIP ? (process.env.BR ? ' br-stored' : ' gzip') : ''} rps ${res.map((x) => x.toFixed(0)).join(' ')} cpu_us/hit ${cpus.map((x) => x.toFixed(1)).join(' ')}`);
script.cleanup();
sc.kill('SIGTERM'); origin.close(); setTimeout(() => process.exit(0), 3000);
