/**
 * Injection into one pod (or a workload's pod template), as pure functions over plain objects: the input is
 * never changed, the result is a new object. Removing the sidecar restores exactly what was there, and
 * injecting first removes an earlier injection, so inject(inject(x)) == inject(x) and a changed config or
 * annotation takes effect on re-injection.
 */
import { ANNOTATION, podSettings, type InjectConfig } from './config';
import { foreignProxy } from './mesh';
import { APP_PROBERS_ENV, appHealthPath, type Probers } from './probers';
import { PROBE_KINDS, probeField, type Container, type PodTemplate, type Probe } from './types';

export const SIDECAR_NAME = 'bridge-sidecar';
export const INIT_NAME = 'bridge-sidecar-init';
const VOLUME = {
  policy: 'bridge-sidecar-policy',
  adminToken: 'bridge-sidecar-admin-token',
  cache: 'bridge-sidecar-cache',
  tmp: 'bridge-sidecar-tmp',
  xtablesLock: 'bridge-sidecar-xtables-lock',
} as const;
const OUR_VOLUMES = new Set<string>(Object.values(VOLUME));
export const POLICY_DIR = '/etc/bridge-sidecar';
export const ADMIN_TOKEN_DIR = '/var/run/secrets/bridge-sidecar';
export const CACHE_DIR = '/var/cache/bridge-sidecar';
const PROMETHEUS = ['prometheus.io/scrape', 'prometheus.io/port', 'prometheus.io/path'] as const;
const DEFAULT_CONTAINER = 'kubectl.kubernetes.io/default-container';

export class InjectError extends Error {}

/** What injection changed that removal must undo, kept in the status annotation. */
interface Status {
  annotations: string[];
  terminationGracePeriodSeconds: number | null;
}

export type InjectOutcome =
  | { kind: 'injected'; pod: PodTemplate }
  | { kind: 'skipped'; pod: PodTemplate; reason: string };

function optedOut(pod: PodTemplate): boolean {
  const m = pod.metadata ?? {};
  return m.annotations?.[ANNOTATION.inject] === 'false' || m.labels?.[ANNOTATION.inject] === 'false';
}

export function isInjected(pod: PodTemplate): boolean {
  return pod.metadata?.annotations?.[ANNOTATION.status] !== undefined
    || [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])].some((c) => c.name === SIDECAR_NAME || c.name === INIT_NAME);
}

/** The pod with the sidecar, or unchanged with the reason it was left alone. Throws InjectError. */
export function injectPod(input: PodTemplate, defaults: InjectConfig): InjectOutcome {
  if (!input.spec || !Array.isArray(input.spec.containers) || input.spec.containers.length === 0) {
    throw new InjectError('the pod spec has no containers');
  }
  if (optedOut(input)) return { kind: 'skipped', pod: input, reason: `${ANNOTATION.inject}: "false"` };
  const pod = uninjectPod(input);
  const foreign = foreignProxy(pod);
  if (foreign) throw new InjectError(`refusing to inject: ${foreign}`);
  let cfg: InjectConfig;
  try {
    cfg = podSettings(defaults, pod.metadata?.annotations ?? {});
  } catch (e) {
    throw new InjectError((e as Error).message);
  }
  const spec = pod.spec;
  for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
    for (const p of c.ports ?? []) {
      if (p.containerPort === cfg.listenPort || p.containerPort === cfg.adminPort) {
        throw new InjectError(`container ${c.name} uses port ${p.containerPort}, which the sidecar needs (listenPort ${cfg.listenPort}, adminPort ${cfg.adminPort})`);
      }
    }
  }
  const intercept = interceptPorts(pod, cfg);
  const probers: Probers = {};
  spec.containers = spec.containers.map((c) => rewriteProbes(c, cfg, probers));

  const sidecar = sidecarContainer(cfg, probers);
  const init = interceptContainer(cfg, intercept);
  spec.initContainers = cfg.native ? [init, ...(spec.initContainers ?? []), sidecar] : [init, ...(spec.initContainers ?? [])];
  if (!cfg.native) spec.containers = [...spec.containers, sidecar];
  spec.volumes = [...(spec.volumes ?? []), ...volumes(cfg)];

  const status: Status = { annotations: [], terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds ?? null };
  const grace = Math.max(spec.terminationGracePeriodSeconds ?? 30, cfg.minTerminationGracePeriodSeconds);
  if (grace !== spec.terminationGracePeriodSeconds) spec.terminationGracePeriodSeconds = grace;

  const metadata = (pod.metadata ??= {});
  const annotations = (metadata.annotations ??= {});
  const add = (k: string, v: string): void => {
    if (annotations[k] !== undefined) return;
    annotations[k] = v;
    status.annotations.push(k);
  };
  // The app may already be scraped through these; then they stay and the sidecar's /metrics needs a
  // ServiceMonitor or PodMonitor instead.
  if (!PROMETHEUS.some((k) => annotations[k] !== undefined)) {
    add('prometheus.io/scrape', 'true');
    add('prometheus.io/port', String(cfg.adminPort));
    add('prometheus.io/path', '/metrics');
  }
  // kubectl logs/exec keep picking the app, not the sidecar.
  add(DEFAULT_CONTAINER, spec.containers[0].name);
  annotations[ANNOTATION.status] = JSON.stringify(status);
  return { kind: 'injected', pod };
}

