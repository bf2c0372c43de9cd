import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { parseDocument, type Scalar } from 'yaml';
import { parsePolicy } from '../../lib/policy/load';
import { offsetInString } from '../../lib/policy/positions';
import type { PolicyError } from '../../lib/policy/types';
import { CLI } from '../helpers/sidecar';

const UPSTREAM = 'upstream: { url: "http://127.0.0.1:9101" }\n';

function errorsOf(text: string): PolicyError[] {
  const r = parsePolicy(text, 'p.yaml');
  if (r.ok) assert.fail('expected errors, but the policy was accepted');
  return r.errors;
}

/** 1-based line/col of `needle` (the nth occurrence) in `text`. */
function posOf(text: string, needle: string, nth = 1): { line: number; col: number } {
  let idx = -1;
  for (let i = 0; i < nth; i++) idx = text.indexOf(needle, idx + 1);
  assert.ok(idx >= 0, `test bug: no ${needle}`);
  const before = text.slice(0, idx);
  return { line: before.split('\n').length, col: idx - (before.lastIndexOf('\n') + 1) + 1 };
}

function assertAt(errors: PolicyError[], text: string, needle: string, re: RegExp): void {
  const { line, col } = posOf(text, needle);
  const hit = errors.find((e) => e.line === line && e.col === col && re.test(e.message));
  assert.ok(hit, `no error matching ${re} at ${line}:${col} (${needle}); got:\n${errors.map((e) => `${e.line}:${e.col}: ${e.message}`).join('\n')}`);
}

test('a bad trigger is reported at the exact character inside the string, however the string is quoted', () => {
  const cases: Array<[string, string, RegExp]> = [
    // flow mapping, double quotes
    [`auto_tuning: { strategies: [ { name: a, trigger: "memory_usage > 85% and queu_length > 100", action: increase_workers } ] }`,
      'queu_length', /strategies\[0\]\.trigger: unknown figure "queu_length" \(did you mean "queue_length"\?\) \(column 24 of the trigger\)/],
    // block mapping, plain scalar
    [`auto_tuning:\n  strategies:\n    - name: a\n      trigger: connection_wait_time > 100 or p99_latency > 1s\n      action: increase_pool_size\n`,
      '100 or', /connection_wait_time is a time: give the number a unit/],
    // single quotes with an escaped quote before the mistake ('' is one character of the value)
    [`auto_tuning:\n  strategies:\n    - { name: a, trigger: 'queue_length > 1 or ''x'' > 2', action: increase_workers }\n`,
      "''x''", /expected a condition like "memory_usage > 85%", found "'"|unexpected character "'"/],
    // double quotes with an escaped quote before the mistake
    [`auto_tuning:\n  strategies:\n    - { name: a, trigger: "queue_length > 1 or \\"q\\" or p99_latency > 5%", action: increase_workers }\n`,
      '\\"q', /unexpected character "\\""/],
    [`auto_tuning:\n  strategies:\n    - { name: a, trigger: "p99_latency > 5%", action: increase_workers }\n`,
      '%"', /p99_latency is compared with a time \(like 100ms or 2s\), not with "%"/],
    [`auto_tuning:\n  strategies:\n    - { name: a, trigger: "(queue_length > 5", action: increase_workers }\n`,
      '", action', /missing "\)" to close the "\(" at column 1/],
  ];
  for (const [yaml, needle, re] of cases) {
    const text = UPSTREAM + yaml + '\n';
    assertAt(errorsOf(text), text, needle, re);
  }
});

test('a trigger the positions cannot be mapped for (block scalar) points at the string itself, still with the column', () => {
  const text = `${UPSTREAM}auto_tuning:\n  strategies:\n    - name: a\n      trigger: >-\n        queue_length > 1 and\n        bogus > 2\n      action: increase_workers\n`;
  const errors = errorsOf(text);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].line, posOf(text, '>-').line);
  assert.match(errors[0].message, /unknown figure "bogus" .*\(column 22 of the trigger\)/);
});

