/**
 * The few Kubernetes shapes injection reads and writes, as plain JSON objects. Anything else in a manifest is
 * carried through untouched, so the types stay open.
 */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export interface HttpGetAction {
  path?: string;
  port: number | string;
  host?: string;
  scheme?: 'HTTP' | 'HTTPS';
  httpHeaders?: { name: string; value: string }[];
}

export interface Probe {
  httpGet?: HttpGetAction;
  timeoutSeconds?: number;
  [k: string]: unknown;
}

export interface ContainerPort { name?: string; containerPort: number; protocol?: string }

export interface Container {
  name: string;
  image?: string;
  ports?: ContainerPort[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  restartPolicy?: string;
  [k: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; [k: string]: unknown }[];
  terminationGracePeriodSeconds?: number;
  [k: string]: unknown;
}

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

/** A pod, or the template of a workload: what injection works on. */
export interface PodTemplate {
  metadata?: ObjectMeta;
  spec: PodSpec;
}

export const PROBE_KINDS = ['liveness', 'readiness', 'startup'] as const;
export type ProbeKind = (typeof PROBE_KINDS)[number];
export const probeField = (kind: ProbeKind): 'livenessProbe' | 'readinessProbe' | 'startupProbe' => `${kind}Probe`;
