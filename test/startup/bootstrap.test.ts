/**
 * scripts/bootstrap.js (what `npm start` and `npm test` run first):
 * - compiles when any source is newer than the last build, not only when dist/ is missing: after a `git pull`,
 *   `npm start` must run the new code;
 * - `npm start` compiles only what the demo runs (cmd/, lib/, examples/), `npm test` everything;
 * - installs when node_modules does not hold package-lock.json's versions, judged by content, not by times (a
 *   fresh checkout's files all carry the checkout's time), and never through a node_modules link.
 * Checked on scratch checkouts (files and mtimes; real child processes running the real script and npm).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/repo';

interface Bootstrap {
  buildReason(dir: string, target?: 'all' | 'start'): string | null;
  installReason(dir: string): string | null;
}
const script = join(repoRoot(), 'scripts', 'bootstrap.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { buildReason, installReason } = require(script) as Bootstrap;

function file(dir: string, rel: string, at: number, content = ''): void {
  const p = join(dir, rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, content);
  utimesSync(p, at / 1000, at / 1000);
}

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-sidecar-bootstrap-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const SOURCES = ['cmd/serve.ts', 'lib/policy/load.ts', 'bench/core.ts', 'test/core/x.test.ts', 'examples/draft-service/main.ts', 'tsconfig.json'];

test('bootstrap rebuilds when dist/ is missing, or any of cmd/ lib/ bench/ test/ examples/ tsconfig.json is newer than the build', (t) => {
  const dir = scratch(t);
  const built = Date.now() - 60_000;
  file(dir, 'lib/server/worker.ts', built - 10_000);
  file(dir, 'tsconfig.json', built - 10_000);
  assert.equal(buildReason(dir), 'dist/ is missing');

  file(dir, 'dist/cmd/bridge-sidecar.js', built);
  file(dir, 'dist/.built-at', built);
  assert.equal(buildReason(dir), null, 'nothing newer than the build');

  for (const rel of SOURCES) {
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

test("npm start's build covers cmd/ lib/ examples/ only; npm test still needs the full build after it", (t) => {
  const dir = scratch(t);
  const built = Date.now() - 60_000;
  for (const rel of SOURCES) file(dir, rel, built - 10_000);
  file(dir, 'tsconfig.start.json', built - 10_000);
  assert.equal(buildReason(dir, 'start'), 'dist/ is missing');

  file(dir, 'dist/cmd/bridge-sidecar.js', built);
  file(dir, 'dist/.built-at-start', built);
  assert.equal(buildReason(dir, 'start'), null, 'the start build is up to date');
  assert.equal(buildReason(dir, 'all'), 'the tests are not compiled yet', 'a start build does not compile test/ or bench/');

  for (const rel of ['cmd/serve.ts', 'lib/policy/load.ts', 'examples/draft-service/main.ts', 'tsconfig.json', 'tsconfig.start.json']) {
    file(dir, rel, built + 5_000);
    assert.equal(buildReason(dir, 'start'), 'sources changed since the last build', `${rel} newer than the start build`);
    file(dir, rel, built - 5_000);
  }
  for (const rel of ['bench/core.ts', 'test/core/x.test.ts']) {
    file(dir, rel, built + 5_000);
    assert.equal(buildReason(dir, 'start'), null, `${rel} is not compiled for npm start`);
    file(dir, rel, built - 5_000);
  }

  // a full build (by bootstrap, or `npm run build` leaving its .tsbuildinfo) serves npm start too
  rmSync(join(dir, 'dist/.built-at-start'));
  file(dir, 'dist/.tsbuildinfo', built);
  assert.equal(buildReason(dir, 'start'), null);
  assert.equal(buildReason(dir, 'all'), null);
  file(dir, 'test/core/x.test.ts', built + 5_000);
  assert.equal(buildReason(dir, 'all'), 'sources changed since the last build');
  assert.equal(buildReason(dir, 'start'), null);
});

function lockfile(packages: Record<string, { version: string; optional?: boolean }>): string {
  const all: Record<string, unknown> = { '': { name: 'scratch', version: '1.0.0' } };
  for (const [name, p] of Object.entries(packages)) all[`node_modules/${name}`] = p;
  return JSON.stringify({ name: 'scratch', lockfileVersion: 3, requires: true, packages: all });
}

test('bootstrap installs when node_modules lacks a locked package or version, judged by content and not by times', (t) => {
  const dir = scratch(t);
  const now = Date.now();
  file(dir, 'package-lock.json', now, lockfile({ a: { version: '1.0.0' }, 'a/node_modules/b': { version: '2.0.0' }, fsevents: { version: '2.3.3', optional: true } }));
  assert.equal(installReason(dir), 'node_modules is missing');
  mkdirSync(join(dir, 'node_modules'));
  assert.equal(installReason(dir), 'node_modules was not installed by npm');

  // installed before the checkout: the lockfile is newer, its packages are all there (git gives a checkout's
  // files the checkout's time, whatever changed); the optional one for another platform was skipped by npm
  file(dir, 'node_modules/.package-lock.json', now - 3_600_000, lockfile({ a: { version: '1.0.0' }, 'a/node_modules/b': { version: '2.0.0' }, extra: { version: '9.9.9' } }));
  assert.equal(installReason(dir), null);

  file(dir, 'node_modules/.package-lock.json', now - 3_600_000, lockfile({ a: { version: '1.0.0' }, 'a/node_modules/b': { version: '2.0.1' } }));
  assert.equal(installReason(dir), 'node_modules does not match package-lock.json: b@2.0.0');
  file(dir, 'node_modules/.package-lock.json', now + 3_600_000, lockfile({ 'a/node_modules/b': { version: '2.0.0' } }));
  assert.equal(installReason(dir), 'node_modules does not match package-lock.json: a@1.0.0', 'newer but incomplete');
});

/**
 * A scratch package whose build scripts record what ran and write what tsc would (the entry point; the full
 * build's incremental state), then the real bootstrap in a child process, as npm start and npm test run it.
 */
