/**
 * The chart on the oldest and newest Kubernetes it supports: `helm lint --strict` and `helm template
 * --kube-version 1.27.0` / `1.30.0` for every combination (interception iptables|service × sidecar.native
 * auto|false × redis none|internal|external|cluster), with the injector, the NetworkPolicy, the admin token
 * and monitoring on, the injector's certificate made by the chart or (every other combination) by
 * cert-manager. Every object validated strictly offline. Also: the native sidecar is picked by version, the
 * service's probes go to /app-health when its port is intercepted, the webhook's caBundle signed the serving
 * certificate, and values.schema.json keeps labels and annotations strings.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { chartDir, render, renderText, runHelm, setArgs, type Values } from './helm';
import { validateK8sObject, type K8sObject } from './k8s-schema';
import { parseAppProbers } from '../../lib/k8s/probers';
import { parseInjectConfig } from '../../lib/k8s';
import type { C, Pod } from './inject-fixture';

const KUBE = ['1.27.0', '1.30.0'] as const;
const MODES = ['iptables', 'service'] as const;
const NATIVE = ['auto', false] as const;
const REDIS = ['none', 'internal', 'external', 'cluster'] as const;

type Obj = any;
const find = (objs: Obj[], kind: string, suffix = ''): Obj[] => objs.filter((o) => o.kind === kind && String(o.metadata?.name).endsWith(suffix));

function valuesFor(mode: string, native: string | boolean, redis: string): Values {
  const v: Values = {
    'interception.mode': mode, 'sidecar.native': native, 'redis.mode': redis,
    'injector.enabled': true, 'networkPolicy.enabled': true,
    'metrics.serviceMonitor.enabled': true, 'metrics.prometheusRule.enabled': true,
    'autoscaling.enabled': true, 'adminToken.enabled': true, 'adminToken.value': 'test-token',
    'redis.passwordSecret.name': redis === 'none' ? '' : 'redis-auth',
  };
  if (native === false) v['sidecar.native'] = false;
  if (redis === 'external') v['redis.url'] = 'redis://redis.example.svc:6379/0';
  if (redis === 'cluster') v['redis.clusterNodes[0]'] = 'redis-0.redis:6379';
  return v;
}

test('helm lint --strict at both Kubernetes versions, with every feature on', () => {
  for (const kube of KUBE) {
    // helm lint has no --api-versions: the cert-manager path is forced by value instead
    for (const api of [[], ['--set', 'injector.certManager=true']]) {
      const r = runHelm(['lint', '--strict', chartDir, '--kube-version', kube, ...api, ...setArgs(valuesFor('iptables', 'auto', 'internal'))]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  }
});

describe('every combination at Kubernetes 1.27 and 1.30 renders strictly valid objects', () => {
  let n = 0;
  for (const kube of KUBE) for (const mode of MODES) for (const native of NATIVE) for (const redis of REDIS) {
    const certManager = n++ % 2 === 1;
    test(`kube=${kube} interception=${mode} native=${native} redis=${redis} certs=${certManager ? 'cert-manager' : 'chart'}`, async () => {
      const objs = render(valuesFor(mode, native, redis), ['--kube-version', kube, ...(certManager ? ['--api-versions', 'cert-manager.io/v1'] : [])]) as Obj[];
      for (const o of objs) {
        const problems = await validateK8sObject(o);
        assert.deepEqual(problems, [], `${o.kind}/${o.metadata?.name}: ${problems.join('; ')}`);
      }
      const deploy = find(objs, 'Deployment').find((d) => d.spec.template.metadata.labels['app.kubernetes.io/component'] === 'server');
      assert.ok(deploy);
      const pod = deploy.spec.template.spec as Pod['spec'];
      const all: C[] = [...(pod.initContainers ?? []), ...pod.containers];
      const sidecar = all.find((c) => c.name === 'bridge-sidecar');
      assert.ok(sidecar);
      const expectNative = native === 'auto' && kube === '1.30.0';
      assert.equal(sidecar.restartPolicy === 'Always', expectNative, `native sidecar ${expectNative ? 'on' : 'off'} at ${kube}`);
      assert.equal(pod.containers.includes(sidecar), !expectNative);

      // The service's probes: via /app-health when its port is intercepted, direct otherwise.
      const app = pod.containers.find((c) => c.name === 'draft-service');
      assert.ok(app);
      const probers = sidecar.env?.find((e) => e.name === 'BRIDGE_SIDECAR_APP_PROBERS')?.value;
      if (mode === 'iptables') {
        assert.deepEqual(app.livenessProbe?.httpGet, { path: '/app-health/draft-service/liveness', port: 9901 });
        assert.deepEqual(app.readinessProbe?.httpGet, { path: '/app-health/draft-service/readiness', port: 9901 });
        const parsed = parseAppProbers(probers);
        assert.deepEqual(parsed.map((p) => [p.path, p.port, p.requestPath]), [
          ['/app-health/draft-service/liveness', 9101, '/get_font_types'], ['/app-health/draft-service/readiness', 9101, '/get_font_types']]);
      } else {
        assert.deepEqual(app.livenessProbe?.httpGet, { path: '/get_font_types', port: 'app' });
        assert.equal(probers, undefined);
      }
      assert.equal(sidecar.env?.some((e) => e.name === 'BRIDGE_SIDECAR_REDIS_PASSWORD'), redis !== 'none', 'Redis password from the Secret');
      const policy = find(objs, 'ConfigMap', '-policy')[0].data['policy.yaml'] as string;
      assert.ok(!/password/i.test(policy), 'no password in the policy ConfigMap');

      // The Service: data port and /metrics only.
      const svc = find(objs, 'Service').find((s) => s.metadata?.name === deploy.metadata?.name);
      assert.deepEqual(svc?.spec.ports.map((p: { name: string }) => p.name), ['http', 'metrics']);

      // The NetworkPolicy: data port from anywhere, admin and metrics from the monitoring pods only.
      const np = find(objs, 'NetworkPolicy')[0];
      assert.ok(np);
      const [open, monitored] = np.spec.ingress;
      assert.equal(open.from, undefined, 'the data port from anywhere');
      assert.deepEqual(open.ports.map((p: { port: number }) => p.port), [9101, 15006]);
      assert.deepEqual(monitored.ports.map((p: { port: number }) => p.port), [9901, 9464]);
      assert.ok(monitored.from[0].podSelector.matchLabels && monitored.from[0].namespaceSelector.matchLabels, 'only selected monitoring pods');

      // The injector.
      const mwc = find(objs, 'MutatingWebhookConfiguration')[0];
      const hook = mwc.webhooks[0];
      assert.deepEqual(hook.namespaceSelector, { matchLabels: { 'bridge-sidecar-injection': 'enabled' } });
      assert.deepEqual(hook.objectSelector, { matchExpressions: [{ key: 'bridge-sidecar.dev/inject', operator: 'NotIn', values: ['false'] }] });
      assert.equal(hook.failurePolicy, 'Ignore');
      assert.equal(hook.timeoutSeconds, 10);
      assert.equal(hook.reinvocationPolicy, 'IfNeeded');
      assert.deepEqual(hook.admissionReviewVersions, ['v1']);
      assert.equal(hook.clientConfig.service.path, '/inject');
      const injector = find(objs, 'Deployment', '-injector')[0];
      assert.equal(injector.spec.template.metadata.labels['bridge-sidecar.dev/inject'], 'false', 'the injector never injects itself');
      const tlsVolume = injector.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'tls');
      if (certManager) {
        assert.equal(hook.clientConfig.caBundle, undefined, 'cert-manager fills the caBundle');
        assert.match(mwc.metadata.annotations['cert-manager.io/inject-ca-from'], /\/demo-bridge-sidecar-injector$/);
        const cert = find(objs, 'Certificate')[0];
        assert.equal(cert.spec.secretName, tlsVolume.secret.secretName);
        assert.ok(cert.spec.dnsNames.includes(`${hook.clientConfig.service.name}.${hook.clientConfig.service.namespace}.svc`));
        assert.equal(find(objs, 'Secret', '-injector-tls').length, 0);
      } else {
        const secret = find(objs, 'Secret', '-injector-tls')[0];
        assert.equal(secret.metadata?.name, tlsVolume.secret.secretName);
        const ca = new X509Certificate(Buffer.from(hook.clientConfig.caBundle, 'base64'));
        const serving = new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64'));
        assert.ok(serving.verify(ca.publicKey), 'the caBundle signed the serving certificate');
        assert.ok(serving.checkHost(`${hook.clientConfig.service.name}.${hook.clientConfig.service.namespace}.svc`), 'for the Service DNS name');
        assert.equal(find(objs, 'Certificate').length, 0);
      }
      const cfg = parseInjectConfig(parseAllDocuments(find(objs, 'ConfigMap', '-injector')[0].data['config.yaml'])[0].toJS());
      assert.equal(cfg.native, expectNative, 'the webhook injects native sidecars exactly where the chart does');
    });
  }
});

describe('values.schema.json: labels and annotations are strings, quantities are checked', () => {
  const refuse = (args: string[], pattern: RegExp): void => {
    const r = runHelm(['template', 'demo', chartDir, ...args]);
    assert.notEqual(r.status, 0, `should refuse ${args.join(' ')}`);
    assert.match(r.stderr, pattern);
  };
  test('non-string or malformed labels and annotations, and bad quantities, are refused with the path', () => {
    refuse(['--set', 'podLabels.canary=true'], /podLabels\/canary.*(got boolean|want string)/s);
    refuse(['--set', 'podAnnotations.replicas=3'], /podAnnotations\/replicas.*(got number|want string)/s);
    refuse(['--set-string', 'podLabels.team=a b'], /podLabels\/team/);
    refuse(['--set-string', 'podLabels.bad key=x'], /invalid propertyName 'bad key'/);
    refuse(['--set-string', 'sidecar.resources.requests.memory=lots'], /sidecar\/resources\/requests\/memory/);
    refuse(['--set-string', 'injector.resources.limits.cpu=1 core'], /injector\/resources\/limits\/cpu/);
  });
  test('strings that look like booleans stay strings in the rendered output, as the API server reads it (YAML 1.1)', () => {
    const text = renderText({ 'podLabels.flag': 'y', 'podAnnotations.switch': 'on', 'podAnnotations.answer': 'yes', 'kubeService.annotations.n': 'no' });
    for (const doc of parseAllDocuments(text, { version: '1.1' })) {
      const o = doc.toJS() as Obj | null;
      if (o?.kind === 'Deployment' && o.metadata?.name === 'demo-bridge-sidecar') {
        assert.equal(o.spec.template.metadata.labels.flag, 'y');
        assert.equal(o.spec.template.metadata.annotations.switch, 'on');
        assert.equal(o.spec.template.metadata.annotations.answer, 'yes');
      }
      if (o?.kind === 'Service' && o.metadata?.name === 'demo-bridge-sidecar') assert.equal(o.metadata.annotations.n, 'no');
    }
    assert.ok(render({ 'sidecar.resources.requests.cpu': 1, 'sidecar.resources.limits.memory': '1.5Gi' }).length > 0, 'numbers and decimal quantities are fine');
  });
});
