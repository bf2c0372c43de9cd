/**
 * What injection adds, and the per-pod annotations that change it. The defaults come from the command line
 * or the webhook's config file (parseInjectConfig); a pod's own annotations win over them (podSettings).
 */

/** Annotation (and label, for inject) names, in the bridge-sidecar.dev/ namespace. */
export const ANNOTATION = {
  inject: 'bridge-sidecar.dev/inject',
  policyConfigMap: 'bridge-sidecar.dev/policy-configmap',
  interceptPorts: 'bridge-sidecar.dev/intercept-ports',
  excludePorts: 'bridge-sidecar.dev/exclude-ports',
  nativeSidecar: 'bridge-sidecar.dev/native-sidecar',
  status: 'bridge-sidecar.dev/status',
} as const;

export interface Resources {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

export interface InjectConfig {
  readonly image: string;
  readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** A native sidecar (init container with restartPolicy Always, Kubernetes >= 1.29) or a classic container. */
  readonly native: boolean;
  /** server.listen and server.admin_listen ports of the policy in the ConfigMap. */
  readonly listenPort: number;
  readonly adminPort: number;
  /** The image's uid; the intercept rules never redirect its own connections. */
  readonly uid: number;
  readonly policyConfigMap: string;
  /** Mounted at /var/run/secrets/bridge-sidecar (optional: absent, the guarded admin endpoints stay off). */
  readonly adminTokenSecret: string;
  /** Key `password` becomes BRIDGE_SIDECAR_REDIS_PASSWORD (optional). */
  readonly redisPasswordSecret: string;
  /** Ports redirected to the sidecar; null: the first declared port of the first container. */
  readonly interceptPorts: readonly number[] | '*' | null;
  readonly excludePorts: readonly number[];
  /** Classic sidecar: sleep on termination before draining, so it outlives the app's in-flight requests. */
  readonly preStopSleepSeconds: number;
  /** The pod's grace period is raised to at least this (preStop sleep + the policy's drain_timeout). */
  readonly minTerminationGracePeriodSeconds: number;
  readonly resources: Resources;
  readonly cacheSizeLimit: string;
  /** iptables-legacy in the init container (nodes whose kube-proxy uses the legacy backend). */
  readonly legacyIptables: boolean;
}

export const DEFAULT_CONFIG: InjectConfig = Object.freeze({
  image: 'bridge-sidecar:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  native: false,
  listenPort: 15006,
  adminPort: 9901,
  uid: 1337,
  policyConfigMap: 'bridge-sidecar-policy',
  adminTokenSecret: 'bridge-sidecar-admin-token',
  redisPasswordSecret: 'bridge-sidecar-redis',
  interceptPorts: null,
  excludePorts: [],
  preStopSleepSeconds: 15,
  minTerminationGracePeriodSeconds: 60,
  resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
  cacheSizeLimit: '1Gi',
  legacyIptables: false,
});

export class InjectConfigError extends Error {}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const QUANTITY = /^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$/;

function port(what: string, v: unknown): number {
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) throw new InjectConfigError(`${what}: ${JSON.stringify(v)} is not a port (1-65535)`);
  return n;
}

/** "9101,9102", "*" or "" (none) as written in an annotation or a flag. */
export function parsePorts(what: string, text: string, allowAll: boolean): number[] | '*' {
  const t = text.trim();
  if (t === '*') {
    if (!allowAll) throw new InjectConfigError(`${what}: '*' is not allowed here`);
    return '*';
  }
  if (t === '') return [];
  return [...new Set(t.split(',').map((p) => port(what, p)))].sort((a, b) => a - b);
}

function bool(what: string, v: unknown): boolean {
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  throw new InjectConfigError(`${what}: ${JSON.stringify(v)} is not "true" or "false"`);
}

function name(what: string, v: unknown): string {
  if (typeof v !== 'string' || v.length > 253 || !v.split('.').every((l) => DNS_LABEL.test(l))) {
    throw new InjectConfigError(`${what}: ${JSON.stringify(v)} is not a valid Kubernetes object name`);
  }
  return v;
}

