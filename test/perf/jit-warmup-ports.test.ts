/**
 * The JIT warm-up's stub upstream and private listener must take ports of their own in a cluster worker. A plain
 * listen(0) in a worker goes through the primary, which gives every worker asking for "127.0.0.1:0" the same
 * port and round-robins connections over them: one worker's warm-up requests then reached its sibling, and once
 * the sibling's warm-up was over, its real listener (when it too listened on port 0) counted them in /metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const fixture = join(__dirname, 'fixtures', 'cluster-listen.js');

async function ports(mode: 'plain' | 'private'): Promise<number[]> {
  const { stdout } = await run(process.execPath, [fixture, mode], { timeout: 60_000 });
  return (JSON.parse(stdout.trim()) as { ports: number[] }).ports;
}

test('in a 2-worker cluster, a plain listen(0) shares one port between the workers (the mechanism)', async () => {
  const [a, b] = await ports('plain');
  assert.equal(a, b);
});

test("in a 2-worker cluster, the warm-up's listeners get a port per worker", async () => {
  const [a, b] = await ports('private');
  assert.ok(a > 0 && b > 0);
  assert.notEqual(a, b);
});