test('params are checked against their action: names, ranges; the contract\'s strategies load', () => {
  const bad = `${UPSTREAM}auto_tuning:
  strategies:
    - { name: a, trigger: "memory_usage > 85%", action: reduce_cache_size, params: { reduction_factor: 1.2, floor: -3 } }
    - { name: b, trigger: "connection_wait_time > 100ms", action: increase_pool_size, params: { increment: 0, max_size: 2.5, max_workers: 4 } }
    - { name: c, trigger: "queue_length > 500", action: increase_workers, params: { increment: 2, max_workers: 0, revert_after: 0, cooldown: -1 } }
`;
  const errors = errorsOf(bad);
  assertAt(errors, bad, '1.2', /strategies\[0\]\.params\.reduction_factor must be a ratio between 0 and 1 \(exclusive\)/);
  assertAt(errors, bad, '-3', /params\.floor must be a share of cache\.l1\.size/);
  assertAt(errors, bad, '0, max_size', /params\.increment must be a whole number of at least 1, not 0/);
  assertAt(errors, bad, '2.5', /params\.max_size must be a whole number/);
  assertAt(errors, bad, 'max_workers: 4', /unknown param "max_workers" for action increase_pool_size \(expected one of: increment, max_size, revert_after, cooldown\)/);
  assertAt(errors, bad, '0, revert_after', /params\.max_workers must be a whole number of at least 1/);
  assertAt(errors, bad, '0, cooldown', /params\.revert_after must be a whole number/);
  assertAt(errors, bad, '-1 }', /params\.cooldown must be a number of seconds/);
  assert.equal(errors.length, 8, errors.map((e) => e.message).join('\n'));

  const good = parsePolicy(`${UPSTREAM}cache: { l1: { size: 64MB } }
auto_tuning:
  interval: 5m
  strategies:
    - { name: cache_size_tuning, trigger: "memory_usage > 85%", action: reduce_cache_size, params: { reduction_factor: 80%, floor: 25%, revert_after: 2 } }
    - { name: connection_pool_scaling, trigger: "connection_wait_time > 100ms", action: increase_pool_size, params: { increment: 5, max_size: 200 } }
    - { name: worker_scaling, trigger: "queue_length > 500 and not cpu_usage > 90%", action: increase_workers, params: { increment: 2, max_workers: 16, cooldown: 600 } }
`, 'p.yaml');
  assert.ok(good.ok, good.ok ? '' : good.errors.map((e) => e.message).join('\n'));
});

test('bridge-sidecar validate prints FILE:LINE:COL pointing inside the trigger', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tuning-validate-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'policy.yaml');
  const text = `${UPSTREAM}auto_tuning:\n  strategies:\n    - { name: a, trigger: "queue_length > 500 and p99_latency > 2", action: increase_workers }\n`;
  writeFileSync(file, text);
  const r = await promisify(execFile)(process.execPath, [CLI(), 'validate', file]).then(() => assert.fail('validate accepted it'), (e: { code: number; stderr: string }) => e);
  assert.equal(r.code, 1);
  const { line, col } = posOf(text, '2"');
  assert.equal(r.stderr.trim(), `${file}:${line}:${col}: auto_tuning.strategies[0].trigger: p99_latency is a time: give the number a unit, like 100ms or 1s (column 38 of the trigger)`);
});

test('fuzz: a character index inside a quoted or plain string maps to that character in the file', () => {
  const chars = fc.constantFrom(...'ab >%"\'\\(),.:#-_0123456789\té'.split(''));
  fc.assert(fc.property(fc.array(chars, { minLength: 1, maxLength: 30 }).map((a) => a.join('')), fc.nat(), fc.constantFrom('double', 'single'), (value, n, style) => {
    const quoted = style === 'double' ? JSON.stringify(value) : `'${value.replace(/'/g, "''")}'`;
    const text = `x: 1\nt: ${quoted}\n`;
    const doc = parseDocument(text);
    const node = doc.get('t', true) as Scalar<string>;
    assert.equal(node.value, value);
    const i = n % value.length;
    const off = offsetInString(node, i)!;
    if (/[\t\x00-\x1f]/.test(value)) {
      assert.equal(off, node.range![0] + 1, 'a string with escapes it cannot map points at its first character');
      return;
    }
    // an escaped character is written as two: \" or \\ in double quotes, '' in single quotes
    const escaped = style === 'double' ? value[i] === '"' || value[i] === '\\' : value[i] === "'";
    if (escaped) assert.equal(text[off], style === 'double' ? '\\' : "'");
    const at = escaped ? text[off + 1] : text[off];
    assert.equal(at, value[i], `${quoted} index ${i} -> offset ${off}`);
  }), { numRuns: 1000 });
});