/** The pod as it was before injection (a copy; unchanged if it was never injected). */
export function uninjectPod(input: PodTemplate): PodTemplate {
  const pod = structuredClone(input);
  if (!isInjected(pod)) return pod;
  const spec = pod.spec;
  const all = [...(spec.initContainers ?? []), ...spec.containers];
  const probers = probersOf(all.find((c) => c.name === SIDECAR_NAME));
  const ours = (c: Container): boolean => c.name === SIDECAR_NAME || c.name === INIT_NAME;
  spec.containers = spec.containers.filter((c) => !ours(c)).map((c) => restoreProbes(c, probers));
  if (spec.initContainers) {
    spec.initContainers = spec.initContainers.filter((c) => !ours(c));
    if (spec.initContainers.length === 0) delete spec.initContainers;
  }
  if (spec.volumes) {
    spec.volumes = spec.volumes.filter((v) => !OUR_VOLUMES.has(v.name));
    if (spec.volumes.length === 0) delete spec.volumes;
  }
  const annotations = pod.metadata?.annotations ?? {};
  const status = readStatus(annotations[ANNOTATION.status]);
  if (status) {
    for (const k of status.annotations) delete annotations[k];
    if (status.terminationGracePeriodSeconds === null) delete spec.terminationGracePeriodSeconds;
    else spec.terminationGracePeriodSeconds = status.terminationGracePeriodSeconds;
  }
  delete annotations[ANNOTATION.status];
  if (pod.metadata?.annotations && Object.keys(pod.metadata.annotations).length === 0) delete pod.metadata.annotations;
  if (pod.metadata && Object.keys(pod.metadata).length === 0) delete pod.metadata;
  return pod;
}

function readStatus(text: string | undefined): Status | null {
  if (text === undefined) return null;
  try {
    const s = JSON.parse(text) as Partial<Status>;
    return {
      annotations: Array.isArray(s.annotations) ? s.annotations.filter((a) => typeof a === 'string') : [],
      terminationGracePeriodSeconds: typeof s.terminationGracePeriodSeconds === 'number' ? s.terminationGracePeriodSeconds : null,
    };
  } catch {
    return null;
  }
}

function interceptPorts(pod: PodTemplate, cfg: InjectConfig): readonly number[] | '*' {
  const wanted = cfg.interceptPorts ?? firstPort(pod);
  if (wanted !== '*') {
    if (wanted.length === 0) throw new InjectError(`no port to intercept: set ${ANNOTATION.interceptPorts}`);
    for (const p of wanted) {
      if (p === cfg.listenPort || p === cfg.adminPort) throw new InjectError(`${ANNOTATION.interceptPorts}: ${p} is the sidecar's own port`);
    }
  }
  return wanted;
}

function firstPort(pod: PodTemplate): number[] {
  const first = pod.spec.containers[0];
  const p = (first.ports ?? []).find((x) => (x.protocol ?? 'TCP') === 'TCP');
  if (!p) {
    throw new InjectError(`container ${first.name} declares no TCP containerPort: declare the port it serves on, or set the annotation ${ANNOTATION.interceptPorts}`);
  }
  return [p.containerPort];
}

function resolvePort(c: Container, port: number | string, kind: string): number {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  const named = (c.ports ?? []).find((p) => p.name === port);
  if (!named) throw new InjectError(`container ${c.name}: the ${kind} probe names port "${port}", which the container does not declare`);
  return named.containerPort;
}

function rewriteProbes(c: Container, cfg: InjectConfig, probers: Probers): Container {
  let out = c;
  for (const kind of PROBE_KINDS) {
    const field = probeField(kind);
    const probe = c[field];
    if (!probe?.httpGet) continue;
    probers[`${c.name}/${kind}`] = {
      httpGet: probe.httpGet,
      port: resolvePort(c, probe.httpGet.port, kind),
      timeoutSeconds: probe.timeoutSeconds ?? 1,
    };
    const rewritten: Probe = { ...probe };
    rewritten.httpGet = { path: appHealthPath(c.name, kind), port: cfg.adminPort };
    out = { ...out, [field]: rewritten };
  }
  return out;
}

