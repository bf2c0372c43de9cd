/**
 * Shared by the inject and webhook tests: the realistic workloads fixture, its pods, and the checks every
 * injected pod must pass.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/repo';
import { validateK8sObject, type K8sObject } from './k8s-schema';

export const workloadsFile = join(repoRoot(), 'test', 'k8s', 'fixtures', 'workloads.yaml');
export const workloadsText = (): string => readFileSync(workloadsFile, 'utf8');

export interface C {
  name: string; image?: string; args?: string[]; restartPolicy?: string;
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  livenessProbe?: P; readinessProbe?: P; startupProbe?: P;
  securityContext?: { runAsUser?: number; runAsNonRoot?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { add?: string[]; drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: unknown;
}
export interface P { httpGet?: { path?: string; port: number | string; scheme?: string; httpHeaders?: unknown[] }; tcpSocket?: unknown; [k: string]: unknown }
export interface Pod {
  metadata?: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { containers: C[]; initContainers?: C[]; volumes?: { name: string; configMap?: { name: string }; secret?: { secretName: string } }[]; terminationGracePeriodSeconds?: number };
}

/** The pods inside a manifest (Lists followed), with the object's kind/name. */
export function podsOf(doc: unknown): { where: string; pod: Pod }[] {
  const o = doc as { kind: string; metadata?: { name?: string }; spec?: any; items?: unknown[] };
  if (o.kind.endsWith('List')) return (o.items ?? []).flatMap(podsOf);
  const where = `${o.kind}/${o.metadata?.name}`;
  if (o.kind === 'Pod') return [{ where, pod: o as unknown as Pod }];
  if (o.kind === 'CronJob') return [{ where, pod: o.spec.jobTemplate.spec.template }];
  if (o.spec?.template) return [{ where, pod: o.spec.template }];
  return [];
}

/** Every object (List items separately) strictly valid against the Kubernetes OpenAPI schemas. */
export async function assertValid(docs: unknown[]): Promise<void> {
  for (const d of docs) {
    const o = d as K8sObject & { items?: K8sObject[] };
    if (o.kind === 'List') { await assertValid(o.items ?? []); continue; }
    const problems = await validateK8sObject(o);
    assert.deepEqual(problems, [], `${o.kind}/${o.metadata?.name}: ${problems.join('; ')}`);
  }
}

export const allContainers = (pod: Pod): C[] => [...(pod.spec.initContainers ?? []), ...pod.spec.containers];

/** The properties every injected pod has, whatever the mode. */
export function assertInjected(pod: Pod, where: string, opts: { native: boolean; adminPort?: number; policyConfigMap?: string }): void {
  const admin = opts.adminPort ?? 9901;
  const inits = pod.spec.initContainers ?? [];
  const sidecars = allContainers(pod).filter((c) => c.name === 'bridge-sidecar');
  assert.equal(sidecars.length, 1, `${where}: one sidecar`);
  const sidecar = sidecars[0];
  if (opts.native) {
    assert.equal(inits[inits.length - 1], sidecar, `${where}: native sidecar is the last init container`);
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.equal(sidecar.lifecycle, undefined);
  } else {
    assert.ok(pod.spec.containers.includes(sidecar), `${where}: classic sidecar is a container`);
    assert.equal(sidecar.restartPolicy, undefined);
    assert.deepEqual(sidecar.lifecycle?.preStop?.exec?.command, ['sleep', '15'], `${where}: preStop delay`);
  }
  const init = inits[0];
  assert.equal(init?.name, 'bridge-sidecar-init', `${where}: the intercept step runs first`);
  assert.deepEqual(init.securityContext?.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] }, `${where}: only NET_ADMIN/NET_RAW`);
  assert.equal(init.args?.[0], 'intercept');
  assert.ok(init.args?.[init.args.indexOf('--exclude-ports') + 1].split(',').includes(String(admin)), `${where}: admin port excluded`);
  const sc = sidecar.securityContext ?? {};
  assert.equal(sc.runAsUser, 1337);
  assert.equal(sc.runAsNonRoot, true);
  assert.equal(sc.readOnlyRootFilesystem, true);
  assert.deepEqual(sc.capabilities, { drop: ['ALL'] });
  assert.ok(sidecar.resources, `${where}: sidecar resources`);
  const policyVolume = pod.spec.volumes?.find((v) => v.name === 'bridge-sidecar-policy');
  assert.equal(policyVolume?.configMap?.name, opts.policyConfigMap ?? 'bridge-sidecar-policy', `${where}: policy ConfigMap volume`);
  assert.equal(pod.spec.volumes?.find((v) => v.name === 'bridge-sidecar-admin-token')?.secret?.secretName, 'bridge-sidecar-admin-token');
  assert.ok(sidecar.volumeMounts?.every((m) => m.subPath === undefined), 'no subPath');
  assert.ok((pod.spec.terminationGracePeriodSeconds ?? 0) >= 60, `${where}: grace period covers preStop + drain`);
  const ann = pod.metadata?.annotations ?? {};
  assert.equal(ann['prometheus.io/scrape'], 'true');
  assert.equal(ann['prometheus.io/port'], String(admin));
  assert.equal(ann['prometheus.io/path'], '/metrics');
  // every httpGet probe of an app container now points at the sidecar's admin port
  for (const c of pod.spec.containers.filter((x) => x.name !== 'bridge-sidecar')) {
    for (const kind of ['liveness', 'readiness', 'startup'] as const) {
      const g = c[`${kind}Probe`]?.httpGet;
      if (g) assert.deepEqual(g, { path: `/app-health/${c.name}/${kind}`, port: admin }, `${where}: ${c.name} ${kind} probe rewritten`);
    }
  }
}

export function probersOf(pod: Pod): Record<string, { httpGet: P['httpGet']; port: number; timeoutSeconds: number }> {
  const sidecar = allContainers(pod).find((c) => c.name === 'bridge-sidecar');
  const v = sidecar?.env?.find((e) => e.name === 'BRIDGE_SIDECAR_APP_PROBERS')?.value;
  return v ? JSON.parse(v) : {};
}
