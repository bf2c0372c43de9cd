/** Shared by the policy tests: fixture paths, parsing helpers and "where is this text" positions. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePolicy } from '../../lib/policy/load';
import type { LoadedPolicy, Policy, PolicyError } from '../../lib/policy/types';
import { repoRoot } from '../helpers/repo';

export const UPSTREAM = 'upstream: { url: "http://127.0.0.1:9101" }\n';

export function fixture(name: string): string {
  return join(repoRoot(), 'test', 'fixtures', 'policies', name);
}

export function readFixture(name: string): string {
  return readFileSync(fixture(name), 'utf8');
}

/** Parse text that must be valid; fails the test with the formatted errors otherwise. */
export function ok(text: string, file = 'test.yaml'): LoadedPolicy {
  const r = parsePolicy(text, file);
  if (!r.ok) assert.fail('expected a valid policy, got:\n' + r.errors.map((e) => `${e.line}:${e.col}: ${e.message}`).join('\n'));
  return r.loaded;
}

export function policyOf(text: string): Policy {
  return ok(text).policy;
}

/** Parse text that must be invalid; returns its errors. */
export function errorsOf(text: string, file = 'test.yaml'): PolicyError[] {
  const r = parsePolicy(text, file);
  if (r.ok) assert.fail('expected errors, but the policy was accepted');
  return r.errors;
}

/** 1-based line/col of the `nth` occurrence of `needle` in `text` (so tests do not hard-code positions). */
export function posOf(text: string, needle: string, nth = 1): { line: number; col: number } {
  let idx = -1;
  for (let i = 0; i < nth; i++) {
    idx = text.indexOf(needle, idx + 1);
    if (idx === -1) throw new Error(`test bug: ${JSON.stringify(needle)} occurs fewer than ${nth} times`);
  }
  const before = text.slice(0, idx);
  const line = before.split('\n').length;
  const col = idx - (before.lastIndexOf('\n') + 1) + 1;
  return { line, col };
}

/** Assert there is an error at the position of `needle` whose message matches `re`. */
export function assertErrorAt(errors: readonly PolicyError[], text: string, needle: string, re: RegExp, nth = 1): void {
  const { line, col } = posOf(text, needle, nth);
  const hit = errors.find((e) => e.line === line && e.col === col && re.test(e.message));
  if (!hit) {
    assert.fail(`no error matching ${re} at ${line}:${col} (${needle}); got:\n` + errors.map((e) => `${e.line}:${e.col}: ${e.message}`).join('\n'));
  }
}
