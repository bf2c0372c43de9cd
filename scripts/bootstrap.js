#!/usr/bin/env node
/**
 * Runs before `npm start` (from scripts/start.js) and `npm test` so each works as the first command on a fresh
 * clone, and after a `git pull`: installs dependencies when node_modules is missing or older than
 * package-lock.json, and compiles TypeScript when dist/ is missing or any source (cmd/, lib/, bench/, test/,
 * examples/, tsconfig.json) is newer than the last build. Uses only node's built-ins: nothing is installed yet
 * when it runs.
 *
 * usage: node scripts/bootstrap.js [--rebuild]   (--rebuild: compile even when nothing looks newer)
 */
'use strict';
const { existsSync, statSync, readdirSync, writeFileSync, mkdirSync } = require('node:fs');
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');

const root = join(__dirname, '..');
const SOURCE_DIRS = ['cmd', 'lib', 'bench', 'test', 'examples'];
const SOURCE_FILES = ['tsconfig.json'];
/** Written after a build this script ran: tsc's incremental build leaves unchanged outputs (and maybe its
 *  .tsbuildinfo) with their old times, so their mtimes cannot say when the last build happened. */
const stampIn = (dir) => join(dir, 'dist', '.built-at');

function checkNode() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 20) {
    console.error(`bridge-sidecar needs Node.js 20 or newer; this is ${process.version}.`);
    process.exit(1);
  }
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], shell: process.platform === 'win32' });
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

/** The newest mtime of a .ts/.json/.yaml source under dir (node_modules and dot-directories skipped). */
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

/** The newest source's mtime under a checkout, for deciding whether its dist/ is stale. */
function newestSource(dir = root) {
  let newest = 0;
  for (const d of SOURCE_DIRS) newest = Math.max(newest, newestIn(join(dir, d)));
  for (const f of SOURCE_FILES) newest = Math.max(newest, mtime(join(dir, f)));
  return newest;
}

/** Why a checkout's dist/ must be (re)built, or null when it is up to date. */
function buildReason(dir = root) {
  if (!existsSync(join(dir, 'dist', 'cmd', 'bridge-sidecar.js'))) return 'dist/ is missing';
  const built = Math.max(mtime(stampIn(dir)), mtime(join(dir, 'dist', '.tsbuildinfo')));
  return newestSource(dir) > built ? 'sources changed since the last build' : null;
}

function bootstrap({ rebuild = false } = {}) {
  checkNode();
  const lock = join(root, 'package-lock.json');
  const marker = join(root, 'node_modules', '.package-lock.json');
  const stale = !existsSync(marker) || (existsSync(lock) && mtime(lock) > mtime(marker) + 1000);
  if (stale) {
    console.error('bridge-sidecar: installing dependencies (npm ci)...');
    run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error']);
  }
  const why = rebuild ? 'requested' : buildReason();
  if (why !== null) {
    console.error(`bridge-sidecar: compiling TypeScript (${why})...`);
    run('npm', ['run', 'build', '--silent']);
    mkdirSync(join(root, 'dist'), { recursive: true });
    writeFileSync(stampIn(root), new Date().toISOString() + '\n');
  }
}

module.exports = { bootstrap, buildReason, newestSource };

if (require.main === module) bootstrap({ rebuild: process.argv.includes('--rebuild') });
