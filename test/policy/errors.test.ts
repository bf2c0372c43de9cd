import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatErrors, loadPolicyFile, MAX_POLICY_BYTES, parsePolicy, policyVersion, summarize } from '../../lib/policy/load';
import { UPSTREAM, assertErrorAt, errorsOf, fixture, ok, readFixture } from './util';

test('unknown keys at every depth are errors at the key, with a suggestion for typos', () => {
  const text = readFixture('unknown-keys.yaml');
  const errors = errorsOf(text, 'unknown-keys.yaml');
  assertErrorAt(errors, text, 'bogus_top', /unknown key "bogus_top" in \(top level\)/);
  assertErrorAt(errors, text, 'worker:', /unknown key "worker" in server \(did you mean "workers"\?\)/);
  assertErrorAt(errors, text, 'max_conections', /in upstream\.pool \(did you mean "max_connections"\?\)/);
  assertErrorAt(errors, text, 'bogus_match', /in routes\[0\]\.match/);
  assertErrorAt(errors, text, 'tll', /in routes\[1\]\.cache \(did you mean "ttl"\?\)/);
  assertErrorAt(errors, text, 'evict', /in cache\.l1 \(expected one of: size, ttl, strategy\)/);
  assertErrorAt(errors, text, 'deep_bogus', /in cache\.warmup\.strategies\[0\]/);
  assertErrorAt(errors, text, 'extra', /in auto_tuning\.strategies\[0\]/);
  assert.equal(errors.length, 8, formatErrors(errors));
});

