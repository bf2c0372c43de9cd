/**
 * A tiny flag parser shared by the subcommands (node:util parseArgs with friendlier errors).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { editDistance } from '../lib/util/edit-distance';
import { locatePolicy } from '../lib/policy/locate';

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parseFlags<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new UsageError(msg);
  }
}

export class UsageError extends Error {}

/** One line for a command name that is not one: the closest name when there is one, and the list. */
export function unknownCommand(name: string, commands: string[]): string {
  const close = commands.filter((c) => editDistance(name, c, 2) <= 2);
  const hint = close.length > 0 ? ` (did you mean "${close[0]}"?)` : '';
  return `unknown command "${name}"${hint}; the commands are ${commands.join(', ')} (bridge-sidecar --help)`;
}

/**
 * The policy file a command should read, from the path given (a file, or a ConfigMap directory holding
 * policy.yaml); null after printing one line when there is none (the caller exits 2).
 */
export function policyFileOrReport(command: string, path: string, how: string): string | null {
  const where = locatePolicy(path, how);
  if (where.ok) return where.file;
  process.stderr.write(`bridge-sidecar ${command}: ${where.message}\n`);
  return null;
}

/**
 * A port that cannot be bound: one line and exit 1 at once. Not a return code: the primary holds timers and
 * sockets (admin port, workers starting) that would keep the process alive, which is the hang this avoids.
 */
export function exitListenFailed(e: Error): never {
  process.stderr.write(`bridge-sidecar: ${e.message}\n`);
  process.exit(1);
}
