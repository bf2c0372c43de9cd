/**
 * JIT warm-up before readiness: each worker runs synthetic requests through a private copy of its pipeline
 * before it listens. What a user checks: it happens before the sidecar takes traffic, it is bounded, and it
 * leaves no trace in what they see (the upstream's traffic, metrics, the cache, rate limits, the access log).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startDraftService } from '../../examples/draft-service';
import { basicPolicy, startSidecar } from '../helpers/sidecar';
import { steadyV8FlagsFor } from '../../lib/perf/v8-flags';

const ROUTES = `
rate_limiting:
  global: { requests_per_second: 1, burst_size: 5 }
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m, store_if: { "response.success": true } }
  - name: fonts
    match: { method: GET, path: /get_font_types }
    cache: { key: "fonts", ttl: 5m }
cache:
  l1: { size: 8MB }
`;

async function metricSum(adminUrl: string, name: string): Promise<number> {
  const text = await (await fetch(adminUrl + '/metrics')).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name + '{') || line.startsWith(name + ' ')) sum += Number(line.split(' ').pop());
  return sum;
}

for (const workers of [2, 1, 0]) {
  test(`before taking traffic each worker warms its pipeline up, bounded, leaving nothing behind (workers: ${workers})`, { timeout: 90_000 }, async (t) => {
    const up = await startDraftService({ port: 0, host: '127.0.0.1', seedDrafts: 5 });
    t.after(() => up.close());
    const policy = basicPolicy(up.port, ROUTES, { workers, jit_warmup: '{ enabled: true, requests: 2000, max_time: 1500ms }' });
    const sc = await startSidecar(policy, { timeoutMs: 60_000 });
    t.after(() => sc.stop());

    const warm = sc.logs.filter((l) => l.msg === 'jit warm-up done');
    assert.equal(warm.length, Math.max(1, workers), 'one warm-up per worker');
    const listeningAt = sc.logs.findIndex((l) => l.msg === 'listening');
    for (const w of warm) {
      const o = w.jit_warmup as { requests: number; errors: number; upstream: number; ms: number };
      assert.ok(sc.logs.indexOf(w) < listeningAt, 'warm-up finishes before the sidecar listens');
      // how many fit in max_time depends on the machine (a few thousand when quiet, dozens on a saturated one)
      assert.ok(o.requests > 0 && o.requests <= 2000, `requests ${o.requests}`);
      assert.ok(o.errors <= o.requests, `errors ${o.errors}`);
      // the fill path is warmed too, not only hits: every other round of 10 (2 routes x 4 variants, 2 pass-through)
      // brings new query_script keys, so each 20 requests send at least 8 to the stub (2 + 4 misses + 2); with
      // one fixed round only its first pass filled (4 of 20 after it). Up to 16 may be dropped in flight at the end.
      assert.ok(o.upstream >= Math.floor((o.requests - 16) / 20) * 8, `the warm-up's stub upstream answered ${o.upstream} of ${o.requests}`);
      // max_time bounds it hard (setup and teardown on a busy machine come on top)
      assert.ok(o.ms < 1500 + 2000, `warm-up took ${o.ms} ms`);
    }
    assert.equal(up.stats().requests, 0, 'the real upstream saw no warm-up request');
    assert.equal(await metricSum(sc.adminUrl, 'bridge_sidecar_http_requests_total'), 0);
    assert.equal(await metricSum(sc.adminUrl, 'bridge_sidecar_cache_size_bytes{layer="l1"}'), 0);
    assert.equal(sc.logs.filter((l) => l.msg === 'access').length, 0, 'no access log lines');

    // the real cache starts empty and the real limiter full: a burst of 5 passes (4 GETs, 1 POST), the read is a miss
    const statuses = await Promise.all(Array.from({ length: 4 }, () => fetch(sc.url + '/get_font_types').then((r) => r.status)));
    assert.deepEqual(statuses, [200, 200, 200, 200]);
    const q = await fetch(sc.url + '/query_script', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"draft_id":"dft_000001","force_update":false}' });
    assert.equal(q.status, 200);
    assert.match(String(q.headers.get('cache-status')), /fwd=miss/);
  });
}

test('jit_warmup.enabled: false starts without it', { timeout: 60_000 }, async (t) => {
  const up = await startDraftService({ port: 0, host: '127.0.0.1' });
  t.after(() => up.close());
  const sc = await startSidecar(basicPolicy(up.port, '', { jit_warmup: '{ enabled: false }' }));
  t.after(() => sc.stop());
  assert.equal(sc.logs.filter((l) => l.msg === 'jit warm-up done').length, 0);
  assert.equal((await fetch(sc.url + '/get_font_types')).status, 200);
});

// lib/perf/v8-flags.ts: what the warm-up meets is compiled to V8's baseline code from its first call, and only
// during the warm-up: on the worker's command line the flag made the steady state slower (bench/RESULTS.md, "Start-up")
for (const [workers, eager] of [[1, true], [0, true], [1, false]] as const) {
  test(`jit_warmup.eager_baseline: ${eager} (workers: ${workers}): --always-sparkplug during the warm-up${eager ? '' : ' is not set'}, never on the command line`, { timeout: 60_000 }, async (t) => {
    const up = await startDraftService({ port: 0, host: '127.0.0.1' });
    t.after(() => up.close());
    const sc = await startSidecar(basicPolicy(up.port, '', { workers, ...(eager ? {} : { jit_warmup: '{ eager_baseline: false }' }) }));
    t.after(() => sc.stop());
    const warm = sc.logs.filter((l) => l.msg === 'jit warm-up done');
    assert.equal(warm.length, 1);
    assert.deepEqual(warm[0]!.v8_flags, eager ? ['--always-sparkplug'] : []);
    const cmdline = readFileSync(`/proc/${String(warm[0]!.pid)}/cmdline`, 'utf8').split('\0');
    assert.equal(cmdline.includes('--always-sparkplug'), false, cmdline.join(' '));
    assert.equal((await fetch(sc.url + '/get_font_types')).status, 200);
  });
}

// A scrape's collection changes the layout of objects that the request path's optimised code meets too: the first
// increment after a reset turns a prom-client counter's `value` field from constant to mutable, and V8 throws away
// the code that relied on it. The warm-up collects its own registry before its first request, so what it compiled
// survives the first real scrape (bench/RESULTS.md, issue 19, session 20). Read from V8's --trace-opt/--trace-deopt.
test('the first scrapes after start deoptimise none of the request path the warm-up compiled (V8 trace)', { timeout: 90_000 }, async (t) => {
  const up = await startDraftService({ port: 0, host: '127.0.0.1', seedDrafts: 5 });
  t.after(() => up.close());
  // no rate limits: their dry-run refusals in the warm-up increment a prom-client counter, which would hide the case
  const policy = basicPolicy(up.port, ROUTES.replace(/rate_limiting:\n.*\n/, ''), { workers: 1, log_level: 'warn', jit_warmup: '{ enabled: true, requests: 4000, max_time: 4s }' });
  const sc = await startSidecar(policy, { timeoutMs: 60_000, nodeArgs: ['--trace-opt', '--trace-deopt'] });
  t.after(() => sc.stop());
  for (let i = 0; i < 2; i++) assert.equal((await fetch(sc.adminUrl + '/metrics')).status, 200);
  // V8 writes its trace through C's stdout, buffered apart from the JSON log lines: read it whole, after the exit
  await sc.stop();
  const out = sc.proc.stdout!;
  if (!out.closed) await new Promise((r) => out.once('close', r));
  const trace = sc.logs.map((l) => String(l.raw ?? ''));
  // something to lose: the warm-up had these functions optimised (else this test could not fail)
  assert.ok(trace.some((l) => l.startsWith('[completed optimizing') && /<JSFunction (getPath|match|baseKey) /.test(l)), 'the warm-up optimised the request path');
  const PATH_FNS = /SharedFunctionInfo (getPath|match|baseKey|needsBody|resolveParams|fill|headerValue|stripRequestHopByHop)>/;
  const thrownAway = trace.filter((l) => l.startsWith('[marking dependent code') && PATH_FNS.test(l));
  assert.deepEqual(thrownAway, [], 'request-path code thrown away for a field that turned mutable');
});

// undici parses answers in WebAssembly memory. The first answer read in a larger chunk than any before grows that
// memory, which detaches its old ArrayBuffer; V8 then throws away every optimised function that assumed no buffer
// had ever been detached. The warm-up spends that before it compiles anything, so a large answer after /readyz
// costs none of what it compiled (bench/RESULTS.md, "Start-up: what the figures mean", session 22).
test('the first large upstream answer after start deoptimises none of the request path the warm-up compiled (V8 trace)', { timeout: 90_000 }, async (t) => {
  const big = Buffer.alloc(256 * 1024, 'x');
  const small = Buffer.from(JSON.stringify({ success: true, output: 'ok' }));
  const up = createServer((req, res) => {
    const body = req.url === '/big' ? big : small;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
    res.end(body);
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  t.after(() => { up.closeAllConnections(); up.close(); });
  const policy = basicPolicy((up.address() as AddressInfo).port, '', { workers: 1, log_level: 'warn', jit_warmup: '{ enabled: true, requests: 4000, max_time: 4s }' });
  const sc = await startSidecar(policy, { timeoutMs: 60_000, nodeArgs: ['--trace-opt', '--trace-deopt', '--trace-protector-invalidation'] });
  t.after(() => sc.stop());
  for (let i = 0; i < 20; i++) assert.equal((await fetch(sc.url + '/small')).status, 200);
  const r = await fetch(sc.url + '/big');
  assert.equal((await r.arrayBuffer()).byteLength, big.length);
  for (let i = 0; i < 20; i++) assert.equal((await fetch(sc.url + '/small')).status, 200);
  // V8 writes its trace through C's stdout, buffered apart from the JSON log lines: read it whole, after the exit
  await sc.stop();
  const out = sc.proc.stdout!;
  if (!out.closed) await new Promise((r2) => out.once('close', r2));
  const trace = sc.logs.map((l) => String(l.raw ?? ''));
  // V8's own lines keep their order among themselves (the JSON log lines are written apart from them). The detach
  // prints the protector's line, then marks at once every optimised function that relied on it.
  const v8Lines = trace.filter((l) => l.startsWith('[') || l.startsWith('Invalidating protector'));
  const at = v8Lines.indexOf('Invalidating protector cell ArrayBufferDetaching');
  assert.ok(at >= 0, 'a buffer was detached in this run (once per process: the warm-up\'s own, or else the large answer\'s)');
  const thrownAway: string[] = [];
  for (let i = at + 1; i < v8Lines.length && v8Lines[i]!.startsWith('[marking dependent code'); i++) thrownAway.push(v8Lines[i]!);
  const PATH_FNS = 'answerHeaders|onHeaders|onBody|onMessageComplete|endReadable|setStreamTimeout|writeGeneric|Socket\\._writeGeneric|clearTimeout|onHeaderValue';
  const optimised = new RegExp(`<JSFunction (${PATH_FNS}) `);
  const marked = new RegExp(`SharedFunctionInfo (${PATH_FNS})>`);
  // something to lose: the warm-up had some of these optimised (else this test could not fail)
  assert.ok(trace.some((l) => l.startsWith('[completed optimizing') && optimised.test(l)), 'the warm-up optimised the request path');
  const lost = thrownAway.filter((l) => marked.test(l));
  assert.deepEqual(lost, [], 'request-path code thrown away when a buffer was detached');
});

// The toggle itself, seen by V8: a function first called while the flag is set has baseline code at once; one
// first called after it is cleared starts in the interpreter. %GetOptimizationStatus needs --allow-natives-syntax,
// so this runs in a child node.
test('setV8Flags: functions first called during the warm-up get baseline code at once, those called after it do not', () => {
  const script = `
    const { setV8Flags, v8FlagsFor } = require(${JSON.stringify(join(__dirname, '../../lib/perf/v8-flags.js'))});
    const BASELINE = 1 << 15, INTERPRETED = 1 << 7;
    const flags = v8FlagsFor({ server: { jit_warmup: { eager_baseline: true } } }, []);
    // two different functions (a function's code is shared by its closures): one first called while the flag is
    // set, one first called after it is cleared
    function during(a) { return a + 1; }
    function after(a) { return a + 2; }
    setV8Flags(flags, true);
    during(1);
    setV8Flags(flags, false);
    after(1);
    const s = (f) => eval('%GetOptimizationStatus(f)');
    console.log(JSON.stringify({ flags, during: (s(during) & BASELINE) !== 0, after: (s(after) & BASELINE) !== 0, afterInterpreted: (s(after) & INTERPRETED) !== 0 }));`;
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '-e', script]).toString();
  assert.deepEqual(JSON.parse(out), { flags: ['--always-sparkplug'], during: true, after: false, afterInterpreted: true });
});

// server.v8_polymorphic_maps (lib/perf/v8-flags.ts): every process that serves requests sets V8's
// --max-valid-polymorphic-map-count at start, at run time (never on its command line); an operator's own flag wins
for (const workers of [1, 0]) {
  test(`server.v8_polymorphic_maps (workers: ${workers}): the serving process sets it at start from the policy`, { timeout: 60_000 }, async (t) => {
    const up = await startDraftService({ port: 0, host: '127.0.0.1' });
    t.after(() => up.close());
    const sc = await startSidecar(basicPolicy(up.port, '', { workers, v8_polymorphic_maps: 12 }));
    t.after(() => sc.stop());
    const set = sc.logs.filter((l) => l.msg === 'v8 flags set for the request path');
    assert.equal(set.length, 1);
    assert.deepEqual(set[0]!.v8_flags, ['--max-valid-polymorphic-map-count=12']);
    const cmdline = readFileSync(`/proc/${String(set[0]!.pid)}/cmdline`, 'utf8');
    assert.equal(cmdline.includes('polymorphic'), false, cmdline);
    assert.equal((await fetch(sc.url + '/get_font_types')).status, 200);
  });
}

test('steadyV8FlagsFor: the policy value, or nothing when node\'s command line sets its own', () => {
  const policy = { server: { v8_polymorphic_maps: 16 } } as Parameters<typeof steadyV8FlagsFor>[0];
  assert.deepEqual(steadyV8FlagsFor(policy, []), ['--max-valid-polymorphic-map-count=16']);
  assert.deepEqual(steadyV8FlagsFor(policy, ['--max-valid-polymorphic-map-count=4']), []);
  assert.deepEqual(steadyV8FlagsFor(policy, ['--max_valid_polymorphic_map_count=8']), []);
});

// The flag set at run time is the one V8 reads: an access site that meets 8 object shapes stays polymorphic
// ('P' in V8's IC log) instead of turning megamorphic ('N') after the fourth. Runs in a child node with --log-ic.
test('applySteadyV8Flags: set at run time, an access site meeting 8 shapes stays polymorphic (V8\'s IC log)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'v8-ic-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const states = (maps: number | null): string[] => {
    const log = join(dir, `ic-${String(maps)}.log`);
    const script = `
      const { applySteadyV8Flags } = require(${JSON.stringify(join(__dirname, '../../lib/perf/v8-flags.js'))});
      ${maps === null ? '' : `applySteadyV8Flags({ server: { v8_polymorphic_maps: ${maps} } });`}
      function probeSite(o) { return o.probeField; }
      const objs = [];
      for (let i = 0; i < 8; i++) { const o = { probeField: i }; o['k' + i] = i; objs.push(o); }
      for (let r = 0; r < 3; r++) for (const o of objs) probeSite(o);`;
    execFileSync(process.execPath, ['--log-ic', `--logfile=${log}`, '--no-logfile-per-isolate', '-e', script]);
    // LoadIC,pc,time,line,column,old_state,new_state,map,key,...
    return readFileSync(log, 'utf8').split('\n').filter((l) => l.startsWith('LoadIC,') && l.includes(',probeField,')).map((l) => l.split(',')[6]!);
  };
  const v8Default = states(null);
  assert.ok(v8Default.includes('N'), `without the flag the site turns megamorphic: ${v8Default.join(' ')}`);
  const sixteen = states(16);
  assert.ok(sixteen.length >= 8 && sixteen.includes('P') && !sixteen.includes('N'), sixteen.join(' '));
});
