/**
 * `bridge-sidecar serve [--policy FILE]`: run the proxy. The policy path defaults to $BRIDGE_SIDECAR_POLICY,
 * else /etc/bridge-sidecar/policy.yaml. A policy that does not validate is refused with FILE:LINE:COL lines.
 */
import { exitListenFailed, parseFlags, policyFileOrReport, UsageError } from './args';
import { runSidecar, PolicyRefusedError, ListenError } from '../lib/server/sidecar';
import { ProbersError } from '../lib/k8s/probers';

export const DEFAULT_POLICY = '/etc/bridge-sidecar/policy.yaml';

const HELP = `usage: bridge-sidecar serve [--policy FILE]

Runs the proxy with the policy in FILE (default: $BRIDGE_SIDECAR_POLICY, else ${DEFAULT_POLICY}).
FILE may be a directory (a mounted ConfigMap) holding policy.yaml.
SIGTERM drains in-flight requests and exits 0; SIGHUP reloads the policy.`;

export async function run(argv: string[]): Promise<number> {
  let flags;
  try {
    flags = parseFlags(argv, { policy: { type: 'string', short: 'p' }, help: { type: 'boolean', short: 'h' } });
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bridge-sidecar serve: ${e.message}\n\n${HELP}\n`);
      return 2;
    }
    throw e;
  }
  if (flags.values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const given = flags.values.policy ?? process.env.BRIDGE_SIDECAR_POLICY ?? DEFAULT_POLICY;
  const how = flags.values.policy !== undefined ? '--policy' : process.env.BRIDGE_SIDECAR_POLICY !== undefined ? '$BRIDGE_SIDECAR_POLICY' : 'the default path';
  const file = policyFileOrReport('serve', given, how);
  if (file === null) return 2;
  try {
    const handle = await runSidecar(file);
    await handle.done;
    return 0;
  } catch (e) {
    if (e instanceof PolicyRefusedError) {
      process.stderr.write(`bridge-sidecar: the policy was refused:\n${e.message}\n`);
      return 1;
    }
    if (e instanceof ProbersError) {
      process.stderr.write(`bridge-sidecar: ${e.message}\n`);
      return 1;
    }
    if (e instanceof ListenError) exitListenFailed(e);
    throw e;
  }
}
