/**
 * PolicyWatcher (lib/policy/watch.ts) on real directories: the kubelet's atomic-writer sequence, a plain file
 * edited in place or replaced by rename, debounced bursts, the content-hash poll, unlink never meaning "gone".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, renameSync, unlinkSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyWatcher } from '../../lib/policy/watch';
import { policyVersion } from '../../lib/policy/load';
import { createAtomicWriterDir, atomicUpdate } from '../helpers/atomic-writer';
import { sleep, waitFor } from '../helpers/ports';

interface Harness {
  dir: string;
  file: string;
  calls: Array<{ why: string; content: string }>;
  watcher: PolicyWatcher;
}

async function setup(
  t: { after(fn: () => unknown): void },
  layout: 'configmap' | 'plain',
  opts: { debounceMs?: number; pollMs?: number; events?: boolean } = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-sidecar-watch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'policy.yaml');
  const first = 'v: 0\n';
  if (layout === 'configmap') createAtomicWriterDir(dir, { 'policy.yaml': first });
  else writeFileSync(file, first);
  const calls: Harness['calls'] = [];
  const watcher = new PolicyWatcher({
    file,
    initialVersion: policyVersion(first),
    // what a reload would read at this moment
    onChange: (why) => calls.push({ why, content: readFileSync(file, 'utf8') }),
    debounceMs: opts.debounceMs ?? 200,
    pollMs: opts.pollMs ?? 0,
    events: opts.events,
  });
  t.after(() => watcher.close());
  await watcher.start();
  return { dir, file, calls, watcher };
}

test('configmap: every atomic update (old directory deleted) gives one change with the new content', async (t) => {
  const h = await setup(t, 'configmap');
  for (let i = 1; i <= 5; i++) {
    atomicUpdate(h.dir, { 'policy.yaml': `v: ${i}\n` });
    await waitFor(`change ${i}`, () => h.calls.length === i, 15_000, 20);
    assert.equal(h.calls[i - 1].content, `v: ${i}\n`);
    assert.match(h.calls[i - 1].why, /^file watch/);
  }
  // the debounce settled each update into exactly one call: none comes later
  await sleep(600);
  assert.equal(h.calls.length, 5);
});

test('configmap: a burst of 10 updates gives one change, on the final content', async (t) => {
  const h = await setup(t, 'configmap');
  for (let i = 1; i <= 10; i++) atomicUpdate(h.dir, { 'policy.yaml': `v: ${i}\n` });
  await waitFor('the burst settled', () => h.calls.length >= 1, 15_000, 20);
  await sleep(800);
  assert.equal(h.calls.length, 1);
  assert.equal(h.calls[0].content, 'v: 10\n');
  assert.equal(h.watcher.version, policyVersion('v: 10\n'));
});

test('an update that rewrites the same content is no change; deleting other entries is no change', async (t) => {
  const h = await setup(t, 'configmap');
  atomicUpdate(h.dir, { 'policy.yaml': 'v: 0\n' });
  await sleep(800);
  assert.equal(h.calls.length, 0, 'same content hash: onChange not called');
  // unrelated files come and go in the directory (and the old timestamped copy is unlinked on every update)
  writeFileSync(join(h.dir, 'notes.txt'), 'x');
  unlinkSync(join(h.dir, 'notes.txt'));
  await sleep(600);
  assert.equal(h.calls.length, 0);
  atomicUpdate(h.dir, { 'policy.yaml': 'v: 1\n' });
  await waitFor('change', () => h.calls.length === 1, 15_000, 20);
});

test('plain file: edited in place, then replaced by rename, each is seen', async (t) => {
  const h = await setup(t, 'plain');
  writeFileSync(h.file, 'v: in-place\n');
  await waitFor('in-place edit', () => h.calls.length === 1, 15_000, 20);
  assert.equal(h.calls[0].content, 'v: in-place\n');
  writeFileSync(h.file + '.tmp', 'v: renamed\n');
  renameSync(h.file + '.tmp', h.file);
  await waitFor('replace by rename', () => h.calls.length === 2, 15_000, 20);
  assert.equal(h.calls[1].content, 'v: renamed\n');
});

test('plain file: removed for a while is not "gone" (no change); its return with new content is one change', async (t) => {
  const h = await setup(t, 'plain', { pollMs: 100 });
  unlinkSync(h.file);
  await sleep(700);
  assert.equal(h.calls.length, 0, 'an unlink never triggers a change');
  writeFileSync(h.file, 'v: back\n');
  await waitFor('re-created file', () => h.calls.length === 1, 15_000, 20);
  assert.equal(h.calls[0].content, 'v: back\n');
});

test('the content poll alone (no file events) picks up an atomic update', async (t) => {
  const h = await setup(t, 'configmap', { events: false, pollMs: 150 });
  atomicUpdate(h.dir, { 'policy.yaml': 'v: polled\n' });
  await waitFor('poll saw the update', () => h.calls.length === 1, 15_000, 20);
  assert.equal(h.calls[0].why, 'poll');
  assert.equal(h.calls[0].content, 'v: polled\n');
  await sleep(500);
  assert.equal(h.calls.length, 1, 'the poll does not repeat a change it already reported');
});

test('a change made before start() (initialVersion older than the file) is reported by the first poll', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-sidecar-watch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  createAtomicWriterDir(dir, { 'policy.yaml': 'v: new\n' });
  const calls: string[] = [];
  const w = new PolicyWatcher({ file: join(dir, 'policy.yaml'), initialVersion: policyVersion('v: old\n'), onChange: (why) => calls.push(why), pollMs: 100 });
  t.after(() => w.close());
  await w.start();
  await waitFor('first poll', () => calls.length === 1, 15_000, 20);
});
