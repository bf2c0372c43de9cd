/**
 * Other meshes' proxies. Istio's proxy runs as uid 1337 and listens on 15006 as bridge-sidecar does, and both
 * rewrite the pod's nat table: one pod cannot carry both, so injection refuses such a pod with the reason.
 */
import type { PodTemplate } from './types';

const PROXY_CONTAINERS: Record<string, string> = {
  'istio-proxy': 'Istio', 'istio-init': 'Istio', 'istio-validation': 'Istio',
  'linkerd-proxy': 'Linkerd', 'linkerd-init': 'Linkerd', 'linkerd-network-validator': 'Linkerd',
};

/** Annotations whose presence (with the value, if given) says the pod has or will get that mesh's proxy. */
const PROXY_ANNOTATIONS: { key: string; value?: string; mesh: string }[] = [
  { key: 'sidecar.istio.io/status', mesh: 'Istio' },
  { key: 'sidecar.istio.io/inject', value: 'true', mesh: 'Istio' },
  { key: 'linkerd.io/proxy-version', mesh: 'Linkerd' },
  { key: 'linkerd.io/inject', value: 'enabled', mesh: 'Linkerd' },
];

/** Why this pod cannot get the sidecar, or null. */
export function foreignProxy(pod: PodTemplate): string | null {
  for (const c of [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])]) {
    const mesh = PROXY_CONTAINERS[c.name];
    if (mesh) {
      return `it already carries the ${mesh} proxy (container ${c.name}); bridge-sidecar and ${mesh} both redirect the pod's inbound traffic ` +
        `(and Istio's proxy also runs as uid 1337 on port 15006): use one per pod (see "Istio coexistence" in helm/bridge-sidecar/README.md)`;
    }
  }
  const annotations = pod.metadata?.annotations ?? {};
  for (const a of PROXY_ANNOTATIONS) {
    const v = annotations[a.key];
    if (v !== undefined && (a.value === undefined || v === a.value)) {
      return `it is marked for the ${a.mesh} proxy (annotation ${a.key}${a.value ? `: "${a.value}"` : ''}); ` +
        `use one proxy per pod (see "Istio coexistence" in helm/bridge-sidecar/README.md)`;
    }
  }
  return null;
}
