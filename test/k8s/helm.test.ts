/**
 * The Helm chart, rendered by a real Helm: `helm lint --strict`, then every value combination that matters
 * (interception iptables|service × native sidecar true|false × redis none|internal|external|cluster, with
 * monitoring on), each rendered object validated offline against the Kubernetes (and Prometheus Operator)
 * OpenAPI schemas, strictly (no unknown fields), and the properties the design depends on asserted.
 * Also: deploy/ is the chart rendered with its defaults, and the chart refuses inconsistent values.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { buildRoot, repoRoot } from '../helpers/repo';
import { chartDir, parseObjects, render, renderText, runHelm, setArgs, type Values } from './helm';
import { validateK8sObject, type K8sObject } from './k8s-schema';

interface Probe { httpGet?: { path: string; port: string | number } }
interface Mount { name: string; mountPath: string; subPath?: string; readOnly?: boolean }
interface Container {
  name: string;
  image: string;
  args?: string[];
  restartPolicy?: string;
  ports?: { name: string; containerPort: number }[];
  env?: { name: string; value?: string }[];
  securityContext?: {
    runAsUser?: number; runAsNonRoot?: boolean; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
  };
  volumeMounts?: Mount[];
  startupProbe?: Probe; livenessProbe?: Probe; readinessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } };
}
interface Volume { name: string; configMap?: { name: string }; secret?: { secretName: string }; emptyDir?: object }
interface PodSpec { initContainers?: Container[]; containers: Container[]; volumes?: Volume[]; terminationGracePeriodSeconds?: number }
interface Deployment extends K8sObject {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { template: { metadata: { annotations?: Record<string, string>; labels: Record<string, string> }; spec: PodSpec } };
}

const ADMIN_PORT = 9901;
const LISTEN_PORT = 15006;
const SERVICE_PORT = 9101;
const cli = join(buildRoot(), 'cmd', 'bridge-sidecar.js');

function byKind<T extends K8sObject = K8sObject>(objs: K8sObject[], kind: string, nameSuffix = ''): T[] {
  return objs.filter((o) => o.kind === kind && String(o.metadata?.name ?? '').endsWith(nameSuffix)) as T[];
}

function one<T extends K8sObject = K8sObject>(objs: K8sObject[], kind: string, nameSuffix = ''): T {
  const found = byKind<T>(objs, kind, nameSuffix);
  assert.equal(found.length, 1, `exactly one ${kind}${nameSuffix ? ' named *' + nameSuffix : ''}`);
  return found[0];
}

function policyOf(objs: K8sObject[]): { text: string; policy: Record<string, any> } {
  const cm = one(objs, 'ConfigMap', '-policy') as K8sObject & { data: Record<string, string> };
  const text = cm.data['policy.yaml'];
  return { text, policy: parseYaml(text) as Record<string, any> };
}

function validatePolicyText(text: string): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-k8s-policy-'));
  try {
    writeFileSync(join(dir, 'policy.yaml'), text);
    const r = spawnSync(process.execPath, [cli, 'validate', join(dir, 'policy.yaml')], { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, out: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('helm lint --strict passes with the defaults and with every feature on', () => {
  for (const values of [{}, { 'interception.mode': 'service', 'sidecar.native': false, 'redis.mode': 'internal', 'metrics.serviceMonitor.enabled': true,
    'metrics.prometheusRule.enabled': true, 'autoscaling.enabled': true, 'adminToken.enabled': true, 'adminToken.value': 's3cret' }] as Values[]) {
    const r = runHelm(['lint', '--strict', chartDir, ...setArgs(values)]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

const MODES = ['iptables', 'service'] as const;
const NATIVE = [true, false] as const;
const REDIS = ['none', 'internal', 'external', 'cluster'] as const;

function valuesFor(mode: string, native: boolean, redis: string): Values {
  const v: Values = {
    'interception.mode': mode, 'sidecar.native': native, 'redis.mode': redis,
    'metrics.serviceMonitor.enabled': true, 'metrics.prometheusRule.enabled': true,
    'autoscaling.enabled': true, 'podDisruptionBudget.enabled': true,
    'adminToken.enabled': true, 'adminToken.value': 'test-token',
  };
  if (redis === 'external') v['redis.url'] = 'redis://redis.example.svc:6379/0';
  if (redis === 'cluster') v['redis.clusterNodes[0]'] = 'redis-0.redis:6379', v['redis.clusterNodes[1]'] = 'redis-1.redis:6379';
  return v;
}

describe('every value combination renders valid objects with the required properties', () => {
  for (const mode of MODES) for (const native of NATIVE) for (const redis of REDIS) {
    test(`interception=${mode} native=${native} redis=${redis}`, async () => {
      const objs = render(valuesFor(mode, native, redis));

      // Every object against the OpenAPI schemas, strictly.
      for (const o of objs) {
        const problems = await validateK8sObject(o);
        assert.deepEqual(problems, [], `${o.kind}/${o.metadata?.name}: ${problems.join('; ')}`);
        const labels = (o.metadata as { labels?: Record<string, string> }).labels ?? {};
        for (const l of ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'app.kubernetes.io/managed-by']) {
          assert.ok(labels[l], `${o.kind}/${o.metadata?.name} has the label ${l}`);
        }
      }
      const kinds = new Set(objs.map((o) => o.kind));
      for (const k of ['ConfigMap', 'Deployment', 'Service', 'Secret', 'ServiceAccount', 'ServiceMonitor', 'PrometheusRule', 'PodDisruptionBudget', 'HorizontalPodAutoscaler']) {
        assert.ok(kinds.has(k), `renders a ${k}`);
      }

      const deploy = byKind<Deployment>(objs, 'Deployment').find((d) => !d.metadata.name.endsWith('-redis'));
      assert.ok(deploy);
      const pod = deploy.spec.template.spec;
      const inits = pod.initContainers ?? [];
      const all = [...inits, ...pod.containers];

      // No checksum annotation anywhere: an edited policy must not roll the pods.
      for (const ann of [deploy.metadata.annotations, deploy.spec.template.metadata.annotations]) {
        assert.ok(!Object.keys(ann ?? {}).some((k) => /checksum/i.test(k)), 'no checksum annotation');
      }

      // The sidecar, wherever it is.
      const sidecars = all.filter((c) => c.name === 'bridge-sidecar');
      assert.equal(sidecars.length, 1);
      const sidecar = sidecars[0];
      if (native) {
        assert.ok(inits.includes(sidecar), 'native: the sidecar is an init container');
        assert.equal(sidecar.restartPolicy, 'Always', 'native: restartPolicy Always');
        assert.equal(sidecar.lifecycle, undefined, 'native: no preStop needed (stopped after the service)');
        assert.equal(inits[inits.length - 1], sidecar, 'native: after the intercept step');
      } else {
        assert.ok(pod.containers.includes(sidecar), 'classic: a second container');
        assert.equal(sidecar.restartPolicy, undefined);
        const sleep = sidecar.lifecycle?.preStop?.exec?.command;
        assert.ok(sleep && sleep[0] === 'sleep', 'classic: preStop sleep');
        const app = pod.containers.find((c) => c.name !== 'bridge-sidecar');
        assert.ok(Number(sleep[1]) > (app?.lifecycle?.preStop?.sleep?.seconds ?? 0), 'the sidecar sleeps longer than the service');
        assert.ok((pod.terminationGracePeriodSeconds ?? 30) > Number(sleep[1]), 'the grace period covers the sleep');
      }
      // Probes on the admin port; startup on /healthz (it cannot wait for the service that starts after it).
      const adminPort = sidecar.ports?.find((p) => p.name === 'admin');
      assert.equal(adminPort?.containerPort, ADMIN_PORT);
      assert.equal(sidecar.ports?.find((p) => p.name === 'proxy')?.containerPort, LISTEN_PORT);
      assert.deepEqual(sidecar.livenessProbe?.httpGet, { path: '/healthz', port: 'admin' });
      assert.deepEqual(sidecar.readinessProbe?.httpGet, { path: '/readyz', port: 'admin' });
      assert.deepEqual(sidecar.startupProbe?.httpGet, { path: '/healthz', port: 'admin' });
      // Non-root, read-only root, no capabilities.
      const sc = sidecar.securityContext ?? {};
      assert.equal(sc.runAsNonRoot, true);
      assert.ok((sc.runAsUser ?? 0) > 0);
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.deepEqual(sc.capabilities, { drop: ['ALL'] });
      // The policy ConfigMap mounted as a directory (never subPath); writable emptyDirs for L3 and /tmp.
      const policyVolume = pod.volumes?.find((v) => v.configMap);
      assert.ok(policyVolume?.configMap?.name.endsWith('-policy'));
      const policyMount = sidecar.volumeMounts?.find((m) => m.name === policyVolume?.name);
      assert.ok(policyMount, 'the policy volume is mounted');
      assert.equal(policyMount.subPath, undefined, 'never by subPath (the kubelet would never update it)');
      assert.ok(all.every((c) => (c.volumeMounts ?? []).every((m) => m.subPath === undefined)), 'no subPath mounts at all');
      assert.ok(sidecar.args?.includes(`${policyMount.mountPath}/policy.yaml`), 'serve reads the file in the mounted directory');
      for (const dir of ['/var/cache/bridge-sidecar', '/tmp']) {
        const m = sidecar.volumeMounts?.find((x) => x.mountPath === dir);
        assert.ok(m && !m.readOnly && pod.volumes?.find((v) => v.name === m.name)?.emptyDir, `writable emptyDir at ${dir}`);
      }

      // Interception.
      const svc = one<K8sObject & { spec: { ports: { name: string; port: number; targetPort: string | number }[] } }>(objs, 'Service', deploy.metadata.name);
      const intercept = inits.find((c) => c.name === 'intercept');
      if (mode === 'iptables') {
        assert.ok(intercept, 'iptables: an intercept init container');
        assert.equal(inits[0], intercept, 'the rules are in place before the sidecar starts');
        assert.deepEqual([...(intercept.securityContext?.capabilities?.add ?? [])].sort(), ['NET_ADMIN', 'NET_RAW']);
        assert.deepEqual(intercept.securityContext?.capabilities?.drop, ['ALL']);
        assert.equal(intercept.securityContext?.runAsUser, 0);
        const a = intercept.args ?? [];
        assert.equal(a[0], 'intercept');
        assert.equal(a[a.indexOf('--ports') + 1], String(SERVICE_PORT));
        assert.equal(a[a.indexOf('--to-port') + 1], String(LISTEN_PORT));
        assert.equal(a[a.indexOf('--proxy-uid') + 1], String(sc.runAsUser), '--proxy-uid is the sidecar uid');
        assert.ok(a[a.indexOf('--exclude-ports') + 1].split(',').includes(String(ADMIN_PORT)), 'the admin port is excluded');
        assert.equal(svc.spec.ports.find((p) => p.name === 'http')?.targetPort, 'app', 'the Service targets the service port');
      } else {
        assert.equal(intercept, undefined, 'service mode: no intercept step');
        assert.ok(!all.some((c) => c.securityContext?.capabilities?.add?.length), 'service mode: no added capabilities');
        assert.equal(svc.spec.ports.find((p) => p.name === 'http')?.targetPort, 'proxy', 'the Service targets the sidecar');
      }
      assert.deepEqual(svc.spec.ports.map((p) => p.name), ['http', 'metrics'], 'the Service exposes the data port and /metrics only');
      assert.equal(svc.spec.ports.find((p) => p.name === 'metrics')?.targetPort, 'metrics');
      assert.equal(sidecar.ports?.find((p) => p.name === 'metrics')?.containerPort, 9464);
      const sm = one<K8sObject & { spec: { endpoints: { port: string; path: string }[] } }>(objs, 'ServiceMonitor');
      assert.deepEqual(sm.spec.endpoints.map((e) => [e.port, e.path]), [['metrics', '/metrics']], 'scraped on the metrics-only port');

      // The policy: chart-owned keys filled in, Redis as chosen, and it validates.
      const { text, policy } = policyOf(objs);
      assert.equal(policy.server.listen, `0.0.0.0:${LISTEN_PORT}`);
      assert.equal(policy.server.admin_listen, `0.0.0.0:${ADMIN_PORT}`);
      assert.equal(policy.server.metrics_listen, '0.0.0.0:9464');
      assert.equal(policy.upstream.url, `http://127.0.0.1:${SERVICE_PORT}`);
      assert.equal(policy.cache.l3.path, '/var/cache/bridge-sidecar');
      const tokenMount = sidecar.volumeMounts?.find((m) => m.name === 'admin-token');
      assert.ok(tokenMount?.readOnly, 'the admin token Secret is mounted read-only');
      assert.equal(policy.server.admin_token_file, `${tokenMount.mountPath}/token`, 'server.admin_token_file is the mounted Secret file');
      const redisDeploy = byKind(objs, 'Deployment', '-redis');
      if (redis === 'none') {
        assert.equal(policy.redis, undefined);
        assert.equal(policy.cache.l2, undefined);
        assert.equal(redisDeploy.length, 0);
      } else {
        assert.deepEqual(policy.cache.l2, { size: '2GB', ttl: '1h', strategy: 'lfu' });
        assert.equal(policy.rate_limiting.scope, 'cluster');
      }
      if (redis === 'internal') {
        const rd = redisDeploy[0] as Deployment;
        assert.ok(rd, 'a Redis Deployment');
        const args = rd.spec.template.spec.containers[0].args ?? [];
        assert.equal(args[args.indexOf('--maxmemory') + 1], '2gb');
        assert.equal(args[args.indexOf('--maxmemory-policy') + 1], 'allkeys-lfu');
        const rs = one(objs, 'Service', '-redis');
        assert.equal(policy.redis.url, `redis://${rs.metadata?.name}:6379/0`);
      }
      if (redis === 'external') assert.equal(policy.redis.url, 'redis://redis.example.svc:6379/0');
      if (redis === 'cluster') assert.deepEqual(policy.redis.cluster, ['redis-0.redis:6379', 'redis-1.redis:6379']);
      const v = validatePolicyText(text);
      assert.equal(v.status, 0, `bridge-sidecar validate on the rendered policy:\n${v.out}`);
    });
  }
});

test('the defaults: Redis, monitoring and autoscaling off, no CRDs needed', async () => {
  const objs = render({});
  assert.deepEqual([...new Set(objs.map((o) => o.kind))].sort(), ['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service', 'ServiceAccount']);
  for (const o of objs) assert.deepEqual(await validateK8sObject(o), [], `${o.kind}/${o.metadata?.name}`);
  const deploy = one<Deployment>(objs, 'Deployment');
  assert.equal(deploy.spec.template.spec.initContainers?.[1]?.restartPolicy, 'Always', 'native sidecar by default');
  assert.equal(deploy.spec.template.spec.initContainers?.[0]?.name, 'intercept', 'iptables interception by default');
});

test('the strict schema check catches a misspelt field (it is not a check that always passes)', async () => {
  const deploy = one<Deployment>(render({}), 'Deployment');
  const broken = JSON.parse(JSON.stringify(deploy)) as Deployment;
  const c = broken.spec.template.spec.initContainers?.[1] as unknown as Record<string, unknown>;
  c.restartpolicy = c.restartPolicy;
  delete c.restartPolicy;
  const problems = await validateK8sObject(broken);
  assert.ok(problems.some((p) => p.includes('initContainers[1].restartpolicy: unknown field')), problems.join('; '));
  const wrongType = JSON.parse(JSON.stringify(deploy)) as Deployment;
  (wrongType.spec.template.spec.containers[0].ports as unknown as { containerPort: unknown }[])[0].containerPort = 'x';
  assert.ok((await validateK8sObject(wrongType)).some((p) => p.includes('containerPort')));
});

test('the chart refuses inconsistent values with a clear message', () => {
  const refuse = (values: Values, extra: string[], pattern: RegExp) => {
    const r = runHelm(['template', 'demo', chartDir, ...setArgs(values), ...extra]);
    assert.notEqual(r.status, 0, `should refuse ${JSON.stringify(values)}`);
    assert.match(r.stderr, pattern);
  };
  refuse({ 'interception.mode': 'tproxy' }, [], /interception\/mode/);
  refuse({ 'redis.mode': 'sentinel' }, [], /redis\/mode/);
  refuse({ 'redis.mode': 'external' }, [], /redis\.mode=external needs redis\.url/);
  refuse({ 'redis.mode': 'cluster' }, [], /redis\.mode=cluster needs redis\.clusterNodes/);
  refuse({ 'sidecar.native': false, 'sidecar.preStopSleepSeconds': 3 }, [], /must be greater than service\.preStopSleepSeconds/);
  refuse({ 'policy.cache.l2.size': '1GB' }, [], /cache\.l2 needs Redis/);
  refuse({ 'policy.rate_limiting.scope': 'cluster' }, [], /scope=cluster needs Redis/);
  refuse({ 'adminToken.enabled': true }, [], /adminToken\.existingSecret or adminToken\.value/);
  refuse({ 'sidecar.native': true }, ['--kube-version', '1.27.0'], /sidecar\.native=true needs Kubernetes >= 1\.29/);
  refuse({}, ['--kube-version', '1.24.0'], /kubeVersion/);
  refuse({ 'service.livenessProbe.httpGet.port': 'web' }, [], /service\.livenessProbe\.httpGet\.port must be app or a port number/);
});

test('on Kubernetes 1.29 the service preStop falls back to exec sleep (no sleep action there by default)', async () => {
  for (const [kube, expectSleepAction] of [['1.29.0', false], ['1.30.0', true]] as const) {
    const deploy = one<Deployment>(render({}, ['--kube-version', kube]), 'Deployment');
    const preStop = deploy.spec.template.spec.containers[0].lifecycle?.preStop;
    assert.equal(preStop?.sleep?.seconds !== undefined, expectSleepAction, kube);
    assert.equal(preStop?.exec?.command[0] === 'sleep', !expectSleepAction, kube);
    assert.deepEqual(await validateK8sObject(deploy), []);
  }
});

test('deploy/ holds the chart rendered with its default values', () => {
  const committed = readFileSync(join(repoRoot(), 'deploy', 'bridge-sidecar.yaml'), 'utf8');
  const rendered = renderText({}, [], 'bridge-sidecar');
  assert.equal(committed.slice(committed.indexOf('---')), rendered.slice(rendered.indexOf('---')),
    'deploy/bridge-sidecar.yaml is stale: regenerate it as deploy/README.md says');
  const objs = parseObjects(committed);
  assert.ok(objs.length >= 5);
});

test("the README walkthrough's Deployment, injected as it says, is strictly valid with the sidecar and rewritten probes", async () => {
  const readme = readFileSync(join(chartDir, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Adding the sidecar to existing Deployments'));
  const block = /```yaml\n([\s\S]*?)```/.exec(section);
  assert.ok(block, 'a yaml block in the section');
  assert.match(section, /bridge-sidecar inject -f deployment\.yaml --image registry\.example\.com\/bridge-sidecar:0\.1\.0 --native/);
  const r = spawnSync(process.execPath, [cli, 'inject', '--image', 'registry.example.com/bridge-sidecar:0.1.0', '--native'], { input: block[1], encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const docs = parseObjects(r.stdout);
  assert.equal(docs.length, 1);
  assert.deepEqual(await validateK8sObject(docs[0]), []);
  const pod = (docs[0] as Deployment).spec.template.spec;
  assert.equal(pod.initContainers?.find((c) => c.name === 'bridge-sidecar')?.restartPolicy, 'Always');
  assert.deepEqual(pod.containers[0].livenessProbe?.httpGet, { path: '/app-health/app/liveness', port: ADMIN_PORT });
  const again = spawnSync(process.execPath, [cli, 'inject', '--image', 'registry.example.com/bridge-sidecar:0.1.0', '--native'], { input: r.stdout, encoding: 'utf8', timeout: 60_000 });
  assert.equal(again.stdout, r.stdout, 'injecting again changes nothing');
  const removed = spawnSync(process.execPath, [cli, 'inject', '--remove'], { input: r.stdout, encoding: 'utf8', timeout: 60_000 });
  assert.deepEqual(parseObjects(removed.stdout), parseObjects(block[1]), '--remove gives the original back');
});
