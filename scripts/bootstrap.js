#!/usr/bin/env node
/**
 * Runs before `npm start` and `npm test` so each works as the first command on a fresh clone:
 * installs dependencies when node_modules is missing or stale, and compiles TypeScript when dist/ is missing
 * (or always, with --rebuild). Uses only node's built-ins: nothing is installed yet when it runs.
 */
'use strict';
const { existsSync, statSync } = require('node:fs');
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');

const root = join(__dirname, '..');
const major = Number(process.versions.node.split('.')[0]);
if (major < 20) {
  console.error(`bridge-sidecar needs Node.js 20 or newer; this is ${process.version}.`);
  process.exit(1);
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (r.status !== 0) {
    console.error(`\n"${cmd} ${args.join(' ')}" failed (exit ${r.status}).`);
    process.exit(r.status || 1);
  }
}

const lock = join(root, 'package-lock.json');
const marker = join(root, 'node_modules', '.package-lock.json');
const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs + 1000);
if (stale) {
  console.error('bridge-sidecar: installing dependencies (npm ci)...');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}
const rebuild = process.argv.includes('--rebuild');
if (rebuild || !existsSync(join(root, 'dist', 'cmd', 'bridge-sidecar.js'))) {
  console.error('bridge-sidecar: compiling TypeScript (npm run build)...');
  run('npm', ['run', 'build', '--silent']);
}