test('a file with many problems reports every one of them, in file order, each positioned', () => {
  const text = readFixture('many-errors.yaml');
  const errors = errorsOf(text, 'many-errors.yaml');
  const expect: Array<[string, RegExp]> = [
    ['many', /server\.workers must be an integer, not a string/],
    ['loud', /server\.log_level must be one of trace, debug, info, warn, error, fatal/],
    ['ftp://', /upstream\.url must be an http:\/\/ or https:\/\/ URL/],
    ['"bad name!"', /routes\[0\]\.name must be a name of letters/],
    ['urgent', /routes\[0\]\.priority must be one of high, medium, low/],
    ['no-slash', /must start with \//],
    ['cookie.id', /param source "cookie\.id" must be path\.X/],
    ['"k:{missing}"', /placeholder \{missing\} is not a param of route "dup"/],
    ['lots', /max_in_flight must be a positive integer or "auto"/],
    ['0 } }', /weight must be at least 1/],
    ['l2:', /cache\.l2 is stored in Redis: add a `redis` section/],
    ['"every day"', /invalid cron schedule "every day"/],
    ['"draft:{draft id}:*"', /must be a key template whose placeholders are \{name\}/],
    ['zstd', /compression\.algorithm must be gzip, br/],
    ['180%', /memory\.gc_threshold must be a ratio like 80%/],
    ['2 }', /tracing\.sampling_rate must be a ratio/],
    ['0.1]', /metrics\.buckets must be in ascending order/],
    ['""', /trigger must be a condition like "memory_usage > 85%"/],
    ['explode', /action must be one of reduce_cache_size, increase_pool_size, increase_workers/],
  ];
  for (const [needle, re] of expect) assertErrorAt(errors, text, needle, re);
  // the second "dup" is the duplicate
  assertErrorAt(errors, text, 'dup', /route name "dup" is already used by routes\[1\]/, 2);
  assert.equal(errors.length, expect.length + 1, formatErrors(errors));
  const order = errors.map((e) => e.line * 1000 + e.col);
  assert.deepEqual(order, [...order].sort((a, b) => a - b), 'errors come in file order');
});

test('semantic rules: cross-references, ports, redis', () => {
  const cases: Array<[string, string, RegExp]> = [
    [`${UPSTREAM}rate_limiting: { scope: cluster }`, 'cluster', /scope "cluster" shares counters through redis/],
    [`${UPSTREAM}redis: { url: "redis://a:1", cluster: ["b:2"] }`, '{ url: "redis', /redis needs exactly one of `url`/],
    [`${UPSTREAM}redis: { key_prefix: x }`, '{ key_prefix', /redis needs exactly one of `url`/],
    [`${UPSTREAM}server: { listen: ":9901" }`, '":9901"', /both use port 9901/],
    [`${UPSTREAM}server: { admin_listen: "0.0.0.0:70000" }`, '"0.0.0.0:70000"', /port 70000 is out of range/],
    [`${UPSTREAM}server: { listen: "nohost" }`, '"nohost"', /must be HOST:PORT like/],
    [`${UPSTREAM}compression: { algorithm: "br, gzip", level: 0 }`, '0 }', /level must be 1\.\.9 for gzip, not 0/],
    [`${UPSTREAM}routes: [ { name: r, params: { id: path.id } } ]`, 'path.id', /reads path\.id but the route has no match\.path/],
    [`${UPSTREAM}routes: [ { name: r, match: { path: "/a/{x}" }, params: { id: path.id } } ]`, 'path.id', /match\.path has no \{id\} segment/],
    [`${UPSTREAM}routes: [ { name: r, match: { path: "/a/*/b" } } ]`, '"/a/*/b"', /"\*" may only end a path template/],
    [`${UPSTREAM}routes: [ { name: r, params: { v: response.id }, cache: { key: "k:{v}" } } ]`, '"k:{v}"', /comes from the response/],
    [`${UPSTREAM}routes: [ { name: r, params: { "bad-name": query.x } } ]`, '"bad-name"', /key "bad-name" must be letters, digits and _/],
    [`${UPSTREAM}routes: [ { name: r, cache: { key: k, store_if: { success: true } } } ]`, 'success', /store_if field "success" must be a dotted path into the response/],
    [`${UPSTREAM}routes: [ { name: r, match: { body: { a..b: 1 } } } ]`, 'a..b', /must be a dotted path/],
    [`${UPSTREAM}routes: [ { name: r, match: { body: { a: [1] } } } ]`, '[1]', /must be a string, a number or a boolean, not a list/],
    [`${UPSTREAM}routes: [ { name: r, cache: { ttl: 5m } } ]`, '{ ttl: 5m }', /routes\[0\]\.cache\.key is required/],
    [`${UPSTREAM}routes: [ { name: r, emits: [other] } ]\ncache: { invalidation: { triggers: [draft_updated] } }`, 'other', /event "other" is not in cache\.invalidation\.triggers/],
    [`${UPSTREAM}rate_limiting: { per_endpoint: { nope: { rps: 1 } } }`, 'nope', /neither a path \(starting with \/\) nor the name of a route/],
    [`${UPSTREAM}rate_limiting: { per_endpoint: { /a: { burst: 1 } } }`, '{ burst', /per_endpoint\["\/a"\]\.rps is required/],
    [`${UPSTREAM}rate_limiting: { global: { algorithm: leaky_bucket } }`, 'leaky_bucket', /must be "token_bucket"/],
    [`${UPSTREAM}queues: { max_in_flight: 0 }`, '0 }', /max_in_flight must be a positive integer or "auto"/],
    [`${UPSTREAM}queues: { default_priority: urgent }`, 'urgent', /must be one of high, medium, low/],
    [`${UPSTREAM}cache: { warmup: { strategies: [ { name: a, pattern: "x", schedule: "0 * * * *" }, { name: a, pattern: y, schedule: "0 * * * *" } ] } }`, 'a, pattern: y', /warm-up strategy name "a" is already used/],
    [`${UPSTREAM}profiling: { cpu: { interval: 10s, duration: 30s } }`, '30s', /must not be longer than profiling\.cpu\.interval/],
    [`${UPSTREAM}metrics: { buckets: [] }`, '[]', /must have at least 1 item/],
    [`${UPSTREAM}metrics: { buckets: [0.1, 0.1] }`, '0.1]', /ascending order without repeats/],
    [`${UPSTREAM}version: "one"`, '"one"', /version must be 1/],
    [`server: {}`, 'server', /upstream is required/],
    [`upstream: {}`, '{}', /upstream\.url is required/],
    [`upstream: { url: "http://127.0.0.1:9101/api" }`, '"http', /no path/],
    [`${UPSTREAM}tracing: { sampling_rate: .nan }`, '.nan', /sampling_rate must be a ratio/],
    [`${UPSTREAM}auto_tuning: { strategies: [ { name: a, trigger: "   ", action: increase_workers } ] }`, '"   "', /trigger must be a condition like/],
    [`${UPSTREAM}auto_tuning: { strategies: [ { name: a, trigger: "x > 1", action: increase_workers, params: { n: lots } } ] }`, 'lots', /params\.n must be a number \(or a percentage like 80%\)/],
    [`${UPSTREAM}compression: { types: [application/json, JSON] }`, 'JSON]', /types\[1\] must be a lower-case media type/],
  ];
  for (const [text, needle, re] of cases) {
    const errors = errorsOf(text);
    assertErrorAt(errors, text, needle, re);
  }
});

test('one mistake gives one error, not one from the schema and another from the semantic checks', () => {
  for (const v of ['"host_name:80"', '70000', '"0.0.0.0:99999"', '"[::1]:123456"']) {
    const errors = errorsOf(`${UPSTREAM}server: { listen: ${v} }`);
    assert.equal(errors.length, 1, `${v}: ${errors.map((e) => e.message).join(' | ')}`);
  }
  assert.equal(errorsOf(`${UPSTREAM}redis: { cluster: ["a:99999", "b_c:1"] }`).length, 2);
  assert.equal(errorsOf(`${UPSTREAM}compression: { level: 12 }`).length, 1);
  assert.equal(errorsOf(`${UPSTREAM}routes: [ { name: r, emits: ["bad name"] } ]\ncache: { invalidation: {} }`).length, 1);
});

test('semantic checks need their counterpart: the same settings are valid when it is present', () => {
  ok(`${UPSTREAM}redis: { url: "redis://127.0.0.1:6379" }\nrate_limiting: { scope: cluster }\ncache: { l2: {} }`);
  ok(`${UPSTREAM}routes: [ { name: r, emits: [other] } ]`); // no invalidation section: events are not checked
  ok(`${UPSTREAM}routes: [ { name: r, emits: [draft_updated] } ]\ncache: { invalidation: { triggers: [draft_updated] } }`);
  ok(`${UPSTREAM}compression: { algorithm: br, level: 0 }`);
  ok(`${UPSTREAM}server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0" }`);
});

test('a YAML syntax error is positioned where yaml reports it, and cascades are trimmed', () => {
  const errors = errorsOf(readFixture('syntax-error.yaml'));
  assert.equal(errors.length, 1);
  assert.deepEqual([errors[0].line, errors[0].col], [5, 3]);
  assert.match(errors[0].message, /Flow sequence/);

  const dup = 'upstream: { url: "http://a" }\nserver: {}\nserver: {}\n';
  const d = errorsOf(dup);
  assert.deepEqual(d.map((e) => [e.line, e.col]), [[3, 1]]);
  assert.match(d[0].message, /unique/i);

  const garbage = Array.from({ length: 40 }, (_, i) => `k${i}: [ {\n`).join('');
  const g = errorsOf(garbage);
  assert.ok(g.length <= 11, `cascade trimmed to 10 + a note, got ${g.length}`);
  for (const e of g) assert.ok(e.line >= 1 && e.col >= 1);
});

test('YAML features a policy must not rely on: collection keys, unknown aliases, alias bombs, tags', () => {
  assert.match(errorsOf(`${UPSTREAM}? [a, b]\n: 1\n`)[0].message, /mapping keys must be plain strings/);
  const e = errorsOf(`${UPSTREAM}server: { log_level: *nope }`);
  assert.ok(e.length >= 1);
  assert.ok(e.every((x) => x.line === 2), 'positioned on the alias line');
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 8; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill('*' + String.fromCharCode(96 + i)).join(', ')}]`);
  const b = errorsOf(bomb.join('\n') + '\n' + UPSTREAM);
  assert.ok(b.length >= 1 && b[0].line >= 1);
  assert.ok(errorsOf(`${UPSTREAM}server: { workers: !weird 2 }`).some((x) => x.line === 2));
});

test('empty file, comments only, not a mapping', () => {
  for (const name of ['empty.yaml', 'comments-only.yaml']) {
    const r = loadPolicyFile(fixture(name));
    assert.equal(r.ok, false);
    if (!r.ok) assert.deepEqual(r.errors, [{ file: fixture(name), line: 1, col: 1, message: 'policy is empty: `upstream.url` is required' }]);
  }
  assert.match(errorsOf('- a\n- b\n')[0].message, /policy must be a mapping/);
  assert.match(errorsOf('just a string')[0].message, /policy must be a mapping/);
});

test('missing, unreadable, directory and huge files give one error at 1:1', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'policy-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const missing = loadPolicyFile(join(dir, 'nope.yaml'));
  assert.deepEqual(missing, { ok: false, errors: [{ file: join(dir, 'nope.yaml'), line: 1, col: 1, message: 'cannot read policy: no such file' }] });
  const asDir = loadPolicyFile(dir);
  assert.equal(asDir.ok, false);
  if (!asDir.ok) assert.deepEqual([asDir.errors.length, asDir.errors[0].line, asDir.errors[0].col], [1, 1, 1]);

  const huge = join(dir, 'huge.yaml');
  writeFileSync(huge, UPSTREAM + '# ' + 'x'.repeat(MAX_POLICY_BYTES) + '\n');
  const h = loadPolicyFile(huge);
  assert.equal(h.ok, false);
  if (!h.ok) {
    assert.equal(h.errors.length, 1);
    assert.match(h.errors[0].message, /policy is too large .* the limit is 1MB/);
  }
  // a device reports size 0 but never ends: the read itself must stop at the limit
  const zero = loadPolicyFile('/dev/zero');
  assert.equal(zero.ok, false);
  if (!zero.ok) assert.match(zero.errors[0].message, /policy is too large/);
  const devnull = loadPolicyFile('/dev/null');
  assert.equal(devnull.ok, false);
  if (!devnull.ok) assert.match(devnull.errors[0].message, /policy is empty/);

  const hp = parsePolicy(UPSTREAM + '#' + 'é'.repeat(MAX_POLICY_BYTES / 2), 'x.yaml');
  assert.equal(hp.ok, false, 'the limit counts bytes, not characters');

  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked.yaml');
    writeFileSync(locked, UPSTREAM, { mode: 0o000 });
    const l = loadPolicyFile(locked);
    assert.equal(l.ok, false);
    if (!l.ok) assert.match(l.errors[0].message, /cannot read policy: permission denied/);
  }
});

test('the loaded policy is deep-frozen', () => {
  const loaded = ok(readFixture('full.yaml'));
  const p = loaded.policy;
  assert.ok(Object.isFrozen(loaded));
  const mutable: Array<[object, string]> = [
    [p, 'routes'], [p.server, 'workers'], [p.server.listen, 'port'], [p.upstream.pool, 'retries'], [p.routes, '0'],
    [p.routes[1].match.headers!, 'x-tenant'], [p.routes[0].cache!.store_if!, 'response.success'], [p.rate_limiting!.per_endpoint, '/mcp/add_video'],
    [p.cache!.warmup!.strategies[0], 'top'], [p.compression!.algorithm, '0'], [p.metrics.buckets, '0'], [p.auto_tuning!.strategies[2].params, 'increment'],
  ];
  for (const [o, k] of mutable) {
    assert.ok(Object.isFrozen(o), `frozen: ${k}`);
    assert.throws(() => { (o as Record<string, unknown>)[k] = 1; }, TypeError);
  }
  assert.throws(() => (p.routes as unknown as unknown[]).push({}), TypeError);
});

test('version is the first 12 hex of the sha256 of the content; summary names what is on', () => {
  const text = readFixture('full.yaml');
  const loaded = ok(text, 'full.yaml');
  assert.equal(loaded.version, policyVersion(text));
  assert.equal(policyVersion('upstream: {url: "http://a"}\n'), createHash('sha256').update('upstream: {url: "http://a"}\n').digest('hex').slice(0, 12));
  assert.equal(loaded.source, text);
  assert.equal(loaded.file, 'full.yaml');
  const s = summarize(loaded);
  assert.match(s, new RegExp(`^policy ok: version ${loaded.version}, 5 routes, `));
  assert.match(s, /rate limiting \(cluster: global\+per_user\+per_endpoint\)/);
  assert.match(s, /cache l1\+l2\+l3/);
  assert.ok(!s.includes('\n'));
  assert.match(summarize(ok(UPSTREAM)), /^policy ok: version [0-9a-f]{12}, 0 routes, upstream 127\.0\.0\.1:9101, listen 0\.0\.0\.0:15006, 2 workers$/);
});

test('formatErrors prints FILE:LINE:COL: message lines', () => {
  const out = formatErrors([{ file: 'p.yaml', line: 3, col: 7, message: 'bad\nthing' }, { file: 'p.yaml', line: 9, col: 1, message: 'x' }]);
  assert.equal(out, 'p.yaml:3:7: bad thing\np.yaml:9:1: x');
});
