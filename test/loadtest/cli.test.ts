import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { settingsFrom } from '../../cmd/loadtest';
import { UsageError } from '../../cmd/args';
import { buildRoot } from '../helpers/repo';
import { checkWellFormedXml } from './xml-check';

const CLI = join(buildRoot(), 'cmd', 'bridge-sidecar.js');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'loadtest', ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('bad flags are usage errors that name the flag', () => {
  const T = 'http://127.0.0.1:9/';
  const cases: [Record<string, string>, RegExp][] = [
    [{}, /--target URL is required/],
    [{ target: 'not a url' }, /--target: "not a url" is not a URL/],
    [{ target: 'ftp://x/' }, /only http/],
    [{ target: T, profile: 'spike' }, /--profile: "spike" is not one of baseline, steps, soak/],
    [{ target: T, rate: '-5' }, /--rate: "-5" is not a positive number/],
    [{ target: T, rate: 'fast' }, /--rate: "fast"/],
    [{ target: T, profile: 'baseline', rate: '100' }, /--rate does not apply to the baseline profile/],
    [{ target: T, profile: 'soak', steps: '1,2' }, /--steps applies only to the steps profile/],
    [{ target: T, rate: '10', steps: '1,2' }, /either --rate .* or --steps/],
    [{ target: T, steps: '100,,200' }, /--steps: "" is not a positive number/],
    [{ target: T, duration: 'forever' }, /--duration: "forever" is not a duration/],
    [{ target: T, duration: '0' }, /--duration: must be at least/],
    [{ target: T, pause: 'x' }, /--pause/],
    [{ target: T, timeout: '1y' }, /--timeout/],
    [{ target: T, connections: '0' }, /--connections: "0" is not a positive whole number/],
    [{ target: T, connections: '2.5' }, /--connections/],
    [{ target: T, connections: '2', threads: '3' }, /--threads 3 is more than --connections 2/],
    [{ target: T, pid: 'self' }, /--pid/],
    [{ target: T, metrics: '::' }, /--metrics/],
    [{ target: T, profile: 'soak', 'report-every': '10ms' }, /--report-every: must be at least 1000 ms/],
  ];
  for (const [values, re] of cases) {
    assert.throws(() => settingsFrom(values), (e: unknown) => e instanceof UsageError && re.test(e.message), JSON.stringify(values));
  }
});

test('profile defaults follow the guide: baseline 30 s / 400 connections, steps 100…5000 at 60 s, soak 1 h / 200', () => {
  const T = 'http://127.0.0.1:9/api';
  const b = settingsFrom({ target: T }).settings;
  assert.deepEqual([b.profile, b.durationMs, b.connections, b.rates], ['baseline', 30_000, 400, []]);
  const s = settingsFrom({ target: T, profile: 'steps' }).settings;
  assert.deepEqual([s.profile, s.durationMs, s.pauseMs, s.rates], ['steps', 60_000, 30_000, [100, 500, 1000, 2000, 5000]]);
  const k = settingsFrom({ target: T, profile: 'soak', rate: '300' }).settings;
  assert.deepEqual([k.profile, k.durationMs, k.connections, k.rates, k.reportEveryMs], ['soak', 3_600_000, 200, [300], 60_000]);
  const one = settingsFrom({ target: T, rate: '250', duration: '5s', threads: '2' }).settings;
  assert.deepEqual([one.profile, one.rates, one.durationMs, one.threads], ['steps', [250], 5000, 2]);
  assert.equal(one.mix[0].path, '/api', 'without a mix the target URL itself is requested');
  assert.equal(one.basePath, '');
});

test('the command: --help, unknown flags and a missing target', async () => {
  const help = await cli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--profile NAME/);
  const unknown = await cli(['--target', 'http://127.0.0.1:9/', '--bogus']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /bogus/);
  const missing = await cli([]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--target URL is required/);
  const badMix = await cli(['--target', 'http://127.0.0.1:9/', '--mix', '/nonexistent.yaml']);
  assert.equal(badMix.code, 2);
  assert.match(badMix.stderr, /nonexistent\.yaml: cannot read/);
});

