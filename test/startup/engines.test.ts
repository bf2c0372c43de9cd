/**
 * `npm install` on the Node the README promises (20 or newer) must not print EBADENGINE: every package in the
 * lockfiles (the project's and the on-demand Kubernetes tooling's) must accept Node 20 and the Node running
 * the tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/repo';

type Version = [number, number, number];

function parse(v: string): Version {
  const [a = 0, b = 0, c = 0] = v.replace(/^v/, '').split('.').map((x) => (x === 'x' || x === '*' ? 0 : Number(x)));
  return [a, b, c];
}

function cmp(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** npm's engines ranges as they appear in lockfiles: `a || b`, each a list of comparators (>=, <, ^, x.*). */
export function satisfies(version: string, range: string): boolean {
  const v = parse(version);
  return range.split('||').some((alt) => alt.replace(/(>=|<=|>|<|\^|~|=)\s+/g, '$1').trim().split(/\s+/).every((c) => {
    const m = /^(>=|<=|>|<|\^|~|=)?\s*v?([\dx*]+(?:\.[\dx*]+)*)$/.exec(c.trim());
    if (!m) return c.trim() === '' || c.trim() === '*';
    if (m[2] === '*' || m[2] === 'x') return true;
    const op = m[1] ?? '=';
    const w = parse(m[2]!);
    const parts = m[2]!.split('.');
    const wildcard = parts.length < 3 || parts.some((p) => p === 'x' || p === '*');
    switch (op) {
      case '>=': return cmp(v, w) >= 0;
      case '>': return cmp(v, w) > 0;
      case '<=': return cmp(v, w) <= 0;
      case '<': return cmp(v, w) < 0;
      case '^': return v[0] === w[0] && cmp(v, w) >= 0;
      case '~': return v[0] === w[0] && v[1] === w[1] && cmp(v, w) >= 0;
      default: return wildcard ? v[0] === w[0] && (parts.length < 2 || parts[1] === 'x' || parts[1] === '*' || v[1] === w[1]) : cmp(v, w) === 0;
    }
  }));
}

test('the engines check itself: ranges npm writes', () => {
  assert.ok(satisfies('20.20.2', '>=20'));
  assert.ok(!satisfies('20.20.2', '>=22'));
  assert.ok(satisfies('20.20.2', '20 || >=22'));
  assert.ok(satisfies('20.20.2', '18 || 20 || >=22'));
  assert.ok(satisfies('20.20.2', '>= 10.x'));
  assert.ok(satisfies('20.20.2', '>= 14.16.0'));
  assert.ok(!satisfies('20.20.2', '>= 21'));
  assert.ok(satisfies('20.20.2', '*'));
  assert.ok(satisfies('20.20.2', '^20.19.0 || >=22.12.0'));
  assert.ok(!satisfies('20.1.0', '^20.19.0 || >=22.12.0'));
  assert.ok(satisfies('20.20.2', '6.* || 8.* || >= 10.*'));
});

for (const lock of ['package-lock.json', 'scripts/k8s-tools/package-lock.json']) {
  test(`every package in ${lock} accepts Node 20.0 to 24 and ${process.version}`, () => {
    const l = JSON.parse(readFileSync(join(repoRoot(), lock), 'utf8')) as { packages: Record<string, { engines?: { node?: string } }> };
    const refused: string[] = [];
    for (const [name, p] of Object.entries(l.packages)) {
      const range = p.engines?.node;
      if (!range) continue;
      for (const v of ['20.19.0', '22.12.0', '24.0.0', process.version]) {
        if (!satisfies(v, range)) refused.push(`${name || '(root)'} wants node ${range}, not ${v}`);
      }
    }
    assert.deepEqual(refused, []);
  });
}
