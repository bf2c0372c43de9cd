import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runProfile, type RunSettings } from '../../lib/loadtest/profiles';

async function server(t: { after(fn: () => void): void }): Promise<{ url: string; count: () => number }> {
  let n = 0;
  const s = createServer((req, res) => {
    n++;
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => {
    s.closeAllConnections();
    s.close();
  });
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/`, count: () => n };
}

const base = (url: string, over: Partial<RunSettings>): RunSettings => ({
  profile: 'steps', target: url, mixFile: null, mix: [{ name: 'GET /', method: 'GET', path: '/', headers: [], body: null, weight: 1 }], basePath: '',
  connections: 4, threads: 1, durationMs: 1000, pauseMs: 0, rates: [], timeoutMs: 10_000, reportEveryMs: 60_000, metricsUrl: null, pid: null, ...over,
});

test('soak: one line per --report-every with the target process memory (--pid)', async (t) => {
  const { url } = await server(t);
  const lines: string[] = [];
  const run = await runProfile(base(url, { profile: 'soak', rates: [100], durationMs: 3500, reportEveryMs: 1000, pid: process.pid }), { log: (l) => lines.push(l), progress: null });
  assert.ok(run.intervals.length >= 3 && run.intervals.length <= 5, `${run.intervals.length} intervals`);
  const soakLines = lines.filter((l) => l.startsWith('soak '));
  assert.equal(soakLines.length, run.intervals.length);
  assert.match(soakLines[0], /target rss \d+ MB/);
  for (const i of run.intervals) assert.ok((i.target?.rssBytes ?? 0) > 0, 'memory of the target process in every interval');
  assert.equal(run.steps.length, 1);
  assert.ok(Math.abs(run.steps[0].sent - 350) <= 7, `sent ${run.steps[0].sent}`);
  assert.ok(run.steps[0].target !== null && run.steps[0].target.rssBytes! > 0);
});

test('steps run in order with their own rates; baseline is closed loop with no requested rate', async (t) => {
  const { url, count } = await server(t);
  const lines: string[] = [];
  const run = await runProfile(base(url, { rates: [50, 150], durationMs: 1000, pauseMs: 200 }), { log: (l) => lines.push(l), progress: null });
  assert.deepEqual(run.steps.map((s) => s.requestedRate), [50, 150]);
  assert.deepEqual(run.steps.map((s) => s.sent), [50, 150]);
  assert.equal(count(), 200);
  assert.match(lines[1], /^150 req\/s: requested 150\/s {2}achieved/);

  const b = await runProfile(base(url, { profile: 'baseline', durationMs: 800 }), { log: () => undefined, progress: null });
  assert.equal(b.steps.length, 1);
  assert.equal(b.steps[0].requestedRate, null);
  assert.equal(b.steps[0].label, 'baseline');
  assert.ok(b.steps[0].completed > 0 && b.steps[0].errors === 0);
});
