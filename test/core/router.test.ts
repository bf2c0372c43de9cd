/**
 * The route matcher: method, path templates, query, headers, JSON body fields, JSON-RPC method, params, and
 * when the body must be read at all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router, compilePathTemplate, parseParamSource } from '../../lib/routes/router';
import type { RoutePolicy } from '../../lib/policy/types';

function route(name: string, match: Partial<RoutePolicy['match']>, params: Record<string, string> = {}): RoutePolicy {
  return {
    name,
    match: { method: null, path: null, query: null, headers: null, body: null, jsonrpc_method: null, ...match },
    params, priority: null, cache: null, emits: [], emits_on: '2xx', local_reply: null,
  };
}

const router = new Router([
  route('query_script', { method: 'POST', path: '/query_script', body: { force_update: false } }, { draft_id: 'body.draft_id' }),
  route('query_script_fresh', { method: 'POST', path: '/query_script' }),
  route('tools_list', { method: 'POST', path: '/mcp', jsonrpc_method: 'tools/list' }),
  route('pattern', { method: 'GET', path: '/api/patterns/get/{template_id}' }, { template_id: 'path.template_id', v: 'query.v', who: 'header.x-user-id' }),
  route('by_category', { method: 'GET', path: '/api/patterns/list', query: { category: '*' } }, { category: 'query.category' }),
  route('internal', { path: '/internal/*', headers: { 'x-internal': 'yes' } }),
]);

const m = (method: string, url: string, json?: unknown, headers: Record<string, string> = {}) => {
  const q = url.indexOf('?');
  return router.match({ method, path: q === -1 ? url : url.slice(0, q), query: q === -1 ? '' : url.slice(q + 1), headers, json });
};

test('body fields and JSON-RPC methods pick the route; params come from the body', () => {
  assert.equal(m('POST', '/query_script', { draft_id: 'd1', force_update: false })?.route.name, 'query_script');
  assert.deepEqual(m('POST', '/query_script', { draft_id: 'd1', force_update: false })?.params, { draft_id: 'd1' });
  assert.equal(m('POST', '/query_script', { draft_id: 'd1', force_update: true })?.route.name, 'query_script_fresh');
  assert.equal(m('POST', '/query_script', undefined)?.route.name, 'query_script_fresh');
  assert.equal(m('POST', '/mcp', { jsonrpc: '2.0', method: 'tools/list' })?.route.name, 'tools_list');
  assert.equal(m('POST', '/mcp', { jsonrpc: '2.0', method: 'tools/call' }), null);
});

test('path templates capture and decode segments; query and header params', () => {
  const r = m('GET', '/api/patterns/get/t%2042?v=3', undefined, { 'x-user-id': 'u7' });
  assert.equal(r?.route.name, 'pattern');
  assert.deepEqual(r?.params, { template_id: 't 42', v: '3', who: 'u7' });
  assert.equal(m('GET', '/api/patterns/get/'), null, 'an empty segment is not a capture');
  assert.equal(m('GET', '/api/patterns/get/a/b'), null, 'no extra segments');
  assert.equal(m('GET', '/api/patterns/list?category=fx')?.route.name, 'by_category');
  assert.equal(m('GET', '/api/patterns/list'), null, 'the query condition must hold');
  assert.equal(m('GET', '/internal/a/b/c', undefined, { 'x-internal': 'yes' })?.route.name, 'internal');
  assert.equal(m('GET', '/internal/a', undefined, {}), null);
});

test('HEAD matches GET routes (so HEAD can be answered from a stored GET), not the other way round', () => {
  assert.equal(m('HEAD', '/api/patterns/get/x')?.route.name, 'pattern');
  assert.equal(m('HEAD', '/query_script'), null);
});

test('the body is read only when a route that could match needs it', () => {
  assert.equal(router.needsBody('POST', '/query_script'), true);
  assert.equal(router.needsBody('POST', '/mcp'), true);
  assert.equal(router.needsBody('GET', '/api/patterns/get/x'), false);
  assert.equal(router.needsBody('POST', '/mcp/add_video'), false);
  assert.equal(new Router([route('a', { path: '/x' })]).anyBody, false);
});

test('bad templates and param sources are refused with a reason', () => {
  assert.throws(() => compilePathTemplate('no-slash'), /must start with/);
  assert.throws(() => compilePathTemplate('/a/*/b'), /may only end/);
  assert.throws(() => compilePathTemplate('/a/x{id}'), /literal or a whole/);
  assert.throws(() => parseParamSource('cookie.sid'), /param source/);
  assert.deepEqual(parseParamSource('header.X-User-Id'), { kind: 'header', name: 'x-user-id' });
  assert.deepEqual(parseParamSource('response.output.draft_id'), { kind: 'response', path: ['output', 'draft_id'] });
});
