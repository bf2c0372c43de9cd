#!/usr/bin/env node
/**
 * `npm test`: every compiled test file under dist/test with node's built-in runner. Test files that need root
 * (network namespaces, iptables) check for it themselves and say so when they cannot run.
 * Extra arguments are passed to `node --test` (e.g. `npm test -- --test-name-pattern=cache`).
 */
'use strict';
const { readdirSync, statSync } = require('node:fs');
const { join, relative } = require('node:path');
const { spawnSync } = require('node:child_process');

const root = join(__dirname, '..');
const testRoot = join(root, 'dist', 'test');
const only = process.env.TEST_FILTER ? new RegExp(process.env.TEST_FILTER) : null;

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = walk(testRoot, []).filter((f) => !only || only.test(relative(root, f))).sort();
if (files.length === 0) {
  console.error('no test files found under dist/test (did the build run?)');
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY || '2';
const args = ['--test', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...process.argv.slice(2), ...files];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test' } });
process.exit(r.status === null ? 1 : r.status);
