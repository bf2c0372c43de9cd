/**
 * A request keeps the policy it started with until its end: a reload while it is upstream does not change
 * its timeouts or retries (the proxy takes them from the request's snapshot, not from the live policy).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { startProxyWorker } from '../../lib/server/worker';
import { SingleCoordinator } from '../../lib/server/ipc';
import { silentLogger } from '../../lib/observe/logger';
import { loadPolicy, request, startUpstream } from '../cache/harness';

const policyWith = (upstreamUrl: string, retries: number): string => `version: 1
server: { listen: "127.0.0.1:0", workers: 0 }
upstream: { url: "${upstreamUrl}", pool: { retries: ${retries}, read_timeout: 5s, connect_timeout: 1s } }
`;

test('a retry after a reload uses the retries of the policy the request started with', async (t) => {
  let reload: () => void = () => {};
  // the first attempt reloads the sidecar to a policy without retries, then hangs up before answering
  const up = await startUpstream((_req, _body, n) => {
    if (n === 1) {
      reload();
      return { hangUp: true };
    }
    return { body: 'second attempt' };
  });
  t.after(() => up.close());
  const worker = await startProxyWorker(loadPolicy(policyWith(up.url, 1)), new SingleCoordinator(), silentLogger);
  t.after(() => worker.shutdown());
  reload = () => worker.applyPolicy(loadPolicy(policyWith(up.url, 0)));
  const { port } = worker.address();

  const r = await request(`http://127.0.0.1:${port}`, { path: '/drafts/1' });
  assert.equal(r.status, 200, `the request started with retries: 1 and must be retried once (got ${r.status}: ${r.body})`);
  assert.equal(r.body, 'second attempt');
  assert.equal(up.count, 2);
  assert.equal(worker.handler.pipeline.policy.upstream.pool.retries, 0, 'the reload took effect for new requests');

  // a request that starts after the reload is not retried
  const after = await startUpstream(() => ({ hangUp: true }));
  t.after(() => after.close());
  worker.applyPolicy(loadPolicy(policyWith(after.url, 0)));
  const r2 = await request(`http://127.0.0.1:${port}`, { path: '/drafts/1' });
  assert.equal(r2.status, 502);
  assert.equal(after.count, 1);
});
