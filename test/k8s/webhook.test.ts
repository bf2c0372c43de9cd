/**
 * `bridge-sidecar webhook` over real TLS (a CA and a serving certificate made with openssl for the Service's
 * DNS name), with AdmissionReview v1 JSON as the API server sends it for a ReplicaSet-created pod (defaults
 * filled in, generateName, ownerReferences). The returned JSONPatch is applied with an independent RFC 6902
 * applier, and the result is strictly valid, carries the sidecar, and equals what `inject` makes of the
 * same pod. Reinvocation (the patched pod sent again) gets no patch; opted-out and Istio pods are admitted
 * unchanged (the latter with a warning); a malformed review is a 400; the renewed certificate is served.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRoot } from '../helpers/repo';
import { waitFor } from '../helpers/ports';
import { parseInjectConfig } from '../../lib/k8s';
import { injectPod } from '../../lib/k8s/pod';
import { parseManifests } from '../../lib/k8s/manifest-yaml';
import { applyPatch, type Op } from './json-patch-apply';
import { assertInjected, assertValid, podsOf, workloadsText, type Pod } from './inject-fixture';

const SERVICE_DNS = 'bridge-sidecar-injector.bridge-system.svc';

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA and a serving certificate it signed, for the Service DNS name (as the chart or cert-manager make). */
function makeCerts(dir: string, name = 'tls'): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  if (name === 'tls') openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=bridge-sidecar-injector-ca'], dir);
  openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${SERVICE_DNS}`], dir);
  writeFileSync(join(dir, 'san.ext'), `subjectAltName=DNS:${SERVICE_DNS},DNS:bridge-sidecar-injector.bridge-system.svc.cluster.local\n`);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', 'san.ext'], dir);
}

/** The pod the ReplicaSet controller creates from the fixture Deployment's template, as the API server has it after defaulting. */
function createdPod(): any {
  const template = structuredClone(podsOf(parseManifests(workloadsText())[0])[0].pod) as any;
  for (const c of template.spec.containers) {
    c.imagePullPolicy = 'IfNotPresent';
    c.terminationMessagePath = '/dev/termination-log';
    c.terminationMessagePolicy = 'File';
    for (const p of c.ports) p.protocol = 'TCP';
    for (const k of ['livenessProbe', 'readinessProbe']) Object.assign(c[k], { successThreshold: 1, timeoutSeconds: c[k].timeoutSeconds ?? 1 }), c[k].httpGet.scheme = 'HTTP';
  }
  Object.assign(template.spec, { restartPolicy: 'Always', dnsPolicy: 'ClusterFirst', schedulerName: 'default-scheduler', securityContext: {}, enableServiceLinks: true });
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      generateName: 'draft-service-7c9f8d6b5-', namespace: 'drafts', labels: { ...template.metadata.labels, 'pod-template-hash': '7c9f8d6b5' },
      annotations: template.metadata.annotations,
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'draft-service-7c9f8d6b5', uid: randomUUID(), controller: true, blockOwnerDeletion: true }],
    },
    spec: template.spec,
  };
}

function review(object: unknown, operation = 'CREATE'): Record<string, unknown> {
  return {
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: {
      uid: randomUUID(), kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' }, requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'drafts', operation,
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts', 'system:authenticated'] },
      object, oldObject: null, dryRun: false, options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

describe('bridge-sidecar webhook over TLS', { timeout: 180_000 }, () => {
  let dir = '';
  let proc: ChildProcess;
  let port = 0;
  let out = '';
  const cfg = parseInjectConfig({ image: 'registry.example.com/bridge-sidecar:0.1.0', native: true, policyConfigMap: 'drafts-policy' });

  function post(body: unknown, opts: { ca?: string | null; path?: string; raw?: string } = {}): Promise<{ status: number; json: any; cert: X509Certificate | null }> {
    const text = opts.raw ?? JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request({
        host: '127.0.0.1', port, path: opts.path ?? '/inject', method: 'POST', servername: SERVICE_DNS,
        ca: opts.ca === null ? undefined : (opts.ca ?? readFileSync(join(dir, 'ca.crt'), 'utf8')), agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
      }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { data += d; });
        res.on('end', () => {
          const peer = (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate?.() ?? null;
          resolve({ status: res.statusCode ?? 0, json: data ? JSON.parse(data) : null, cert: peer ?? null });
        });
      });
      req.on('error', reject);
      req.end(text);
    });
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bridge-webhook-'));
    makeCerts(dir);
    writeFileSync(join(dir, 'config.yaml'), 'image: registry.example.com/bridge-sidecar:0.1.0\nnative: true\npolicyConfigMap: drafts-policy\n');
    proc = spawn(process.execPath, [join(buildRoot(), 'cmd', 'bridge-sidecar.js'), 'webhook', '--port', '0', '--host', '127.0.0.1',
      '--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key'), '--config', join(dir, 'config.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
    port = await waitFor('the webhook to listen', () => {
      if (proc.exitCode !== null) throw new Error(`webhook exited: ${out}`);
      const line = out.split('\n').find((l) => l.includes('"msg":"listening"'));
      return line ? (JSON.parse(line) as { port: number }).port : 0;
    }, 30_000, 100);
  });
  after(async () => {
    if (proc && proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a pod created by a ReplicaSet gets a JSONPatch that makes it a valid injected pod, equal to what inject makes', async () => {
    const pod = createdPod();
    const rv = review(pod);
    const r = await post(rv);
    assert.equal(r.status, 200);
    assert.equal(r.json.apiVersion, 'admission.k8s.io/v1');
    assert.equal(r.json.kind, 'AdmissionReview');
    assert.equal(r.json.response.uid, (rv.request as { uid: string }).uid, 'the response uid is the request uid');
    assert.equal(r.json.response.allowed, true);
    assert.equal(r.json.response.patchType, 'JSONPatch');
    const ops = JSON.parse(Buffer.from(r.json.response.patch, 'base64').toString('utf8')) as Op[];
    assert.ok(ops.some((o) => o.path === '/metadata/annotations/prometheus.io~1scrape'), 'annotation keys escaped as RFC 6901 says');
    const patched = applyPatch(pod, ops) as any;
    await assertValid([{ ...patched, metadata: { ...patched.metadata, name: 'draft-service-7c9f8d6b5-x2x7q' } }]);
    assertInjected(patched, 'Pod', { native: true, policyConfigMap: 'drafts-policy' });
    assert.deepEqual(patched.metadata.ownerReferences, pod.metadata.ownerReferences, 'the rest of the pod untouched');
    const expected = injectPod({ metadata: pod.metadata, spec: pod.spec }, cfg);
    assert.equal(expected.kind, 'injected');
    assert.deepEqual({ metadata: patched.metadata, spec: patched.spec }, expected.pod, 'the same code as inject');

    // Reinvocation (another webhook changed the pod, ours is called again): nothing more to do.
    const again = await post(review(patched));
    assert.equal(again.json.response.allowed, true);
    assert.equal(again.json.response.patch, undefined, 'no patch for an injected pod');
  });

  test('opted-out pods and updates are admitted unchanged; an Istio pod too, with a warning', async () => {
    const optOut = createdPod();
    optOut.metadata!.labels!['bridge-sidecar.dev/inject'] = 'false';
    const a = await post(review(optOut));
    assert.deepEqual([a.json.response.allowed, a.json.response.patch], [true, undefined]);
    const upd = await post(review(createdPod(), 'UPDATE'));
    assert.deepEqual([upd.json.response.allowed, upd.json.response.patch], [true, undefined]);
    const istio = createdPod();
    istio.spec.containers.push({ name: 'istio-proxy', image: 'docker.io/istio/proxyv2:1.22.0' });
    const i = await post(review(istio));
    assert.equal(i.json.response.allowed, true, 'never denies: the pod is created without the sidecar');
    assert.equal(i.json.response.patch, undefined);
    assert.match(i.json.response.warnings[0], /^bridge-sidecar: not injected: refusing to inject: it already carries the Istio proxy/);
    await waitFor('the refusal to be logged', () => /"outcome":"refused"/.test(out), 15_000, 50);
  });

  test('bad requests are refused clearly; the TLS is real', async () => {
    const notReview = await post({ kind: 'Pod' });
    assert.equal(notReview.status, 400);
    assert.match(notReview.json.error, /not an AdmissionReview/);
    const v1beta1 = await post({ ...review(createdPod()), apiVersion: 'admission.k8s.io/v1beta1' });
    assert.equal(v1beta1.status, 400);
    assert.match(v1beta1.json.error, /only admission.k8s.io\/v1/);
    const garbage = await post(null, { raw: '{"apiVersion":' });
    assert.equal(garbage.status, 400);
    await assert.rejects(post(review(createdPod()), { ca: null }), /self.signed|unable to verify|certificate/i, 'a client without the CA does not trust it');
    const health = await new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/healthz', servername: SERVICE_DNS, ca: readFileSync(join(dir, 'ca.crt')), agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }).on('error', reject).end();
    });
    assert.equal(health, 200);
  });

  test('a renewed certificate (the Secret updated in place) is served without a restart', { timeout: 120_000 }, async () => {
    const first = (await post(review(createdPod()))).cert;
    assert.ok(first);
    makeCerts(dir, 'next');
    renameSync(join(dir, 'next.key'), join(dir, 'tls.key'));
    renameSync(join(dir, 'next.crt'), join(dir, 'tls.crt'));
    const serial = await waitFor('the new certificate to be served', async () => {
      const c = (await post(review(createdPod()))).cert;
      return c && c.serialNumber !== first.serialNumber ? c.serialNumber : null;
    }, 90_000, 1000);
    assert.equal(serial, new X509Certificate(readFileSync(join(dir, 'tls.crt'))).serialNumber);
  });
});
