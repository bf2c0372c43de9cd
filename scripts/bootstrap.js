#!/usr/bin/env node
/**
 * Runs before `npm start` (from scripts/start.js) and `npm test` so each works as the first command on a fresh
 * clone, and after a `git pull`: installs dependencies when node_modules does not hold what package-lock.json
 * lists, and compiles TypeScript when dist/ is missing or any source is newer than the last build. Uses only
 * node's built-ins: nothing is installed yet when it runs.
 *
 * Two builds, into the same dist/:
 * - `start` (tsconfig.start.json): cmd/, lib/, examples/, what `npm start` runs; about half the code, so a
 *   fresh clone serves sooner. Type-checked like the full build.
 * - `all` (tsconfig.json): also test/ and bench/, for `npm test`; a full build also serves `npm start`.
 *
 * The install check compares versions, not times: git gives every file it checks out the checkout's time, so a
 * fresh checkout next to an installed node_modules (or a `git pull` that did not touch the dependencies) must not
 * reinstall.
 *
 * usage: node scripts/bootstrap.js [--rebuild] [--start]   (--rebuild: compile even when nothing looks newer;
 *        --start: only what `npm start` needs)
 */
'use strict';
const { existsSync, statSync, lstatSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync, mkdirSync } = require('node:fs');
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');

const root = join(__dirname, '..');

/**
 * `stamp` is written after a build this script ran: tsc's incremental build leaves unchanged outputs (and maybe
 * its .tsbuildinfo) with their old times, so their mtimes cannot say when the last build happened.
 */
const BUILDS = {
  all: { script: 'build', dirs: ['cmd', 'lib', 'bench', 'test', 'examples'], files: ['tsconfig.json'], stamp: '.built-at' },
  start: { script: 'build:start', dirs: ['cmd', 'lib', 'examples'], files: ['tsconfig.json', 'tsconfig.start.json'], stamp: '.built-at-start' },
};
/** The full build's incremental state (tsconfig.json's tsBuildInfoFile). */
const FULL_BUILD_INFO = '.tsbuildinfo';

function checkNode() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 20) {
    console.error(`bridge-sidecar needs Node.js 20 or newer; this is ${process.version}.`);
    process.exit(1);
  }
}

function run(dir, cmd, args) {
  const r = spawnSync(cmd, args, { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'], shell: process.platform === 'win32' });
  if (r.status !== 0) {
    console.error(`\n"${cmd} ${args.join(' ')}" failed (exit ${r.status ?? r.signal}).`);
    process.exit(r.status || 1);
  }
}

function mtime(p) {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

function readJson(p) {
  try {
    return JSON.parse(readFileSync(p, 'utf8'));
  } catch {
    return null;
  }
}

/** The newest mtime of a .ts source under dir (node_modules and dot-directories skipped). */
function newestIn(dir) {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (e.name.startsWith('.') || e.name === 'node_modules') continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestIn(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, mtime(p));
  }
  return newest;
}

/** The newest source's mtime under a checkout, among the sources of one build. */
function newestSource(dir = root, target = 'all') {
  const b = BUILDS[target];
  let newest = 0;
  for (const d of b.dirs) newest = Math.max(newest, newestIn(join(dir, d)));
  for (const f of b.files) newest = Math.max(newest, mtime(join(dir, f)));
  return newest;
}

/** Why a checkout's dist/ must be (re)built for a target ('all' or 'start'), or null when it is up to date. */
function buildReason(dir = root, target = 'all') {
  if (!existsSync(join(dir, 'dist', 'cmd', 'bridge-sidecar.js'))) return 'dist/ is missing';
  const full = Math.max(mtime(join(dir, 'dist', BUILDS.all.stamp)), mtime(join(dir, 'dist', FULL_BUILD_INFO)));
  const built = target === 'start' ? Math.max(full, mtime(join(dir, 'dist', BUILDS.start.stamp))) : full;
  if (built === 0) return 'the tests are not compiled yet';
  return newestSource(dir, target) > built ? 'sources changed since the last build' : null;
}

/**
 * Why a checkout's node_modules must be installed, or null when every package package-lock.json lists is there in
 * its version (npm records what it installed in node_modules/.package-lock.json). Extra packages do no harm.
 */
function installReason(dir = root) {
  const modules = join(dir, 'node_modules');
  if (!existsSync(modules)) return 'node_modules is missing';
  const wanted = readJson(join(dir, 'package-lock.json'))?.packages;
  if (!wanted) return null; // nothing to compare with; npm ci needs the lockfile anyway
  const installed = readJson(join(modules, '.package-lock.json'))?.packages;
  if (!installed) return 'node_modules was not installed by npm';
  const differ = [];
  for (const [path, p] of Object.entries(wanted)) {
    if (!path.startsWith('node_modules/') || p.link) continue;
    const have = installed[path];
    // an optional package npm skipped (another platform's binary) is not a reason to reinstall
    if (!have && p.optional) continue;
    if (have?.version !== p.version) differ.push(`${path.slice(path.lastIndexOf('node_modules/') + 13)}@${p.version}`);
  }
  if (differ.length === 0) return null;
  const some = differ.slice(0, 3).join(', ') + (differ.length > 3 ? `, ... (${differ.length})` : '');
  return `node_modules does not match package-lock.json: ${some}`;
}

function isLink(p) {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function bootstrap({ rebuild = false, target = 'all' } = {}) {
  checkNode();
  const install = installReason(root);
  if (install !== null) {
    const modules = join(root, 'node_modules');
    if (isLink(modules)) {
      // npm ci empties node_modules first: through a link it would empty an install other checkouts are using
      console.error(`bridge-sidecar: ${install}; node_modules links to ${realpathSync(modules)}, not reinstalling through the link (run npm ci there)`);
    } else {
      console.error(`bridge-sidecar: installing dependencies (npm ci: ${install})...`);
      run(root, 'npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error']);
    }
  }
  const why = rebuild ? 'requested' : buildReason(root, target);
  if (why === null) return;
  const b = BUILDS[target];
  console.error(`bridge-sidecar: compiling TypeScript${target === 'start' ? ` (${b.dirs.join('/, ')}/)` : ''}: ${why}...`);
  run(root, 'npm', ['run', b.script, '--silent']);
  mkdirSync(join(root, 'dist'), { recursive: true });
  // The start build rewrote outputs the full build's incremental state describes; that state would let a later
  // full build skip a file whose source went back to the content it recorded, leaving the start build's output.
  if (target === 'start') rmSync(join(root, 'dist', FULL_BUILD_INFO), { force: true });
  writeFileSync(join(root, 'dist', b.stamp), new Date().toISOString() + '\n');
}

module.exports = { bootstrap, buildReason, installReason, newestSource };

if (require.main === module) {
  bootstrap({ rebuild: process.argv.includes('--rebuild'), target: process.argv.includes('--start') ? 'start' : 'all' });
}
