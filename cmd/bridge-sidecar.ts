#!/usr/bin/env node
/**
 * The `bridge-sidecar` command: picks the subcommand and hands over its arguments. Each subcommand lives in
 * cmd/<name>.ts, only parses its own flags, and calls into lib/.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './package-root';
import { unknownCommand } from './args';

type Command = { run(argv: string[]): Promise<number> };

// each subcommand is loaded only when run: `validate` or `inject` must not load the proxy, OpenTelemetry and the rest
/* eslint-disable @typescript-eslint/no-require-imports */
const COMMANDS: Record<string, { load: () => Command; help: string }> = {
  serve: { load: () => require('./serve') as Command, help: 'serve [--policy FILE]            run the proxy' },
  validate: { load: () => require('./validate') as Command, help: 'validate FILE                    check a policy file (like nginx -t)' },
  intercept: { load: () => require('./intercept') as Command, help: 'intercept --ports P --to-port P [--uninstall] [--dry-run]  iptables redirect' },
  inject: { load: () => require('./inject') as Command, help: 'inject [-f FILE] [--native] [--remove]  add the sidecar to Kubernetes manifests' },
  webhook: { load: () => require('./webhook') as Command, help: 'webhook [--port 9443] [--tls-cert F --tls-key F] [--config F]  sidecar injection webhook' },
  loadtest: { load: () => require('./loadtest') as Command, help: 'loadtest --target URL [--profile baseline|steps|soak] ...  fixed-rate load test' },
  explain: { load: () => require('./explain') as Command, help: 'explain (--policy FILE | --admin URL) [curl-like request]  why a request is (not) cached or limited' },
  demo: { load: () => require('./demo') as Command, help: 'demo                             example draft service on :9101 + sidecar on :15006' },
};
/* eslint-enable @typescript-eslint/no-require-imports */

/** The package's version, from bridge-sidecar's package.json. */
function version(): string {
  const root = packageRoot();
  if (!root) return 'unknown';
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

function usage(): string {
  return ['usage: bridge-sidecar <command> [options]', '', 'commands:', ...Object.values(COMMANDS).map((c) => '  ' + c.help), '',
    'bridge-sidecar <command> --help for the options of one command; --version prints the version.'].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(version() + '\n');
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`bridge-sidecar: ${unknownCommand(name, Object.keys(COMMANDS))}\n`);
    return 2;
  }
  return cmd.load().run(rest);
}

main(process.argv.slice(2)).then(
  (code) => { if (code !== 0 || !process.env.BRIDGE_SIDECAR_KEEP_ALIVE) process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`bridge-sidecar: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
