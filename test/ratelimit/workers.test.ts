/**
 * Exact per pod whatever server.workers is: two real node:cluster workers share the pod's limits through the
 * primary's lease service, so together they admit the configured rate (not twice it, not half).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { burnCpus, within5 } from './helpers';

interface Counts { global: number; user: number; endpoint: number; sent: number; maxMs: number }

function runPod(env: Record<string, string>, t: { after(fn: () => unknown): void }): Promise<Counts> {
  const proc = spawn(process.execPath, [join(__dirname, 'fixtures', 'workers.js')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => { if (proc.exitCode === null) proc.kill('SIGKILL'); });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    proc.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as Counts);
      } catch {
        reject(new Error(`fixture exited ${code}: ${out} ${err}`));
      }
    });
  });
}

test('2 workers, global 100/s: the pod admits 100/s (10 s fixed-rate run, within 5 %)', { timeout: 60_000 }, async (t) => {
  const r = await runPod({
    RL_POLICY: 'global: { requests_per_second: 100, burst_size: 20 }',
    RL_WORKERS: '2', RL_RATE: '120', RL_DURATION_MS: '10000', RL_MODE: 'global',
  }, t);
  t.diagnostic(JSON.stringify(r));
  assert.ok(r.sent >= 2000);
  assert.ok(within5(r.global, 100 * 10 + 20), `admitted ${r.global}, expected 1020 (not ~2040, not ~510)`);
});

test('2 workers: a per-user and a per-endpoint limit also hold for the pod as a whole', { timeout: 60_000 }, async (t) => {
  const r = await runPod({
    RL_POLICY: 'per_user: { requests_per_minute: 600, burst_size: 20 }\nper_endpoint: { /mcp/create_draft: { rps: 30, burst: 10 } }',
    RL_WORKERS: '2', RL_RATE: '80', RL_DURATION_MS: '10000', RL_MODE: 'mixed',
  }, t);
  t.diagnostic(JSON.stringify(r));
  assert.ok(within5(r.user, 10 * 10 + 20), `user alice admitted ${r.user}, expected 120`);
  assert.ok(within5(r.endpoint, 30 * 10 + 10), `create_draft admitted ${r.endpoint}, expected 310`);
});

test('both cores saturated by other processes: 2 workers still admit rate x time + burst, global and per-user/endpoint (within 5 %)', { timeout: 120_000 }, async (t) => {
  burnCpus(40_000, t);
  const g = await runPod({
    RL_POLICY: 'global: { requests_per_second: 100, burst_size: 20 }',
    RL_WORKERS: '2', RL_RATE: '120', RL_DURATION_MS: '10000', RL_MODE: 'global',
  }, t);
  const m = await runPod({
    RL_POLICY: 'per_user: { requests_per_minute: 600, burst_size: 20 }\nper_endpoint: { /mcp/create_draft: { rps: 30, burst: 10 } }',
    RL_WORKERS: '2', RL_RATE: '80', RL_DURATION_MS: '10000', RL_MODE: 'mixed',
  }, t);
  t.diagnostic(`global ${JSON.stringify(g)}; mixed ${JSON.stringify(m)}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  assert.ok(within5(g.global, 100 * 10 + 20), `global admitted ${g.global}, expected 1020`);
  assert.ok(within5(m.user, 10 * 10 + 20), `user alice admitted ${m.user}, expected 120`);
  assert.ok(within5(m.endpoint, 30 * 10 + 10), `create_draft admitted ${m.endpoint}, expected 310`);
});
