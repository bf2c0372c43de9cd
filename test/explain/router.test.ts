/** Router.explain is Router.match plus words: for many requests both pick the same route and params. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadPolicyFile } from '../../lib/policy/load';
import { Router } from '../../lib/routes/router';
import { repoRoot } from '../helpers/repo';

test('explain() and match() agree on every request of a sample over the example routes', () => {
  const r = loadPolicyFile(join(repoRoot(), 'examples', 'policy.yaml'));
  assert.ok(r.ok);
  const router = new Router(r.loaded.policy.routes);
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'];
  const paths = ['/health', '/query_script', '/query_draft_status', '/mcp', '/mcp/add_video', '/mcp/create_draft', '/get_font_types', '/api/patterns/get/7', '/api/patterns/list', '/a/b/c', '/'];
  const queries = ['', 'category=intro', 'x=1'];
  const bodies = [undefined, { draft_id: 'd1', force_update: false }, { draft_id: 'd1', force_update: true }, { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'capcut_add_video', arguments: { draft_id: 'd9' } } }, { task_id: 't1' }, [1, 2]];
  let n = 0;
  for (const method of methods) for (const path of paths) for (const query of queries) for (const json of bodies) {
    const input = { method, path, query, headers: { 'x-user-id': 'u' }, json };
    const m = router.match(input);
    const e = router.explain(input);
    assert.equal(e.match?.route.name ?? null, m?.route.name ?? null, `${method} ${path}?${query} ${JSON.stringify(json)}`);
    assert.deepEqual(e.match?.params ?? null, m?.params ?? null);
    assert.equal(e.tried.filter((t) => t.matched).length, m === null ? 0 : 1);
    n++;
  }
  assert.ok(n > 1000);
});
