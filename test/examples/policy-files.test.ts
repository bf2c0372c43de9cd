/**
 * examples/policy.yaml and examples/demo-policy.yaml are documentation that runs: both must load, the
 * complete one must use every section, the demo must be the same without Redis, and the routes must send
 * the draft service's real calls where their comments say.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadPolicyFile } from '../../lib/policy/load';
import type { Policy } from '../../lib/policy/types';
import { Router, type MatchInput } from '../../lib/routes/router';
import { repoRoot } from '../helpers/repo';

function load(name: string): Policy {
  const file = join(repoRoot(), 'examples', name);
  const r = loadPolicyFile(file);
  if (!r.ok) assert.fail(`${name} does not load:\n${r.errors.map((e) => `${e.file}:${e.line}:${e.col}: ${e.message}`).join('\n')}`);
  return r.loaded.policy;
}

test('examples/policy.yaml loads and turns on every section of the contract', () => {
  const p = load('policy.yaml');
  for (const section of ['redis', 'rate_limiting', 'queues', 'cache', 'compression', 'memory', 'tracing', 'profiling', 'auto_tuning'] as const) {
    assert.notEqual(p[section], null, `section ${section} is present`);
  }
  assert.ok(p.routes.length > 10);
  assert.equal(p.rate_limiting!.scope, 'cluster');
  assert.ok(p.rate_limiting!.global && p.rate_limiting!.per_user);
  assert.ok(Object.keys(p.rate_limiting!.per_endpoint).length >= 3);
  assert.ok(p.cache!.l1 && p.cache!.l2 && p.cache!.l3 && p.cache!.warmup && p.cache!.invalidation);
  assert.equal(p.upstream.port, 9101);
  assert.equal(p.server.listen.port, 15006);
});

test('examples/demo-policy.yaml is the same without Redis, on loopback, with identical routes', () => {
  const full = load('policy.yaml');
  const demo = load('demo-policy.yaml');
  assert.equal(demo.redis, null);
  assert.equal(demo.cache!.l2, null);
  assert.equal(demo.rate_limiting!.scope, 'pod');
  assert.deepEqual(demo.server.listen, { host: '127.0.0.1', port: 15006 });
  assert.deepEqual(demo.server.admin_listen, { host: '127.0.0.1', port: 9901 });
  assert.match(demo.cache!.l3!.path, /^\/tmp\//);
  assert.deepEqual(demo.routes, full.routes);
  assert.deepEqual(demo.queues, full.queues);
  assert.deepEqual(demo.cache!.invalidation, full.cache!.invalidation);
  assert.deepEqual(demo.rate_limiting!.per_endpoint, full.rate_limiting!.per_endpoint);
});

test('the example routes match the draft service calls and take their params where documented', () => {
  const router = new Router(load('policy.yaml').routes);
  const req = (method: string, url: string, json?: unknown, headers: Record<string, string> = {}): MatchInput => {
    const q = url.indexOf('?');
    return { method, path: q === -1 ? url : url.slice(0, q), query: q === -1 ? '' : url.slice(q + 1), headers, json };
  };
  const route = (input: MatchInput) => {
    const m = router.match(input);
    return m ? { name: m.route.name, params: m.params } : null;
  };

  assert.deepEqual(route(req('POST', '/query_script', { draft_id: 'dft_000001', force_update: false }, { 'x-user-id': 'u1' })),
    { name: 'query_script', params: { draft_id: 'dft_000001' } });
  assert.equal(route(req('POST', '/query_script', { draft_id: 'dft_000001', force_update: true }))!.name, 'query_script_fresh');
  assert.deepEqual(route(req('POST', '/query_draft_status', { task_id: 't1' })), { name: 'query_draft_status', params: { task_id: 't1' } });
  assert.equal(route(req('POST', '/query_script', { draft_id: 'dft_000001' }))!.name, 'query_script_fresh', 'force_update absent is the service default: true');
  assert.deepEqual(router.routes.find((r) => r.name === 'query_script_fresh')!.policy.emits, ['draft_updated'], 'a forced read can change the draft');
  for (const list of ['intro_animation', 'outro_animation', 'transition', 'mask', 'font', 'text_intro', 'text_outro', 'text_loop_anim', 'video_scene_effect', 'video_character_effect']) {
    const m = router.match(req('GET', `/get_${list}_types`))!;
    assert.equal(m.route.name, `get_${list}_types`);
    assert.ok(m.route.policy.cache!.ttl >= 3_600_000, 'lists are cached for hours');
  }
  assert.ok(router.routes.find((r) => r.name === 'query_draft_status')!.policy.cache!.ttl <= 1000, 'a save status is at most a second old');
  for (const dead of ['/health', '/api/patterns/list', '/api/patterns/get/tpl_0001', '/mcp/add_video']) {
    assert.equal(route(req(dead.startsWith('/mcp') ? 'POST' : 'GET', dead, {})), null, `${dead} does not exist on the service: no route`);
  }
  assert.deepEqual(route(req('POST', '/mcp', { jsonrpc: '2.0', id: 1, method: 'tools/list' })), { name: 'mcp_tools_list', params: {} });
  for (const tool of ['create_draft', 'add_video', 'add_text', 'save_draft']) {
    const m = router.match(req('POST', '/mcp', { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: tool, arguments: { draft_id: 'd9' } } }))!;
    assert.equal(m.route.name, `mcp_${tool}`);
    assert.deepEqual(m.params, { draft_id: 'd9' });
    assert.deepEqual(m.route.policy.emits, ['draft_updated']);
  }
  assert.equal(route(req('POST', '/mcp', { jsonrpc: '2.0', id: 3, method: 'initialize' }))!.name, 'mcp_other');
  for (const w of ['create_draft', 'add_video', 'add_audio', 'add_text', 'add_subtitle', 'add_image', 'add_effect', 'add_sticker', 'add_video_keyframe', 'save_draft']) {
    const m = router.match(req('POST', `/${w}`, { draft_id: 'dft_000002' }, { 'x-user-id': 'u2' }))!;
    assert.equal(m.route.name, w);
    assert.deepEqual(m.params, { draft_id: 'dft_000002' }, 'the draft id of the request, never of the answer');
    assert.deepEqual(m.route.responseParams, []);
    assert.equal(m.route.priority, 'high');
    assert.deepEqual(m.route.policy.emits, ['draft_updated']);
    assert.equal(m.route.policy.emits_on, 'any', 'failed writes change drafts too: raised on any answer');
  }
  // what the sidecar must not cache: writes and forced reads have no cache block
  for (const name of ['create_draft', 'add_video', 'save_draft', 'query_script_fresh', 'mcp_other', 'mcp_add_text']) {
    assert.equal(router.routes.find((r) => r.name === name)!.policy.cache, null, name);
  }
  // the sidecar's own answers are in the service's error shape
  const reply = load('policy.yaml').local_reply!;
  assert.equal(reply.content_type, 'application/json');
  assert.equal(JSON.parse(reply.body.replace('{detail}', 'x')).success, false);
  // per-endpoint limits sit on the real paths
  const p = load('policy.yaml');
  for (const key of Object.keys(p.rate_limiting!.per_endpoint)) {
    assert.ok(router.routes.some((r) => r.name === key || r.policy.match.path === key), `per_endpoint ${key} names a route or a real path`);
  }
});