function resources(v: unknown): Resources {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InjectConfigError('resources: must be a map with requests and/or limits');
  const out: Resources = {};
  for (const [k, group] of Object.entries(v)) {
    if (k !== 'requests' && k !== 'limits') throw new InjectConfigError(`resources.${k}: unknown key (requests or limits)`);
    if (typeof group !== 'object' || group === null) throw new InjectConfigError(`resources.${k}: must be a map`);
    const g: Record<string, string> = {};
    for (const [res, q] of Object.entries(group as Record<string, unknown>)) {
      if (typeof q !== 'string' || !QUANTITY.test(q)) throw new InjectConfigError(`resources.${k}.${res}: ${JSON.stringify(q)} is not a quantity (e.g. 100m, 128Mi)`);
      g[res] = q;
    }
    out[k] = g;
  }
  return out;
}

const FIELDS: { [K in keyof InjectConfig]: (v: unknown) => InjectConfig[K] } = {
  image: (v) => { if (typeof v !== 'string' || v.trim() === '' || /\s/.test(v)) throw new InjectConfigError(`image: ${JSON.stringify(v)} is not an image reference`); return v; },
  imagePullPolicy: (v) => { if (v !== 'Always' && v !== 'IfNotPresent' && v !== 'Never') throw new InjectConfigError('imagePullPolicy: Always, IfNotPresent or Never'); return v; },
  native: (v) => bool('native', v),
  listenPort: (v) => port('listenPort', v),
  adminPort: (v) => port('adminPort', v),
  uid: (v) => { if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InjectConfigError('uid: a positive integer'); return v; },
  policyConfigMap: (v) => name('policyConfigMap', v),
  adminTokenSecret: (v) => name('adminTokenSecret', v),
  redisPasswordSecret: (v) => name('redisPasswordSecret', v),
  interceptPorts: (v) => (v === null ? null : parsePorts('interceptPorts', Array.isArray(v) ? v.join(',') : String(v), true)),
  excludePorts: (v) => { const p = parsePorts('excludePorts', Array.isArray(v) ? v.join(',') : String(v), false); return p === '*' ? [] : p; },
  preStopSleepSeconds: (v) => { if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new InjectConfigError('preStopSleepSeconds: a whole number >= 0'); return v; },
  minTerminationGracePeriodSeconds: (v) => { if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InjectConfigError('minTerminationGracePeriodSeconds: a whole number >= 1'); return v; },
  resources,
  cacheSizeLimit: (v) => { if (typeof v !== 'string' || !QUANTITY.test(v)) throw new InjectConfigError('cacheSizeLimit: a quantity such as 1Gi'); return v; },
  legacyIptables: (v) => bool('legacyIptables', v),
};

/** Overrides (from a config file or flags) on top of the defaults; unknown keys are errors. */
export function parseInjectConfig(overrides: unknown, base: InjectConfig = DEFAULT_CONFIG): InjectConfig {
  if (overrides === null || overrides === undefined) return base;
  if (typeof overrides !== 'object' || Array.isArray(overrides)) throw new InjectConfigError('the injection config must be a map');
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(overrides)) {
    const check = (FIELDS as Record<string, (v: unknown) => unknown>)[k];
    if (!check) throw new InjectConfigError(`${k}: unknown key (known: ${Object.keys(FIELDS).join(', ')})`);
    out[k] = check(v);
  }
  const cfg = out as unknown as InjectConfig;
  if (cfg.listenPort === cfg.adminPort) throw new InjectConfigError('listenPort and adminPort must differ');
  return Object.freeze(cfg);
}

/** The settings for one pod: the config, changed by the pod's annotations. */
export function podSettings(cfg: InjectConfig, annotations: Record<string, string>): InjectConfig {
  const o: Record<string, unknown> = {};
  const a = (k: string): string | undefined => annotations[k];
  if (a(ANNOTATION.policyConfigMap) !== undefined) o.policyConfigMap = name(ANNOTATION.policyConfigMap, a(ANNOTATION.policyConfigMap));
  if (a(ANNOTATION.interceptPorts) !== undefined) o.interceptPorts = parsePorts(ANNOTATION.interceptPorts, a(ANNOTATION.interceptPorts) as string, true);
  if (a(ANNOTATION.excludePorts) !== undefined) o.excludePorts = parsePorts(ANNOTATION.excludePorts, a(ANNOTATION.excludePorts) as string, false);
  if (a(ANNOTATION.nativeSidecar) !== undefined) o.native = bool(ANNOTATION.nativeSidecar, a(ANNOTATION.nativeSidecar));
  return Object.keys(o).length === 0 ? cfg : Object.freeze({ ...cfg, ...o }) as InjectConfig;
}
