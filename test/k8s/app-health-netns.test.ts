/**
 * Probe rewriting end to end, as root, in network namespaces (a "pod" and a "node" that probes it): a pod
 * manifest is injected with the real `inject` code, the intercept init container's arguments are run in the
 * pod namespace, and the sidecar starts with the environment injection gave it, rate limiting every client
 * request on the data port. The kubelet's view:
 *  - the app's original probe URL (pod address, app port) is intercepted and gets the sidecar's 429: what
 *    made the kubelet restart healthy apps before probes were rewritten;
 *  - the rewritten probes (admin port, /app-health/<container>/<kind>) keep answering 200 however many times
 *    they are called, never counted or limited by the proxy, with the app's headers passed on;
 *  - they answer with the app's own status: its 503, and 503 once the app is gone.
 * And a sidecar given a malformed BRIDGE_SIDECAR_APP_PROBERS refuses to start with a one-line reason.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { buildRoot, repoRoot } from '../helpers/repo';
import { freePort } from '../helpers/ports';
import { injectManifestsText, parseInjectConfig } from '../../lib/k8s';
import { parseManifests } from '../../lib/k8s/manifest-yaml';
import { assertReadableBy, httpFrom, PodAndClient, readableRepo, type Started } from './netns';
import { allContainers, type C, type Pod } from './inject-fixture';

const PROXY_UID = 1337;
let cli = join(buildRoot(), 'cmd', 'bridge-sidecar.js');
let draftService = join(buildRoot(), 'examples', 'draft-service', 'main.js');
let releaseRepo = (): void => {};

const POD = `apiVersion: v1
kind: Pod
metadata: { name: drafts }
spec:
  containers:
    - name: app
      image: registry.example.com/draft-service:1
      ports: [{ name: http, containerPort: 9101 }]
      livenessProbe:
        httpGet: { path: /get_mask_types, port: http }
        periodSeconds: 10
      readinessProbe:
        httpGet: { path: /echo, port: 9101, httpHeaders: [{ name: X-Probe, value: kubelet-readiness }] }
        timeoutSeconds: 2
      startupProbe:
        httpGet: { path: /status/503, port: http }
        failureThreshold: 30
`;

function requestsCounted(metrics: string): number {
  let sum = 0;
  for (const line of metrics.split('\n')) if (line.startsWith('bridge_sidecar_http_requests_total')) sum += Number(line.split(' ').pop());
  return sum;
}

describe('rewritten probes in network namespaces, with the sidecar limiting every client request (root)', { timeout: 300_000 }, () => {
  const net = new PodAndClient();
  let tmp = '';
  let service: Started;
  let sidecar: Started;
  let app: C;
  const probeUrl = (c: C, kind: 'liveness' | 'readiness' | 'startup'): string => {
    const g = c[`${kind}Probe`]?.httpGet;
    assert.ok(g, `${kind} probe`);
    return `http://${net.podAddress}:${g.port}${g.path}`;
  };

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this test creates network namespaces and iptables rules: run it as root (CI does)');
    const repo = readableRepo(repoRoot(), [PROXY_UID], join(relative(repoRoot(), buildRoot()), 'cmd', 'bridge-sidecar.js'));
    releaseRepo = repo.release;
    const build = join(repo.root, relative(repoRoot(), buildRoot()));
    cli = join(build, 'cmd', 'bridge-sidecar.js');
    draftService = join(build, 'examples', 'draft-service', 'main.js');
    assertReadableBy(PROXY_UID, [cli]);
    tmp = mkdtempSync(join(tmpdir(), 'bridge-app-health-'));
    chmodSync(tmp, 0o755);
    net.create();

    const injected = parseManifests(injectManifestsText(POD, parseInjectConfig({ native: true })).output)[0] as Pod;
    app = injected.spec.containers[0];
    const side = allContainers(injected).find((c) => c.name === 'bridge-sidecar');
    const init = allContainers(injected).find((c) => c.name === 'bridge-sidecar-init');
    assert.ok(side && init);

    service = net.start(net.pod, [process.execPath, draftService, '--host', '0.0.0.0', '--port', '9101']);
    await net.waitForLog(service, 'listening', 'the draft service to listen');
    // The init container's own arguments, run in the pod namespace.
    const rules = net.exec(net.pod, [process.execPath, cli, ...(init.args ?? [])]);
    assert.match(rules.stdout, /installed: TCP to port 9101 -> 15006/);

    const policy = join(tmp, 'policy.yaml');
    writeFileSync(policy, [
      'version: 1',
      'server: { listen: "0.0.0.0:15006", admin_listen: "0.0.0.0:9901", workers: 0 }',
      `upstream: { url: "http://${net.podAddress}:9101" }`,
      // one request, then every client request is limited
      'rate_limiting:',
      '  global: { requests_per_second: 0.001, burst_size: 1, algorithm: token_bucket }',
      '',
    ].join('\n'));
    chmodSync(policy, 0o644);
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const e of side.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
    assert.ok(env.BRIDGE_SIDECAR_APP_PROBERS, 'injection gave the sidecar the app probes');
    sidecar = net.start(net.pod, [process.execPath, cli, 'serve', '--policy', policy], PROXY_UID, env);
    await net.waitForLog(sidecar, 'listening', 'the sidecar to listen');
  });
  after(async () => {
    if (net) net.exec(net.pod, [process.execPath, cli, 'intercept', '--uninstall'], { allowFail: true });
    await net.destroy();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    releaseRepo();
  });

  const metrics = (): number => requestsCounted(httpFrom(net, net.pod, 'http://127.0.0.1:9901/metrics').body);

  test("the app's original probe URL is intercepted and rate limited: the kubelet would restart the app", () => {
    const seen: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = httpFrom(net, net.client, `http://${net.podAddress}:9101/get_mask_types`);
      assert.equal(r.headers.via, '1.1 bridge-sidecar', 'through the sidecar');
      seen.push(r.status);
    }
    assert.ok(seen.slice(1).every((s) => s === 429), `limited after the first: ${seen.join(',')}`);
  });

  test('the rewritten probes keep passing while every client request is limited, and never reach the proxy', () => {
    const counted = metrics();
    for (let i = 0; i < 15; i++) {
      const live = httpFrom(net, net.client, probeUrl(app, 'liveness'));
      assert.equal(live.status, 200, `liveness #${i}: ${live.body}`);
      assert.equal(live.headers.via, undefined, 'answered by the admin port, not the proxy');
    }
    const ready = httpFrom(net, net.client, probeUrl(app, 'readiness'));
    assert.equal(ready.status, 200, ready.body);
    assert.equal((JSON.parse(ready.body) as { headers: Record<string, string> }).headers['x-probe'], 'kubelet-readiness', "the probe's httpHeaders reach the app");
    assert.equal(metrics(), counted, 'no probe went through the proxy stages');
    // still limited on the data port at the same time
    assert.equal(httpFrom(net, net.client, `http://${net.podAddress}:9101/get_mask_types`).status, 429);
  });

  test("the answer is the app's own: its 503, and 503 when the app is gone", async () => {
    const startup = httpFrom(net, net.client, probeUrl(app, 'startup'));
    assert.equal(startup.status, 503, 'the app answered 503 on its startup probe path');
    await service.stop();
    const dead = httpFrom(net, net.client, probeUrl(app, 'liveness'));
    assert.equal(dead.status, 503);
    assert.match(dead.body, /app probe failed: ECONNREFUSED/);
    const unknown = httpFrom(net, net.client, `http://${net.podAddress}:9901/app-health/other/liveness`);
    assert.equal(unknown.status, 404, 'only the injected probes exist');
  });
});

test('a malformed BRIDGE_SIDECAR_APP_PROBERS stops the sidecar at start with a one-line reason', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-probers-'));
  try {
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, `version: 1\nserver: { listen: "127.0.0.1:${await freePort()}", admin_listen: "127.0.0.1:${await freePort()}", workers: 0 }\nupstream: { url: "http://127.0.0.1:9" }\n`);
    for (const [value, message] of [['{not json', /BRIDGE_SIDECAR_APP_PROBERS is not JSON/], ['{"app/wellness":{"httpGet":{"port":1},"port":1}}', /key "app\/wellness" is not "<container>\/<liveness\|readiness\|startup>"/]] as const) {
      const r = spawnSync(process.execPath, [join(buildRoot(), 'cmd', 'bridge-sidecar.js'), 'serve', '--policy', policy],
        { encoding: 'utf8', timeout: 60_000, env: { ...process.env, BRIDGE_SIDECAR_APP_PROBERS: value } });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
