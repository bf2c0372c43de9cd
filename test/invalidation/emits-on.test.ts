/**
 * `emits: { events, on: any }` raises the route's events whatever the upstream answers (a 500 after a write may
 * still have changed the data); the list form `emits: [...]` keeps the contract's rule: 2xx only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDraftService } from '../../examples/draft-service';
import { basicPolicy, startSidecar } from '../helpers/sidecar';

const POLICY = `
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m, store_if: { "response.success": true } }
  - name: write_any
    match: { method: POST, path: "/status/{code}", query: { on: any } }
    params: { draft_id: body.draft_id }
    emits: { events: [draft_updated], on: any }
  - name: write_2xx
    match: { method: POST, path: "/status/{code}" }
    params: { draft_id: body.draft_id }
    emits: [draft_updated]
cache:
  l1: { size: 4MB }
  invalidation: { triggers: [draft_updated], patterns: ["draft:{draft_id}:*"] }
`;

test('on: any raises on a 500 (and a 200); the list form only on 2xx', async (t) => {
  const svc = await startDraftService({ seedDrafts: 1 });
  t.after(() => svc.close());
  const sc = await startSidecar(basicPolicy(svc.port, POLICY));
  t.after(() => sc.stop());
  const read = async () => {
    const r = await fetch(sc.url + '/query_script', { method: 'POST', body: '{"draft_id":"dft_000001","force_update":false}' });
    await r.arrayBuffer();
    return r.headers.get('cache-status') ?? '';
  };
  const write = async (path: string) => {
    const r = await fetch(sc.url + path, { method: 'POST', body: '{"draft_id":"dft_000001"}' });
    await r.arrayBuffer();
    return r.status;
  };
  await read();
  assert.match(await read(), /hit/);

  assert.equal(await write('/status/500'), 500);
  assert.match(await read(), /hit/, 'emits: [...] raises nothing on a 500');
  assert.equal(await write('/status/500?on=any'), 500);
  assert.doesNotMatch(await read(), /hit/, 'on: any raised draft_updated on the 500');
  assert.match(await read(), /hit/);
  assert.equal(await write('/status/200?on=any'), 200);
  assert.doesNotMatch(await read(), /hit/, 'and on a 200');
  assert.match(await read(), /hit/);
  assert.equal(await write('/status/204'), 204);
  assert.doesNotMatch(await read(), /hit/, 'the list form raises on 2xx');
});