test('end to end: steps with a mix against a real server, sidecar figures from its /metrics, report files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'loadtest-cli-'));
  const paths = new Map<string, number>();
  const target = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      paths.set(req.url!, (paths.get(req.url!) ?? 0) + 1);
      res.setHeader('content-type', 'application/json');
      res.end('{"success":true}');
    });
  });
  let scrapes = 0;
  const metrics = createServer((_req, res) => {
    scrapes++;
    res.end(`process_cpu_seconds_total ${scrapes * 0.2}\nprocess_resident_memory_bytes ${60 * 2 ** 20}\n` +
      `bridge_sidecar_cache_requests_total{layer="l1",result="hit"} ${scrapes * 9}\nbridge_sidecar_cache_requests_total{layer="l1",result="miss"} ${scrapes}\n` +
      `bridge_sidecar_shed_total{reason="queue_full"} 0\n`);
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => metrics.listen(0, '127.0.0.1', r));
  t.after(() => {
    target.closeAllConnections();
    target.close();
    metrics.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const mixFile = join(dir, 'mix.yaml');
  writeFileSync(mixFile, 'requests:\n  - { name: script, method: POST, path: /query_script, body: { draft_id: "d{int:1-5}" }, weight: 3 }\n  - { name: health, path: /health }\n');
  const report = join(dir, 'out', 'report.md');
  const res = await cli([
    '--target', `http://127.0.0.1:${(target.address() as AddressInfo).port}/`, '--steps', '50,100', '--duration', '1s', '--pause', '200ms',
    '--connections', '8', '--mix', mixFile, '--metrics', `http://127.0.0.1:${(metrics.address() as AddressInfo).port}/metrics`, '--report', report,
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /50 req\/s: requested 50\/s {2}achieved \d+/);
  assert.match(res.stdout, /100 req\/s: requested 100\/s/);
  assert.doesNotMatch(res.stdout, /\x1b\[/, 'no progress line when stdout is not a terminal');
  assert.ok((paths.get('/query_script') ?? 0) > (paths.get('/health') ?? 0), JSON.stringify([...paths]));
  const md = readFileSync(report, 'utf8');
  assert.match(md, /\| 50 \| \d+(\.\d)? \| 0\.0 \| 0\.0 \| \d+ \| 0\.00 % \|.*cores\) \| 60 MB/);
  assert.match(md, /\| 100 req\/s \| 90\.0 % \| l1 \d+\/\d+ \| 0 \| 0 \|/);
  assert.match(md, /\| 50 req\/s \| script \| 3 \|/);
  assert.ok(md.includes('--mix ' + mixFile));
  for (const f of ['report-latency.svg', 'report-throughput.svg']) assert.equal(checkWellFormedXml(readFileSync(join(dir, 'out', f), 'utf8')).root, 'svg');
  const json = JSON.parse(readFileSync(join(dir, 'out', 'report.json'), 'utf8')) as { steps: { sent: number; perEntry: unknown[] }[] };
  assert.equal(json.steps.length, 2);
  assert.equal(json.steps[0].perEntry.length, 2);
  assert.ok(existsSync(report));
});

test('Ctrl-C ends the step early and still writes the report', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'loadtest-int-'));
  const target = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  t.after(() => {
    target.closeAllConnections();
    target.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const report = join(dir, 'r.md');
  const child = spawn(process.execPath, [CLI, 'loadtest', '--target', `http://127.0.0.1:${(target.address() as AddressInfo).port}/`,
    '--profile', 'soak', '--rate', '50', '--duration', '10m', '--connections', '4', '--report', report], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const deadline = Date.now() + 20_000;
  while (!out.includes('loadtest: soak') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 1500));
  child.kill('SIGINT');
  const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 30_000))]);
  assert.equal(code, 0, out);
  assert.match(out, /interrupted/);
  const json = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')) as { steps: { durationMs: number; sent: number }[]; intervals: unknown[] };
  assert.equal(json.steps.length, 1);
  assert.ok(json.steps[0].durationMs < 60_000, `the window was cut short: ${json.steps[0].durationMs} ms`);
  assert.ok(json.steps[0].sent > 0);
  assert.equal(json.intervals.length, 1, 'the partial soak interval is reported');
});
