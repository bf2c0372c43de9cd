/**
 * `bridge-sidecar inject [-f FILE] [--config FILE] [--image IMAGE] [--native|--classic] [--remove]`
 *
 * Reads Kubernetes manifests (a file, or stdin) and writes them to stdout with the sidecar in every pod, as
 * `istioctl kube-inject` does. The work is in lib/k8s.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseFlags, UsageError } from './args';
import { packageRoot } from './package-root';
import { DEFAULT_CONFIG, injectManifestsText, isInjectInputError, loadInjectConfig, parseInjectConfig, type InjectConfig } from '../lib/k8s';

const HELP = `usage: bridge-sidecar inject [-f FILE] [options] > injected.yaml

Adds bridge-sidecar to every pod in the manifests (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
Job, CronJob, List; multi-document YAML): the sidecar, the intercept init container, the policy ConfigMap
and admin token volumes, probes rewritten to /app-health/..., Prometheus annotations. Running it on its own
output changes nothing. Per-pod annotations (bridge-sidecar.dev/inject, policy-configmap, intercept-ports,
exclude-ports, native-sidecar) override the defaults.

options:
  -f, --filename FILE  the manifests (default, or '-': stdin)
  --config FILE        YAML map of injection settings (image, native, policyConfigMap, resources, ...)
  --image IMAGE        the sidecar image (default bridge-sidecar:<version>; push it to your registry first)
  --native             a native sidecar (init container, restartPolicy Always; Kubernetes >= 1.29)
  --classic            a classic sidecar container (the default)
  --remove             remove an earlier injection instead, restoring the pods as they were
`;

const FLAGS = {
  filename: { type: 'string', short: 'f' },
  config: { type: 'string' },
  image: { type: 'string' },
  native: { type: 'boolean' },
  classic: { type: 'boolean' },
  remove: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function defaultImage(): string {
  const root = packageRoot();
  const version = root ? (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version : DEFAULT_CONFIG.image.split(':')[1];
  return `bridge-sidecar:${version}`;
}

export async function run(argv: string[]): Promise<number> {
  let cfg: InjectConfig;
  let file: string | undefined;
  let remove = false;
  try {
    const v = parseFlags(argv, FLAGS).values;
    if (v.help) { process.stdout.write(HELP); return 0; }
    if (v.native && v.classic) throw new UsageError('--native and --classic contradict each other');
    file = v.filename === '-' ? undefined : v.filename;
    remove = v.remove ?? false;
    const base = parseInjectConfig({ image: defaultImage() });
    cfg = v.config ? loadInjectConfig(v.config, base) : base;
    const overrides: Record<string, unknown> = {};
    if (v.image !== undefined) overrides.image = v.image;
    if (v.native) overrides.native = true;
    if (v.classic) overrides.native = false;
    cfg = parseInjectConfig(overrides, cfg);
  } catch (e) {
    process.stderr.write(`bridge-sidecar inject: ${(e as Error).message}\n${e instanceof UsageError ? 'see bridge-sidecar inject --help\n' : ''}`);
    return e instanceof UsageError ? 2 : 1;
  }
  let text: string;
  try {
    text = readFileSync(file ?? 0, 'utf8');
  } catch (e) {
    process.stderr.write(`bridge-sidecar inject: ${file ?? 'stdin'}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}\n`);
    return 1;
  }
  try {
    const { output, report } = injectManifestsText(text, cfg, { source: file ?? '<stdin>', remove });
    process.stdout.write(output);
    for (const s of report.skipped) process.stderr.write(`bridge-sidecar inject: left alone: ${s}\n`);
    return 0;
  } catch (e) {
    if (!isInjectInputError(e)) throw e;
    process.stderr.write(`bridge-sidecar inject: ${e.message}\n`);
    return 1;
  }
}
