import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseHostPort } from '../../lib/policy/semantic';
import { POLICY_SCHEMA } from '../../lib/policy/schema';
import { parseDuration, parseRatio, parseSize } from '../../lib/policy/units';
import { buildRoot, repoRoot } from '../helpers/repo';
import { policyOf } from './util';

type Schema = Record<string, unknown>;

test('policy.schema.json is exactly what lib/policy/schema.ts says (run scripts/gen-schema.js after a change)', () => {
  const published = readFileSync(join(repoRoot(), 'policy.schema.json'), 'utf8');
  assert.equal(published, JSON.stringify(POLICY_SCHEMA, null, 2) + '\n');
  const out = execFileSync(process.execPath, [join(repoRoot(), 'scripts', 'gen-schema.js'), buildRoot(), '--check'], { encoding: 'utf8' });
  assert.match(out, /up to date/);
});

test('the schema is draft 2020-12, closed everywhere, and its $refs resolve', () => {
  assert.equal(POLICY_SCHEMA.$schema, 'https://json-schema.org/draft/2020-12/schema');
  const defs = POLICY_SCHEMA.$defs as Record<string, Schema>;
  let objects = 0;
  const walk = (s: unknown, where: string): void => {
    if (Array.isArray(s)) return s.forEach((x, i) => walk(x, `${where}[${i}]`));
    if (s === null || typeof s !== 'object') return;
    const o = s as Schema;
    if (typeof o.$ref === 'string') assert.ok(defs[o.$ref.replace('#/$defs/', '')], `${where}: ${o.$ref} resolves`);
    if (o.properties) {
      objects++;
      assert.equal(o.additionalProperties, false, `${where} has fixed keys, so unknown keys must be errors`);
    }
    for (const [k, v] of Object.entries(o)) if (k !== 'default' && k !== 'examples' && k !== 'const' && k !== 'enum') walk(v, `${where}/${k}`);
  };
  walk(POLICY_SCHEMA, '#');
  assert.ok(objects > 20);
});

/** The `default` annotations editors show must be the numbers the loader really fills in. */
test('every default in the schema is the value the loader fills in', () => {
  const defs = POLICY_SCHEMA.$defs as Record<string, Schema>;
  const convert = (prop: Schema, v: unknown, key: string): unknown => {
    switch (prop.$ref) {
      case '#/$defs/size': return parseSize(v);
      case '#/$defs/duration': return parseDuration(v);
      case '#/$defs/ratio': return parseRatio(v);
      case '#/$defs/listen': return parseHostPort(v);
      default: return key === 'compression.algorithm' ? [v] : v;
    }
  };
  // section path in the file -> a policy that has it present and empty, and where to read it
  const sections: Array<[string[], string]> = [
    [['server'], ''], [['upstream', 'pool'], ''], [['redis'], 'redis: { url: "redis://r:6379" }\n'],
    [['rate_limiting', 'identity'], 'rate_limiting: {}\n'], [['rate_limiting', 'global'], 'rate_limiting: { global: {} }\n'],
    [['rate_limiting', 'per_user'], 'rate_limiting: { per_user: {} }\n'], [['rate_limiting'], 'rate_limiting: {}\n'],
    [['queues'], 'queues: {}\n'], [['cache'], 'cache: {}\n'], [['cache', 'l1'], 'cache: { l1: {} }\n'],
    [['cache', 'l2'], 'redis: { url: "redis://r:6379" }\ncache: { l2: {} }\n'], [['cache', 'l3'], 'cache: { l3: {} }\n'],
    [['cache', 'warmup'], 'cache: { warmup: {} }\n'], [['cache', 'invalidation'], 'cache: { invalidation: {} }\n'],
    [['compression'], 'compression: {}\n'], [['memory'], 'memory: {}\n'], [['metrics'], ''], [['tracing'], 'tracing: {}\n'],
    [['profiling'], 'profiling: {}\n'], [['profiling', 'cpu'], 'profiling: {}\n'], [['profiling', 'heap'], 'profiling: {}\n'],
    [['auto_tuning'], 'auto_tuning: {}\n'],
  ];
  let checked = 0;
  for (const [path, extra] of sections) {
    const policy = policyOf('upstream: { url: "http://u:1" }\n' + extra) as unknown as Record<string, unknown>;
    let schema = POLICY_SCHEMA as Schema;
    let value: unknown = policy;
    for (const seg of path) {
      schema = (schema.properties as Record<string, Schema>)[seg];
      value = (value as Record<string, unknown>)[seg];
    }
    for (const [key, prop] of Object.entries(schema.properties as Record<string, Schema>)) {
      const resolved = typeof prop.$ref === 'string' ? { ...defs[prop.$ref.replace('#/$defs/', '')], ...prop } : prop;
      if (!('default' in resolved)) continue;
      assert.deepEqual((value as Record<string, unknown>)[key], convert(prop, resolved.default, `${path.join('.')}.${key}`), `${path.join('.')}.${key}`);
      checked++;
    }
  }
  const route = policyOf('upstream: { url: "http://u:1" }\nroutes: [ { name: r, cache: { key: k } } ]').routes[0].cache as unknown as Record<string, unknown>;
  const routeCache = ((defs.route.properties as Record<string, Schema>).cache.properties) as Record<string, Schema>;
  for (const [key, prop] of Object.entries(routeCache)) {
    if (!('default' in prop)) continue;
    assert.deepEqual(route[key], convert(prop, prop.default, key), `routes[].cache.${key}`);
    checked++;
  }
  assert.ok(checked > 60, `checked ${checked} defaults`);
});
