/**
 * `bridge-sidecar inject` (lib/k8s): a realistic multi-document file with every workload kind, injected
 * classic and native; every result strictly valid; injecting twice gives the same bytes; --remove restores
 * the input; per-pod annotations override the defaults; Istio and Linkerd pods are refused; bad input fails
 * with a clear message and no output; strings such as "on" and "y" stay strings.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { buildRoot } from '../helpers/repo';
import { DEFAULT_CONFIG, injectManifestsText, InjectError, parseInjectConfig } from '../../lib/k8s';
import { parseManifests } from '../../lib/k8s/manifest-yaml';
import { assertInjected, assertValid, podsOf, probersOf, workloadsFile, workloadsText, type Pod } from './inject-fixture';

const cli = join(buildRoot(), 'cmd', 'bridge-sidecar.js');
const inject = (args: string[], input?: string) => spawnSync(process.execPath, [cli, 'inject', ...args], { input, encoding: 'utf8', timeout: 60_000 });
const classic = parseInjectConfig({ image: 'registry.example.com/bridge-sidecar:0.1.0' });
const native = parseInjectConfig({ native: true }, classic);

function deploymentPod(text: string): Pod {
  return podsOf(parseManifests(text)[0])[0].pod;
}

describe('inject on the realistic workloads file', () => {
  for (const [mode, cfg] of [['classic', classic], ['native', native]] as const) {
    test(`${mode}: every pod injected, every object strictly valid, the app's probes moved to the sidecar`, async () => {
      const { output, report } = injectManifestsText(workloadsText(), cfg);
      const docs = parseManifests(output);
      await assertValid(docs);
      const pods = docs.flatMap(podsOf);
      assert.deepEqual(pods.map((p) => p.where), ['Deployment/draft-service', 'StatefulSet/store', 'DaemonSet/agent', 'ReplicaSet/rs', 'Job/migrate', 'CronJob/nightly', 'Pod/lone', 'Pod/listed']);
      assert.equal(report.injected.length, 8);
      for (const { where, pod } of pods) assertInjected(pod, where, { native: mode === 'native' });

      const app = deploymentPod(output);
      // The originals the sidecar will call, named port resolved; the tcpSocket startup probe is left as it is.
      assert.deepEqual(probersOf(app), {
        'app/liveness': { httpGet: { path: '/', port: 'http', httpHeaders: [{ name: 'Accept', value: 'application/json' }] }, port: 9101, timeoutSeconds: 1 },
        'app/readiness': { httpGet: { path: '/get_font_types', port: 9101 }, port: 9101, timeoutSeconds: 3 },
      });
      assert.deepEqual(app.spec.containers[0].startupProbe, { tcpSocket: { port: 'http' }, failureThreshold: 30 });
      assert.equal(app.spec.containers[0].livenessProbe?.periodSeconds, 10, 'timing fields kept');
      const init = app.spec.initContainers?.[0];
      assert.deepEqual(init?.args, ['intercept', '--ports', '9101', '--to-port', '15006', '--proxy-uid', '1337', '--exclude-ports', '9901']);
      assert.equal(app.spec.terminationGracePeriodSeconds, 60, 'raised from 20');
      assert.equal(app.metadata?.annotations?.['kubectl.kubernetes.io/default-container'], 'app');
      // The StatefulSet's HTTPS probe keeps its scheme for the sidecar.
      const store = podsOf(docs[2])[0].pod;
      assert.equal(probersOf(store)['store/readiness'].httpGet?.scheme, 'HTTPS');
      // The Job had no ports: its annotation says which to intercept.
      const job = podsOf(docs[5])[0].pod;
      assert.equal(job.spec.initContainers?.[0].args?.[2], '5000');
    });
  }

  test('strings that look like booleans, numbers or dates stay strings, quoted in the output', () => {
    const { output } = injectManifestsText(workloadsText(), classic);
    for (const line of ['feature-flag: "on"', 'short-answer: "y"', 'released: "2024-01-01"', 'tier: "on"', 'value: "yes"', 'value: "off"', 'value: "0755"', 'value: "1e3"', 'enabled: "on"', 'answer: "y"']) {
      assert.ok(output.includes(line), `output keeps ${line}`);
    }
    const pod = deploymentPod(output);
    assert.deepEqual(pod.spec.containers[0].env?.map((e) => e.value), ['yes', 'off', '0755', '1e3']);
    assert.equal(pod.metadata?.labels?.tier, 'on');
  });

  test('idempotent: inject(inject(x)) is byte-equal to inject(x), classic and native, and across modes', () => {
    for (const cfg of [classic, native]) {
      const once = injectManifestsText(workloadsText(), cfg).output;
      const twice = injectManifestsText(once, cfg).output;
      assert.equal(twice, once);
    }
    // An injected file re-injected with the other mode is what injecting the original that way gives.
    const viaClassic = injectManifestsText(injectManifestsText(workloadsText(), classic).output, native).output;
    assert.equal(viaClassic, injectManifestsText(workloadsText(), native).output);
  });

  test('--remove restores every pod as it was', () => {
    const original = parseManifests(workloadsText());
    for (const cfg of [classic, native]) {
      const injected = injectManifestsText(workloadsText(), cfg).output;
      const removed = injectManifestsText(injected, cfg, { remove: true }).output;
      assert.deepEqual(parseManifests(removed), original);
    }
  });
});

function podYaml(annotations: Record<string, string>, extra = '', labels = ''): string {
  return [
    'apiVersion: v1', 'kind: Pod', 'metadata:', '  name: p',
    ...(Object.keys(annotations).length ? ['  annotations:', ...Object.entries(annotations).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`)] : []),
    ...(labels ? ['  labels:', `    ${labels}`] : []),
    'spec:', '  containers:', '    - name: app', '      image: app:1', '      ports: [{ containerPort: 9101 }, { containerPort: 9090 }]', extra, '',
  ].join('\n');
}

describe('per-pod annotations override the defaults', () => {
  test('policy ConfigMap, intercepted and excluded ports, native or classic', async () => {
    const text = podYaml({
      'bridge-sidecar.dev/policy-configmap': 'drafts-policy',
      'bridge-sidecar.dev/intercept-ports': '9101,9090',
      'bridge-sidecar.dev/exclude-ports': '22',
      'bridge-sidecar.dev/native-sidecar': 'true',
    });
    const docs = parseManifests(injectManifestsText(text, classic).output);
    await assertValid(docs);
    const pod = docs[0] as Pod;
    assertInjected(pod, 'Pod/p', { native: true, policyConfigMap: 'drafts-policy' });
    const args = pod.spec.initContainers?.[0].args ?? [];
    assert.equal(args[args.indexOf('--ports') + 1], '9090,9101');
    assert.equal(args[args.indexOf('--exclude-ports') + 1], '22,9901');
    // and the other way: native by default, classic asked for
    const back = parseManifests(injectManifestsText(podYaml({ 'bridge-sidecar.dev/native-sidecar': 'false' }), native).output)[0] as Pod;
    assertInjected(back, 'Pod/p', { native: false });
  });

  test('bridge-sidecar.dev/inject: "false" (annotation or label) leaves the pod exactly as it was', () => {
    for (const text of [podYaml({ 'bridge-sidecar.dev/inject': 'false' }), podYaml({}, '', 'bridge-sidecar.dev/inject: "false"')]) {
      const { output, report } = injectManifestsText(text, classic);
      assert.deepEqual(parseManifests(output), parseManifests(text));
      assert.equal(report.injected.length, 0);
      assert.match(report.skipped[0], /Pod\/p .*inject/);
    }
  });

  test('a bad annotation value is a clear error', () => {
    assert.throws(() => injectManifestsText(podYaml({ 'bridge-sidecar.dev/intercept-ports': '9101,http' }), classic),
      (e: Error) => e instanceof InjectError && /document 1: Pod\/p: bridge-sidecar.dev\/intercept-ports: "http" is not a port/.test(e.message));
    assert.throws(() => injectManifestsText(podYaml({ 'bridge-sidecar.dev/native-sidecar': 'yes' }), classic), /native-sidecar: "yes" is not "true" or "false"/);
    assert.throws(() => injectManifestsText(podYaml({ 'bridge-sidecar.dev/intercept-ports': '15006' }), classic), /15006 is the sidecar's own port/);
  });
});

describe('refusals and bad input', () => {
  const meshPods: [string, string, RegExp][] = [
    ['Istio proxy container', podYaml({}, '    - { name: istio-proxy, image: istio/proxyv2:1.22 }'), /Istio proxy \(container istio-proxy\).*uid 1337 on port 15006/],
    ['Istio status annotation', podYaml({ 'sidecar.istio.io/status': '{"version":"x"}' }), /marked for the Istio proxy/],
    ['Linkerd proxy container', podYaml({}, '    - { name: linkerd-proxy, image: cr.l5d.io/linkerd/proxy:stable }'), /Linkerd proxy \(container linkerd-proxy\)/],
    ['Linkerd inject annotation', podYaml({ 'linkerd.io/inject': 'enabled' }), /marked for the Linkerd proxy/],
  ];
  for (const [what, text, message] of meshPods) {
    test(`refuses a pod with the ${what}: exit 1, a clear message, nothing on stdout`, () => {
      const r = inject([], text);
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^bridge-sidecar inject: <stdin>: document 1: Pod\/p: refusing to inject: /);
      assert.match(r.stderr, message);
    });
  }

  test('a probe on an undeclared named port, or a pod with no port to intercept, is a clear error', () => {
    assert.throws(() => injectManifestsText(podYaml({}, '      livenessProbe: { httpGet: { path: /, port: web } }'), classic),
      /container app: the liveness probe names port "web", which the container does not declare/);
    const noPorts = 'apiVersion: v1\nkind: Pod\nmetadata: { name: np }\nspec:\n  containers: [{ name: app, image: app:1 }]\n';
    assert.throws(() => injectManifestsText(noPorts, classic), /container app declares no TCP containerPort.*bridge-sidecar.dev\/intercept-ports/);
  });

  test('CLI: -f FILE and stdin give the same output; a YAML error names FILE:LINE:COL and writes nothing', () => {
    const fromFile = inject(['-f', workloadsFile, '--image', 'registry.example.com/bridge-sidecar:0.1.0']);
    assert.equal(fromFile.status, 0, fromFile.stderr);
    const fromStdin = inject(['--image', 'registry.example.com/bridge-sidecar:0.1.0'], workloadsText());
    assert.equal(fromStdin.stdout, fromFile.stdout);
    assert.equal(fromFile.stdout, injectManifestsText(workloadsText(), classic).output, 'the CLI is the library');
    const again = inject(['--image', 'registry.example.com/bridge-sidecar:0.1.0'], fromFile.stdout);
    assert.equal(again.stdout, fromFile.stdout, 'CLI idempotent');

    const broken = inject([], 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n');
    assert.equal(broken.status, 1);
    assert.equal(broken.stdout, '');
    assert.match(broken.stderr, /^bridge-sidecar inject: <stdin>:\d+:\d+: /);
    const missing = inject(['-f', '/nonexistent/x.yaml']);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /\/nonexistent\/x.yaml: no such file/);
    const badFlag = inject(['--native', '--classic'], '');
    assert.equal(badFlag.status, 2);
    assert.match(badFlag.stderr, /contradict/);
  });

  test('the default image is the package version (nothing claims a published image)', () => {
    const r = inject([], podYaml({}));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /image: bridge-sidecar:\d+\.\d+\.\d+\n/);
    assert.equal(DEFAULT_CONFIG.native, false, 'classic unless asked: works on every supported cluster');
  });
});
