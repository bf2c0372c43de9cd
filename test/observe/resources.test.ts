/**
 * The pieces behind the resource figures and the profile directory, on real files and sockets: cgroup v2 / v1 /
 * no-limit memory readings, /proc/self/io parsing, per-socket byte counting, and pruning to max_files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { readMemory, readProcessIo, SocketBytes } from '../../lib/observe/resources';
import { pruneProfiles } from '../../lib/observe/profiling';
import { waitFor } from '../helpers/ports';

function tempDir(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'bridge-observe-res-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('memory: cgroup v2 limit and usage, v1, and the machine when there is no limit', (t) => {
  const v2 = tempDir(t);
  writeFileSync(join(v2, 'memory.max'), '536870912\n');
  writeFileSync(join(v2, 'memory.current'), '134217728\n');
  assert.deepEqual(readMemory(v2), { limitBytes: 536870912, usedBytes: 134217728, source: 'cgroup2' });

  const unlimited = tempDir(t);
  writeFileSync(join(unlimited, 'memory.max'), 'max\n');
  writeFileSync(join(unlimited, 'memory.current'), '1000\n');
  const host = readMemory(unlimited);
  assert.equal(host.source, 'host');
  assert.equal(host.limitBytes, totalmem());

  const v1 = tempDir(t);
  mkdirSync(join(v1, 'memory'));
  writeFileSync(join(v1, 'memory', 'memory.limit_in_bytes'), '1073741824\n');
  writeFileSync(join(v1, 'memory', 'memory.usage_in_bytes'), '268435456\n');
  assert.deepEqual(readMemory(v1), { limitBytes: 1073741824, usedBytes: 268435456, source: 'cgroup1' });

  // v1 without a limit reports a huge page-rounded number: that is "no limit"
  const v1none = tempDir(t);
  mkdirSync(join(v1none, 'memory'));
  writeFileSync(join(v1none, 'memory', 'memory.limit_in_bytes'), '9223372036854771712\n');
  writeFileSync(join(v1none, 'memory', 'memory.usage_in_bytes'), '268435456\n');
  assert.equal(readMemory(v1none).source, 'host');
});

test('disk: read_bytes and write_bytes of /proc/self/io', (t) => {
  const d = tempDir(t);
  const f = join(d, 'io');
  writeFileSync(f, 'rchar: 6976\nwchar: 10\nsyscr: 10\nsyscw: 1\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n');
  assert.deepEqual(readProcessIo(f), { readBytes: 4096, writeBytes: 8192 });
  assert.equal(readProcessIo(join(d, 'missing')), null);
});

test('network: bytes of live and closed sockets are both counted', async (t) => {
  const server = createServer((s) => s.on('data', (d) => s.write(Buffer.concat([d, d]))));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const counted = new SocketBytes();
  const open = async (): Promise<Socket> => {
    const s = connect(port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    counted.track(s);
    return s;
  };
  const a = await open();
  a.write('x'.repeat(100));
  await waitFor('echo of 200 bytes', () => a.bytesRead === 200);
  assert.deepEqual(counted.totals(), { read: 200, written: 100 }, 'a live socket counts');
  const b = await open();
  b.write('y'.repeat(10));
  await waitFor('echo of 20 bytes', () => b.bytesRead === 20);
  b.destroy();
  await waitFor('closed', () => b.closed);
  assert.deepEqual(counted.totals(), { read: 220, written: 110 }, 'a closed socket still counts');
  a.destroy();
  await waitFor('closed', () => a.closed);
  assert.deepEqual(counted.totals(), { read: 220, written: 110 });
});

test('profile files: the oldest are deleted beyond max_files; other files are left alone', (t) => {
  const d = tempDir(t);
  const now = Date.now() / 1000;
  for (let i = 0; i < 5; i++) {
    const f = join(d, `cpu-2026010${i}-w1-pid1-on_demand.cpuprofile`);
    writeFileSync(f, '{}');
    utimesSync(f, now - 100 + i, now - 100 + i);
  }
  const heap = join(d, 'heap-x-w2-pid2-threshold.heapsnapshot');
  writeFileSync(heap, '{}');
  utimesSync(heap, now - 50, now - 50);
  writeFileSync(join(d, 'notes.txt'), 'keep me');
  writeFileSync(join(d, 'cpu-partial.cpuprofile.partial'), '');
  const removed = pruneProfiles(d, 3);
  assert.deepEqual(removed.sort(), ['cpu-20260100-w1-pid1-on_demand.cpuprofile', 'cpu-20260101-w1-pid1-on_demand.cpuprofile', 'cpu-20260102-w1-pid1-on_demand.cpuprofile']);
  assert.deepEqual(readdirSync(d).sort(), ['cpu-20260103-w1-pid1-on_demand.cpuprofile', 'cpu-20260104-w1-pid1-on_demand.cpuprofile', 'cpu-partial.cpuprofile.partial', 'heap-x-w2-pid2-threshold.heapsnapshot', 'notes.txt']);
  assert.deepEqual(pruneProfiles(d, 3), []);
});
