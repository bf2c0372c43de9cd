/**
 * What `npm ci` installs on a fresh clone is most of the wait before `npm start` serves. @opentelemetry/sdk-node
 * (a dependency the contract names) pins its sibling packages exactly, one patch behind the ones the tracing code
 * uses, and without package.json's `overrides` npm gives each of its ten exporters a private copy of six of
 * them: 95 more packages and 30,000 more files (320 MB instead of 160 MB; npm ci about 28 s instead of 14 s here).
 * The lockfile must hold one version of each @opentelemetry package.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/repo';

interface Lock { packages: Record<string, { version?: string }> }

test('package-lock.json holds one copy of each @opentelemetry package, and sdk-node stays a dependency', () => {
  const root = repoRoot();
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Lock;
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.ok(pkg.dependencies['@opentelemetry/sdk-node'], 'the contract names @opentelemetry/sdk-node as the tracing dependency');

  const copies = new Map<string, string[]>();
  for (const [path, p] of Object.entries(lock.packages)) {
    const name = /node_modules\/(@opentelemetry\/[^/]+)$/.exec(path)?.[1];
    if (name) copies.set(name, [...(copies.get(name) ?? []), `${path} ${p.version}`]);
  }
  assert.ok(copies.size > 10, 'the lockfile lists the @opentelemetry packages');
  const duplicated = [...copies].filter(([, at]) => at.length > 1).map(([name, at]) => `${name}: ${at.join(', ')}`);
  assert.deepEqual(duplicated, [], 'nested copies: align package.json overrides with the versions the tracing code uses');
});
