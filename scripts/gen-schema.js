#!/usr/bin/env node
/**
 * Writes policy.schema.json (the published JSON Schema of the policy file) from lib/policy/schema.ts, so the
 * file editors use and the loader's own check cannot drift apart. test/policy/schema.test.ts fails when the
 * committed file is stale.
 *
 *   node scripts/gen-schema.js [BUILD_DIR]           write it (BUILD_DIR: compiled output, default dist)
 *   node scripts/gen-schema.js [BUILD_DIR] --check   exit 1 if policy.schema.json is out of date
 */
'use strict';
const { readFileSync, writeFileSync, existsSync } = require('node:fs');
const { join, resolve } = require('node:path');

const root = resolve(__dirname, '..');
const args = process.argv.slice(2);
const check = args.includes('--check');
const buildDir = resolve(root, args.find((a) => !a.startsWith('--')) || 'dist');
const compiled = join(buildDir, 'lib', 'policy', 'schema.js');
if (!existsSync(compiled)) {
  process.stderr.write(`gen-schema: ${compiled} not found; build first (npm run build)\n`);
  process.exit(2);
}
const { POLICY_SCHEMA } = require(compiled);
const text = JSON.stringify(POLICY_SCHEMA, null, 2) + '\n';
const target = join(root, 'policy.schema.json');
if (check) {
  const current = existsSync(target) ? readFileSync(target, 'utf8') : '';
  if (current !== text) {
    process.stderr.write('gen-schema: policy.schema.json is out of date; run node scripts/gen-schema.js\n');
    process.exit(1);
  }
  process.stdout.write('policy.schema.json is up to date\n');
} else {
  writeFileSync(target, text);
  process.stdout.write(`wrote ${target}\n`);
}
