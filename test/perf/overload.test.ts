/**
 * Memory pressure in steps. The sidecar reads a cgroup tree made for the test (BRIDGE_SIDECAR_CGROUP_ROOT) in
 * which memory.current follows the sidecar's real resident memory, so a flood of large distinct cacheable
 * answers really drives it over the first threshold; after that the test sets the figure (as if the rest of the
 * pod grew or shrank) to hold it, push it higher and let it fall.
 * What a user checks: the steps happen in order and are logged, counted and shown in /readyz; under the first,
 * L1 stops storing and shrinks; under the second, new connections are refused and idle ones closed; when memory
 * falls it returns step by step to normal; the process never dies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, Agent } from 'node:http';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { basicPolicy, startSidecar } from '../helpers/sidecar';

const BODY = 512 * 1024;

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function get(url: string, agent: Agent | false = false): Promise<{ status: number; cache: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cache: String(res.headers['cache-status']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function readyz(adminUrl: string): Promise<{ status: number; body: any }> {
  const r = await fetch(adminUrl + '/readyz');
  return { status: r.status, body: await r.json() };
}

async function until<T>(what: string, f: () => Promise<T | null> | T | null, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether a new connection gets an answer (true) or is closed without one (false). */
function newConnectionAnswered(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => { got += d; });
    s.on('error', () => resolve(false));
    s.on('close', () => resolve(got.startsWith('HTTP/1.1')));
    s.write('GET /big/probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    setTimeout(() => s.destroy(), 5000);
  });
}

