/**
 * The policy ConfigMap as the chart renders it, mounted the way the kubelet does (the atomic-writer layout:
 * a timestamped directory, `..data` swapped by rename, `policy.yaml -> ..data/policy.yaml`): it validates,
 * the sidecar serves it, and edits published by the kubelet's exact update sequence are reloaded by the
 * policy watcher alone (its content poll is pushed out of the test's reach, so the directory events must do
 * it, edit after edit), while a bad edit is refused and the previous policy keeps serving.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRoot } from '../helpers/repo';
import { freePort, waitFor } from '../helpers/ports';
import { atomicUpdate, createAtomicWriterDir } from '../helpers/atomic-writer';
import { render, type Values } from './helm';
import type { K8sObject } from './k8s-schema';

const cli = join(buildRoot(), 'cmd', 'bridge-sidecar.js');

function renderedPolicy(values: Values): string {
  const cm = render(values).find((o) => o.kind === 'ConfigMap' && String(o.metadata?.name).endsWith('-policy')) as (K8sObject & { data: Record<string, string> }) | undefined;
  assert.ok(cm, 'the chart renders the policy ConfigMap');
  return cm.data['policy.yaml'];
}

const version = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 12);

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-k8s-cm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the rendered ConfigMap in the kubelet layout validates through its symlinks', (t) => {
  const mount = join(tempDir(t), 'etc-bridge-sidecar');
  const text = renderedPolicy({});
  const tsDir = createAtomicWriterDir(mount, { 'policy.yaml': text });

  assert.match(tsDir, /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+$/);
  assert.ok(lstatSync(join(mount, '..data')).isSymbolicLink());
  assert.equal(readlinkSync(join(mount, '..data')), tsDir);
  assert.ok(lstatSync(join(mount, 'policy.yaml')).isSymbolicLink());
  assert.equal(readlinkSync(join(mount, 'policy.yaml')), join('..data', 'policy.yaml'));
  assert.equal(readFileSync(join(mount, 'policy.yaml'), 'utf8'), text);

  const r = spawnSync(process.execPath, [cli, 'validate', join(mount, 'policy.yaml')], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 1, 'a one-line summary');

  // An update replaces the payload directory and leaves nothing of the old one behind.
  const next = atomicUpdate(mount, { 'policy.yaml': text.replace('log_level: info', 'log_level: debug') });
  assert.notEqual(next, tsDir);
  assert.ok(!existsSync(join(mount, tsDir)), 'the old timestamped directory is removed');
  assert.deepEqual(readdirSync(mount).sort(), ['..data', next, 'policy.yaml'].sort());
  assert.match(readFileSync(join(mount, 'policy.yaml'), 'utf8'), /log_level: debug/);
});

test('the sidecar serves the mounted policy and its watcher reloads edits published the kubelet way', { timeout: 120_000 }, async (t) => {
  const [listen, admin, upstream, metrics] = [await freePort(), await freePort(), await freePort(), await freePort()];
  // The chart's policy on free ports, in one process, without the L3 tier (its path is the pod's volume).
  const base: Values = { 'sidecar.listenPort': listen, 'sidecar.adminPort': admin, 'sidecar.metricsPort': metrics, 'service.port': upstream, 'policy.server.workers': 0, 'policy.cache.l3': null };
  const first = renderedPolicy(base).replace(/0\.0\.0\.0:/g, '127.0.0.1:');
  const mount = join(tempDir(t), 'etc-bridge-sidecar');
  createAtomicWriterDir(mount, { 'policy.yaml': first });

  // No SIGHUP anywhere below, and no content poll within the test's time: the file events must do it.
  const env = { ...process.env, BRIDGE_SIDECAR_RELOAD_WATCH: 'on', BRIDGE_SIDECAR_RELOAD_POLL: '1h' };
  const child = spawn(process.execPath, [cli, 'serve', '--policy', join(mount, 'policy.yaml')], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => { if (child.exitCode === null) { child.kill('SIGKILL'); await exited; } });
  await waitFor('the sidecar to listen', () => {
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${out}`);
    return out.includes('listening');
  }, 60_000);

  const policyVersion = async (): Promise<string> => ((await (await fetch(`http://127.0.0.1:${admin}/policy`)).json()) as { version: string }).version;
  const reloadErrors = async (): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('bridge_sidecar_policy_reloads_total') && l.includes('result="error"'));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  assert.equal(await policyVersion(), version(first));

  const edit = (values: Values): string => renderedPolicy({ ...base, ...values }).replace(/0\.0\.0\.0:/g, '127.0.0.1:');

  // An edit of the ConfigMap (a lower global rate), published with the kubelet's sequence.
  const second = edit({ 'policy.rate_limiting.global.requests_per_second': 500 });
  assert.notEqual(second, first);
  atomicUpdate(mount, { 'policy.yaml': second });
  await waitFor('the edited policy to be in force', async () => (await policyVersion()) === version(second), 30_000, 100);

  // A bad edit is refused; the last good policy keeps serving.
  const errors0 = await reloadErrors();
  atomicUpdate(mount, { 'policy.yaml': second.replace('version: 1', 'version: 1\nno_such_section: true') });
  await waitFor('the refused reload to be counted', async () => (await reloadErrors()) > errors0, 30_000, 100);
  assert.equal(await policyVersion(), version(second));

  // The watch still works after the kubelet deleted the directories it saw before (no deaf watcher).
  const third = edit({ 'policy.rate_limiting.global.requests_per_second': 250 });
  atomicUpdate(mount, { 'policy.yaml': third });
  await waitFor('the third edit to be in force', async () => (await policyVersion()) === version(third), 30_000, 100);
  assert.equal(child.exitCode, null, 'still running');
});
