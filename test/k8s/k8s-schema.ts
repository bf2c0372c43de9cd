/**
 * Offline validation of rendered Kubernetes objects against the OpenAPI schemas that the kubernetes-models
 * packages bundle (ajv validators compiled from the Kubernetes and Prometheus Operator OpenAPI/CRD schemas).
 *
 * Those validators check types, enums and required fields but let unknown fields through, and a misspelt
 * field (`restartpolicy`, a probe under the wrong key) is exactly the mistake a chart makes. So the check
 * is made strict like `kubectl --validate=strict`: every field must be declared by the model's type, read
 * from the package's type declarations (one interface per file, properties quoted at one indent level).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { importK8sModule, k8sModules } from '../helpers/k8s-tools';

// The model packages live in the on-demand install of scripts/get-k8s-tools.js, not in the project's node_modules.
let modulesDir: string | null = null;
const modules = (): string => (modulesDir ??= k8sModules());

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** The model module of an apiVersion + kind, e.g. kubernetes-models/apps/v1/Deployment. */
export function modelSpecifier(apiVersion: string, kind: string): string {
  if (apiVersion.endsWith('monitoring.coreos.com/v1') || apiVersion === 'monitoring.coreos.com/v1') {
    return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`;
  }
  if (apiVersion === 'cert-manager.io/v1') return `@kubernetes-models/cert-manager/cert-manager.io/v1/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

interface Shape {
  /** property name -> type text as declared */
  readonly props: Map<string, string>;
  /** imported type name -> declaration file */
  readonly imports: Map<string, string>;
}

const shapes = new Map<string, Shape | null>();

function resolveImport(fromFile: string, spec: string): string | null {
  const base = spec.startsWith('.') ? join(dirname(fromFile), spec.replace(/\.js$/, '')) : join(modules(), spec);
  const file = `${base}.d.ts`;
  return existsSync(file) ? file : null;
}

function shapeOf(file: string): Shape | null {
  if (shapes.has(file)) return shapes.get(file) ?? null;
  let shape: Shape | null = null;
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8');
    const imports = new Map<string, string>();
    for (const m of text.matchAll(/^import \{ ([^}]+) \} from "([^"]+)";$/gm)) {
      const target = resolveImport(file, m[2]);
      if (target) for (const name of m[1].split(',').map((n) => n.trim())) imports.set(name, target);
    }
    const start = text.search(/^export interface \w+/m);
    if (start >= 0) {
      const body = text.slice(start, text.indexOf('\n}', start));
      const props = new Map<string, string>();
      for (const m of body.matchAll(/^ {4}"([^"]+)"\??: (.*)$/gm)) props.set(m[1], m[2].replace(/;$/, '').trim());
      shape = { props, imports };
    }
  }
  shapes.set(file, shape);
  return shape;
}

/** Unknown fields in `value` for the type declared in `file` (lenient where a type cannot be followed). */
function unknownFields(value: unknown, file: string, path: string, out: string[]): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
  const shape = shapeOf(file);
  if (!shape) return;
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    if (path === '' && (key === 'apiVersion' || key === 'kind')) continue;
    const type = shape.props.get(key);
    if (type === undefined) {
      out.push(`${path}${path ? '.' : ''}${key}: unknown field`);
      continue;
    }
    const arrayOf = /^Array<(\w+)>$/.exec(type);
    const named = /^(\w+)$/.exec(type);
    const target = arrayOf ? shape.imports.get(arrayOf[1]) : named ? shape.imports.get(named[1]) : undefined;
    if (!target) continue;
    if (arrayOf && Array.isArray(child)) child.forEach((c, i) => unknownFields(c, target, `${path}${path ? '.' : ''}${key}[${i}]`, out));
    else if (!arrayOf) unknownFields(child, target, `${path}${path ? '.' : ''}${key}`, out);
  }
}

/** Validates one object; returns the problems found (empty when valid). */
export async function validateK8sObject(obj: K8sObject): Promise<string[]> {
  const spec = modelSpecifier(obj.apiVersion, obj.kind);
  let mod: Record<string, unknown>;
  try {
    mod = await importK8sModule(spec);
  } catch (e) {
    return [`no schema for ${obj.apiVersion} ${obj.kind} (${spec}): ${(e as Error).message}`];
  }
  const Model = mod[obj.kind] as (new (data: unknown) => { validate(): void }) | undefined;
  if (typeof Model !== 'function') return [`${spec} has no model ${obj.kind}`];
  const problems: string[] = [];
  try {
    new Model(obj).validate();
  } catch (e) {
    const errors = (e as { errors?: { instancePath: string; message?: string }[] }).errors;
    if (errors) for (const err of errors) problems.push(`${err.instancePath || '/'}: ${err.message ?? 'invalid'}`);
    else problems.push((e as Error).message);
  }
  unknownFields(obj, join(modules(), `${spec}.d.ts`), '', problems);
  return problems;
}