test('memory pressure: L1 stops storing and shrinks, then connections are refused; back to normal step by step; no OOM', { timeout: 120_000 }, async (t) => {
  let served = 0;
  const origin = createServer((req, res) => {
    served++;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BODY), 'cache-control': 'public, max-age=3600' });
    res.end(Buffer.alloc(BODY, (req.url ?? '').length % 251));
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
  t.after(() => { origin.closeAllConnections(); origin.close(); });
  const originPort = (origin.address() as AddressInfo).port;

  const cg = mkdtempSync(join(tmpdir(), 'fake-cgroup-'));
  t.after(() => rmSync(cg, { recursive: true, force: true }));
  writeFileSync(join(cg, 'memory.stat'), 'inactive_file 0\n');
  writeFileSync(join(cg, 'memory.max'), String(8 * 2 ** 30));
  writeFileSync(join(cg, 'memory.current'), '0');

  const sc = await startSidecar(basicPolicy(originPort, `routes:
  - name: big
    match: { method: GET, path: "/big/{n}" }
    params: { n: path.n }
    cache: { key: "big:{n}", ttl: 1h }
cache:
  l1: { size: 1GB }
memory:
  gc_threshold: 60%
  connection_threshold: 85%
  recover_margin: 5%
  l1_floor: 1%
  check_interval: 200ms
`, { workers: 0 }), { env: { BRIDGE_SIDECAR_CGROUP_ROOT: cg } });
  t.after(() => sc.stop());
  const pid = sc.proc.pid!;

  // the pod's limit: the sidecar starts at 40 % of it; memory.current is its resident memory until `held` is set
  const limit = Math.round(rssBytes(pid) / 0.4);
  writeFileSync(join(cg, 'memory.max'), String(limit));
  let held: number | null = null;
  const mirror = setInterval(() => {
    try {
      // written aside and renamed over, as the kernel's files never read half-written: writeFileSync truncates
      // first, and a reading in between sees "" (0 bytes used), which steps the sidecar down to normal for a tick
      writeFileSync(join(cg, 'memory.current.new'), String(held ?? rssBytes(pid)));
      renameSync(join(cg, 'memory.current.new'), join(cg, 'memory.current'));
    } catch { /* the process or the directory is gone: the test is over */ }
  }, 50);
  t.after(() => clearInterval(mirror));

  const steps = () => sc.logs.filter((l) => l.overload !== undefined).map((l) => (l.overload as { to: string }).to);
  assert.equal((await readyz(sc.adminUrl)).body.overload.state, 'normal');

  // the flood: distinct large cacheable answers fill L1 until the first step is taken
  let n = 0;
  await until('the shrink_cache step', async () => {
    await Promise.all(Array.from({ length: 8 }, () => get(`${sc.url}/big/${n++}`)));
    if (n > 2000) throw new Error(`no step after ${n} answers`);
    return steps().includes('shrink_cache') ? true : null;
  }, 90_000);
  // hold the figure above gc_threshold from here (shrinking L1 frees memory, which would end the step)
  held = Math.round(limit * 0.62);
  const r1 = await until('/readyz to show shrink_cache', async () => {
    const r = await readyz(sc.adminUrl);
    return r.body.overload.state === 'shrink_cache' ? r : null;
  });
  assert.equal(r1.status, 200);
  // L1 stores nothing new: a fresh key misses twice
  assert.match((await get(`${sc.url}/big/fresh-1`)).cache, /fwd=miss/);
  assert.match((await get(`${sc.url}/big/fresh-1`)).cache, /fwd=miss/);
  // and it shrinks toward its floor (1 % of 1 GB) while memory stays above the threshold
  const l1Bytes = async () => {
    const text = await (await fetch(sc.adminUrl + '/metrics')).text();
    return Number(/bridge_sidecar_cache_size_bytes\{layer="l1"\} (\d+)/.exec(text)?.[1] ?? NaN);
  };
  await until('L1 to shrink to its floor', async () => ((await l1Bytes()) <= 0.011 * 2 ** 30 ? true : null));

  // the second step: an idle keep-alive connection is closed, a new one refused, /readyz 503
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  assert.equal((await get(`${sc.url}/big/1`, agent)).status, 200);
  const idle = Object.values(agent.freeSockets).flat()[0]!;
  const idleClosed = new Promise<void>((r) => idle.once('close', () => r()));
  held = Math.round(limit * 0.9);
  await until('the refuse_connections step', () => (steps().includes('refuse_connections') ? true : null));
  await idleClosed;
  assert.equal(await newConnectionAnswered(sc.port), false);
  const r2 = await readyz(sc.adminUrl);
  assert.equal(r2.status, 503);
  assert.ok(r2.body.reasons.includes('memory overload: refusing new connections'));
  assert.equal(r2.body.overload.state, 'refuse_connections');
  const m2 = await (await fetch(sc.adminUrl + '/metrics')).text();
  assert.match(m2, /bridge_sidecar_overload_state 2/);

  // memory falls (the rest of the pod freed some): back one step per interval, with hysteresis
  held = Math.round(limit * 0.3);
  await until('normal again', () => (steps().at(-1) === 'normal' ? true : null));
  // in order: one level at a time, and this run's last four steps are the way up and back down
  const order = ['normal', 'shrink_cache', 'refuse_connections'];
  const seen = ['normal', ...steps()];
  for (let i = 1; i < seen.length; i++) assert.equal(Math.abs(order.indexOf(seen[i]!) - order.indexOf(seen[i - 1]!)), 1, `step ${seen[i - 1]} -> ${seen[i]}`);
  assert.deepEqual(steps().slice(-4), ['shrink_cache', 'refuse_connections', 'shrink_cache', 'normal']);
  assert.equal(await newConnectionAnswered(sc.port), true);
  const r3 = await readyz(sc.adminUrl);
  assert.equal(r3.status, 200);
  assert.equal(r3.body.overload.state, 'normal');
  // L1 stores again
  await get(`${sc.url}/big/fresh-2`);
  assert.match((await get(`${sc.url}/big/fresh-2`)).cache, /hit/);
  const m3 = await (await fetch(sc.adminUrl + '/metrics')).text();
  assert.match(m3, /bridge_sidecar_overload_state 0/);
  assert.match(m3, /bridge_sidecar_overload_steps_total\{state="refuse_connections"\} 1\n/);
  assert.equal(sc.proc.exitCode, null, 'no OOM, no crash');
  assert.ok(served > 0);
});
