/**
 * The real image, built from the Dockerfile and run as a pod with podman (as root, runc), the way the chart
 * and `inject` run it:
 *  - the intercept init container, with only NET_ADMIN and NET_RAW, installs the nat rules;
 *  - the example draft service and the sidecar share the pod's network namespace;
 *  - the sidecar runs with its image's user, a read-only root filesystem and no capabilities.
 * From the host (another network namespace, as a client elsewhere in the cluster): a request to the service
 * port is intercepted by the sidecar, /readyz is ready, a repeated GET is a cache hit, and SIGTERM lets a
 * request in flight finish before the sidecar exits 0.
 *
 * No registry is reachable, so the Dockerfile's base image is made locally (test/k8s/podman.ts); CI makes
 * it and builds the image once before the tests (podman-prepare.ts), so this file's own build is a layer
 * cache check. Podman missing is a failure, never a skip: CI installs it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/repo';
import { waitFor } from '../helpers/ports';
import { buildImage, podman, requirePodman, TEST_IMAGE, ulimitFlags } from './podman';

const IMAGE = TEST_IMAGE;
const POLICY = `version: 1
server: { listen: "0.0.0.0:15006", admin_listen: "0.0.0.0:9901", workers: 1, drain_timeout: 20s }
upstream: { url: "http://127.0.0.1:9101" }
routes:
  - name: fonts
    match: { method: GET, path: /get_font_types }
    cache: { key: "static:fonts", ttl: 5m }
cache: { l1: { size: 16MB, ttl: 5m } }
`;

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }
function get(url: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    request(url, { agent: false, timeout: 30_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('timeout', function (this: { destroy(e: Error): void }) { this.destroy(new Error(`timeout: ${url}`)); }).on('error', reject).end();
  });
}

describe('the image built with podman and run as a pod (root)', { timeout: 900_000 }, () => {
  const id = `bsp-${process.pid}`;
  let dir = '';
  let podIp = '';
  let infraPid = 0;
  const started = Date.now();
  const timings: string[] = [];
  const mark = (what: string): void => { timings.push(`${what} ${((Date.now() - started) / 1000).toFixed(1)}s`); };

  before(() => {
    requirePodman();
    assert.equal(process.getuid?.(), 0, 'podman pods with iptables rules need root (CI runs as root)');
    const notes = buildImage(repoRoot(), (m) => console.log(`# ${m}`));
    mark(`image built (${notes.join('; ')})`);
    dir = mkdtempSync(join(tmpdir(), 'bridge-podman-'));
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    chmodSync(join(dir, 'policy.yaml'), 0o644);
    podman(['pod', 'create', '--name', id]);
    podman(['pod', 'start', id]);
    const infra = podman(['pod', 'inspect', id, '--format', '{{.InfraContainerID}}']).stdout.trim();
    podIp = podman(['inspect', infra, '--format', '{{.NetworkSettings.IPAddress}}']).stdout.trim();
    infraPid = Number(podman(['inspect', infra, '--format', '{{.State.Pid}}']).stdout.trim());
    assert.match(podIp, /^\d+\.\d+\.\d+\.\d+$/, 'the pod has an address');
  });
  after(() => {
    if (id) podman(['pod', 'rm', '-f', id], { allowFail: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
    console.log(`# podman image test: ${timings.join(', ')}`);
  });

  const common = (): string[] => ['--pod', id, ...ulimitFlags(), '--cap-drop', 'ALL', '--read-only', '--security-opt', 'no-new-privileges'];

  test('the init container with only NET_ADMIN/NET_RAW installs the rules', () => {
    const caps = podman(['run', '--rm', ...common(), '--user', '0', '--cap-add', 'NET_ADMIN', '--cap-add', 'NET_RAW', '--entrypoint', 'grep', IMAGE, 'CapEff', '/proc/self/status']);
    assert.equal(caps.stdout.trim().split(/\s+/)[1], (BigInt(1 << 12) | BigInt(1 << 13)).toString(16).padStart(16, '0'), 'effective capabilities: NET_ADMIN and NET_RAW only');
    const r = podman(['run', '--rm', ...common(), '--user', '0', '--cap-add', 'NET_ADMIN', '--cap-add', 'NET_RAW', '--tmpfs', '/run', IMAGE,
      'intercept', '--ports', '9101', '--to-port', '15006', '--proxy-uid', '1337', '--exclude-ports', '9901']);
    assert.match(r.stdout, /installed: TCP to port 9101 -> 15006/);
    const nat = spawnSync('nsenter', ['-t', String(infraPid), '-n', 'iptables-save', '-t', 'nat'], { encoding: 'utf8' });
    assert.match(nat.stdout, /-A BRIDGE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006/, 'the rules are in the pod network namespace');
    mark('rules installed');
  });

  test('the service and the sidecar share the pod: interception, /readyz, a cache hit', async () => {
    podman(['run', '-d', ...common(), '--name', `${id}-app`, '--user', '65534', '--entrypoint', 'node', IMAGE,
      '/app/dist/examples/draft-service/main.js', '--host', '0.0.0.0', '--port', '9101']);
    podman(['run', '-d', ...common(), '--name', `${id}-sidecar`, '--tmpfs', '/tmp:mode=1777', '--tmpfs', '/var/cache/bridge-sidecar:mode=1777',
      '--volume', `${dir}:/etc/bridge-sidecar:ro`, IMAGE, 'serve', '--policy', '/etc/bridge-sidecar/policy.yaml']);
    const ready = await waitFor('the sidecar to be ready', async () => {
      try { return (await get(`http://${podIp}:9901/readyz`)).status === 200; } catch { return false; }
    }, 120_000, 500);
    assert.ok(ready);
    mark('pod ready');
    const first = await get(`http://${podIp}:9101/get_font_types`);
    assert.equal(first.status, 200, first.body);
    assert.equal(first.headers.via, '1.1 bridge-sidecar', 'a client addressing the service port reaches the sidecar');
    assert.match(String(first.headers['cache-status']), /fwd=miss; stored/);
    assert.equal((JSON.parse(first.body) as { success: boolean }).success, true, 'the service answered through the sidecar');
    const second = await get(`http://${podIp}:9101/get_font_types`);
    assert.match(String(second.headers['cache-status']), /^bridge-sidecar; hit/);
    assert.equal(second.body, first.body);
    const direct = await get(`http://${podIp}:9101/health`);
    assert.equal(direct.headers.via, '1.1 bridge-sidecar');
  });

  test('the sidecar runs as uid 1337, with a read-only root filesystem and no capabilities', () => {
    const sidecar = `${id}-sidecar`;
    assert.equal(podman(['image', 'inspect', IMAGE, '--format', '{{.Config.User}}']).stdout.trim(), '1337:1337', "the image's USER");
    const ids = podman(['exec', sidecar, 'id', '-u']).stdout.trim();
    assert.equal(ids, '1337');
    const status = podman(['exec', sidecar, 'grep', '-E', '^(Uid|CapEff|CapPrm|CapBnd):', '/proc/1/status']).stdout;
    assert.match(status, /^Uid:\s+1337\s+1337\s+1337\s+1337$/m, 'the serving process runs as 1337');
    for (const cap of ['CapEff', 'CapPrm', 'CapBnd']) assert.match(status, new RegExp(`^${cap}:\\s+0{16}$`, 'm'), `${cap} empty`);
    const write = podman(['exec', sidecar, 'sh', '-c', 'touch /app/x'], { allowFail: true });
    assert.notEqual(write.status, 0);
    assert.match(write.stderr + write.stdout, /Read-only file system/);
    const node = podman(['exec', sidecar, 'node', '--version']).stdout.trim();
    console.log(`# node in the image: ${node}`);
  });

  test('SIGTERM: a request in flight finishes, then the sidecar exits 0', async () => {
    const inFlight = get(`http://${podIp}:9101/slow?ms=3000`);
    await new Promise((r) => setTimeout(r, 800));
    podman(['kill', '--signal', 'TERM', `${id}-sidecar`]);
    const answered = await inFlight;
    assert.equal(answered.status, 200, answered.body);
    assert.equal(answered.headers.via, '1.1 bridge-sidecar');
    const code = podman(['wait', `${id}-sidecar`], { timeoutMs: 60_000 }).stdout.trim();
    assert.equal(code, '0', 'exit 0 after draining');
    const logs = podman(['logs', `${id}-sidecar`]).stdout + podman(['logs', `${id}-sidecar`]).stderr;
    assert.match(logs, /shutdown complete/);
    mark('drained');
  });
});
