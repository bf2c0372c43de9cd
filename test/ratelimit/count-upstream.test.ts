/**
 * `count: upstream`: a limit that counts only the requests that go to the upstream. Answers from the cache cost
 * the upstream nothing, so a user reading cached lists is never refused by it; `count: all` (the default, as nginx)
 * counts every request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDraftService } from '../../examples/draft-service';
import { basicPolicy, startSidecar } from '../helpers/sidecar';

const policy = (count: string) => `
routes:
  - name: fonts
    match: { method: GET, path: /get_font_types }
    cache: { key: "static:font", ttl: 1h }
rate_limiting:
  identity: { header: x-user-id }
  per_user: { requests_per_minute: 6, burst_size: 3, count: ${count} }
  per_endpoint: { /create_draft: { rps: 0.1, burst: 2, count: ${count} } }
cache:
  l1: { size: 4MB }
`;

async function statuses(base: string, n: number, path: string, user: string, method = 'GET'): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await fetch(base + path, { method, headers: { 'x-user-id': user, 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
    await r.arrayBuffer();
    out.push(r.status);
  }
  return out;
}

test('count: upstream lets cache hits through and still limits what reaches the upstream', async (t) => {
  const svc = await startDraftService({ seedDrafts: 1 });
  t.after(() => svc.close());
  const sc = await startSidecar(basicPolicy(svc.port, policy('upstream')));
  t.after(() => sc.stop());

  const reads = await statuses(sc.url, 30, '/get_font_types', 'reader');
  assert.deepEqual(reads.filter((s) => s !== 200), [], '29 of 30 reads were cache hits: not counted');
  assert.equal(svc.stats().byPath['/get_font_types'], 1);

  // uncached writes are counted: a burst of 3 per user (one was the first read's miss), 2 per endpoint
  const writes = await statuses(sc.url, 4, '/create_draft', 'writer', 'POST');
  assert.deepEqual(writes, [200, 200, 429, 429]);
  assert.equal(svc.stats().byPath['/create_draft'], 2, 'refused writes never reached the service');
  const alsoReader = await statuses(sc.url, 3, '/create_draft', 'reader', 'POST');
  assert.equal(alsoReader.filter((s) => s === 429).length, 3, 'the per_endpoint limit is spent: every write is refused');
  // the reader's hits still pass: the per-user budget is only charged upstream
  assert.deepEqual(await statuses(sc.url, 5, '/get_font_types', 'reader'), [200, 200, 200, 200, 200]);
});

test('count: all (the default) counts cache hits too', async (t) => {
  const svc = await startDraftService({ seedDrafts: 1 });
  t.after(() => svc.close());
  const sc = await startSidecar(basicPolicy(svc.port, policy('all')));
  t.after(() => sc.stop());
  const reads = await statuses(sc.url, 6, '/get_font_types', 'reader');
  assert.deepEqual(reads.slice(0, 3), [200, 200, 200]);
  assert.ok(reads.slice(3).every((s) => s === 429), `the 4th read is over the burst of 3: ${reads}`);
  assert.equal(svc.stats().byPath['/get_font_types'], 1, 'the hits were refused without the upstream');
});
