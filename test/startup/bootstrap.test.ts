/**
 * scripts/bootstrap.js (what `npm start` and `npm test` run first) compiles when any source is newer than the
 * last build, not only when dist/ is missing: after a `git pull`, `npm start` must run the new code.
 * Checked on a scratch checkout (files and mtimes only), with the real script.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/repo';

interface Bootstrap { buildReason(dir: string): string | null }
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { buildReason } = require(join(repoRoot(), 'scripts', 'bootstrap.js')) as Bootstrap;

function file(dir: string, rel: string, at: number): void {
  const p = join(dir, rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, '');
  utimesSync(p, at / 1000, at / 1000);
}

test('bootstrap rebuilds when dist/ is missing, or any of cmd/ lib/ bench/ test/ examples/ tsconfig.json is newer than the build', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-sidecar-bootstrap-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const built = Date.now() - 60_000;
  file(dir, 'lib/server/worker.ts', built - 10_000);
  file(dir, 'tsconfig.json', built - 10_000);
  assert.equal(buildReason(dir), 'dist/ is missing');

  file(dir, 'dist/cmd/bridge-sidecar.js', built);
  file(dir, 'dist/.built-at', built);
  assert.equal(buildReason(dir), null, 'nothing newer than the build');

  for (const rel of ['cmd/serve.ts', 'lib/policy/load.ts', 'bench/core.ts', 'test/core/x.test.ts', 'examples/draft-service/main.ts', 'tsconfig.json']) {
    file(dir, rel, built + 5_000);
    assert.equal(buildReason(dir), 'sources changed since the last build', `${rel} newer than dist/`);
    file(dir, rel, built - 5_000);
    assert.equal(buildReason(dir), null, `${rel} back to older`);
  }
  // files that are not sources (docs, node_modules) never cause a build
  file(dir, 'lib/README.md', built + 5_000);
  file(dir, 'lib/node_modules/x/index.ts', built + 5_000);
  assert.equal(buildReason(dir), null);
});