function restoreProbes(c: Container, probers: Probers): Container {
  let out = c;
  for (const kind of PROBE_KINDS) {
    const field = probeField(kind);
    const entry = probers[`${c.name}/${kind}`];
    const probe = c[field];
    if (!entry || !probe) continue;
    const restored: Probe = { ...probe };
    restored.httpGet = entry.httpGet;
    out = { ...out, [field]: restored };
  }
  return out;
}

function probersOf(sidecar: Container | undefined): Probers {
  const text = sidecar?.env?.find((e) => e.name === APP_PROBERS_ENV)?.value;
  if (!text) return {};
  try {
    return JSON.parse(text) as Probers;
  } catch {
    throw new InjectError(`the ${SIDECAR_NAME} container's ${APP_PROBERS_ENV} is not JSON: cannot restore the app's probes`);
  }
}

function sidecarContainer(cfg: InjectConfig, probers: Probers): Container {
  const env: NonNullable<Container['env']> = [{ name: 'BRIDGE_SIDECAR_ADMIN_PORT', value: String(cfg.adminPort) }];
  if (Object.keys(probers).length > 0) env.push({ name: APP_PROBERS_ENV, value: JSON.stringify(probers) });
  env.push({ name: 'BRIDGE_SIDECAR_REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: cfg.redisPasswordSecret, key: 'password', optional: true } } });
  const admin = (path: string, extra: Record<string, number>): Probe => ({ httpGet: { path, port: cfg.adminPort }, ...extra });
  const c: Container = {
    name: SIDECAR_NAME,
    image: cfg.image,
    imagePullPolicy: cfg.imagePullPolicy,
    args: ['serve', '--policy', `${POLICY_DIR}/policy.yaml`],
    env,
    ports: [
      { name: 'bs-proxy', containerPort: cfg.listenPort, protocol: 'TCP' },
      { name: 'bs-admin', containerPort: cfg.adminPort, protocol: 'TCP' },
    ],
    startupProbe: admin('/healthz', { periodSeconds: 1, failureThreshold: 60 }),
    livenessProbe: admin('/healthz', { periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 }),
    readinessProbe: admin('/readyz', { periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2 }),
    resources: structuredClone(cfg.resources),
    securityContext: {
      runAsUser: cfg.uid, runAsGroup: cfg.uid, runAsNonRoot: true, readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      // The ConfigMap as a directory (never subPath): the kubelet swaps it on an edit and the sidecar reloads.
      { name: VOLUME.policy, mountPath: POLICY_DIR, readOnly: true },
      { name: VOLUME.adminToken, mountPath: ADMIN_TOKEN_DIR, readOnly: true },
      { name: VOLUME.cache, mountPath: CACHE_DIR },
      { name: VOLUME.tmp, mountPath: '/tmp' },
    ],
  };
  if (cfg.native) {
    // Started (startup probe passed) before the app, stopped after it: no preStop needed.
    c.restartPolicy = 'Always';
  } else if (cfg.preStopSleepSeconds > 0) {
    // Keep proxying while the app drains; SIGTERM (then the sidecar's own drain) comes after.
    c.lifecycle = { preStop: { exec: { command: ['sleep', String(cfg.preStopSleepSeconds)] } } };
  }
  return c;
}

function interceptContainer(cfg: InjectConfig, ports: readonly number[] | '*'): Container {
  const exclude = [...new Set([cfg.adminPort, ...cfg.excludePorts])].sort((a, b) => a - b);
  const args = ['intercept', '--ports', ports === '*' ? '*' : ports.join(','), '--to-port', String(cfg.listenPort),
    '--proxy-uid', String(cfg.uid), '--exclude-ports', exclude.join(',')];
  if (cfg.legacyIptables) args.push('--legacy');
  return {
    name: INIT_NAME,
    image: cfg.image,
    imagePullPolicy: cfg.imagePullPolicy,
    args,
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
    securityContext: {
      // Changing the pod's nat table needs root with NET_ADMIN and NET_RAW, for this one short step only.
      runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] }, seccompProfile: { type: 'RuntimeDefault' },
    },
    // iptables-legacy takes /run/xtables.lock; the root filesystem is read-only.
    volumeMounts: [{ name: VOLUME.xtablesLock, mountPath: '/run' }],
  };
}

function volumes(cfg: InjectConfig): NonNullable<PodTemplate['spec']['volumes']> {
  return [
    { name: VOLUME.policy, configMap: { name: cfg.policyConfigMap } },
    // optional: without the Secret the guarded admin endpoints are simply off.
    { name: VOLUME.adminToken, secret: { secretName: cfg.adminTokenSecret, optional: true, defaultMode: 0o444 } },
    { name: VOLUME.cache, emptyDir: { sizeLimit: cfg.cacheSizeLimit } },
    { name: VOLUME.tmp, emptyDir: { sizeLimit: '256Mi' } },
    { name: VOLUME.xtablesLock, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
  ];
}
