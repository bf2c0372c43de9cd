/**
 * Broadcasts between the workers of a pod, through a real primary (node:cluster): every process receives a
 * broadcast once, the sender included, except a topic whose sender already holds what it carries. A
 * `cache:replicate` (a copy of the sender's own L1 store, its whole body) used to travel back to the sender,
 * which dropped it: one encode, send and parse of every fill for nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

test('a cache:replicate reaches the sibling only; a purge reaches both workers, the sender included', { timeout: 60_000 }, () => {
  const r = spawnSync(process.execPath, [join(__dirname, 'fixtures', 'broadcast.js')], { encoding: 'utf8', timeout: 45_000 });
  assert.equal(r.status, 0, r.stderr);
  const seen = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, Record<string, number>>;
  assert.deepEqual(seen['1'], { 'bridge-sidecar:cache-purge from 1': 1 }, 'the sender: its own purge, not its own replica');
  assert.deepEqual(seen['2'], { 'cache:replicate from 1': 1, 'bridge-sidecar:cache-purge from 1': 1 }, 'the sibling: both, once');
});
