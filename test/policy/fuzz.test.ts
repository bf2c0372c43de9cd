/**
 * Property: whatever text the policy loader is given, it never throws, and it answers either a valid policy
 * or errors that point somewhere real in the file (line >= 1, col >= 1, within the text).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseDocument, stringify } from 'yaml';
import { parsePolicy } from '../../lib/policy/load';
import { readFixture } from './util';

function checkResult(text: string): void {
  let r: ReturnType<typeof parsePolicy>;
  try {
    r = parsePolicy(text, 'fuzz.yaml');
  } catch (e) {
    assert.fail(`parsePolicy threw on ${JSON.stringify(text.slice(0, 300))}: ${String(e)}`);
  }
  if (r.ok) {
    assert.ok(Object.isFrozen(r.loaded.policy));
    assert.equal(typeof r.loaded.policy.upstream.port, 'number');
    return;
  }
  assert.ok(r.errors.length >= 1);
  const lines = text.split('\n');
  for (const e of r.errors) {
    assert.ok(Number.isInteger(e.line) && e.line >= 1 && e.line <= lines.length, `line ${e.line} of ${lines.length}: ${e.message}`);
    assert.ok(Number.isInteger(e.col) && e.col >= 1 && e.col <= lines[e.line - 1].length + 1, `col ${e.col} on line ${e.line}: ${e.message}`);
    assert.ok(e.message.length > 0 && !e.message.includes('\n'));
    assert.doesNotMatch(e.message, /internal error/, 'a bug, not a policy problem');
  }
}

const full = readFixture('full.yaml');

test('random YAML-ish text never throws and errors are positioned', () => {
  const yamlish = fc.array(
    fc.constantFrom('upstream', 'url', 'server', 'cache', 'l1', 'routes', '- ', ': ', ':', '{', '}', '[', ']', ',', '\n', '  ', '#', '"', "'",
      '&a ', '*a', '!!str ', '? ', '---\n', '5m', '256MB', '80%', 'http://x:1', '{draft_id}', 'true', 'null', '~', '1', '-1', '0.5', '|\n', '>\n', '\t', 'é', '\u2028'),
    { maxLength: 40 },
  ).map((parts) => parts.join(''));
  fc.assert(fc.property(fc.oneof(yamlish, fc.string({ maxLength: 200 })), checkResult), { numRuns: 300, seed: 7 });
});

test('random character edits of a valid policy never throw and errors are positioned', () => {
  const edit = fc.record({ at: fc.nat({ max: full.length }), del: fc.nat({ max: 8 }), ins: fc.string({ maxLength: 6 }) });
  fc.assert(
    fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
      let text = full;
      for (const e of edits) text = text.slice(0, e.at) + e.ins + text.slice(e.at + e.del);
      checkResult(text);
    }),
    { numRuns: 300, seed: 11 },
  );
});

/** Replace the value at a random path of the valid policy with a random JSON value: structural mutations. */
test('random value replacements in a valid policy never throw and errors are positioned', () => {
  const base = parseDocument(full).toJS() as Record<string, unknown>;
  const paths: Array<Array<string | number>> = [];
  const collect = (v: unknown, p: Array<string | number>) => {
    paths.push(p);
    if (Array.isArray(v)) v.forEach((x, i) => collect(x, [...p, i]));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) collect(x, [...p, k]);
  };
  collect(base, []);
  const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('5m', '1KB', '80%', '', '{x}', 'auto', -1, 0, 1e12, 'POST'));
  fc.assert(
    fc.property(fc.nat({ max: paths.length - 1 }), value, fc.boolean(), (pi, v, remove) => {
      const copy = structuredClone(base);
      const p = paths[pi];
      if (p.length === 0) return;
      let parent: any = copy;
      for (const seg of p.slice(0, -1)) parent = parent[seg];
      const last = p[p.length - 1];
      if (remove && !Array.isArray(parent)) delete parent[last];
      else parent[last] = v;
      checkResult(stringify(copy));
    }),
    { numRuns: 300, seed: 23 },
  );
});
