/**
 * `bridge-sidecar intercept --ports 9101 --to-port 15006 [--proxy-uid 1337] [--exclude-ports 9901]
 *  [--uninstall] [--dry-run] [--legacy]`
 *
 * Installs (idempotently) or removes the nat rules that redirect the pod's inbound TCP for the ports to the
 * sidecar. Meant for an init container with NET_ADMIN/NET_RAW; see lib/intercept/rules.ts for the rules.
 */
import { parseFlags, UsageError } from './args';
import {
  apply, plan, InterceptError, LEGACY_BINARIES, NFT_BINARIES, parsePort, parsePortList, parseUid,
  DEFAULT_PROXY_UID, DEFAULT_TO_PORT, type InterceptAction,
} from '../lib/intercept';

const HELP = `usage: bridge-sidecar intercept --ports P[,P...] [--to-port ${DEFAULT_TO_PORT}] [options]
       bridge-sidecar intercept --uninstall

Redirects inbound TCP for the ports to the sidecar with iptables nat rules in the chains BRIDGE_INBOUND,
BRIDGE_IN_REDIRECT and BRIDGE_OUTPUT. Running it again leaves one set of rules.

options:
  --ports LIST          destination ports to intercept, comma separated, or '*' for every TCP port
  --to-port PORT        the sidecar's listen port (default ${DEFAULT_TO_PORT})
  --proxy-uid UID       the uid the sidecar runs as; its own connections are never redirected (default ${DEFAULT_PROXY_UID})
  --exclude-ports LIST  ports never redirected (the admin port, probe ports), comma separated
  --uninstall           remove exactly the rules this command adds (install flags may stay on the line: ignored)
  --dry-run             print the iptables-restore input and change nothing
  --legacy              use iptables-legacy-save/-restore (nodes on the legacy backend)
`;

const FLAGS = {
  ports: { type: 'string' },
  'to-port': { type: 'string' },
  'proxy-uid': { type: 'string' },
  'exclude-ports': { type: 'string' },
  uninstall: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  legacy: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Flags = ReturnType<typeof parseFlags<typeof FLAGS>>['values'];

const INSTALL_ONLY = ['ports', 'to-port', 'proxy-uid', 'exclude-ports'] as const;

function actionFrom(v: Flags): InterceptAction {
  if (v.uninstall) {
    // `--uninstall` appended to the command that installed the rules must remove them: the install-only flags
    // are accepted and ignored (removal takes out whatever this command added, whichever ports it was given)
    const ignored = INSTALL_ONLY.filter((f) => v[f] !== undefined).map((f) => `--${f}`);
    if (ignored.length > 0) {
      process.stderr.write(`bridge-sidecar intercept: --uninstall removes every rule this command added; ignoring ${ignored.join(', ')}\n`);
    }
    return { kind: 'uninstall' };
  }
  if (v.ports === undefined) throw new UsageError('--ports is required (e.g. --ports 9101)');
  const ports = parsePortList('--ports', v.ports, true);
  if (ports !== 'all' && ports.length === 0) throw new UsageError('--ports: no ports given');
  const toPort = v['to-port'] === undefined ? DEFAULT_TO_PORT : parsePort('--to-port', v['to-port']);
  const proxyUid = v['proxy-uid'] === undefined ? DEFAULT_PROXY_UID : parseUid('--proxy-uid', v['proxy-uid']);
  const excluded = v['exclude-ports'] === undefined ? [] : parsePortList('--exclude-ports', v['exclude-ports'], false);
  const excludePorts = excluded === 'all' ? [] : excluded;
  if (ports !== 'all' && ports.includes(toPort)) {
    throw new UsageError(`--to-port ${toPort} is also in --ports: traffic to the sidecar would be redirected to itself`);
  }
  // With '*', the sidecar's own port must not be redirected (it would be harmless but pointless work).
  if (ports === 'all' && !excludePorts.includes(toPort)) excludePorts.push(toPort);
  return { kind: 'install', options: { ports, toPort, proxyUid, excludePorts } };
}

export async function run(argv: string[]): Promise<number> {
  let v: Flags;
  let action: InterceptAction;
  try {
    v = parseFlags(argv, FLAGS).values;
    if (v.help) { process.stdout.write(HELP); return 0; }
    action = actionFrom(v);
  } catch (e) {
    process.stderr.write(`bridge-sidecar intercept: ${e instanceof Error ? e.message : String(e)}\n${e instanceof UsageError ? 'see bridge-sidecar intercept --help\n' : ''}`);
    return 2;
  }
  const bin = v.legacy ? LEGACY_BINARIES : NFT_BINARIES;
  try {
    if (v['dry-run']) {
      const p = await plan(action, bin, true);
      if (p.stateUnreadable) process.stdout.write(`# current rules could not be read (${p.stateUnreadable}); assuming none\n`);
      process.stdout.write(p.input ?? '# nothing to remove\n');
      return 0;
    }
    const applied = await apply(action, bin);
    const what = action.kind === 'install'
      ? `installed: TCP to ${action.options.ports === 'all' ? 'every port' : 'port ' + action.options.ports.join(',')} -> ${action.options.toPort}` +
        ` (not for uid ${action.options.proxyUid}, loopback${action.options.excludePorts.length ? ', ports ' + action.options.excludePorts.join(',') : ''})`
      : applied === null ? 'nothing to remove' : 'removed';
    process.stdout.write(`bridge-sidecar intercept: ${what}\n`);
    return 0;
  } catch (e) {
    if (e instanceof InterceptError) {
      process.stderr.write(`bridge-sidecar intercept: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
