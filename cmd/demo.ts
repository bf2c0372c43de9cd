/**
 * `bridge-sidecar demo` (what `npm start` runs): the example draft service on 127.0.0.1:9101 and the sidecar on
 * :15006 in front of it, with examples/policy.yaml, as the contract says. That policy names a Redis; with none
 * running the sidecar degrades as it would in production (L2 misses, pod-local rate limits,
 * bridge_sidecar_redis_up 0), so no Redis is needed. `BRIDGE_SIDECAR_POLICY` picks another file, e.g.
 * examples/demo-policy.yaml (the same without Redis, on loopback only).
 */
import cluster from 'node:cluster';
import { join } from 'node:path';
import { packageRoot } from './package-root';
import { exitListenFailed, policyFileOrReport } from './args';
import { runSidecar, PolicyRefusedError, ListenError } from '../lib/server/sidecar';
import { listenError } from '../lib/server/listen';
import { startDraftService } from '../examples/draft-service';

const ROOT = packageRoot() ?? join(__dirname, '..', '..');

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('usage: bridge-sidecar demo\n\nStarts the example draft service on 127.0.0.1:9101 and the sidecar on :15006 (admin on :9901)\nwith examples/policy.yaml (or $BRIDGE_SIDECAR_POLICY). No Redis is needed: without one the sidecar degrades.\n');
    return 0;
  }
  const policy = policyFileOrReport('demo', process.env.BRIDGE_SIDECAR_POLICY || join(ROOT, 'examples', 'policy.yaml'),
    process.env.BRIDGE_SIDECAR_POLICY ? '$BRIDGE_SIDECAR_POLICY' : 'the example policy');
  if (policy === null) return 2;
  if (cluster.isWorker) {
    await (await runSidecar(policy)).done;
    return 0;
  }
  let service: Awaited<ReturnType<typeof startDraftService>>;
  try {
    service = await startDraftService({ host: '127.0.0.1', port: 9101, serviceTimeMs: 20 });
  } catch (e) {
    exitListenFailed(listenError(e, 'the example draft service', '127.0.0.1', 9101));
  }
  try {
    const handle = await runSidecar(policy);
    process.stderr.write([
      '',
      `  example draft service   http://127.0.0.1:${service.port}`,
      '  bridge-sidecar          http://127.0.0.1:15006   (policy: ' + policy + ')',
      '  admin                   http://127.0.0.1:9901/metrics  /policy  /readyz',
      '  (no Redis running? the sidecar goes on without it: L2 misses, pod-local limits, bridge_sidecar_redis_up 0)',
      '',
      '  try:  curl -si -X POST http://127.0.0.1:15006/query_script -H "content-type: application/json" \\',
      "             -d '{\"draft_id\":\"dft_000001\",\"force_update\":false}'",
      '        (again: Cache-Status shows an L1 hit, whichever worker answers)',
      '        curl -s --compressed -D - -o /dev/null http://127.0.0.1:15006/get_font_types   (content-encoding: gzip)',
      '',
      '  Ctrl-C stops both.',
      '',
    ].join('\n') + '\n');
    await handle.done;
  } catch (e) {
    if (e instanceof PolicyRefusedError) {
      process.stderr.write(`bridge-sidecar: the policy was refused:\n${e.message}\n`);
      await service.close();
      return 1;
    }
    if (e instanceof ListenError) exitListenFailed(e);
    throw e;
  }
  await service.close();
  return 0;
}
