/**
 * lib/server/policy-diff.ts: what a reload reports as changed, and the start-only settings held at their running
 * values (never half-applied) with the differences listed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy } from '../../lib/policy/load';
import type { Policy } from '../../lib/policy/types';
import { describeChanges, effectivePolicy, runningSettings } from '../../lib/server/policy-diff';

function p(yaml: string): Policy {
  const r = parsePolicy(yaml, 'test.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.loaded.policy;
}

const BASE = `version: 1
server: { listen: "127.0.0.1:15006", admin_listen: "127.0.0.1:9901", workers: 2 }
upstream: { url: "http://127.0.0.1:9101" }
routes:
  - { name: a, match: { method: GET, path: /a } }
  - { name: b, match: { method: GET, path: /b } }
`;

test('describeChanges: second-level keys, routes by name, sections added and removed', () => {
  const prev = p(BASE + 'compression: { enabled: true }\n');
  const next = p(BASE.replace('path: /b', 'path: /bb').replace('  - { name: a, match: { method: GET, path: /a } }\n', '') +
    '  - { name: c, match: { method: GET, path: /c } }\nrate_limiting: { global: { requests_per_second: 5 } }\n');
  const c = describeChanges(prev, next);
  assert.deepEqual(c.changed.sort(), ['compression (removed)', 'rate_limiting (added)', 'routes.a (removed)', 'routes.b', 'routes.c (added)'].sort());
  assert.deepEqual(describeChanges(prev, prev).changed, []);
  const reordered = p(BASE.replace(/  - \{ name: a.*\n(  - \{ name: b.*\n)/, '$1  - { name: a, match: { method: GET, path: /a } }\n'));
  assert.deepEqual(describeChanges(p(BASE), reordered).changed, ['routes (order)']);
  const tuned = p(BASE.replace('workers: 2', 'workers: 2, request_timeout: 5s'));
  assert.deepEqual(describeChanges(p(BASE), tuned).changed, ['server.request_timeout']);
});

test('effectivePolicy: listen, admin_listen, workers, the upstream scheme and worker_threads keep their running values', () => {
  const boot = p(BASE + 'queues: { worker_threads: 8 }\n');
  const running = runningSettings(boot, {});
  const file = p(BASE
    .replace('127.0.0.1:15006', '0.0.0.0:16000')
    .replace('127.0.0.1:9901', '0.0.0.0:9902')
    .replace('workers: 2', 'workers: 4, request_timeout: 7s')
    .replace('http://127.0.0.1:9101', 'https://127.0.0.1:9200') + 'queues: { worker_threads: 16, max_in_flight: 9 }\n');
  const eff = effectivePolicy(running, file);
  assert.deepEqual(eff.policy.server.listen, { host: '127.0.0.1', port: 15006 });
  assert.deepEqual(eff.policy.server.admin_listen, { host: '127.0.0.1', port: 9901 });
  assert.equal(eff.policy.server.workers, 2);
  assert.equal(eff.policy.server.request_timeout, 7000, 'everything else comes from the file');
  assert.equal(eff.policy.upstream.url, 'http://127.0.0.1:9101');
  assert.equal(eff.policy.upstream.port, 9101);
  assert.equal(eff.policy.queues?.worker_threads, 8);
  assert.equal(eff.policy.queues?.max_in_flight, 9);
  assert.deepEqual(eff.pending.map((x) => x.key), ['server.listen', 'server.admin_listen', 'server.workers', 'upstream.url', 'queues.worker_threads']);
  assert.deepEqual(eff.pending.find((x) => x.key === 'upstream.url'), { key: 'upstream.url', running: 'http://127.0.0.1:9101', file: 'https://127.0.0.1:9200' });
  // a new host or port with the same scheme is applied, not held
  const moved = effectivePolicy(running, p(BASE.replace('http://127.0.0.1:9101', 'http://127.0.0.2:9200')));
  assert.deepEqual(moved.pending, []);
  assert.equal(moved.policy.upstream.url, 'http://127.0.0.2:9200');
  assert.equal(moved.policy.upstream.host, '127.0.0.2');
  // a file equal to the running settings: nothing pending, the file's policy as is
  const same = effectivePolicy(running, boot);
  assert.deepEqual(same.pending, []);
  assert.deepEqual(same.policy, boot);
});

test('runningSettings: with no queues section the thread pool in force comes from UV_THREADPOOL_SIZE, else 4', () => {
  assert.equal(runningSettings(p(BASE), {}).worker_threads, 4);
  assert.equal(runningSettings(p(BASE), { UV_THREADPOOL_SIZE: '12' }).worker_threads, 12);
  const eff = effectivePolicy(runningSettings(p(BASE), {}), p(BASE + 'queues: { worker_threads: 4 }\n'));
  assert.deepEqual(eff.pending, []);
});
