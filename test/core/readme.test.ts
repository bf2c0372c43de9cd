/**
 * The README's policy reference is generated from the policy schema: it must not go stale.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { repoRoot, buildRoot } from '../helpers/repo';

test('README policy reference matches the schema (run scripts/gen-policy-reference.js to update)', () => {
  const r = spawnSync(process.execPath, [join(repoRoot(), 'scripts', 'gen-policy-reference.js'), buildRoot(), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('README shows the two commands and every CLI subcommand', () => {
  const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
  for (const s of ['npm start', 'npm test', 'bridge-sidecar serve', 'bridge-sidecar validate', 'bridge-sidecar intercept', 'bridge-sidecar loadtest', 'bridge-sidecar inject', 'bridge-sidecar webhook', 'bridge-sidecar demo']) {
    assert.ok(readme.includes(s), `README mentions ${s}`);
  }
});