function scratchPackage(dir: string): void {
  writeFileSync(join(dir, 'package.json'), JSON.stringify({
    name: 'scratch', version: '1.0.0', private: true,
    scripts: { build: 'node build.js all', 'build:start': 'node build.js start' },
  }));
  writeFileSync(join(dir, 'build.js'), [
    "const fs = require('node:fs');",
    "fs.mkdirSync('dist/cmd', { recursive: true });",
    "fs.writeFileSync('dist/cmd/bridge-sidecar.js', '');",
    "if (process.argv[2] === 'all') fs.writeFileSync('dist/.tsbuildinfo', '');",
    "fs.appendFileSync('builds.log', process.argv[2] + '\\n');",
  ].join('\n'));
  const lock = lockfile({ a: { version: '1.0.0' } });
  writeFileSync(join(dir, 'package-lock.json'), lock);
  file(dir, 'lib/x.ts', Date.now() - 60_000);
  file(dir, 'test/x.test.ts', Date.now() - 60_000);
}

/** The real script, copied into the scratch package so that its checkout is the scratch one, run as npm runs it. */
function runBootstrap(dir: string, target: 'all' | 'start'): { status: number | null; stderr: string } {
  mkdirSync(join(dir, 'scripts'), { recursive: true });
  copyFileSync(script, join(dir, 'scripts', 'bootstrap.js'));
  const r = spawnSync(process.execPath, ['scripts/bootstrap.js', ...(target === 'start' ? ['--start'] : [])], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stderr: r.stderr };
}

const builds = (dir: string): string[] => (existsSync(join(dir, 'builds.log')) ? readFileSync(join(dir, 'builds.log'), 'utf8').trim().split('\n') : []);

test('npm start runs the start build and drops the full build\'s incremental state; npm test then runs the full build', (t) => {
  const dir = scratch(t);
  scratchPackage(dir);
  file(dir, 'node_modules/.package-lock.json', Date.now() - 3_600_000, readFileSync(join(dir, 'package-lock.json'), 'utf8'));

  let r = runBootstrap(dir, 'start');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(builds(dir), ['start']);
  assert.doesNotMatch(r.stderr, /npm ci/, 'node_modules matches the lockfile: no install');
  assert.ok(existsSync(join(dir, 'dist/.built-at-start')));

  r = runBootstrap(dir, 'start');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(builds(dir), ['start'], 'nothing changed: no second build');

  r = runBootstrap(dir, 'all');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(builds(dir), ['start', 'all'], 'npm test compiles the tests');
  assert.ok(existsSync(join(dir, 'dist/.tsbuildinfo')));

  // a source changes: the start build must not leave the full build an incremental state that no longer
  // describes dist/ (if the source went back to what that state recorded, tsc would skip it and keep the
  // start build's output)
  file(dir, 'lib/x.ts', Date.now() + 5_000);
  r = runBootstrap(dir, 'start');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(builds(dir), ['start', 'all', 'start']);
  assert.ok(!existsSync(join(dir, 'dist/.tsbuildinfo')), 'the full build\'s incremental state is dropped');
  r = runBootstrap(dir, 'all');
  assert.deepEqual(builds(dir), ['start', 'all', 'start', 'all']);
});

test('bootstrap does not reinstall through a node_modules link (npm ci would empty the install it points to)', (t) => {
  const dir = scratch(t);
  scratchPackage(dir);
  const shared = join(dir, 'shared-modules');
  file(dir, 'shared-modules/.package-lock.json', Date.now(), lockfile({ a: { version: '0.9.0' } }));
  file(dir, 'shared-modules/a/package.json', Date.now(), '{"name":"a","version":"0.9.0"}');
  symlinkSync(shared, join(dir, 'node_modules'));

  const r = runBootstrap(dir, 'start');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /node_modules does not match package-lock\.json: a@1\.0\.0; node_modules links to .*shared-modules, not reinstalling through the link \(run npm ci there\)/);
  assert.ok(existsSync(join(shared, 'a/package.json')), 'the linked install is untouched');
  assert.deepEqual(builds(dir), ['start'], 'and the build still runs');
});
