/**
 * The benchmark helpers (bench/lib, bench/results.ts): they decide the figures in bench/RESULTS.md, so
 * they are tested like the rest: wrk output parsing, the shared results file, nginx as a real proxy in
 * front of the example service, and the open-loop generator's coordinated-omission correction.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { parseWrkOutput, parseWrkDuration, runWrk, writeWrkScript } from '../../bench/lib/wrk';
import { replaceSection, updateSection } from '../../bench/results';
import { startNginx } from '../../bench/lib/nginx';
import { runFixedRate } from '../../bench/lib/fixed-rate';
import { passThroughPolicy, startReferenceProxy } from '../../bench/lib/services';
import { parsePolicy } from '../../lib/policy/load';
import { cpuSnapshot, foreignCpuShare } from '../../bench/lib/machine';
import { treeCpu, treeCpuSeconds } from '../../bench/lib/cpu';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

const services: DraftService[] = [];
after(async () => {
  await Promise.all(services.map((s) => s.close()));
});

const WRK_SAMPLE = `Running 10s test @ http://127.0.0.1:9101/get_font_types
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.21ms    1.02ms  1.22s    85.12%
    Req/Sec     7.85k   512.11     8.91k    70.00%
  Latency Distribution
     50%  812.00us
     75%    3.50ms
     90%    4.20ms
     99%    6.80ms
  156234 requests in 10.00s, 150.11MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 12
Requests/sec:  15612.34
Transfer/sec:     15.00MB
`;

test('parseWrkOutput reads rates, latency percentiles in ms and errors', () => {
  const r = parseWrkOutput(WRK_SAMPLE);
  assert.equal(r.requestsPerSec, 15612.34);
  assert.equal(r.requests, 156234);
  assert.equal(r.durationSec, 10);
  assert.equal(r.latency.avg, 3.21);
  assert.equal(r.latency.max, 1220);
  assert.ok(Math.abs(r.latency.p50 - 0.812) < 1e-9);
  assert.equal(r.latency.p99, 6.8);
  assert.deepEqual(r.errors, { connect: 0, read: 3, write: 0, timeout: 2, non2xx3xx: 12 });
  assert.equal(r.transferPerSec, '15.00MB');
  assert.equal(parseWrkDuration('2.00m'), 120_000);
  assert.throws(() => parseWrkOutput('wrk: connection refused'));
});

test('replaceSection replaces only its own section and appends new ones', () => {
  const text = '# Benchmark results\n\nintro\n\n## A\n\nold a\n\n## B\n\nkeep b\n';
  const replaced = replaceSection(text, 'A', 'new a');
  assert.equal(replaced, '# Benchmark results\n\nintro\n\n## A\n\nnew a\n\n## B\n\nkeep b\n');
  const appended = replaceSection(replaced, 'C (issue 9)', '| x |\n|---|');
  assert.ok(appended.startsWith(replaced.trimEnd()));
  assert.ok(appended.endsWith('## C (issue 9)\n\n| x |\n|---|\n'));
  const last = replaceSection(appended, 'B', 'new b');
  assert.match(last, /## A\n\nnew a\n\n## B\n\nnew b\n\n## C \(issue 9\)/);

  const dir = mkdtempSync(join(tmpdir(), 'results-'));
  try {
    const file = join(dir, 'RESULTS.md');
    updateSection('Core', 'first-figures', file);
    updateSection('Other', 'two', file);
    updateSection('Core', 'three', file);
    const out = readFileSync(file, 'utf8');
    assert.match(out, /^# Benchmark results/);
    assert.match(out, /## Core\n\nthree\n/);
    assert.match(out, /## Other\n\ntwo\n/);
    assert.doesNotMatch(out, /first-figures/);
    writeFileSync(file, 'custom\n');
    updateSection('Core', 'x', file);
    assert.equal(readFileSync(file, 'utf8'), 'custom\n\n## Core\n\nx\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('passThroughPolicy writes only server and upstream', () => {
  const yaml = passThroughPolicy('http://127.0.0.1:9101', 2)({ port: 1111, adminPort: 2222 });
  assert.match(yaml, /listen: 127\.0\.0\.1:1111/);
  assert.match(yaml, /admin_listen: 127\.0\.0\.1:2222/);
  assert.match(yaml, /workers: 2/);
  assert.match(yaml, /url: http:\/\/127\.0\.0\.1:9101/);
  assert.doesNotMatch(yaml, /routes|cache|rate_limiting/);
});

test('passThroughPolicy with a pool size is a valid policy with that pool', () => {
  const r = parsePolicy(passThroughPolicy('http://127.0.0.1:9101', 1, 'warn', 64)({ port: 1111, adminPort: 2222 }), 'bench.yaml');
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.loaded.policy.upstream.pool.max_connections_per_host, 64);
  const d = parsePolicy(passThroughPolicy('http://127.0.0.1:9101', 1)({ port: 1111, adminPort: 2222 }), 'bench.yaml');
  assert.ok(d.ok);
  assert.equal(d.loaded.policy.upstream.pool.max_connections_per_host, 20, 'without one, the policy default');
});

test('startNginx proxies to the example service with upstream keep-alive, and stops cleanly', async () => {
  const svc = await startDraftService({ seedDrafts: 5 });
  services.push(svc);
  const ngx = await startNginx({ upstreamPort: svc.port, workers: 1 });
  try {
    assert.match(ngx.conf, /keepalive 64;/);
    assert.match(ngx.conf, /proxy_http_version 1\.1;/);
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${ngx.url}/get_font_types`);
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as { success: boolean }).success, true);
    }
    const body = await fetch(`${ngx.url}/query_script`, { method: 'POST', body: '{"draft_id":"dft_000002"}' }).then((r) => r.json()) as { output: string };
    assert.equal((JSON.parse(body.output) as { draft_id: string }).draft_id, 'dft_000002');
    assert.ok(svc.stats().byPath['/get_font_types']! >= 5);
  } finally {
    await ngx.stop();
  }
  await assert.rejects(fetch(`${ngx.url}/get_mask_types`), 'nginx is gone after stop()');
});

test('runFixedRate keeps its schedule and measures from the due time (no coordinated omission)', async () => {
  const svc = await startDraftService({ seedDrafts: 1 });
  services.push(svc);
  // fast service: everything sent, latency at least the service time asked for
  const ok = await runFixedRate({ url: `${svc.url}/get_font_types`, rate: 100, durationMs: 1000, connections: 8, headers: { 'x-service-time-ms': '20' } });
  assert.equal(ok.sent, 100);
  assert.equal(ok.ok, 100);
  assert.equal(ok.errors + ok.badStatus, 0);
  assert.ok(ok.latency.p50 >= 19, `p50 ${ok.latency.p50} >= service time`);
  assert.ok(ok.serviceLatency.p50 >= 19 && ok.serviceLatency.p50 <= ok.latency.p50, 'from-send latency: >= service time, <= from-due latency');

  // a service that can do 20/s asked for 40/s on one connection: the backlog grows, and latency from the
  // due time shows it (a closed-loop measurement from the send time would stay near 50 ms)
  const slow = await startDraftService({ seedDrafts: 1, serviceTimeMs: 50, maxConcurrency: 1 });
  services.push(slow);
  const behind = await runFixedRate({ url: `${slow.url}/get_font_types`, rate: 40, durationMs: 1000, connections: 1 });
  assert.equal(behind.sent, 40);
  assert.ok(behind.latency.max > 500, `max ${behind.latency.max} ms grows with the backlog`);
  assert.ok(behind.latency.p50 > 200, `p50 ${behind.latency.p50} ms`);
});

test('writeWrkScript + runWrk: wrk sends the method, body and headers of the script', async () => {
  const svc = await startDraftService({ seedDrafts: 3 });
  services.push(svc);
  const script = writeWrkScript({ body: '{"width":640,"height":480}', headers: { 'X-User-Id': 'bench' } });
  try {
    const r = await runWrk(`${svc.url}/create_draft`, { threads: 1, connections: 2, duration: '1s', script: script.file });
    assert.ok(r.requests > 0);
    assert.equal(r.errors.non2xx3xx, 0);
    assert.ok(svc.stats().byPath['/create_draft']! >= r.requests, 'every request wrk counted reached the service');
    assert.match(r.command, /-s .*request\.lua/);
    // the first draft wrk created carries its body and header
    const answer = await fetch(`${svc.url}/query_script`, { method: 'POST', body: '{"draft_id":"dft_000004"}' }).then((x) => x.json()) as { output: string };
    const doc = JSON.parse(answer.output) as { user_id: string; canvas_config: { width: number } };
    assert.equal(doc.user_id, 'bench');
    assert.equal(doc.canvas_config.width, 640);
  } finally {
    script.cleanup();
  }
});

test('cpuSnapshot counts the CPU of this process tree as ours, not as other processes', async () => {
  const a = cpuSnapshot();
  assert.ok(a, '/proc is readable');
  // a child that burns CPU for ~1 s: its time must show up in `ours` (it is reaped into our cutime)
  await new Promise<void>((resolve, reject) => {
    const c = spawn(process.execPath, ['-e', 'const end = Date.now() + 1000; while (Date.now() < end) {}']);
    c.once('error', reject);
    c.once('exit', () => resolve());
  });
  const b = cpuSnapshot()!;
  assert.ok(b.ours - a.ours >= 50, `ours grew by ${b.ours - a.ours} jiffies for ~100 jiffies of child CPU`);
  assert.ok(b.total > a.total && b.busy >= a.busy);
  const share = foreignCpuShare(a, b);
  assert.ok(share !== null && share >= 0 && share <= 1);
  assert.equal(foreignCpuShare(null, b), null);
});

test('treeCpu counts a child that exited and was reaped (a fork of the service), treeCpuSeconds only the living', async () => {
  // a shell that runs a CPU-burning child to its end, says so, then becomes a sleep (exec keeps the pid and its
  // cutime): the child's time is now in that cutime, the only place left to find it
  // (a second of its own CPU, not of the clock: a busy machine must not shrink it)
  const burn = 'while (process.cpuUsage().user < 1e6) {}';
  const sh = spawn('sh', ['-c', `"${process.execPath}" -e '${burn}'; echo done; exec sleep 30`]);
  try {
    const before = treeCpu(sh.pid!);
    await new Promise<void>((resolve, reject) => {
      sh.once('error', reject);
      sh.stdout.on('data', (d: Buffer) => { if (d.toString().includes('done')) resolve(); });
    });
    const after = treeCpu(sh.pid!);
    assert.ok(after.seconds - before.seconds >= 0.9, `the tree grew by ${after.seconds - before.seconds} s for the child's 1 s of CPU`);
    assert.ok(treeCpuSeconds(sh.pid!) < 0.5, 'without the reaped children the child\'s second is lost');
  } finally {
    sh.kill();
  }
});

test('treeCpu counts the wake-ups of a process that sleeps and wakes', async () => {
  // a shell that, once told to go, waits for 30 short children in turn: it sleeps in wait() and is woken once per child
  const sh = spawn('sh', ['-c', 'read go; i=0; while [ $i -lt 30 ]; do sleep 0.01; i=$((i+1)); done; echo done; exec sleep 30']);
  try {
    const before = treeCpu(sh.pid!).wakeups;
    sh.stdin.write('go\n');
    await new Promise<void>((resolve, reject) => {
      sh.once('error', reject);
      sh.stdout.on('data', (d: Buffer) => { if (d.toString().includes('done')) resolve(); });
    });
    const woke = treeCpu(sh.pid!).wakeups - before;
    assert.ok(woke >= 30, `the shell was put on a CPU ${woke} times while it waited for 30 children`);
  } finally {
    sh.kill();
  }
});

/** One request's status and body through `base`. */
async function fetchText(base: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  const r = await fetch(base + path, body === undefined ? {} : { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  return { status: r.status, text: await r.text() };
}

test('the reference proxies answer what the service answers: GET, POST bodies, pipelined requests, an upstream that closes', { timeout: 60_000 }, async () => {
  const svc = await startDraftService({ seedDrafts: 3 });
  services.push(svc);
  const query = JSON.stringify({ draft_id: 'dft_000002', force_update: false });
  const direct = [await fetchText(svc.url, '/get_font_types'), await fetchText(svc.url, '/query_script', query)];
  assert.equal(direct[1].status, 200);
  // an upstream that closes every connection after its answer, as the real draft service does
  const closing = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }).end(`closing ${req.url}`));
  });
  await new Promise<void>((r) => closing.listen(0, '127.0.0.1', r));
  const closingUrl = `http://127.0.0.1:${(closing.address() as AddressInfo).port}`;
  try {
    for (const which of ['bare-proxy', 'llhttp-proxy'] as const) {
      const proxy = await startReferenceProxy(svc.url, which);
      const behindClosing = await startReferenceProxy(closingUrl, which);
      try {
        assert.deepEqual([await fetchText(proxy.url, '/get_font_types'), await fetchText(proxy.url, '/query_script', query)], direct, which);
        // two requests in one write on one connection: two answers, in order
        const raw = await new Promise<string>((resolve, reject) => {
          const sock = net.connect(Number(new URL(proxy.url).port), '127.0.0.1');
          let got = '';
          sock.on('data', (d) => {
            got += d.toString('latin1');
            // the second answer is whole: its body's last bytes, or a chunked body's last chunk
            if ((got.match(/HTTP\/1\.1 /g) ?? []).length === 2 && (got.endsWith('"success":true}') || got.endsWith('\r\n0\r\n\r\n'))) sock.end();
          });
          sock.on('end', () => resolve(got));
          sock.on('error', reject);
          sock.write('GET /get_font_types HTTP/1.1\r\nhost: x\r\n\r\nGET /get_mask_types HTTP/1.1\r\nhost: x\r\n\r\n');
        });
        const statuses = [...raw.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
        assert.deepEqual(statuses, ['200', '200'], `${which}: ${raw.slice(0, 200)}`);
        assert.ok(raw.indexOf('CC_Captial') < raw.lastIndexOf('HTTP/1.1 200'), `${which}: the font list answers first`);
        for (let i = 0; i < 5; i++) assert.deepEqual(await fetchText(behindClosing.url, `/n${i}`), { status: 200, text: `closing /n${i}` }, which);
      } finally {
        await proxy.stop();
        await behindClosing.stop();
      }
    }
  } finally {
    closing.closeAllConnections();
    await new Promise<void>((r) => closing.close(() => r()));
  }
});
