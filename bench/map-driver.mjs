// CPU µs per request of the bare node:http Map server (the cache bench's ceiling row) under hit-driver.mjs's wrk load.
// usage: [EXTRA_HEADERS=1] node bench/map-driver.mjs   (EXTRA_HEADERS: 7 more response fields, the ones an L1 hit sends)
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
// a port the kernel hands out as free (bench/lib/proc.ts's, from this checkout's build)
const { freePort } = await import(new URL('../dist/bench/lib/proc.js', import.meta.url).href);
const port = await freePort();
const extra = process.env.EXTRA_HEADERS ? ",'cache-status':'bridge-sidecar; hit','age':'3','via':'1.1 bridge-sidecar','x-cache':'HIT','etag':'\"abc\"','cache-control':'max-age=3600','date':new Date().toUTCString()" : '';
const script = `const b=new Map([['/body/2k',Buffer.alloc(2048,'a')]]);require('http').createServer((q,s)=>{const x=b.get(q.url);s.writeHead(x?200:404,{'content-type':'text/plain','content-length':x?x.length:0${extra}});s.end(x);}).listen(${port},'127.0.0.1')`;
const sc = spawn(process.execPath, ['-e', script], { stdio: 'inherit' });
for (let i = 0; i < 300; i++) { try { await fetch(`http://127.0.0.1:${port}/body/2k`).then((r) => r.arrayBuffer()); break; } catch { await new Promise((r) => setTimeout(r, 100)); } }
const cpuOf = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return +f[11] + +f[12]; };
const wrk = (d) => { const c0 = cpuOf(sc.pid); const o = execFileSync('wrk', ['-t2', '-c50', `-d${d}`, `http://127.0.0.1:${port}/body/2k`]).toString(); const c1 = cpuOf(sc.pid); const n = +o.match(/(\d+) requests in/)[1]; return [+o.match(/Requests\/sec:\s+([\d.]+)/)[1], (c1 - c0) * 10000 / n]; };
wrk('3s'); const r = []; for (let i = 0; i < 3; i++) r.push(wrk('4s'));
console.log(`map${process.env.EXTRA_HEADERS ? '+headers' : ''} ${r.map(([a, b]) => `${a.toFixed(0)} (${b.toFixed(1)} µs)`).join(' ')}`);
sc.kill();
