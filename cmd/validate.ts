/**
 * `bridge-sidecar validate FILE`: checks a policy like `nginx -t`. Exit 0 with a one-line summary on stdout,
 * or exit 1 with `FILE:LINE:COL: message` lines on stderr (every problem, not only the first).
 */
import { parseFlags, policyFileOrReport, UsageError } from './args';
import { formatErrors, loadPolicyFile, summarize } from '../lib/policy/load';
import { describeCacheKeys } from '../lib/cache/key-shape';

const HELP = `usage: bridge-sidecar validate [--keys] FILE

Checks a policy file and exits 0 with a one-line summary if it is valid, or exits 1 and prints every
problem as FILE:LINE:COL: message. The JSON Schema of the file is policy.schema.json in the package.

  --keys   after the summary, one line per cached route saying what its cache key is made of
`;

export async function run(argv: string[]): Promise<number> {
  let files: string[];
  let keys = false;
  try {
    const { values, positionals } = parseFlags(argv, { help: { type: 'boolean', short: 'h' }, keys: { type: 'boolean' } }, true);
    keys = values.keys === true;
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError('expected exactly one FILE');
    files = positionals;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`bridge-sidecar validate: ${e.message}\n\n${HELP}`);
    return 2;
  }
  const file = policyFileOrReport('validate', files[0]!, 'the command line');
  if (file === null) return 2;
  const result = loadPolicyFile(file);
  if (result.ok) {
    process.stdout.write(summarize(result.loaded) + '\n');
    if (keys) for (const line of describeCacheKeys(result.loaded.policy.routes)) process.stdout.write(line + '\n');
    return 0;
  }
  process.stderr.write(formatErrors(result.errors) + '\n');
  return 1;
}
