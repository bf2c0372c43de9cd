/**
 * CPU profiles and heap snapshots from the real sidecar: on demand through the token-guarded admin endpoints
 * (taken in a worker, streamed by the primary), on schedule, and on the RSS threshold; the files are valid
 * .cpuprofile / .heapsnapshot JSON and their number is bounded.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { waitFor } from '../helpers/ports';
import { http } from './helpers';

const TOKEN = 'observe-test-token';

let upstream: DraftService;
let dir: string;
before(async () => {
  upstream = await startDraftService({ port: 0, host: '127.0.0.1' });
  dir = mkdtempSync(join(tmpdir(), 'bridge-observe-prof-'));
  writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
});
after(async () => {
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

function assertCpuProfile(text: string): void {
  const p = JSON.parse(text) as { nodes: Array<{ id: number; callFrame: { functionName: string } }>; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] };
  assert.ok(Array.isArray(p.nodes) && p.nodes.length > 0, 'nodes');
  assert.ok(p.nodes.every((n) => typeof n.id === 'number' && typeof n.callFrame === 'object'));
  assert.equal(typeof p.startTime, 'number');
  assert.ok(p.endTime > p.startTime);
  assert.ok(Array.isArray(p.samples) && Array.isArray(p.timeDeltas));
  assert.equal(p.samples.length, p.timeDeltas.length);
}

function assertHeapSnapshot(text: string): void {
  const h = JSON.parse(text) as { snapshot: { meta: { node_fields: string[] }; node_count: number }; nodes: number[]; edges: number[]; strings: string[] };
  assert.ok(h.snapshot && Array.isArray(h.snapshot.meta.node_fields), 'snapshot.meta');
  assert.ok(h.nodes.length > 0 && h.nodes.length === h.snapshot.node_count * h.snapshot.meta.node_fields.length, 'nodes');
  assert.ok(Array.isArray(h.edges) && h.edges.length > 0, 'edges');
  assert.ok(Array.isArray(h.strings) && h.strings.length > 0, 'strings');
}

function files(out: string, ext: string): string[] {
  try {
    return readdirSync(out).filter((n) => n.endsWith(ext));
  } catch {
    return [];
  }
}

test('on demand, two workers: token required, profile and heap snapshot of the chosen worker, files bounded', { timeout: 180_000 }, async (t) => {
  const out = join(dir, 'on-demand');
  const sc = await startSidecar(basicPolicy(upstream.port, `profiling: { enabled: false, output: ${out}, max_files: 3 }\n`, { workers: 2, admin_token_file: join(dir, 'token') }));
  t.after(() => sc.stop());
  const auth = { authorization: `Bearer ${TOKEN}` };

  for (const path of ['/debug/profile?seconds=1', '/debug/heap']) {
    const none = await http(`${sc.adminUrl}${path}`);
    assert.equal(none.status, 401, `${path} without a token`);
    assert.match(String(none.headers['www-authenticate']), /^Bearer/);
    assert.equal((await http(`${sc.adminUrl}${path}`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
  }
  assert.equal(files(out, '.cpuprofile').length, 0, 'a refused request takes no profile');

  for (const bad of ['0', '61', 'abc', '-1']) {
    assert.equal((await http(`${sc.adminUrl}/debug/profile?seconds=${bad}`, { headers: auth })).status, 400, `seconds=${bad}`);
  }
  assert.equal((await http(`${sc.adminUrl}/debug/profile?seconds=1&worker=999`, { headers: auth })).status, 404);

  // load while profiling, so the profile has JavaScript in it
  const load = setInterval(() => void http(`${sc.url}/get_font_types`).catch(() => {}), 5);
  t.after(() => clearInterval(load));
  const first = await http(`${sc.adminUrl}/debug/profile?seconds=1`, { headers: auth });
  assert.equal(first.status, 200, first.text);
  assertCpuProfile(first.text);
  assert.match(String(first.headers['content-disposition']), /attachment; filename="cpu-.*\.cpuprofile"/);
  const w1 = Number(first.headers['x-profile-worker']);
  const file1 = String(first.headers['x-profile-file']);
  assert.ok(file1.startsWith(out));
  assertCpuProfile(readFileSync(file1, 'utf8'));

  const other = w1 === 1 ? 2 : 1; // the cluster's worker ids, as in the logs
  const second = await http(`${sc.adminUrl}/debug/profile?seconds=0.5&worker=${other}`, { headers: auth });
  assert.equal(second.status, 200, second.text);
  assert.equal(Number(second.headers['x-profile-worker']), other);
  assert.notEqual(second.headers['x-profile-pid'], first.headers['x-profile-pid'], 'another process');
  assertCpuProfile(second.text);

  const heap = await http(`${sc.adminUrl}/debug/heap`, { headers: auth });
  assert.equal(heap.status, 200, heap.text.slice(0, 200));
  assertHeapSnapshot(heap.text);
  assert.match(String(heap.headers['x-profile-file']), /\.heapsnapshot$/);
  assertHeapSnapshot(readFileSync(String(heap.headers['x-profile-file']), 'utf8'));

  for (let i = 0; i < 2; i++) assert.equal((await http(`${sc.adminUrl}/debug/profile?seconds=0.2`, { headers: auth })).status, 200);
  clearInterval(load);
  const kept = readdirSync(out);
  assert.equal(kept.length, 3, `max_files 3: ${kept}`);
  assert.ok(!kept.includes(file1.slice(out.length + 1)), 'the oldest went first');
  assert.ok(kept.some((n) => n.endsWith('.heapsnapshot')), 'the newer heap snapshot stays');
  assert.ok(kept.every((n) => !n.endsWith('.partial')));
});

test('a second profile of the same worker while one runs is refused with 409', { timeout: 60_000 }, async (t) => {
  const out = join(dir, 'busy');
  const sc = await startSidecar(basicPolicy(upstream.port, `profiling: { output: ${out} }\n`, { admin_token_file: join(dir, 'token') }));
  t.after(() => sc.stop());
  const auth = { authorization: `Bearer ${TOKEN}` };
  const long = http(`${sc.adminUrl}/debug/profile?seconds=10`, { headers: auth });
  // the first order has reached the profiler: a wide margin (a busy machine), well inside its 10 s
  await new Promise((r) => setTimeout(r, 2500));
  const busy = await http(`${sc.adminUrl}/debug/profile?seconds=1`, { headers: auth });
  assert.equal(busy.status, 409, busy.text);
  const done = await long;
  assert.equal(done.status, 200);
  assertCpuProfile(done.text);
});

test('without a token file the debug endpoints do not exist (404)', { timeout: 60_000 }, async (t) => {
  const sc = await startSidecar(basicPolicy(upstream.port));
  t.after(() => sc.stop());
  assert.equal((await http(`${sc.adminUrl}/debug/profile?seconds=1`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 404);
  assert.equal((await http(`${sc.adminUrl}/debug/heap`)).status, 404);
});

test('on schedule: CPU profiles every cpu.interval, a heap snapshot when RSS is above heap.threshold (once per interval)', { timeout: 120_000 }, async (t) => {
  const out = join(dir, 'scheduled');
  const sc = await startSidecar(basicPolicy(upstream.port,
    `profiling: { enabled: true, cpu: { interval: 2s, duration: 500ms }, heap: { interval: 1h, threshold: 1MB }, output: ${out}, max_files: 10 }\n`,
    { workers: 2 }));
  t.after(() => sc.stop());
  await waitFor('two scheduled CPU profiles', () => files(out, '.cpuprofile').filter((n) => n.includes('-scheduled')).length >= 2, 60_000, 200);
  const cpu = files(out, '.cpuprofile').filter((n) => n.includes('-scheduled'));
  for (const n of cpu) assertCpuProfile(readFileSync(join(out, n), 'utf8'));
  // workers take turns
  await waitFor('both workers profiled', () => new Set(files(out, '.cpuprofile').map((n) => /-w(\d+)-/.exec(n)?.[1])).size >= 2, 60_000, 200);
  // every worker is far above 1 MB of RSS: one snapshot each, and no second one within the hour
  await waitFor('threshold snapshots', () => files(out, '.heapsnapshot').filter((n) => n.includes('-threshold')).length >= 2, 60_000, 200);
  const heaps = files(out, '.heapsnapshot');
  assertHeapSnapshot(readFileSync(join(out, heaps[0]), 'utf8'));
  await new Promise((r) => setTimeout(r, 6000)); // more than one RSS check period
  assert.equal(files(out, '.heapsnapshot').length, 2, 'at most one threshold snapshot per worker per heap.interval');
  assert.ok(readdirSync(out).length <= 10);
});
