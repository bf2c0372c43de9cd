/**
 * queues.worker_threads reaches libuv: a child process started with uvThreadpoolEnv(policy) (what the primary
 * does at fork), or that calls applyUvThreadpoolSize(policy) before its first pool use (single-process mode),
 * has exactly that many pool threads. Measured without timing: K reads of a FIFO that nobody writes occupy K
 * pool threads for good; an fs.stat queued after them finishes only if the pool has a thread left.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Policy } from '../../lib/policy/types';
import { uvThreadpoolEnv, threadpoolSizeChanged } from '../../lib/stages/queue/threadpool';
import { buildRoot } from '../helpers/repo';

const PROBE = `
const fs = require('fs');
const [fifo, blockers, apply] = process.argv.slice(1);
if (apply !== '-') require(apply).applyUvThreadpoolSize({ queues: { worker_threads: Number(process.env.WANT) } });
for (let i = 0; i < Number(blockers); i++) fs.open(fifo, 'r', () => {});
let answered = false;
const finish = (what) => {
  if (answered) return;
  answered = true;
  console.log(what);
  fs.closeSync(fs.openSync(fifo, 'w')); // release the blocked opens so the process can exit
  process.exit(0);
};
fs.stat(fifo, () => finish('stat-done'));
setTimeout(() => finish('stat-blocked'), 1500);
`;

function probe(fifo: string, blockers: number, env: Record<string, string>, apply: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const base = { ...process.env };
    delete base.UV_THREADPOOL_SIZE; // libuv's default (4) unless the test sets it; '' would mean 1
    const child = spawn(process.execPath, ['-e', PROBE, fifo, String(blockers), apply], {
      env: { ...base, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('exit', () => {
      clearTimeout(killer);
      resolve(out.trim());
    });
  });
}

function policyWith(threads: number | null): Policy {
  return { queues: threads === null ? null : { worker_threads: threads } } as unknown as Policy;
}

test('uvThreadpoolEnv: the size for forked workers, nothing when queues is off', () => {
  assert.deepEqual(uvThreadpoolEnv(policyWith(8)), { UV_THREADPOOL_SIZE: '8' });
  assert.deepEqual(uvThreadpoolEnv(policyWith(null)), {});
  assert.deepEqual(uvThreadpoolEnv(policyWith(5000)), { UV_THREADPOOL_SIZE: '1024' });
  assert.equal(threadpoolSizeChanged(policyWith(8), policyWith(16)), true);
  assert.equal(threadpoolSizeChanged(policyWith(8), policyWith(8)), false);
});

test('a worker forked with uvThreadpoolEnv(policy) has exactly worker_threads pool threads', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bs-uv-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  // 6 threads, 6 blocked: stat cannot run; 7 threads: it can
  assert.equal(await probe(fifo, 6, uvThreadpoolEnv(policyWith(6)), '-'), 'stat-blocked');
  assert.equal(await probe(fifo, 6, uvThreadpoolEnv(policyWith(7)), '-'), 'stat-done');
});

test('single process: applyUvThreadpoolSize before the first pool use sizes the pool', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bs-uv-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const mod = join(buildRoot(), 'lib/stages/queue/threadpool.js');
  // libuv's default is 4: 5 blockers would block it, 6 threads from the policy leave one free
  assert.equal(await probe(fifo, 5, { WANT: '6' }, mod), 'stat-done');
  assert.equal(await probe(fifo, 5, { WANT: '5' }, mod), 'stat-blocked');
});
