/**
 * Where the pod is in each kind of manifest, and injection over whole manifests (Lists included). Kinds
 * without pods pass through unchanged.
 */
import type { InjectConfig } from './config';
import { injectPod, InjectError, uninjectPod } from './pod';
import type { PodTemplate } from './types';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const TEMPLATE_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ReplicationController', 'Job']);

/** Gets and sets the pod inside a manifest object, or null for kinds that hold none. */
function podSlot(obj: Obj): { get(): PodTemplate; set(p: PodTemplate): void } | null {
  const kind = obj.kind;
  if (kind === 'Pod') {
    return {
      get: () => ({ metadata: obj.metadata as PodTemplate['metadata'], spec: obj.spec as PodTemplate['spec'] }),
      set: (p) => { setOrDelete(obj, 'metadata', p.metadata); obj.spec = p.spec; },
    };
  }
  let holder: unknown;
  if (typeof kind === 'string' && TEMPLATE_KINDS.has(kind)) holder = obj.spec;
  else if (kind === 'CronJob') holder = isObj(obj.spec) && isObj(obj.spec.jobTemplate) ? obj.spec.jobTemplate.spec : undefined;
  else return null;
  if (!isObj(holder) || !isObj(holder.template)) throw new InjectError(`${kind} has no spec.template`);
  const h = holder;
  return {
    get: () => h.template as PodTemplate,
    set: (p) => { h.template = p; },
  };
}

function setOrDelete(obj: Obj, key: string, value: unknown): void {
  if (value === undefined) delete obj[key];
  else obj[key] = value;
}

export interface ManifestReport {
  /** "Kind/name" of each object injected, skipped (with why), or left alone (no pods). */
  readonly injected: string[];
  readonly skipped: string[];
}

const label = (o: Obj): string => `${String(o.kind)}/${String(isObj(o.metadata) ? o.metadata.name ?? o.metadata.generateName ?? '?' : '?')}`;

type PodChange = (pod: PodTemplate, where: string) => PodTemplate;

function mapPods(doc: unknown, change: PodChange): unknown {
  if (!isObj(doc)) return doc;
  const obj = structuredClone(doc);
  if (Array.isArray(obj.items) && typeof obj.kind === 'string' && obj.kind.endsWith('List')) {
    obj.items = obj.items.map((item) => mapPods(item, change));
    return obj;
  }
  const slot = podSlot(obj);
  if (slot) {
    const where = label(obj);
    const pod = slot.get();
    if (!isObj(pod) || !isObj(pod.spec)) throw new InjectError(`${where}: no pod spec`);
    try {
      slot.set(change(pod, where));
    } catch (e) {
      if (e instanceof InjectError && !e.message.startsWith(where)) throw new InjectError(`${where}: ${e.message}`);
      throw e;
    }
  }
  return obj;
}

/** The manifest with the sidecar in every pod it holds. Throws InjectError naming the object. */
export function injectManifest(doc: unknown, cfg: InjectConfig, report?: ManifestReport): unknown {
  return mapPods(doc, (pod, where) => {
    const r = injectPod(pod, cfg);
    if (r.kind === 'injected') report?.injected.push(where);
    else report?.skipped.push(`${where} (${r.reason})`);
    return r.pod;
  });
}

/** The manifest with the sidecar removed from every pod it holds. */
export function uninjectManifest(doc: unknown): unknown {
  return mapPods(doc, (pod) => uninjectPod(pod));
}
