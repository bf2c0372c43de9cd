/**
 * `bridge-sidecar explain`: parses its flags (curl's names for the request) and prints what lib/explain says.
 */
import { readFileSync } from 'node:fs';
import { parseFlags, UsageError } from './args';
import { formatErrors, loadPolicyFile } from '../lib/policy/load';
import { explain, explainRemote, formatExplanation, fromCurl, fromRaw, responseFromRaw, ExplainInputError, RemoteExplainError, type ExplainRequest } from '../lib/explain';

const HELP = `usage: bridge-sidecar explain (--policy FILE | --admin URL) [request]

Prints a request's fate step by step: which route matches (and why the ones before it do not), its params,
the rate limits that apply to this identity, the cache key and whether the answer is looked up and stored
(and why), the queue class, and whether the answer would be compressed.

Where the policy comes from:
  --policy FILE          a policy file
  --admin URL            a running sidecar's admin port (e.g. http://127.0.0.1:9901): its policy in force and
                         the current state of the limits; POST /debug/explain needs the admin token:
  --token-file FILE      the admin token (default: $BRIDGE_SIDECAR_ADMIN_TOKEN)

The request, as curl takes it:
  URL                    path or absolute URL, e.g. /query_script or http://127.0.0.1:15006/health
  -X, --request METHOD   default GET, or POST with a body
  -H, --header 'N: v'    repeatable
  -d, --data DATA        a body (@FILE reads it; newlines are dropped, as curl does)
  --data-binary DATA     a body, bytes as given (@FILE reads it as is)
  --raw FILE             a raw HTTP/1.1 request instead (request line, headers, blank line, body)
  --client ADDR          the client address the identity falls back to (default 127.0.0.1)

  --response FILE        a raw HTTP/1.1 answer to judge the cache's store rules against
  --json                 print the explanation as JSON

Exit status: 0 explained; 1 bad policy or the sidecar could not answer; 2 usage.
`;

function dataArg(v: string, binary: boolean): Buffer {
  if (!v.startsWith('@')) return Buffer.from(v);
  const bytes = readFileSync(v.slice(1));
  return binary ? bytes : Buffer.from(bytes.toString('utf8').replace(/[\r\n]/g, ''));
}

export async function run(argv: string[]): Promise<number> {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseFlags(argv, {
      help: { type: 'boolean', short: 'h' },
      policy: { type: 'string' },
      admin: { type: 'string' },
      'token-file': { type: 'string' },
      request: { type: 'string', short: 'X' },
      header: { type: 'string', short: 'H', multiple: true },
      data: { type: 'string', short: 'd' },
      'data-binary': { type: 'string' },
      raw: { type: 'string' },
      client: { type: 'string' },
      response: { type: 'string' },
      json: { type: 'boolean' },
    }, true));
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if ((values.policy === undefined) === (values.admin === undefined)) throw new UsageError('give exactly one of --policy FILE or --admin URL');
    if (values.raw !== undefined ? positionals.length !== 0 : positionals.length !== 1) throw new UsageError('give the request as one URL (with curl flags), or --raw FILE');
    if (values.data !== undefined && values['data-binary'] !== undefined) throw new UsageError('give -d or --data-binary, not both');
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`bridge-sidecar explain: ${e.message}\n\n${HELP}`);
    return 2;
  }

  let req: ExplainRequest;
  let response = null;
  try {
    req = values.raw !== undefined
      ? fromRaw(readFileSync(values.raw), values.client)
      : fromCurl({
        url: positionals[0],
        method: values.request,
        headers: values.header,
        dataBinary: values['data-binary'] !== undefined ? dataArg(values['data-binary'], true) : values.data !== undefined ? dataArg(values.data, false) : undefined,
        clientAddress: values.client,
      });
    if (values.response !== undefined) response = responseFromRaw(readFileSync(values.response));
  } catch (e) {
    if (e instanceof ExplainInputError || (e as NodeJS.ErrnoException).code === 'ENOENT') {
      process.stderr.write(`bridge-sidecar explain: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }

  if (values.admin !== undefined) {
    const tokenFile = values['token-file'];
    const token = tokenFile !== undefined ? readFileSync(tokenFile, 'utf8').trim() : (process.env.BRIDGE_SIDECAR_ADMIN_TOKEN ?? null);
    try {
      const r = await explainRemote(values.admin, token, req);
      process.stdout.write(values.json ? JSON.stringify(r.explanation, null, 2) + '\n' : r.text);
      return 0;
    } catch (e) {
      if (!(e instanceof RemoteExplainError)) throw e;
      process.stderr.write(`bridge-sidecar explain: ${e.message}\n`);
      return 1;
    }
  }

  const loaded = loadPolicyFile(values.policy!);
  if (!loaded.ok) {
    process.stderr.write(formatErrors(loaded.errors) + '\n');
    return 1;
  }
  const e = explain(loaded.loaded, req, { response });
  process.stdout.write(values.json ? JSON.stringify(e, null, 2) + '\n' : formatExplanation(e));
  return 0;
}
