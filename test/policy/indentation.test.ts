/**
 * YAML indentation mistakes are explained in words at the line that is wrong (the parser's own messages name
 * its grammar and often point at the line before), and `enabled: yes` says that YAML 1.2 reads `yes` as a
 * string.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePolicy } from '../../lib/policy/load';
import { explainIndentation } from '../../lib/policy/indentation';
import { repoRoot } from '../helpers/repo';

function errorsOf(lines: string[]): string[] {
  const r = parsePolicy(lines.join('\n') + '\n', 'p.yaml');
  assert.equal(r.ok, false);
  return r.ok ? [] : r.errors.map((e) => `${e.line}:${e.col}: ${e.message}`);
}

const HEAD = ['version: 1', 'upstream:', '  url: http://127.0.0.1:9101'];

test('a key indented under a `key: value` line: reported at that line, in words', () => {
  assert.deepEqual(errorsOf([...HEAD, 'server:', '  workers: 2', '  log_level: info', '   listen: 0.0.0.0:15006']), [
    '7:4: line 7 is indented under a `key: value` line (line 6, `log_level: info`), which already has its value, so `listen:` cannot go inside it: ' +
      'indent `listen:` like `log_level:` (2 spaces), or to nest it, write `log_level:` with no value on line 6',
  ]);
  // the same under a list item's key whose value is a one-line flow mapping
  assert.deepEqual(errorsOf([...HEAD, 'routes:', '  - name: a', '    match: { path: /a }', '      priority: high']), [
    '7:7: line 7 is indented under a `key: value` line (line 6, `match: { path: /a }`), which already has its value, so `priority:` cannot go inside it: ' +
      'indent `priority:` like `match:` (4 spaces), or to nest it, write `match:` with no value on line 6',
  ]);
});

test('a key that lines up with nothing above it: the sibling and parent columns are named', () => {
  assert.deepEqual(errorsOf([...HEAD, 'server:', '  workers: 2', ' log_level: info']), [
    '6:2: line 6 is indented 1 space, which lines up with no key above it (under `server:` on line 4): indent it like `workers:` on line 5 (2 spaces), or like `server:` (0 spaces) to end the block',
  ]);
  assert.deepEqual(errorsOf([...HEAD, 'routes:', '  - name: a', '    match: { path: /a }', '   priority: high']), [
    '7:4: line 7 is indented 3 spaces, which lines up with no key above it (in the list item of line 5): indent it like `match:` on line 6 (4 spaces)',
  ]);
});

test('the explainer never speaks up on valid policies (every example and fixture, block scalars, flow over lines)', () => {
  const files = [
    ...['policy.yaml', 'demo-policy.yaml'].map((f) => join(repoRoot(), 'examples', f)),
    ...readdirSync(join(repoRoot(), 'test', 'fixtures', 'policies')).filter((f) => f !== 'syntax-error.yaml').map((f) => join(repoRoot(), 'test', 'fixtures', 'policies', f)),
  ];
  for (const f of files) assert.equal(explainIndentation(readFileSync(f, 'utf8')), null, f);
  assert.equal(explainIndentation('a: |\n  text\n     more\nb: 1\nc:\n  - x: 1\n    y: [1,\n  2]\n'), null);
});

test('a YAML 1.1 boolean (yes/no/on/off) gets a hint; YAML 1.2 reads it as a string', () => {
  const [line] = errorsOf([...HEAD, 'compression:', '  enabled: yes']);
  assert.equal(line, '5:12: compression.enabled must be a boolean (true or false), not a string ("yes": YAML 1.2 reads yes/no/on/off as strings, not booleans; write true)');
  const [off] = errorsOf([...HEAD, 'tracing:', '  enabled: Off']);
  assert.match(off!, /\("Off": YAML 1\.2 reads yes\/no\/on\/off as strings, not booleans; write false\)$/);
  // a plain wrong string gets no such hint
  const [other] = errorsOf([...HEAD, 'compression:', '  enabled: maybe']);
  assert.equal(other, '5:12: compression.enabled must be a boolean (true or false), not a string');
});
