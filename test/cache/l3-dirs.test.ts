/**
 * L3 makes each entry directory once per process (one thread-pool hop fewer per store); a directory removed
 * from outside while the sidecar runs is made again, and the store still lands.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './harness';
import { L3Cache } from '../../lib/cache/l3';
import { makeEntry } from './fixtures';

test('L3: a store after its entry directory was removed from outside makes it again and lands', async (t) => {
  const dir = tempDir(t);
  const l3 = new L3Cache({ dir, maxBytes: 16 * 1024 * 1024, ttl: 3_600_000 });
  await l3.ready;
  await l3.set('draft:1:script', makeEntry('draft:1:script', 'first'), 60_000);
  const subdirs = readdirSync(dir).filter((d) => d !== 'tmp');
  assert.equal(subdirs.length, 1, 'one entry directory');
  rmSync(join(dir, subdirs[0]), { recursive: true, force: true });
  await l3.set('draft:1:script', makeEntry('draft:1:script', 'second'), 60_000);
  const hit = await l3.get('draft:1:script');
  assert.ok(hit !== null && hit.kind === 'whole', 'stored again');
  assert.equal(hit.entry.body!.toString(), 'second');
  assert.deepEqual(readdirSync(join(dir, 'tmp')), [], 'no temp file left behind');
});
