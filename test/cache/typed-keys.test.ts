/**
 * A key param read from a JSON body keeps its JSON type: {"draft_id": 4242} and {"draft_id": "4242"} are two
 * entries (the draft service answers "not found" to the number), both named draft:4242:script, so one
 * invalidation of draft:4242:* removes both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDraftService } from '../../examples/draft-service';
import { basicPolicy, startSidecar } from '../helpers/sidecar';

const ROUTES = `
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m, store_if: { "response.success": true } }
  - name: add_text
    match: { method: POST, path: /add_text }
    params: { draft_id: body.draft_id }
    emits: [draft_updated]
cache:
  l1: { size: 4MB }
  invalidation: { triggers: [draft_updated], patterns: ["draft:{draft_id}:*"] }
`;

async function post(base: string, path: string, body: unknown): Promise<{ json: { success: boolean; output: unknown }; cache: string }> {
  const r = await fetch(base + path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return { json: (await r.json()) as { success: boolean; output: unknown }, cache: r.headers.get('cache-status') ?? '' };
}

test('a number id is not served the string id\'s entry, and an event for the id removes both', async (t) => {
  const svc = await startDraftService({ seedDrafts: 1 });
  t.after(() => svc.close());
  const sc = await startSidecar(basicPolicy(svc.port, ROUTES));
  t.after(() => sc.stop());
  await post(svc.url, '/create_draft', { draft_id: '4242' });
  await post(svc.url, '/add_text', { draft_id: 4242, text: 'the number draft', start: 0, end: 1 });

  const str = await post(sc.url, '/query_script', { draft_id: '4242', force_update: false });
  assert.equal(str.json.success, true);
  assert.match((await post(sc.url, '/query_script', { draft_id: '4242', force_update: false })).cache, /hit/);
  const num = await post(sc.url, '/query_script', { draft_id: 4242, force_update: false });
  assert.doesNotMatch(num.cache, /hit/, 'the number got the string\'s entry');
  assert.notEqual(num.json.output, str.json.output);
  assert.match(JSON.parse(num.json.output as string).tracks[0].name, /text_main/, 'the number draft is its own');
  assert.match((await post(sc.url, '/query_script', { draft_id: 4242, force_update: false })).cache, /hit/, 'the number has an entry of its own');

  // a write naming the number raises draft_updated {draft_id: "4242"}: both entries go
  await post(sc.url, '/add_text', { draft_id: 4242, text: 'again', start: 1, end: 2 });
  assert.doesNotMatch((await post(sc.url, '/query_script', { draft_id: 4242, force_update: false })).cache, /hit/);
  assert.doesNotMatch((await post(sc.url, '/query_script', { draft_id: '4242', force_update: false })).cache, /hit/);
});
